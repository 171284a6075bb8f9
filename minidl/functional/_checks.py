"""Argument checks shared by the functional modules (clear errors before any work)."""
from ..tensor import Tensor


def check_tensor(op, name, value):
    """Raise a TypeError unless ``value`` is a minidl Tensor."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a minidl Tensor, got {type(value).__name__}")


def check_ndim(op, name, value, ndims):
    """Raise unless ``value.ndim`` is one of ``ndims`` (e.g. conv2d wants 3-D or 4-D input)."""
    if value.ndim not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{op}: {name} must be {expected}, got shape {tuple(value.shape)}")


def pair(op, name, value):
    """An int or a pair of ints as a pair (kernel_size=3 -> (3, 3))."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
