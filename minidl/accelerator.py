"""``minidl.accelerator``: PyTorch's device-neutral questions about the GPU (here: CuPy's)."""
from . import cuda as _cuda
from .backend import device as _device


def is_available():
    """Whether there is an accelerator to compute on (a GPU that CuPy can use)."""
    return _cuda.is_available()


def current_accelerator(check_available=False):
    """``device('cuda')`` where a GPU can be used, else None (as PyTorch on a machine without one)."""
    return _device("cuda") if _cuda.is_available() else None


def device_count():
    """How many accelerators there are (0 without a usable GPU)."""
    return _cuda.device_count() if _cuda.is_available() else 0


def synchronize(device=None):
    """Wait for the accelerator's queued work; nothing without one."""
    _cuda.synchronize(device)
