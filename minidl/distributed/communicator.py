"""The communicator seam: how arrays travel between the processes of a job.

Everything above this module (``minidl.distributed``'s functions, ``DistributedDataParallel``,
``SyncBatchNorm``) works on tensors and calls one of three communicators with raw arrays:

    SingleProcess   world size 1: every collective leaves the array as it is (no MPI needed)
    MPICommunicator mpi4py on MPI.COMM_WORLD; NumPy arrays go to MPI as they are; device
                    arrays (CuPy, the strict test device) are staged through the host unless
                    the MPI library is CUDA-aware
    NCCLCommunicator CuPy arrays between GPUs through NCCL (cupy.cuda.nccl), set up over MPI;
                    written for the GPU machine, not yet run on one

Each method changes the array it is given in place (``all_gather`` returns a new array stacked
over ranks), so the caller decides what is a new version of which tensor.
"""

import os
import sys
import time
import traceback

import numpy as np

from ..backend.devices import array_module, to_host

OPS = ("sum", "product", "min", "max", "avg")
ABORT_GRACE_SECONDS = 0.5     # how long a failing rank waits for its message to reach mpiexec


def _mpi():
    """mpi4py's MPI module, or a clear error saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise RuntimeError(
            "minidl.distributed needs mpi4py and an MPI library: pip install 'minidl[dist]' "
            f"(mpi4py and the MPICH wheel; on a cluster, mpi4py built against the site's MPI); {error}"
        ) from None
    return MPI


class SingleProcess:
    """A job of one process: the collectives' answers are the array itself."""

    rank, size = 0, 1
    name = "single process"

    def all_reduce(self, array, op):
        pass

    def broadcast(self, array, src):
        pass

    def all_gather(self, array):
        return array[None].copy()  # (1, *array.shape)

    def objects(self, obj, src=None):
        return obj if src is not None else [obj]

    def barrier(self):
        pass

    def abort(self, code):
        os._exit(code)


class MPICommunicator:
    """MPI.COMM_WORLD through mpi4py's buffer interface (no pickling of arrays)."""

    name = "mpi"

    def __init__(self):
        MPI = _mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._ops = {"sum": MPI.SUM, "product": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX,
                     "avg": MPI.SUM}
        self.cuda_aware = _mpi_is_cuda_aware(MPI)

    def _host_buffer(self, array):
        """A C-contiguous host array MPI can use: the array itself when it is one."""
        if isinstance(array, np.ndarray) and array.flags.c_contiguous:
            return array
        if not isinstance(array, np.ndarray) and self.cuda_aware and array.flags.c_contiguous:
            return array  # a CUDA-aware MPI reads device memory through __cuda_array_interface__
        return np.ascontiguousarray(to_host(array))

    @staticmethod
    def _write_back(array, buffer):
        if buffer is not array:
            array[...] = array_module(array).asarray(buffer)

    def all_reduce(self, array, op):
        buffer = self._host_buffer(array)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self._ops[op])
        if op == "avg":
            buffer /= self.size
        self._write_back(array, buffer)

    def broadcast(self, array, src):
        buffer = self._host_buffer(array)
        self.comm.Bcast(buffer, root=src)
        self._write_back(array, buffer)

    def all_gather(self, array):
        buffer = self._host_buffer(array)
        gathered = np.empty((self.size,) + buffer.shape, dtype=buffer.dtype)  # (size, *shape)
        self.comm.Allgather(buffer, gathered)
        return array_module(array).asarray(gathered)

    def objects(self, obj, src=None):
        """Any picklable object: rank ``src``'s to every rank, or (src None) everyone's as a list."""
        return self.comm.allgather(obj) if src is None else self.comm.bcast(obj, root=src)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code):
        """End every process of the job now (MPI_Abort): what a rank that failed must do, since
        the others would otherwise wait for it in their next collective for ever."""
        sys.stdout.flush()
        sys.stderr.flush()
        # mpiexec tears the job down on MPI_Abort and may drop what this rank wrote just before:
        # give it a moment to forward the message that says why the job ended
        time.sleep(ABORT_GRACE_SECONDS)
        self.comm.Abort(code)


def _mpi_is_cuda_aware(MPI):
    """Whether MPI can read CuPy arrays in place (MPIX_Query_cuda_support, where it exists)."""
    query = getattr(MPI, "Query_cuda_support", None)
    try:
        return bool(query()) if query else False
    except Exception:  # an MPI without the extension
        return False


class NCCLCommunicator(MPICommunicator):
    """CuPy arrays all-reduced by NCCL between GPUs; MPI sets it up and carries objects.

    One rank per GPU: rank r uses GPU ``r % device_count``. Not yet run on a GPU."""

    name = "nccl"

    def __init__(self):
        super().__init__()
        import cupy
        from cupy.cuda import nccl
        self.cupy, self.nccl = cupy, nccl
        cupy.cuda.Device(self.rank % cupy.cuda.runtime.getDeviceCount()).use()
        uid = self.comm.bcast(nccl.get_unique_id() if self.rank == 0 else None, root=0)
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._nccl_ops = {"sum": nccl.NCCL_SUM, "product": nccl.NCCL_PROD, "min": nccl.NCCL_MIN,
                          "max": nccl.NCCL_MAX, "avg": nccl.NCCL_SUM}

    def _nccl_type(self, dtype):
        names = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
                 "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8", "int8": "NCCL_INT8"}
        return getattr(self.nccl, names[np.dtype(dtype).name])

    def _on_gpu(self, array):
        return type(array).__module__.split(".")[0] == "cupy"

    def all_reduce(self, array, op):
        if not self._on_gpu(array):
            return super().all_reduce(array, op)
        buffer = array if array.flags.c_contiguous else self.cupy.ascontiguousarray(array)
        stream = self.cupy.cuda.get_current_stream().ptr
        self.nccl_comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size,
                                 self._nccl_type(buffer.dtype), self._nccl_ops[op], stream)
        if op == "avg":
            buffer /= self.size
        if buffer is not array:
            array[...] = buffer

    def broadcast(self, array, src):
        if not self._on_gpu(array):
            return super().broadcast(array, src)
        buffer = array if array.flags.c_contiguous else self.cupy.ascontiguousarray(array)
        self.nccl_comm.bcast(buffer.data.ptr, buffer.size, self._nccl_type(buffer.dtype), src,
                             self.cupy.cuda.get_current_stream().ptr)
        if buffer is not array:
            array[...] = buffer

    def all_gather(self, array):
        if not self._on_gpu(array):
            return super().all_gather(array)
        buffer = self.cupy.ascontiguousarray(array)
        gathered = self.cupy.empty((self.size,) + buffer.shape, dtype=buffer.dtype)  # (size, *shape)
        self.nccl_comm.allGather(buffer.data.ptr, gathered.data.ptr, buffer.size,
                                 self._nccl_type(buffer.dtype), self.cupy.cuda.get_current_stream().ptr)
        return gathered


def launched_by_mpi():
    """Whether this process was started by an MPI launcher (mpiexec/mpirun/srun)."""
    keys = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
            "HYDI_CONTROL_FD", "PMI_FD")
    return any(key in os.environ for key in keys)


def abort_on_uncaught_exception(communicator):
    """Make an uncaught exception on this rank print its traceback and end the whole job,
    instead of leaving the other ranks waiting in a collective for ever."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            return previous(kind, value, tb)
        sys.stderr.write(f"[rank {communicator.rank}] uncaught exception; ending every rank of the job:\n")
        sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))
        communicator.abort(1)

    sys.excepthook = hook
