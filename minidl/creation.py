"""Functions that create tensors: ``tensor``, ``zeros``, ``randn``, ...

Signatures follow PyTorch: sizes as ``zeros(2, 3)`` or ``zeros((2, 3))``, and
keyword arguments ``dtype``, ``requires_grad``, ``device``. Random ones draw
from the global generator (``minidl.manual_seed``).
"""
import numbers

import numpy as np

from . import dtypes
from .backend import check_device, move
from .random import generator
from .tensor import Tensor, _size_args


def _make(array, dtype, requires_grad, device, op):
    device = check_device(device, op=op)
    if dtype is not None:
        array = array.astype(dtypes.as_dtype(dtype), copy=False)
    if requires_grad and not dtypes.is_floating(array.dtype):
        raise RuntimeError(f"{op}: only floating point tensors can require gradients, got dtype {array.dtype}")
    return Tensor(move(array, device), requires_grad=bool(requires_grad))


def tensor(data, dtype=None, requires_grad=False, device="cpu"):
    """A new leaf tensor holding a copy of ``data``.

    Python floats become float32, ints int64, bools bool; NumPy arrays keep
    their dtype (as in PyTorch); ``dtype=`` overrides either.
    """
    if isinstance(data, Tensor):
        array = data._data.copy()
    elif isinstance(data, (np.ndarray, np.generic)):
        array = np.array(data)
    else:
        array = np.array(data)
        if array.dtype == object:
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} data "
                            "(ragged lists or non-numeric values?)")
        if dtype is None:
            array = array.astype(dtypes.python_data_dtype(array), copy=False)
    return _make(array, dtype, requires_grad, device, "tensor")


def _float_dtype(dtype):
    return dtypes.default_float if dtype is None else dtypes.as_dtype(dtype)


def zeros(*size, dtype=None, requires_grad=False, device="cpu"):
    return _make(np.zeros(_size_args(size, "zeros"), _float_dtype(dtype)), None, requires_grad, device, "zeros")


def ones(*size, dtype=None, requires_grad=False, device="cpu"):
    return _make(np.ones(_size_args(size, "ones"), _float_dtype(dtype)), None, requires_grad, device, "ones")


def full(size, fill_value, dtype=None, requires_grad=False, device="cpu"):
    """Filled with ``fill_value``; its dtype follows the value (bool, int64, float32) unless given."""
    if dtype is None:
        if isinstance(fill_value, bool):
            dtype = dtypes.bool
        elif isinstance(fill_value, numbers.Integral):
            dtype = dtypes.int64
        else:
            dtype = dtypes.default_float
    array = np.full(_size_args((size,), "full"), fill_value, dtype=dtypes.as_dtype(dtype))
    return _make(array, None, requires_grad, device, "full")


def zeros_like(input, dtype=None, requires_grad=False, device=None):  # noqa: A002
    return _make(np.zeros(input.shape, dtype or input.dtype), None, requires_grad, device or input.device, "zeros_like")


def ones_like(input, dtype=None, requires_grad=False, device=None):  # noqa: A002
    return _make(np.ones(input.shape, dtype or input.dtype), None, requires_grad, device or input.device, "ones_like")


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device="cpu"):
    """Like ``torch.arange``: int64 when every argument is an int, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        all_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = dtypes.int64 if all_int else dtypes.default_float
    return _make(np.arange(start, end, step).astype(dtypes.as_dtype(dtype)), None, requires_grad, device, "arange")


def eye(n, m=None, dtype=None, requires_grad=False, device="cpu"):
    return _make(np.eye(n, m, dtype=_float_dtype(dtype)), None, requires_grad, device, "eye")


def rand(*size, dtype=None, requires_grad=False, device="cpu"):
    """Uniform on [0, 1)."""
    dtype = _float_dtype(dtype)
    array = generator().random(_size_args(size, "rand"), dtype=np.float64).astype(dtype, copy=False)
    return _make(array, None, requires_grad, device, "rand")


def randn(*size, dtype=None, requires_grad=False, device="cpu"):
    """Standard normal."""
    dtype = _float_dtype(dtype)
    array = generator().standard_normal(_size_args(size, "randn")).astype(dtype, copy=False)
    return _make(array, None, requires_grad, device, "randn")


def randint(low=0, high=None, size=None, dtype=None, requires_grad=False, device="cpu"):
    """Integers uniform on [low, high); ``randint(high, size)`` as in PyTorch."""
    if size is None:  # randint(high, size)
        if high is None:
            raise TypeError("randint: missing size")
        low, high, size = 0, low, high
    if high is None:
        raise TypeError("randint: missing high")
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    size = _size_args((size,), "randint")
    array = generator().integers(low, high, size=size).astype(dtypes.as_dtype(dtype) or dtypes.int64)
    return _make(array, None, requires_grad, device, "randint")
