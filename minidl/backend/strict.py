r"""The strict test device: NumPy's numbers with CuPy's manners.

A CuPy array refuses every *implicit* trip to NumPy: ``np.asarray(a)``, ``np.exp(a)``,
``float(a)`` of a non-scalar, a NumPy array mixed into its operations, passing it to a Numba
kernel. An op that silently falls back to NumPy therefore works on the CPU and breaks on the
GPU. This device lets the CPU-only test suite find such an op: its arrays
(:class:`StrictArray`) hold a NumPy array and compute with it, but refuse everything a CuPy
array refuses, with the same kind of error (TypeError). This module is their array module,
used as ``xp`` (``xp.zeros``, ``xp.exp``, ...): any NumPy function, applied to the NumPy
arrays inside, results wrapped again. The explicit conversions stay: ``xp.asarray(host)`` is
the host-to-device copy, ``a.get()`` the device-to-host one, ``a.item()`` a scalar.
Its kernels are the reference kernels (minidl/backend/reference.py), which use ``xp``.
"""
import numbers

import numpy as np

__all__ = ["StrictArray"]


def _refuse(what):
    raise TypeError(f"strict device: {what} (as on CuPy); convert explicitly, with xp.asarray(host) "
                    "or array.get(), or compute with the array module of the inputs")


def _unwrap(value):
    """An argument of a NumPy call, the arrays inside StrictArrays; host arrays refused."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, np.ndarray):
        _refuse(f"a NumPy array of shape {value.shape} was mixed into a device computation")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):  # keyword arguments
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value):
    """A NumPy result as the device's: arrays (and NumPy scalars, as CuPy's 0-d arrays) wrapped."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap(v) for v in value)
    return value


def _index(index):
    """An index: StrictArrays unwrapped; host integer/bool arrays allowed, as CuPy allows them."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    return index._a if isinstance(index, StrictArray) else index


def _operand(value):
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, (numbers.Number, np.generic)) or value is None:
        return value
    _refuse(f"unsupported operand of type {type(value).__name__}")


class StrictArray:
    """A NumPy array on the strict device (see the module docstring)."""

    __slots__ = ("_a", "__weakref__")

    def __init__(self, array):
        self._a = array

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse(f"NumPy's {ufunc.__name__} was called on a device array")

    def __array_function__(self, function, types, args, kwargs):
        _refuse(f"NumPy's {function.__name__} was called on a device array")

    def __array__(self, dtype=None, copy=None):
        _refuse("implicit conversion to a NumPy array is not allowed")

    def get(self):
        """The explicit copy to the host (CuPy's ``get``)."""
        return self._a.copy()

    # --- attributes that are plain data ----------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))

    def memory_owner(self):
        """The NumPy array that owns this array's memory (for "do they share memory?")."""
        a = self._a
        while a.base is not None:
            a = a.base
        return a

    def __getattr__(self, name):  # every other ndarray method, results wrapped
        if name.startswith("__"):  # no __array_interface__, __array_struct__, __dlpack__: no back door
            raise AttributeError(f"strict device arrays have no attribute {name!r}")
        attribute = getattr(self._a, name)
        if not callable(attribute):
            return _wrap(attribute)

        def method(*args, **kwargs):
            return _wrap(attribute(*_unwrap(args), **_unwrap(kwargs)))

        return method

    # --- explicit conversions to Python values: as CuPy, only for a single element --------
    def _scalar(self, convert):
        if self._a.size != 1:
            _refuse(f"{convert.__name__}() of an array of shape {self._a.shape}")
        return convert(self._a.reshape(()).item())

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __bool__(self):
        return self._scalar(bool)

    def __index__(self):
        if self._a.ndim != 0 or self._a.dtype.kind not in "iu":
            _refuse("only integer scalar arrays can be converted to a scalar index")
        return int(self._a)

    def item(self, *args):
        return self._a.item(*args)

    def tolist(self):
        return self._a.tolist()

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (StrictArray(row) if isinstance(row, np.ndarray) else _wrap(row) for row in self._a)

    def __repr__(self):
        return "strict_" + repr(self._a)

    # --- indexing ------------------------------------------------------------------------
    def __getitem__(self, index):
        return _wrap(self._a[_index(index)])

    def __setitem__(self, index, value):
        if isinstance(value, np.ndarray) and value.ndim > 0:
            _refuse(f"setting part of a device array from a NumPy array of shape {value.shape}")
        self._a[_index(index)] = value._a if isinstance(value, StrictArray) else value


def _binary(name):
    def operator(self, other):
        return _wrap(getattr(self._a, name)(_operand(other)))

    operator.__name__ = name
    return operator


def _inplace(name):
    def operator(self, other):
        getattr(self._a, name)(_operand(other))
        return self

    operator.__name__ = name
    return operator


def _unary(name):
    def operator(self):
        return _wrap(getattr(self._a, name)())

    operator.__name__ = name
    return operator


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift"):
    setattr(StrictArray, f"__{_name}__", _binary(f"__{_name}__"))
    setattr(StrictArray, f"__r{_name}__", _binary(f"__r{_name}__"))
    setattr(StrictArray, f"__i{_name}__", _inplace(f"__i{_name}__"))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(StrictArray, f"__{_name}__", _binary(f"__{_name}__"))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_name}__", _unary(f"__{_name}__"))
StrictArray.__hash__ = None
del _name

ndarray = StrictArray  # ``isinstance(a, xp.ndarray)``, as with CuPy


class _Function:
    """A NumPy function (or ufunc, with its ``at``/``reduce``) applied inside the device."""

    def __init__(self, function):
        self._function = function
        self.__name__ = getattr(function, "__name__", "function")

    def __call__(self, *args, **kwargs):
        return _wrap(self._function(*_unwrap(args), **_unwrap(kwargs)))

    def at(self, target, index, values=None):
        args = (_index(index),) if values is None else (_index(index), _unwrap(values))
        self._function.at(_unwrap(target), *args)

    def __getattr__(self, name):  # ufunc.reduce, .outer, ...
        return _Function(getattr(self._function, name))


def asarray(value, dtype=None, order=None):
    """The host-to-device copy (CuPy's ``asarray``): any array-like becomes a StrictArray."""
    if isinstance(value, StrictArray):
        return value if dtype is None or value.dtype == dtype else value.astype(dtype)
    return StrictArray(np.array(value, dtype=dtype, order=order or "K"))


def array(value, dtype=None, copy=True, order="K"):
    if isinstance(value, StrictArray):
        return StrictArray(np.array(value._a, dtype=dtype, copy=copy, order=order))
    return StrictArray(np.array(value, dtype=dtype, order=order))


def __getattr__(name):
    """``xp.<anything>``: NumPy's function of that name on the device, or NumPy's constant,
    dtype or class itself (``xp.float32``, ``xp.inf``, ``xp.newaxis``, ``xp.errstate``)."""
    value = getattr(np, name)
    if callable(value) and not isinstance(value, type):
        return _Function(value)
    return value
