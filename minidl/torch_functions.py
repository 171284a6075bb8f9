"""PyTorch's top-level functions on tensors: ``minidl.where``, ``minidl.maximum``, ``minidl.sum``, ...

Where a Tensor method exists (``sum``, ``max``, ``exp``, ``clamp``, ``flatten``, ...), the function
checks that it got a tensor and calls the method: one code path, so the function and the method
cannot drift apart. The new differentiable ops (``where``, ``maximum``/``minimum``) live in
minidl/ops/elementwise.py with their gradients; the rest here (``isnan``, ``allclose``,
``logical_and``, ...) give booleans and have no gradient.
"""
import builtins
import numbers
import warnings

import numpy as np

from . import dtypes
from .backend import array_module
from .functional.softmax import softmax as _softmax
from .ops import elementwise
from .tensor import Tensor, _as_operand


def _check_tensor(op, value, name="input", position=1):
    """PyTorch's TypeError for a non-tensor argument."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}(): argument '{name}' (position {position}) must be Tensor, "
                        f"not {type(value).__name__}")


def is_tensor(obj):
    """True if ``obj`` is a minidl Tensor (``torch.is_tensor``)."""
    return isinstance(obj, Tensor)


def numel(input):  # noqa: A002  (PyTorch's argument names)
    """The number of entries of ``input``."""
    _check_tensor("numel", input)
    return input.numel()


# --- functions that are Tensor methods ---------------------------------------------------------

def _method(name, doc):
    def function(input, *args, **kwargs):  # noqa: A002
        _check_tensor(name, input)
        return getattr(input, name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function


exp = _method("exp", "exp(input): e**input entry by entry (integers and bools give the default float).")
log = _method("log", "log(input): the natural logarithm entry by entry.")
sqrt = _method("sqrt", "sqrt(input): the square root entry by entry.")
abs = _method("abs", "abs(input): |input| entry by entry.")  # noqa: A001  (PyTorch's name)
sigmoid = _method("sigmoid", "sigmoid(input): 1 / (1 + exp(-input)).")
tanh = _method("tanh", "tanh(input).")
relu = _method("relu", "relu(input): max(input, 0).")
argmax = _method("argmax", "argmax(input, dim=None, keepdim=False): the index of the largest entry "
                           "(of the flattened tensor without dim).")
argmin = _method("argmin", "argmin(input, dim=None, keepdim=False): the index of the smallest entry.")
matmul = _method("matmul", "matmul(input, other): the matrix product, batched and broadcast as ``@``.")


def flatten(input, start_dim=0, end_dim=-1):  # noqa: A002
    """The dims ``start_dim``..``end_dim`` merged into one (a view where possible)."""
    _check_tensor("flatten", input)
    return input.flatten(start_dim, end_dim)


def clamp(input, min=None, max=None):  # noqa: A002
    """Each entry limited to [min, max]; ``min``/``max`` are numbers or tensors (broadcast)."""
    _check_tensor("clamp", input)
    return input.clamp(min, max)


clip = clamp


def sum(input, dim=None, keepdim=False, *, dtype=None):  # noqa: A001
    """The sum over ``dim`` (all dims when None); bools and integers sum in int64."""
    _check_tensor("sum", input)
    return input.sum(dim, keepdim, dtype=dtype)


def mean(input, dim=None, keepdim=False, *, dtype=None):  # noqa: A002
    """The mean over ``dim`` (all dims when None) of a floating-point tensor."""
    _check_tensor("mean", input)
    return input.mean(dim, keepdim, dtype=dtype)


def _max_min(name, input, dim, keepdim, other):
    _check_tensor(name, input)
    if isinstance(dim, Tensor):  # max(a, b): the elementwise maximum
        dim, other = None, dim
    if other is not None:
        if keepdim:
            raise TypeError(f"{name}(): keepdim is not an argument of {name}(input, other)")
        return (maximum if name == "max" else minimum)(input, other)
    if dim is None:
        if keepdim:
            raise TypeError(f"{name}(): keepdim needs a dim: {name}(input, dim, keepdim=True)")
        return input.max() if name == "max" else input.min()
    if not isinstance(dim, numbers.Integral) or isinstance(dim, builtins.bool):
        raise TypeError(f"{name}(): dim must be an int (got {type(dim).__name__}); for several dims "
                        f"use amax/amin")
    return input.max(dim, keepdim) if name == "max" else input.min(dim, keepdim)


def max(input, dim=None, keepdim=False, *, other=None):  # noqa: A001
    """``max(input)``: the largest entry (its gradient shared evenly among ties);
    ``max(input, dim, keepdim=False)``: a ``(values, indices)`` namedtuple (the gradient goes to
    the returned index); ``max(input, other)``: the elementwise maximum (``maximum``)."""
    return _max_min("max", input, dim, keepdim, other)


def min(input, dim=None, keepdim=False, *, other=None):  # noqa: A001
    """As :func:`max`, for the smallest entries."""
    return _max_min("min", input, dim, keepdim, other)


def softmax(input, dim, dtype=None):  # noqa: A002
    """``torch.softmax``: the same op as ``minidl.functional.softmax``."""
    return _softmax(input, dim, dtype=dtype)


# --- new differentiable ops -------------------------------------------------------------------

def _broadcast_shape(op, *shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise RuntimeError(f"{op}: shapes {', '.join(str(tuple(s)) for s in shapes)} cannot be "
                           "broadcast together (trailing dimensions must be equal or 1)") from None


def _elementwise_extreme(name, op, input, other):  # noqa: A002
    _check_tensor(name, input)
    _check_tensor(name, other, "other", 2)
    _broadcast_shape(name, input.shape, other.shape)
    dtype = dtypes.result_type(input, other)
    return op.apply(_as_operand(input, dtype, input), _as_operand(other, dtype, input))


def maximum(input, other):  # noqa: A002
    """The larger of ``input`` and ``other`` entry by entry (broadcast, type-promoted tensors).
    At a tie each receives half of the gradient, as in PyTorch."""
    return _elementwise_extreme("maximum", elementwise.Maximum, input, other)


def minimum(input, other):  # noqa: A002
    """The smaller of ``input`` and ``other`` entry by entry; ties split the gradient evenly."""
    return _elementwise_extreme("minimum", elementwise.Minimum, input, other)


def where(condition, input=None, other=None):  # noqa: A002
    """``where(condition, input, other)``: ``input`` where ``condition`` is True, else ``other``
    (tensors or numbers, broadcast together, type-promoted; differentiable in both).
    ``where(condition)``: the indices of the nonzero entries, one int64 tensor per dim
    (``nonzero(as_tuple=True)``)."""
    _check_tensor("where", condition, "condition")
    if input is None and other is None:
        xp = array_module(condition._data)
        data = condition._data.reshape(1) if condition.ndim == 0 else condition._data  # (1,): as PyTorch
        return tuple(Tensor(index.astype(dtypes.int64, copy=False)) for index in xp.nonzero(data))
    if input is None or other is None:
        raise TypeError("where(): give both input and other, or neither (where(condition))")
    for name, value in (("input", input), ("other", other)):
        if not isinstance(value, (Tensor, numbers.Number)):
            raise TypeError(f"where(): argument '{name}' must be Tensor or Number, not {type(value).__name__}")
    if condition.dtype == dtypes.uint8:
        warnings.warn("where received a uint8 condition tensor. This behavior is deprecated and will be "
                      "removed in a future version of PyTorch. Use a boolean condition instead.",
                      UserWarning, stacklevel=2)
        condition = Tensor(condition._data.astype(dtypes.bool))
    elif condition.dtype != dtypes.bool:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{dtypes.torch_name(condition.dtype)}")
    _broadcast_shape("where", condition.shape, *(v.shape for v in (input, other) if isinstance(v, Tensor)))
    dtype = dtypes.result_type(input, other)
    return elementwise.Where.apply(condition, _as_operand(input, dtype, condition),
                                   _as_operand(other, dtype, condition))


# --- tests on values: bool results, no gradient ------------------------------------------------

def _bool_map(name, array_function, doc):
    def function(input):  # noqa: A002
        _check_tensor(name, input)
        return Tensor(array_function(array_module(input._data), input._data))

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function


isnan = _bool_map("isnan", lambda xp, x: xp.isnan(x), "isnan(input): True where an entry is NaN.")
isinf = _bool_map("isinf", lambda xp, x: xp.isinf(x), "isinf(input): True where an entry is +-inf.")
isfinite = _bool_map("isfinite", lambda xp, x: xp.isfinite(x),
                     "isfinite(input): True where an entry is neither NaN nor +-inf.")
logical_not = _bool_map("logical_not", lambda xp, x: xp.logical_not(x),
                        "logical_not(input): True where an entry is zero (False).")


def _logical(name, array_function):
    def function(input, other):  # noqa: A002
        _check_tensor(name, input)
        _check_tensor(name, other, "other", 2)
        _broadcast_shape(name, input.shape, other.shape)
        return Tensor(array_function(array_module(input._data), input._data, other._data))

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"{name}(input, other): elementwise on truth values (nonzero is True), broadcast."
    return function


logical_and = _logical("logical_and", lambda xp, a, b: xp.logical_and(a, b))
logical_or = _logical("logical_or", lambda xp, a, b: xp.logical_or(a, b))
logical_xor = _logical("logical_xor", lambda xp, a, b: xp.logical_xor(a, b))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):  # noqa: A002
    """True if ``|input - other| <= atol + rtol * |other|`` everywhere (broadcast); both tensors
    of one dtype, as PyTorch requires."""
    _check_tensor("allclose", input)
    _check_tensor("allclose", other, "other", 2)
    if input.dtype != other.dtype:
        raise RuntimeError(f"allclose: {dtypes.torch_name(input.dtype)} did not match "
                           f"{dtypes.torch_name(other.dtype)}")
    _broadcast_shape("allclose", input.shape, other.shape)
    xp = array_module(input._data)
    return builtins.bool(xp.allclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input, other):  # noqa: A002
    """True if both have the same shape and the same values (NaN is never equal)."""
    _check_tensor("equal", input)
    _check_tensor("equal", other, "other", 2)
    if input.shape != other.shape:
        return False
    return builtins.bool((input._data == other._data).all())
