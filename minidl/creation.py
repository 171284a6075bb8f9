"""Functions that create tensors: ``tensor``, ``zeros``, ``randn``, ...

Signatures follow PyTorch: sizes as ``zeros(2, 3)`` or ``zeros((2, 3))``, and
keyword arguments ``dtype``, ``requires_grad``, ``device``. Without ``device=`` a tensor
is made on the default device (``cpu``, or what :func:`set_default_device` chose, as
``torch.set_default_device``). Random ones draw from the global generator on the host
(``minidl.manual_seed``), so a seed gives the same numbers on every device.
"""
import numbers
import warnings

import numpy as np

from . import dtypes
from .backend import devices, is_array
from .random import generator as _numpy_rng
from .tensor import Tensor, _size_args

_default_device = devices.CPU


def set_default_device(device):
    """Make tensors on ``device`` when no ``device=`` is given (``None``: back to ``cpu``)."""
    global _default_device
    device = devices.CPU if device is None else devices.device(device)
    devices.module_of_device(device)  # a cuda device that cannot be used says why, now
    _default_device = device


def get_default_device():
    return _default_device


def _device(device, op):
    """The device to make a tensor on; one that cannot be used here raises, saying why."""
    device = _default_device if device is None else devices.device(device)
    try:
        devices.module_of_device(device)
    except RuntimeError as error:
        raise RuntimeError(f"{op}: {error}") from None
    return device


def _leaf(array, requires_grad, op):
    if requires_grad and not dtypes.is_floating(array.dtype):
        raise RuntimeError(f"{op}: only floating point tensors can require gradients, got dtype {array.dtype}")
    return Tensor(array, requires_grad=bool(requires_grad))


def _from_host(array, dtype, requires_grad, device, op):
    """A leaf holding the host array ``array`` (cast to ``dtype``), copied to ``device``."""
    if dtype is not None:
        array = array.astype(dtypes.as_dtype(dtype), copy=False)
    return _leaf(devices.to_device(array, _device(device, op)), requires_grad, op)


def _on_device(make, device, requires_grad, op):
    """A leaf made by ``make(xp)`` with the array module of ``device``."""
    device = _device(device, op)
    return _leaf(make(devices.module_of_device(device)), requires_grad, op)


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new leaf tensor holding a copy of ``data``.

    Python floats become float32, ints int64, bools bool; NumPy arrays keep
    their dtype (as in PyTorch); ``dtype=`` overrides either.
    """
    if isinstance(data, Tensor):
        copy = data._data.copy() if dtype is None else data._data.astype(dtypes.as_dtype(dtype))
        device = data.device if device is None else device
        return _leaf(devices.to_device(copy, _device(device, "tensor")), requires_grad, "tensor")
    if is_array(data) and not isinstance(data, (np.ndarray, np.generic)):  # a CuPy or strict array
        copy = data.copy() if dtype is None else data.astype(dtypes.as_dtype(dtype))
        device = devices.device_of(data) if device is None else device
        return _leaf(devices.to_device(copy, _device(device, "tensor")), requires_grad, "tensor")
    if isinstance(data, (np.ndarray, np.generic)):
        array = np.array(data)
    else:
        array = np.array(data)
        if array.dtype == object:
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} data "
                            "(ragged lists or non-numeric values?)")
        if dtype is None:
            array = array.astype(dtypes.python_data_dtype(array), copy=False)
    return _from_host(array, dtype, requires_grad, device, "tensor")


def _float_dtype(dtype):
    return dtypes.default_float if dtype is None else dtypes.as_dtype(dtype)


def empty(*size, dtype=None, requires_grad=False, device=None):
    """Uninitialised memory (whatever it held before): fill it before reading it."""
    shape = _size_args(size, "empty")
    return _on_device(lambda xp: xp.empty(shape, _float_dtype(dtype)), device, requires_grad, "empty")


def zeros(*size, dtype=None, requires_grad=False, device=None):
    shape = _size_args(size, "zeros")
    return _on_device(lambda xp: xp.zeros(shape, _float_dtype(dtype)), device, requires_grad, "zeros")


def ones(*size, dtype=None, requires_grad=False, device=None):
    shape = _size_args(size, "ones")
    return _on_device(lambda xp: xp.ones(shape, _float_dtype(dtype)), device, requires_grad, "ones")


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    """Filled with ``fill_value``; its dtype follows the value (bool, int64, float32) unless given."""
    if dtype is None:
        if isinstance(fill_value, bool):
            dtype = dtypes.bool
        elif isinstance(fill_value, numbers.Integral):
            dtype = dtypes.int64
        else:
            dtype = dtypes.default_float
    shape = _size_args((size,), "full")
    return _on_device(lambda xp: xp.full(shape, fill_value, dtype=dtypes.as_dtype(dtype)),
                      device, requires_grad, "full")


def zeros_like(input, dtype=None, requires_grad=False, device=None):  # noqa: A002
    return zeros(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad,
                 device=input.device if device is None else device)


def ones_like(input, dtype=None, requires_grad=False, device=None):  # noqa: A002
    return ones(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad,
                device=input.device if device is None else device)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    """Like ``torch.arange``: int64 when every argument is an int, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        all_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = dtypes.int64 if all_int else dtypes.default_float
    return _from_host(np.arange(start, end, step), dtype, requires_grad, device, "arange")


def eye(n, m=None, dtype=None, requires_grad=False, device=None):
    return _on_device(lambda xp: xp.eye(n, m, dtype=_float_dtype(dtype)), device, requires_grad, "eye")


def rand(*size, generator=None, dtype=None, requires_grad=False, device=None):
    """Uniform on [0, 1), from ``generator`` (a ``minidl.Generator``; default: the global one).

    Reproducible for a seed, but not PyTorch's numbers (minidl/random.py says why)."""
    array = _numpy_rng(generator).random(_size_args(size, "rand"), dtype=np.float64)
    return _from_host(array, _float_dtype(dtype), requires_grad, device, "rand")


def randn(*size, generator=None, dtype=None, requires_grad=False, device=None):
    """Standard normal, from ``generator`` (default: the global one); reproducible for a seed,
    not PyTorch's numbers."""
    array = _numpy_rng(generator).standard_normal(_size_args(size, "randn"))
    return _from_host(array, _float_dtype(dtype), requires_grad, device, "randn")


def randint(low=0, high=None, size=None, dtype=None, requires_grad=False, device=None, *, generator=None):
    """Integers uniform on [low, high); ``randint(high, size)`` as in PyTorch. Drawn from
    ``generator`` (default: the global one); reproducible for a seed, not PyTorch's numbers."""
    if size is None:  # randint(high, size)
        if high is None:
            raise TypeError("randint: missing size")
        low, high, size = 0, low, high
    if high is None:
        raise TypeError("randint: missing high")
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    size = _size_args((size,), "randint")
    array = _numpy_rng(generator).integers(low, high, size=size)
    return _from_host(array, dtypes.as_dtype(dtype) or dtypes.int64, requires_grad, device, "randint")


def randperm(n, *, generator=None, dtype=dtypes.int64, device=None, requires_grad=False):
    """A random permutation of ``0 .. n-1`` (int64 unless ``dtype``), from ``generator``
    (default: the global one); reproducible for a seed, not PyTorch's permutation."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"randperm: n must be an int, got {type(n).__name__}")
    if n < 0:
        raise RuntimeError(f"randperm: Trying to create tensor with negative dimension {n}: [{n}]")
    array = _numpy_rng(generator).permutation(int(n))
    return _from_host(array, dtypes.as_dtype(dtype) or dtypes.int64, requires_grad, device, "randperm")


# --- sharing NumPy's memory, *_like factories, linspace -------------------------------------

_FROM_NUMPY_DTYPES = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")


def from_numpy(ndarray):
    """A CPU tensor on the memory of ``ndarray``: writes through either show in the other (no
    copy, whatever the default device). As in PyTorch, negative strides are refused, and a
    read-only array gives a warning (writing to the tensor would be undefined behaviour)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(ndarray).__name__})")
    if ndarray.dtype.name not in _FROM_NUMPY_DTYPES or not ndarray.dtype.isnative:
        raise TypeError(f"from_numpy: can't convert np.ndarray of type numpy.{ndarray.dtype.type.__name__}. "
                        f"The only supported types are: {', '.join(_FROM_NUMPY_DTYPES[:-1])}, and bool.")
    if any(s < 0 for s in ndarray.strides):
        raise ValueError("from_numpy: At least one stride in the given numpy array is negative, and tensors "
                         "with negative strides are not currently supported. (You can probably work around "
                         "this by making a copy of your array  with array.copy().) ")
    if not ndarray.flags.writeable:
        warnings.warn("from_numpy: The given NumPy array is not writable, and minidl (as PyTorch) does not "
                      "support non-writable tensors. This means writing to this tensor will result in "
                      "undefined behavior. You may want to copy the array to protect its data or make it "
                      "writable before converting it to a tensor.", UserWarning, stacklevel=2)
    return Tensor(ndarray)


def as_tensor(data, dtype=None, device=None):
    """``data`` as a tensor, sharing memory where PyTorch does: a Tensor of the wanted dtype and
    device is returned itself (another dtype/device: ``data.to(...)``, differentiable); a NumPy
    array of the wanted dtype, made on the CPU, shares its memory (``from_numpy``); anything
    else is copied as by :func:`tensor`."""
    dtype = dtypes.as_dtype(dtype)
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    target = _device(device, "as_tensor")
    if isinstance(data, np.ndarray) and target.type == "cpu" and dtype in (None, data.dtype) \
            and data.dtype.name in _FROM_NUMPY_DTYPES:
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=target)


def empty_like(input, *, dtype=None, device=None, requires_grad=False):  # noqa: A002
    """Uninitialised memory of ``input``'s shape (and dtype and device, unless given)."""
    return empty(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad,
                 device=input.device if device is None else device)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):  # noqa: A002
    """``fill_value`` in ``input``'s shape, dtype (the value is cast: 2.7 in an int64 tensor is 2)
    and device, unless given."""
    return full(input.shape, fill_value, dtype=dtype or input.dtype, requires_grad=requires_grad,
                device=input.device if device is None else device)


def _random_like(op, make, input, generator, dtype, device, requires_grad):  # noqa: A002
    dtype = dtypes.as_dtype(dtype) or input.dtype
    if not dtypes.is_floating(dtype):
        raise NotImplementedError(f"{op}: not implemented for '{dtypes.torch_name(dtype)}' (random "
                                  f"numbers of this kind are floating point; pass dtype=minidl.float32)")
    extra = {} if generator is None else {"generator": generator}
    return make(input.shape, dtype=dtype, requires_grad=requires_grad,
                device=input.device if device is None else device, **extra)


def rand_like(input, *, generator=None, dtype=None, device=None, requires_grad=False):  # noqa: A002
    """Uniform on [0, 1) in ``input``'s shape, dtype and device (unless given)."""
    return _random_like("rand_like", rand, input, generator, dtype, device, requires_grad)


def randn_like(input, *, generator=None, dtype=None, device=None, requires_grad=False):  # noqa: A002
    """Standard normal in ``input``'s shape, dtype and device (unless given)."""
    return _random_like("randn_like", randn, input, generator, dtype, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` (both included), in the default
    float unless ``dtype`` is given (an integer dtype truncates, as PyTorch does)."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"linspace: steps must be an int, got {steps!r}")
    if steps < 0:
        raise RuntimeError("linspace: number of steps must be non-negative")
    start, end = (float(v) if isinstance(v, Tensor) else v for v in (start, end))
    return _from_host(np.linspace(start, end, int(steps)), _float_dtype(dtype), requires_grad, device,
                      "linspace")
