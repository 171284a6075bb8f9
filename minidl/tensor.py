r"""The Tensor: an array, plus what autograd needs to differentiate through it.

``data``          the array (NumPy; CuPy with the GPU backend)
``requires_grad`` whether gradients flow to this tensor
``grad_fn``       the Function that made it (None for leaves: user-created tensors)
``grad``          after ``backward()``, dL/d(this tensor) for leaves, as a Tensor

Every operator below is one line that calls an op from ``minidl.ops``; the
math and its gradient live there, next to each other.
"""
import numbers
from collections import namedtuple

import numpy as np

from . import dtypes
from .autograd import is_grad_enabled, no_grad, run_backward
from .backend import array_module, check_device, device_of, move
from .ops import activation, elementwise, linalg, reduce, shape

MaxMinResult = namedtuple("MaxMinResult", ["values", "indices"])
"""What ``Tensor.max(dim)``/``min(dim)`` return, like ``torch.return_types.max``."""


def _normalize_dim(dim, ndim, op):
    """A dim (int, possibly negative) as a checked non-negative axis."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    low, high = (-ndim, ndim - 1) if ndim > 0 else (-1, 0)
    if not low <= dim <= high:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions "
                         f"(expected to be in range [{low}, {high}])")
    return int(dim) % max(ndim, 1)


def _normalize_dims(dim, ndim, op):
    """``dim`` (None, int or tuple of ints) as a sorted tuple of distinct axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = tuple(sorted(_normalize_dim(d, ndim, op) for d in dims)) if ndim > 0 else ()
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dim {dim} names the same axis twice")
    return axes


def _size_args(sizes, op):
    """Accept ``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` as PyTorch does."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    for s in sizes:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"{op}: sizes must be ints, got {sizes!r}")
    return tuple(int(s) for s in sizes)


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "__weakref__")

    # NumPy must hand ``ndarray (op) Tensor`` over to our reflected operators.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False):
        self.data = data
        self.requires_grad = requires_grad
        self.grad = None
        self.grad_fn = None

    # --- attributes --------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return device_of(self.data)

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def T(self):
        """The tensor with its dimensions reversed (the transpose of a matrix)."""
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[_normalize_dim(dim, self.ndim, "size")]

    def dim(self):
        return self.ndim

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # --- autograd ----------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False):
        """Backpropagate from this tensor: accumulate dL/dx into every leaf's ``.grad``.

        ``gradient`` is dL/d(self); it may be omitted only for a scalar (then 1).
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no grad_fn "
                               "(did you create it under no_grad, or forget requires_grad=True?)")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be implicitly created only for scalar outputs; "
                                   f"this tensor has shape {self.shape}, pass gradient= of that shape")
            gradient = array_module(self.data).ones(self.shape, dtype=self.dtype)
        else:
            gradient = gradient.data if isinstance(gradient, Tensor) else np.asarray(gradient)
            if gradient.shape != self.shape:
                raise RuntimeError(f"backward: gradient has shape {gradient.shape} but the tensor "
                                   f"has shape {self.shape}")
            gradient = gradient.astype(self.dtype, copy=False)
        if self.grad_fn is None:  # a leaf: its gradient is the given one
            self.grad = Tensor(gradient.copy()) if self.grad is None else Tensor(self.grad.data + gradient)
            return
        run_backward(self.grad_fn, gradient, retain_graph=retain_graph)

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: can only change requires_grad of leaf tensors "
                               "(use .detach() to get a leaf)")
        if requires_grad and not dtypes.is_floating(self.dtype):
            raise RuntimeError(f"requires_grad_: only floating point tensors can require gradients, "
                               f"got dtype {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    # --- conversion ----------------------------------------------------------------
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("numpy: can't call numpy() on a tensor that requires grad; "
                               "use tensor.detach().numpy()")
        return self.data

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python scalar, "
                             f"got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.data.item())

    def to(self, device_or_dtype=None, dtype=None):
        """``to("cpu")``, ``to(minidl.float64)`` or ``to("cpu", minidl.float64)``."""
        out = self
        if isinstance(device_or_dtype, str):
            check_device(device_or_dtype, op="to")
            if device_or_dtype != self.device:
                out = Tensor(move(self.data, device_or_dtype), requires_grad=self.requires_grad)
        elif device_or_dtype is not None:
            dtype = device_or_dtype
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = out.type(dtype)
        return out

    def cpu(self):
        return self.to("cpu")

    def type(self, dtype):
        """A differentiable cast to ``dtype``."""
        dtype = dtypes.as_dtype(dtype)
        if dtype == self.dtype:
            return self
        return elementwise.Cast.apply(self, dtype)

    def float(self):
        return self.type(dtypes.float32)

    def double(self):
        return self.type(dtypes.float64)

    def long(self):
        return self.type(dtypes.int64)

    def clone(self):
        return elementwise.Clone.apply(self)

    # --- in-place (no gradient: for initialisation and optimizers) -----------------
    def _check_inplace(self, op):
        if self.requires_grad and self.is_leaf and is_grad_enabled():
            raise RuntimeError(f"{op}: a leaf tensor that requires grad is used in an in-place "
                               "operation; wrap it in `with minidl.no_grad():`")

    def zero_(self):
        self._check_inplace("zero_")
        self.data[...] = 0
        return self

    def fill_(self, value):
        self._check_inplace("fill_")
        self.data[...] = value
        return self

    def copy_(self, src):
        self._check_inplace("copy_")
        src = src.data if isinstance(src, Tensor) else np.asarray(src)
        try:
            np.broadcast_shapes(src.shape, self.shape)
        except ValueError:
            raise RuntimeError(f"copy_: source of shape {src.shape} cannot be copied into a tensor "
                               f"of shape {self.shape}") from None
        self.data[...] = src
        return self

    def __setitem__(self, index, value):
        self._check_inplace("setitem")
        if self.grad_fn is not None:
            raise RuntimeError("setitem: in-place assignment into a tensor that is part of a graph "
                               "is not supported; build the result out of place (e.g. with cat)")
        self.data[_array_index(index)] = value.data if isinstance(value, Tensor) else value

    # --- arithmetic (NumPy broadcasting; the engine undoes it in backward) ----------
    def _operand(self, other):
        """``other`` as a Tensor: Python numbers take this tensor's dtype (PyTorch's rule)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number) and not isinstance(other, np.generic):
            if isinstance(other, bool):
                dtype = self.dtype
            elif isinstance(other, numbers.Integral) or dtypes.is_floating(self.dtype):
                dtype = self.dtype if self.dtype != np.bool_ else dtypes.int64
            elif isinstance(other, numbers.Real):
                dtype = dtypes.default_float
            else:
                raise TypeError(f"unsupported operand {other!r}")
            return Tensor(array_module(self.data).asarray(other, dtype=dtype))
        if isinstance(other, (np.ndarray, np.generic)):
            return Tensor(np.asarray(other))
        raise TypeError(f"unsupported operand type {type(other).__name__} for a minidl Tensor")

    def _binary(self, other, op, name, reflected=False):
        this = self
        if isinstance(other, float) and not dtypes.is_floating(self.dtype):
            this = Tensor(self.data.astype(dtypes.default_float))  # int tensor * 2.5 -> float32, as torch
        other = this._operand(other)
        a, b = (other, this) if reflected else (this, other)
        elementwise.check_broadcast(name, a.shape, b.shape)
        return op.apply(a, b)

    def __add__(self, other):
        return self._binary(other, elementwise.Add, "add")

    def __radd__(self, other):
        return self._binary(other, elementwise.Add, "add", reflected=True)

    def __sub__(self, other):
        return self._binary(other, elementwise.Sub, "sub")

    def __rsub__(self, other):
        return self._binary(other, elementwise.Sub, "sub", reflected=True)

    def __mul__(self, other):
        return self._binary(other, elementwise.Mul, "mul")

    def __rmul__(self, other):
        return self._binary(other, elementwise.Mul, "mul", reflected=True)

    def __truediv__(self, other):
        return self._binary(other, elementwise.Div, "div")

    def __rtruediv__(self, other):
        return self._binary(other, elementwise.Div, "div", reflected=True)

    def __pow__(self, exponent):
        if isinstance(exponent, numbers.Real) and not isinstance(exponent, (bool, np.generic)):
            return elementwise.PowScalar.apply(self, exponent)
        return self._binary(exponent, elementwise.Pow, "pow")

    def __rpow__(self, base):
        if isinstance(base, numbers.Real) and not isinstance(base, (bool, np.generic)):
            return elementwise.RPowScalar.apply(base, self)
        return self._binary(base, elementwise.Pow, "pow", reflected=True)

    def __matmul__(self, other):
        other = self._operand(other)
        linalg.check_matmul("matmul", self.shape, other.shape)
        return linalg.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        other = self._operand(other)
        linalg.check_matmul("matmul", other.shape, self.shape)
        return linalg.MatMul.apply(other, self)

    def matmul(self, other):
        return self @ other

    def __neg__(self):
        return elementwise.Neg.apply(self)

    def __pos__(self):
        return self

    add, sub, mul, div, pow = __add__, __sub__, __mul__, __truediv__, __pow__

    # --- comparisons: boolean tensors, no gradient ------------------------------
    def _compare(self, other, ufunc, name):
        other = self._operand(other)
        elementwise.check_broadcast(name, self.shape, other.shape)
        return Tensor(ufunc(self.data, other.data))

    def __lt__(self, other):
        return self._compare(other, np.less, "lt")

    def __le__(self, other):
        return self._compare(other, np.less_equal, "le")

    def __gt__(self, other):
        return self._compare(other, np.greater, "gt")

    def __ge__(self, other):
        return self._compare(other, np.greater_equal, "ge")

    def __eq__(self, other):
        return self._compare(other, np.equal, "eq")

    def __ne__(self, other):
        return self._compare(other, np.not_equal, "ne")

    __hash__ = object.__hash__  # identity: tensors can be dict keys (optimizer state)

    # --- indexing and shape ---------------------------------------------------------
    def __getitem__(self, index):
        index = _array_index(index)
        try:
            return shape.GetItem.apply(self, index)
        except IndexError as error:  # NumPy's message, plus the op and the shape
            raise IndexError(f"getitem: {error} (tensor of shape {self.shape})") from None

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def reshape(self, *shape_):
        new_shape = _size_args(shape_, "reshape")
        size = self.data.size
        known = int(np.prod([s for s in new_shape if s != -1]))
        if new_shape.count(-1) > 1 or (-1 not in new_shape and known != size) or (
            -1 in new_shape and (known == 0 or size % known != 0)
        ):
            raise RuntimeError(f"reshape: shape {new_shape} is invalid for a tensor of shape "
                               f"{self.shape} ({size} elements)")
        if new_shape == self.shape:
            return self
        return shape.Reshape.apply(self, new_shape)

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    def permute(self, *dims):
        dims = _size_args(dims, "permute")
        axes = tuple(_normalize_dim(d, self.ndim, "permute") for d in dims)
        if sorted(axes) != list(range(self.ndim)):
            raise RuntimeError(f"permute: dims {dims} are not a permutation of the {self.ndim} "
                               f"dimensions of a tensor of shape {self.shape}")
        return shape.Permute.apply(self, axes)

    def transpose(self, dim0, dim1):
        axes = list(range(self.ndim))
        d0 = _normalize_dim(dim0, self.ndim, "transpose")
        d1 = _normalize_dim(dim1, self.ndim, "transpose")
        axes[d0], axes[d1] = axes[d1], axes[d0]
        return shape.Permute.apply(self, tuple(axes))

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t: expects a tensor with <= 2 dimensions, got shape {self.shape}")
        return self.T

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start = _normalize_dim(start_dim, self.ndim, "flatten")
        end = _normalize_dim(end_dim, self.ndim, "flatten")
        if start > end:
            raise RuntimeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        sizes = self.shape
        return self.reshape(sizes[:start] + (int(np.prod(sizes[start:end + 1])),) + sizes[end + 1:])

    def unsqueeze(self, dim):
        axis = _normalize_dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        axes = _normalize_dims(dim, self.ndim, "squeeze")
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def expand(self, *sizes):
        sizes = _size_args(sizes, "expand")
        if len(sizes) < self.ndim:
            raise RuntimeError(f"expand: the number of sizes {len(sizes)} must be at least the "
                               f"number of dimensions {self.ndim} (shape {self.shape})")
        lead = len(sizes) - self.ndim
        target = []
        for i, s in enumerate(sizes):
            own = self.shape[i - lead] if i >= lead else None
            if s == -1:
                if own is None:
                    raise RuntimeError(f"expand: -1 is not allowed for the new leading dimension {i}")
                s = own
            if own is not None and own != 1 and own != s:
                raise RuntimeError(f"expand: the size of dimension {i - lead} ({own}) must match "
                                   f"the expanded size {s} (or be 1); shape {self.shape} -> {sizes}")
            target.append(s)
        return shape.Expand.apply(self, tuple(target))

    def expand_as(self, other):
        return self.expand(other.shape)

    def split(self, split_size_or_sections, dim=0):
        from .functional.shape import split  # functional imports tensor: import here

        return split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        from .functional.shape import chunk

        return chunk(self, chunks, dim)

    # --- reductions -------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        return reduce.Sum.apply(self, _normalize_dims(dim, self.ndim, "sum"), keepdim)

    def mean(self, dim=None, keepdim=False):
        if not dtypes.is_floating(self.dtype):
            raise RuntimeError(f"mean: input dtype should be floating point, got {self.dtype}")
        return reduce.Mean.apply(self, _normalize_dims(dim, self.ndim, "mean"), keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """Variance with Bessel's correction by default (``correction=1``), as PyTorch."""
        if unbiased is not None and correction is not None:
            raise ValueError("var: give either unbiased or correction, not both")
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        return reduce.Var.apply(self, _normalize_dims(dim, self.ndim, "var"), correction, keepdim)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def _extreme(self, dim, keepdim, largest):
        name = "max" if largest else "min"
        if self.data.size == 0:
            raise RuntimeError(f"{name}: the tensor is empty (shape {self.shape})")
        if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool):
            # torch.max(x, dim): values and the index of the first extreme along dim
            axis = _normalize_dim(dim, self.ndim, name)
            xp = array_module(self.data)
            arg = xp.argmax if largest else xp.argmin
            index = xp.expand_dims(arg(self.data, axis=axis), axis)  # size 1 on axis
            values = reduce.TakeAlongDim.apply(self, index, axis, keepdim)
            return MaxMinResult(values, Tensor(index if keepdim else index.squeeze(axis)))
        op = reduce.AMax if largest else reduce.AMin
        return op.apply(self, _normalize_dims(dim, self.ndim, name), keepdim)

    def max(self, dim=None, keepdim=False):
        """``max()`` -> tensor; ``max(dim)`` -> (values, indices) as PyTorch;
        ``max((d0, d1))`` -> values (PyTorch's ``amax``)."""
        return self._extreme(dim, keepdim, largest=True)

    def min(self, dim=None, keepdim=False):
        return self._extreme(dim, keepdim, largest=False)

    def amax(self, dim=None, keepdim=False):
        return reduce.AMax.apply(self, _normalize_dims(dim, self.ndim, "amax"), keepdim)

    def amin(self, dim=None, keepdim=False):
        return reduce.AMin.apply(self, _normalize_dims(dim, self.ndim, "amin"), keepdim)

    def argmax(self, dim=None, keepdim=False):
        return self._arg(dim, keepdim, array_module(self.data).argmax, "argmax")

    def argmin(self, dim=None, keepdim=False):
        return self._arg(dim, keepdim, array_module(self.data).argmin, "argmin")

    def _arg(self, dim, keepdim, arg, name):
        if dim is None:
            index = arg(self.data)
            return Tensor(index.reshape((1,) * self.ndim) if keepdim else np.asarray(index))
        axis = _normalize_dim(dim, self.ndim, name)
        index = arg(self.data, axis=axis)
        return Tensor(np.expand_dims(index, axis) if keepdim else index)

    # --- elementwise functions -----------------------------------------------------------
    def exp(self):
        return elementwise.Exp.apply(self)

    def log(self):
        return elementwise.Log.apply(self)

    def sqrt(self):
        return elementwise.Sqrt.apply(self)

    def abs(self):
        return elementwise.Abs.apply(self)

    def clamp(self, min=None, max=None):  # noqa: A002  (PyTorch's argument names)
        if min is None and max is None:
            raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
        return elementwise.Clamp.apply(self, min, max)

    clip = clamp

    def relu(self):
        return activation.Relu.apply(self)

    def sigmoid(self):
        return activation.Sigmoid.apply(self)

    def tanh(self):
        return activation.Tanh.apply(self)

    # --- printing ---------------------------------------------------------------------------
    def __repr__(self):
        body = np.array2string(np.asarray(self.data), separator=", ", prefix="tensor(")
        extras = []
        if self.dtype not in (dtypes.float32, dtypes.int64, dtypes.bool):
            extras.append(f"dtype=minidl.{self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"


def _index_item(item):
    """One index entry as NumPy accepts it; tensors and lists become arrays, checked."""
    if isinstance(item, Tensor):
        item = item.data
    elif isinstance(item, list):
        item = np.asarray(item)
    if isinstance(item, (np.ndarray, np.generic)) and not isinstance(item, np.integer):
        if item.dtype.kind not in "iub":
            raise IndexError(f"getitem: tensors used as indices must be integer or bool, "
                             f"got dtype {item.dtype}")
    elif not (isinstance(item, (int, slice, np.integer)) or item is None or item is Ellipsis):
        raise IndexError(f"getitem: unsupported index {item!r} of type {type(item).__name__}")
    return item


def _array_index(index):
    if isinstance(index, tuple):
        return tuple(_index_item(i) for i in index)
    return _index_item(index)
