"""``minidl.distributed``'s process group and collectives on tensors (PyTorch's names).

A job is N copies of one program started by ``mpiexec -n N``; each copy is a *rank*. After
``init_process_group()`` every rank calls the same collectives in the same order:

    all_reduce(t)       t <- t_0 + t_1 + ... + t_{N-1}   on every rank (or product/min/max/avg)
    broadcast(t, src)   t <- t_src                      on every rank
    all_gather(ts, t)   ts[r] <- t_r                    on every rank

Each writes into the tensors it is given, outside autograd, as PyTorch's do, and counts as an
in-place change of them (their version counter moves). The arrays travel through the
communicator seam (communicator.py).
"""

import enum
import numbers

from ..tensor import Tensor
from . import communicator as _comm


class ReduceOp(enum.Enum):
    """How ``all_reduce`` combines the ranks' values."""
    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"


_BACKENDS = {"mpi": _comm.MPICommunicator, "gloo": _comm.MPICommunicator,  # gloo: PyTorch's CPU name
             "nccl": _comm.NCCLCommunicator}
_state = {"communicator": None, "backend": None}


class _Work:
    """What ``async_op=True`` returns: minidl's collectives are done when they return."""

    def wait(self, timeout=None):
        return True

    def is_completed(self):
        return True


def is_available():
    """True: the package is always there (MPI itself is needed only for more than one process)."""
    return True


def is_mpi_available():
    try:
        _comm._mpi()
    except RuntimeError:
        return False
    return True


def is_nccl_available():
    try:
        import cupy.cuda.nccl as nccl
        del nccl
    except Exception:
        return False
    return True


def is_initialized():
    return _state["communicator"] is not None


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    """Join the job this process belongs to (``mpiexec``'s environment says which).

    ``backend``: ``"mpi"`` (the default; ``"gloo"`` is taken as MPI, for PyTorch programs) or
    ``"nccl"`` (CuPy arrays between GPUs through NCCL). A process not started by an MPI launcher
    is a job of one and needs no MPI library. ``world_size``/``rank``, when given, must agree
    with the launcher's. An uncaught exception on any rank then ends every rank of the job."""
    if is_initialized():
        raise ValueError("trying to initialize the default process group twice!")
    name = "mpi" if backend is None else str(backend).lower()
    if name not in _BACKENDS:
        raise ValueError(f"init_process_group: backend must be one of {sorted(_BACKENDS)}, got {backend!r}")
    if _comm.launched_by_mpi() or name == "nccl":
        communicator = _BACKENDS[name]()
    else:
        communicator = _comm.SingleProcess()
    for given, actual, what in ((world_size, communicator.size, "world_size"), (rank, communicator.rank, "rank")):
        if given not in (-1, None) and given != actual:
            raise ValueError(f"init_process_group: {what}={given} but the launcher started this "
                             f"process with {what} {actual}")
    _state.update(communicator=communicator, backend=name)
    if communicator.size > 1:
        _comm.abort_on_uncaught_exception(communicator)


def init(backend=None):
    """Join the job if not done already (``init_process_group`` once); returns ``get_rank()``."""
    if not is_initialized():
        init_process_group(backend)
    return get_rank()


def destroy_process_group(group=None):
    """Leave the process group (MPI itself is finalized when the process exits)."""
    _state.update(communicator=None, backend=None)


def communicator():
    """The current communicator (for DistributedDataParallel and SyncBatchNorm)."""
    if not is_initialized():
        raise ValueError("Default process group has not been initialized, please make sure to "
                         "call init_process_group.")
    return _state["communicator"]


def get_backend(group=None):
    communicator()
    return _state["backend"]


def get_rank(group=None):
    """This process's rank, 0 .. world_size - 1."""
    return communicator().rank


def get_world_size(group=None):
    """How many processes the job has."""
    return communicator().size


def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank has reached this call."""
    communicator().barrier()
    return _Work() if async_op else None


def _check_tensor(tensor, who, name="tensor"):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{who}: {name} must be a minidl.Tensor, got {type(tensor).__name__}")


def _changed(tensor):
    tensor._version_counter.bump()


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """``tensor`` <- the sum (or ``op``) of every rank's ``tensor``, in place, on every rank."""
    _check_tensor(tensor, "all_reduce")
    if not isinstance(op, ReduceOp):
        raise TypeError(f"all_reduce: op must be a minidl.distributed.ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and tensor.dtype.kind != "f":
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got {tensor.dtype}")
    communicator().all_reduce(tensor._data, op.value)
    _changed(tensor)
    return _Work() if async_op else None


def _check_src(src, who):
    size = get_world_size()
    if not isinstance(src, numbers.Integral) or not 0 <= src < size:
        raise ValueError(f"{who}: src must be a rank in [0, {size - 1}], got {src!r}")


def broadcast(tensor, src=None, group=None, async_op=False, group_src=None):
    """``tensor`` <- rank ``src``'s ``tensor``, in place, on every rank."""
    _check_tensor(tensor, "broadcast")
    src = group_src if src is None else src
    _check_src(src, "broadcast")
    communicator().broadcast(tensor._data, int(src))
    _changed(tensor)
    return _Work() if async_op else None


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """``tensor_list[r]`` <- rank r's ``tensor``, on every rank (all ranks' tensors of one shape)."""
    _check_tensor(tensor, "all_gather")
    size = get_world_size()
    if not isinstance(tensor_list, (list, tuple)) or len(tensor_list) != size:
        got = len(tensor_list) if isinstance(tensor_list, (list, tuple)) else type(tensor_list).__name__
        raise ValueError(f"all_gather: tensor_list must be a list of world_size={size} tensors, got {got}")
    for i, out in enumerate(tensor_list):
        _check_tensor(out, "all_gather", f"tensor_list[{i}]")
        if tuple(out.shape) != tuple(tensor.shape):
            raise ValueError(f"all_gather: tensor_list[{i}] has shape {tuple(out.shape)}, "
                             f"expected the tensor's {tuple(tensor.shape)}")
    gathered = communicator().all_gather(tensor._data)  # (world_size, *tensor.shape)
    for out, value in zip(tensor_list, gathered):
        out._data[...] = value.astype(out._data.dtype, copy=False)
        _changed(out)
    return _Work() if async_op else None


def broadcast_object_list(object_list, src=None, group=None, device=None, group_src=None):
    """``object_list``'s items <- rank ``src``'s (any picklable objects), in place."""
    src = group_src if src is None else src
    _check_src(src, "broadcast_object_list")
    object_list[:] = communicator().objects(list(object_list), src=int(src))


def all_gather_object(object_list, obj, group=None):
    """``object_list[r]`` <- rank r's ``obj`` (any picklable object)."""
    size = get_world_size()
    if len(object_list) != size:
        raise ValueError(f"all_gather_object: object_list must have world_size={size} items, "
                         f"got {len(object_list)}")
    object_list[:] = communicator().objects(obj)


def abort(code=1):
    """End every rank of the job now (after printing what went wrong): for a rank that has failed."""
    communicator().abort(code)
