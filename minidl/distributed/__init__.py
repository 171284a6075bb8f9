"""Data-parallel training over MPI (PyTorch's ``torch.distributed`` names).

Start N copies of a program with ``mpiexec -n N python train.py``; in it::

    import minidl.distributed as dist
    dist.init_process_group()            # or dist.init()
    model = minidl.nn.parallel.DistributedDataParallel(model)

See docs/distributed.md. The collectives are in collectives.py, the transport (MPI, NCCL, one
process) in communicator.py.
"""

from .collectives import (ReduceOp, abort, all_gather, all_gather_object, all_reduce, barrier,
                          broadcast, broadcast_object_list, communicator, destroy_process_group,
                          get_backend, get_rank, get_world_size, init, init_process_group,
                          is_available, is_initialized, is_mpi_available, is_nccl_available)

__all__ = ["ReduceOp", "abort", "all_gather", "all_gather_object", "all_reduce", "barrier", "broadcast",
           "broadcast_object_list", "communicator", "destroy_process_group", "get_backend", "get_rank",
           "get_world_size", "init", "init_process_group", "is_available", "is_initialized",
           "is_mpi_available", "is_nccl_available"]
