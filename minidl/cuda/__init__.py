"""``minidl.cuda``: is a GPU there, and a few of ``torch.cuda``'s functions.

The ``cuda`` device computes with CuPy (minidl/backend/devices.py), imported on first use.
Without CuPy, or with CuPy but no usable GPU, :func:`is_available` is False and moving a
tensor to ``cuda`` raises an error that says which of the two is missing.
"""
from .. import random as _random
from ..backend import devices as _devices


def is_available():
    """Whether tensors can be put on a GPU here (CuPy imports and sees at least one GPU)."""
    return _devices.cuda_problem() == ""


def why_unavailable():
    """What is missing for the cuda device ("" when nothing is)."""
    return _devices.cuda_problem()


def device_count():
    """How many GPUs CuPy sees (0 without CuPy or a GPU)."""
    return _devices.cuda_device_count()


def synchronize(device=None):
    """Wait until the GPU has finished its queued work (for timing); nothing without a GPU."""
    if is_available():
        _devices.cupy_module().cuda.Device(_devices.cuda_device(device).index or 0).synchronize()


def manual_seed(seed):
    """Seed the random numbers of every device: minidl draws them all from one generator."""
    _random.manual_seed(seed)


manual_seed_all = manual_seed


class OutOfMemoryError(RuntimeError):
    """Raised where a GPU allocation fails (PyTorch's ``torch.cuda.OutOfMemoryError``)."""


def empty_cache():
    """Give the GPU memory that CuPy's pool holds but no array uses back to the driver
    (nothing without a GPU)."""
    if is_available():
        _devices.cupy_module().get_default_memory_pool().free_all_blocks()
from . import amp  # noqa: E402,F401  (minidl.cuda.amp: PyTorch's deprecated names)
