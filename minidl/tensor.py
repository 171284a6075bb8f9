r"""The Tensor: an array, plus what autograd needs to differentiate through it.

``requires_grad`` whether gradients flow to this tensor
``grad_fn``       the Function that made it (None for leaves: user-created tensors)
``grad``          after ``backward()``, dL/d(this tensor) for leaves, as a Tensor
``data``          the same memory as a Tensor outside the graph (PyTorch's ``.data``)
``_data``         the array itself (NumPy; CuPy with the GPU backend): what ops compute on

Every operator below is one line that calls an op from ``minidl.ops``; the
math and its gradient live there, next to each other.

Memory is shared as in PyTorch. A view (``x[1:3]``, ``x.view(6)``, ``x.t()``, ``x.expand``,
``x.detach()``, ``x.data``) is a new Tensor on the same memory; an in-place op (``x.add_(1)``,
``x += 1``, ``x[0] = 5``, ``x.relu_()``) writes into that memory, so every view sees it.
Tensors that share memory share one version counter, which each in-place op increments;
autograd checks it before using a saved array (minidl/autograd.py, minidl/inplace.py).
"""
import math
import numbers
import warnings
from collections import namedtuple

import numpy as np

from . import accumulate, autograd, dtypes
from .autograd import VersionCounter, enable_grad, is_grad_enabled, run_backward
from .backend import array_module, device_of, is_array, to_device, to_host
from .backend import device as Device
from .backend import deferred_checks
from .backend.devices import cuda_device
from .hooks import HookDict, add_hook, node_hooks, retain, run_hooks, run_post_accumulate_hooks
from .inplace import apply_inplace
from .memory_format import check_memory_format
from .ops import activation, elementwise, linalg, reduce, shape
from .random import generator as _default_generator

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


class _ViewInfo:
    """How a view was taken: from ``base`` (a tensor that is no view) by the view ops ``ops``
    (``((FunctionClass, extra args), ...)``), when ``base.grad_fn`` was ``base_grad_fn``, with
    gradient recording on or off (``grad_mode``)."""

    __slots__ = ("base", "ops", "base_grad_fn", "grad_mode")

    def __init__(self, base, ops, base_grad_fn, grad_mode):
        self.base, self.ops, self.base_grad_fn, self.grad_mode = base, ops, base_grad_fn, grad_mode


class Tensor:
    __slots__ = ("_data", "_grad", "_requires_grad", "_grad_fn", "_output_nr", "_version_counter", "_view",
                 "_hooks", "_retains_grad", "_post_accumulate_hooks", "__weakref__")

    # NumPy must hand ``ndarray (op) Tensor`` over to our reflected operators.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False):
        if isinstance(data, np.generic):  # NumPy reductions give scalars: keep a writable 0-d array
            data = np.array(data)
        self._data = data
        self._requires_grad = requires_grad
        self._grad = None
        self._grad_fn = None
        self._output_nr = 0  # which output of grad_fn this is (several only for custom Functions)
        self._version_counter = VersionCounter()
        self._view = None  # a _ViewInfo when this tensor is a view of another one's memory
        self._hooks = None  # a leaf's register_hook hooks (a non-leaf's live on its grad_fn)
        self._retains_grad = False  # retain_grad() was called on this non-leaf
        self._post_accumulate_hooks = None  # a leaf's hooks run after its .grad is accumulated

    # --- attributes --------------------------------------------------------------
    @property
    def data(self):
        """This tensor's memory as a new Tensor outside the graph (``requires_grad=False``), as
        PyTorch's ``.data``: ``p.data.zero_()`` changes ``p``. Unlike PyTorch, a write through
        ``.data`` counts as an in-place change of ``p``: a graph that saved ``p`` then refuses to
        backward instead of giving a gradient of values that are gone."""
        return self._alias()

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"data: assigned data must be a Tensor, got {type(value).__name__}")
        self._data = value._data
        self._version_counter = value._version_counter  # they share memory now

    @property
    def grad(self):
        """dL/d(this tensor) after ``backward()`` (leaves, and non-leaves after ``retain_grad()``),
        accumulated over calls; or None. Reading it on a non-leaf without ``retain_grad()`` warns,
        as in PyTorch."""
        if self._grad is None and self._grad_fn is not None and not self._retains_grad:
            warnings.warn(_NON_LEAF_GRAD_WARNING, UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:  # PyTorch's checks, so that an optimizer never mixes devices or shapes
            if not isinstance(value, Tensor):
                raise TypeError(f"grad: assigned grad expected to be a Tensor or None but got "
                                f"{type(value).__name__}")
            if value.device != self.device:
                raise RuntimeError(f"grad: assigned grad has data located on a different device "
                                   f"({value.device}) than the tensor ({self.device})")
            if value.shape != self.shape:
                raise RuntimeError(f"grad: assigned grad has data of a different size: "
                                   f"{tuple(value.shape)} for a tensor of shape {tuple(self.shape)}")
            if value.dtype != self.dtype:
                raise RuntimeError(f"grad: assigned grad has data of a different type: {value.dtype} for "
                                   f"a tensor of dtype {self.dtype}")
        self._grad = value

    @property
    def requires_grad(self):
        if self._view is not None:
            self._refresh_view()
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    @property
    def grad_fn(self):
        if self._view is not None:
            self._refresh_view()
        return self._grad_fn

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has seen (PyTorch's ``_version``)."""
        return self._version_counter.value

    @property
    def _base(self):
        """The tensor whose memory this view shares (None if it is no view), as PyTorch's ``_base``."""
        return None if self._view is None else self._view.base

    @property
    def shape(self):
        return self._data.shape

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self):
        return device_of(self._data)

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
        return int(self._data.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # --- views: tensors that share memory ------------------------------------------
    def _alias(self):
        """A new leaf Tensor on this tensor's memory, sharing its version counter."""
        alias = Tensor(self._data)
        alias._version_counter = self._version_counter
        return alias

    def _become_view_of(self, source, view_op):
        """Called by ``Function.apply`` when a view op's output shares ``source``'s memory."""
        self._version_counter = source._version_counter
        if source._view is not None:
            base, ops = source._view.base, source._view.ops + (view_op,)
        else:
            base, ops = source, (view_op,)
        self._view = _ViewInfo(base, ops, base._grad_fn, is_grad_enabled())

    def _refresh_view(self):
        """If an in-place op changed the base's graph since this view's ``grad_fn`` was made,
        make it again: the same view ops, applied to the base as it is now."""
        view = self._view
        base = view.base
        if base._grad_fn is view.base_grad_fn:
            return
        view.base_grad_fn = base._grad_fn
        if not view.grad_mode:
            return
        with enable_grad():
            replay = base
            for cls, extra in view.ops:
                replay = cls.apply(replay, *extra)
        self._grad_fn, self._output_nr, self._requires_grad = replay._grad_fn, 0, replay._requires_grad

    # --- autograd ----------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False):
        """Backpropagate from this tensor: accumulate dL/dx into every leaf's ``.grad``.

        ``gradient`` is dL/d(self); it may be omitted only for a scalar (then 1).
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no grad_fn "
                               "(did you create it under no_grad, or forget requires_grad=True?)")
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(f"backward: grad can be implicitly created only for scalar outputs; "
                                   f"this tensor has shape {self.shape}, pass gradient= of that shape")
            gradient = array_module(self._data).ones(self.shape, dtype=self.dtype)
        else:
            gradient = gradient._data if isinstance(gradient, Tensor) else \
                to_device(np.asarray(gradient), self.device)
            if gradient.shape != self.shape:
                raise RuntimeError(f"backward: gradient has shape {gradient.shape} but the tensor "
                                   f"has shape {self.shape}")
            gradient = gradient.astype(self.dtype, copy=False)
        if self.grad_fn is None:  # a leaf: its gradient is the given one
            from .accumulate import accumulate_into_leaf

            accumulate_into_leaf(self, run_hooks(self._hooks, gradient))
            run_post_accumulate_hooks(self)
            return
        run_backward(self.grad_fn, self._output_nr, gradient, retain_graph=retain_graph)

    def detach(self):
        """The same memory as a new tensor cut from the graph (writes to it change this one)."""
        return self._alias()

    def detach_(self):
        """Cut this tensor from the graph: it becomes a leaf that does not require grad."""
        if self._view is not None and self._view.grad_mode and self._view.base.requires_grad:
            raise RuntimeError("detach_: Can't detach views in-place. Use detach() instead.")
        self._grad_fn, self._output_nr, self._requires_grad = None, 0, False
        return self

    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: can only change requires_grad of leaf tensors "
                               "(use .detach() to get a leaf)")
        if requires_grad and not dtypes.is_floating(self.dtype):
            raise RuntimeError(f"requires_grad_: only floating point tensors can require gradients, "
                               f"got dtype {self.dtype}")
        self._requires_grad = bool(requires_grad)
        return self

    # --- conversion ----------------------------------------------------------------
    def numpy(self):
        """The NumPy array of a CPU tensor (the same memory). A cuda tensor raises, as in PyTorch
        (``.cpu()`` first); a strict-device tensor gives a copy, so that tests can read it."""
        if self.requires_grad:
            raise RuntimeError("numpy: can't call numpy() on a tensor that requires grad; "
                               "use tensor.detach().numpy()")
        return self._host("numpy")

    def _host(self, op):
        dev = self.device
        if dev.type == "cuda":
            raise TypeError(f"{op}: can't convert {dev} device type tensor to numpy. Use Tensor.cpu() to "
                            "copy the tensor to host memory first.")
        if dev.type == "cpu":
            return self._data
        deferred_checks.raise_pending()  # a copy to the host: device-side checks first
        return to_host(self._data)

    def __array__(self, dtype=None, copy=None):
        array = self._host("__array__")
        return array if dtype is None else array.astype(dtype)

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python scalar, "
                             f"got shape {self.shape}")
        deferred_checks.raise_pending()  # a copy to the host: device-side checks first
        return self._data.item()

    def tolist(self):
        deferred_checks.raise_pending()
        return self._data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with shape {self.shape} is ambiguous")
        deferred_checks.raise_pending()
        return bool(self._data.item())

    def to(self, *args, device=None, dtype=None, non_blocking=False, copy=False, memory_format=None):
        """PyTorch's forms: ``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other)``
        (other's device and dtype), ``to(device=..., dtype=...)``. Differentiable: the gradient
        goes back to this tensor's device and dtype. Returns ``self`` when nothing changes
        (unless ``copy=True``). ``non_blocking`` is accepted and ignored, and so is ``memory_format``
        (minidl's layout is always row-major: minidl/memory_format.py), after PyTorch's checks."""
        check_memory_format(memory_format, self.ndim, "Tensor.to")
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, (str, Device)):
                device = arg
            elif arg is not None:
                dtype = arg
        out = self
        if device is not None and Device(device) != self.device:
            if Device(device).type == "cpu":
                deferred_checks.raise_pending()  # a copy to the host: device-side checks first
            out = elementwise.ToDevice.apply(self, Device(device))
        if dtype is not None and dtypes.as_dtype(dtype) != out.dtype:
            out = out.type(dtype)
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None, non_blocking=False):
        """This tensor on a GPU (``cuda``, or ``cuda:<device>``)."""
        return self.to(cuda_device(device))

    def type(self, dtype):
        """A differentiable cast to ``dtype``."""
        dtype = dtypes.as_dtype(dtype)
        if dtype == self.dtype:
            return self
        if not dtypes.is_floating(dtype):  # an integer or bool result has no gradient (PyTorch)
            return Tensor(self._data.astype(dtype))
        return elementwise.Cast.apply(self, dtype)

    def float(self):
        return self.type(dtypes.float32)

    def double(self):
        return self.type(dtypes.float64)

    def long(self):
        return self.type(dtypes.int64)

    def clone(self):
        return elementwise.Clone.apply(self)

    # --- in-place ops: the out-of-place op, written into this tensor (minidl/inplace.py) ---
    def add_(self, other, *, alpha=1):
        return apply_inplace(self, "add_", lambda: self.add(other, alpha=alpha))

    def sub_(self, other, *, alpha=1):
        return apply_inplace(self, "sub_", lambda: self.sub(other, alpha=alpha))

    def mul_(self, other):
        return apply_inplace(self, "mul_", lambda: self * other)

    def div_(self, other):
        return apply_inplace(self, "div_", lambda: self / other)

    def pow_(self, exponent):
        return apply_inplace(self, "pow_", lambda: self ** exponent)

    __iadd__, __isub__, __imul__, __itruediv__, __ipow__ = add_, sub_, mul_, div_, pow_

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        """Every entry becomes ``value`` (a number, or a 0-dim tensor that then gets the gradient)."""
        if isinstance(value, Tensor) and value.ndim != 0:
            raise RuntimeError(f"fill_: only supports 0-dimension value tensor but got tensor with "
                               f"{value.ndim} dimensions")
        return apply_inplace(self, "fill_", lambda: elementwise.Fill.apply(self, value))

    def copy_(self, src):
        """Copy ``src`` (broadcast to this shape, cast to this dtype) into this tensor; ``src`` gets
        the gradient."""
        if not isinstance(src, Tensor):
            src = Tensor(to_device(src if is_array(src) else np.asarray(src), self.device))
        elif src.device != self.device:
            src = src.to(self.device)  # copy_ may cross devices (differentiably)
        if not _broadcasts_to(src.shape, self.shape):
            raise RuntimeError(f"copy_: source of shape {tuple(src.shape)} cannot be copied into a "
                               f"tensor of shape {tuple(self.shape)}")
        return apply_inplace(self, "copy_", lambda: elementwise.CopyFrom.apply(self, src))

    def clamp_(self, min=None, max=None):  # noqa: A002  (PyTorch's argument names)
        return apply_inplace(self, "clamp_", lambda: self.clamp(min, max))

    clip_ = clamp_

    def relu_(self):
        return apply_inplace(self, "relu_", lambda: activation.Relu.apply(self))

    def sigmoid_(self):
        return apply_inplace(self, "sigmoid_", lambda: activation.Sigmoid.apply(self))

    def tanh_(self):
        return apply_inplace(self, "tanh_", lambda: activation.Tanh.apply(self))

    def exp_(self):
        return apply_inplace(self, "exp_", lambda: self.exp())

    def log_(self):
        return apply_inplace(self, "log_", lambda: self.log())

    def sqrt_(self):
        return apply_inplace(self, "sqrt_", lambda: self.sqrt())

    def abs_(self):
        return apply_inplace(self, "abs_", lambda: self.abs())

    def neg_(self):
        return apply_inplace(self, "neg_", lambda: -self)

    def masked_fill(self, mask, value):
        """``value`` where ``mask`` (bool, broadcast to this shape) is True, else this tensor."""
        mask = mask._data if isinstance(mask, Tensor) else to_device(np.asarray(mask), self.device)
        if mask.dtype != np.bool_:
            raise RuntimeError(f"masked_fill: expected a bool mask, got dtype {mask.dtype}")
        elementwise.check_broadcast("masked_fill", self.shape, mask.shape)
        if isinstance(value, Tensor) and value.ndim != 0:
            raise RuntimeError(f"masked_fill: only supports a 0-dimensional value tensor, but got "
                               f"tensor with {value.ndim} dimension(s).")
        return elementwise.MaskedFill.apply(self, mask, value)

    def masked_fill_(self, mask, value):
        return apply_inplace(self, "masked_fill_", lambda: self.masked_fill(mask, value))

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """Fill with samples of N(mean, std^2) from ``generator`` (default: minidl's)."""
        self._check_floating("normal_")
        rng = _default_generator(generator)  # minidl's global one, or generator's
        values = to_device(rng.normal(mean, std, size=self.shape), self.device)  # drawn on the host
        return apply_inplace(self, "normal_", lambda: elementwise.CopyFrom.apply(self, Tensor(values)))

    def uniform_(self, a=0.0, b=1.0, *, generator=None, **kwargs):
        """Fill with samples of U(a, b) (PyTorch's keywords ``from``/``to`` work too)."""
        self._check_floating("uniform_")
        a, b = kwargs.pop("from", a), kwargs.pop("to", b)
        if kwargs:
            raise TypeError(f"uniform_: unexpected keyword arguments {sorted(kwargs)}")
        rng = _default_generator(generator)  # minidl's global one, or generator's
        values = to_device(rng.uniform(a, b, size=self.shape), self.device)  # drawn on the host
        return apply_inplace(self, "uniform_", lambda: elementwise.CopyFrom.apply(self, Tensor(values)))

    def _check_floating(self, op):
        if not dtypes.is_floating(self.dtype):
            raise RuntimeError(f"{op}: expects a floating point tensor, got dtype {self.dtype}")

    def __setitem__(self, index, value):
        index = _array_index(index)
        if not isinstance(value, Tensor):
            value = Tensor(to_device(np.asarray(value), self.device))
        if shape.is_basic_index(index):  # the region's shape from a zero-size stand-in: no copy
            region = np.broadcast_to(np.empty((), dtype=bool), self.shape)[index].shape
        else:  # an array index may live on the device: index the tensor itself
            region = self._data[index].shape
        extra = value.ndim - len(region)
        if extra > 0 and all(n == 1 for n in value.shape[:extra]):
            value = value.reshape(value.shape[extra:])  # leading size-1 dims are dropped, as NumPy does
        if not _broadcasts_to(value.shape, region):
            raise RuntimeError(f"setitem: a value of shape {tuple(value.shape)} cannot be assigned to "
                               f"tensor[{_index_repr(index)}] of a tensor of shape {tuple(self.shape)}")
        apply_inplace(self, "setitem", lambda: shape.SetItem.apply(self, value, index))

    # --- arithmetic (PyTorch's type promotion; NumPy broadcasting, undone in backward) ----
    def _binary(self, other, op, name, reflected=False):
        a, b = (other, self) if reflected else (self, other)
        for value in (a, b):
            if not isinstance(value, (Tensor, numbers.Number, np.ndarray, np.generic)):
                raise TypeError(f"unsupported operand type {type(value).__name__} for a minidl Tensor")
        dtype = dtypes.result_type(a, b)
        if op is elementwise.Div and not dtypes.is_floating(dtype):
            dtype = dtypes.default_float  # true division: int / int is a float, as in PyTorch
        if op is elementwise.Sub and any(dtypes.result_type(v) == dtypes.bool for v in (a, b)):
            if dtype == dtypes.bool:
                raise RuntimeError("sub: Subtraction, the `-` operator, with two bool tensors is not "
                                   "supported. Use the `^` or `logical_xor()` operator instead.")
            raise RuntimeError("sub: Subtraction, the `-` operator, with a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or `logical_not()` "
                               "operator instead.")
        a, b = _as_operand(a, dtype, self), _as_operand(b, dtype, self)
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

    def add(self, other, *, alpha=1):
        """``self + alpha * other`` (PyTorch's ``add``)."""
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        """``self - alpha * other`` (PyTorch's ``sub``)."""
        return self - (other if alpha == 1 else other * alpha)

    def __pow__(self, exponent):
        if isinstance(exponent, numbers.Real) and not isinstance(exponent, (bool, np.generic)):
            dtype = dtypes.result_type(self, exponent)
            if not dtypes.is_floating(dtype) and exponent < 0:
                raise RuntimeError("pow: Integers to negative integer powers are not allowed.")
            return elementwise.PowScalar.apply(self.type(dtype), exponent)
        return self._binary(exponent, elementwise.Pow, "pow")

    def __rpow__(self, base):
        if isinstance(base, numbers.Real) and not isinstance(base, (bool, np.generic)):
            return elementwise.RPowScalar.apply(base, self.type(dtypes.result_type(base, self)))
        return self._binary(base, elementwise.Pow, "pow", reflected=True)

    def __matmul__(self, other):
        other = _as_operand(other, None, self)
        linalg.check_matmul("matmul", self, other)
        return linalg.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        other = _as_operand(other, None, self)
        linalg.check_matmul("matmul", other, self)
        return linalg.MatMul.apply(other, self)

    def matmul(self, other):
        return self @ other

    def mm(self, mat2):
        """Matrix product of two 2-D tensors (PyTorch's ``mm``)."""
        if self.ndim != 2 or getattr(mat2, "ndim", None) != 2:
            raise RuntimeError(f"mm: expected 2-D tensors, got shapes {tuple(self.shape)} and "
                               f"{tuple(getattr(mat2, 'shape', ()))}")
        return self @ mat2

    def __neg__(self):
        return elementwise.Neg.apply(self)

    def __pos__(self):
        return self

    mul, div, pow = __mul__, __truediv__, __pow__

    # --- comparisons: boolean tensors, no gradient ------------------------------
    def _compare(self, other, compare, name):
        """``compare`` on both operands promoted to their common dtype (PyTorch's rule)."""
        a, b = _promoted_arrays(self, other, name)
        return Tensor(compare(a, b))

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b, "lt")

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b, "le")

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b, "gt")

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b, "ge")

    def __eq__(self, other):
        if not _is_operand(other):
            return NotImplemented  # x == None is False, as in PyTorch
        return self._compare(other, lambda a, b: a == b, "eq")

    def __ne__(self, other):
        if not _is_operand(other):
            return NotImplemented
        return self._compare(other, lambda a, b: a != b, "ne")

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
        size = self._data.size
        known = math.prod(s for s in new_shape if s != -1)
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
        return self.reshape(sizes[:start] + (math.prod(sizes[start:end + 1]),) + sizes[end + 1:])

    def unflatten(self, dim, sizes):
        """Dim ``dim`` split into ``sizes`` (one of them may be -1): the inverse of ``flatten``."""
        axis = _normalize_dim(dim, self.ndim, "unflatten")
        sizes = tuple(int(s) for s in sizes)
        known = math.prod(s for s in sizes if s != -1)
        if not sizes or sizes.count(-1) > 1 or (-1 not in sizes and known != self.shape[axis]) \
                or (-1 in sizes and (known == 0 or self.shape[axis] % known)):
            raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size "
                               f"of dim {dim} ({self.shape[axis]}) in the input tensor")
        return self.reshape(self.shape[:axis] + sizes + self.shape[axis + 1:])

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
    def sum(self, dim=None, keepdim=False, *, dtype=None):
        """Sum over ``dim``; bool and integer tensors sum in int64 (PyTorch's rule), ``dtype=``
        casts the input first."""
        axes = _normalize_dims(dim, self.ndim, "sum")
        dtype = dtypes.as_dtype(dtype) or (self.dtype if dtypes.is_floating(self.dtype) else dtypes.int64)
        return reduce.Sum.apply(self.type(dtype), axes, keepdim)

    def mean(self, dim=None, keepdim=False, *, dtype=None):
        source = self if dtype is None else self.type(dtype)  # dtype=: cast first, as PyTorch
        if not dtypes.is_floating(source.dtype):
            raise RuntimeError(f"mean: could not infer output dtype. Input dtype must be either a "
                               f"floating point or complex dtype. Got: {dtypes.torch_name(source.dtype)}")
        return reduce.Mean.apply(source, _normalize_dims(dim, self.ndim, "mean"), keepdim)

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
        if self._data.size == 0:
            raise RuntimeError(f"{name}: the tensor is empty (shape {self.shape})")
        if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool):
            # torch.max(x, dim): values and the index of the first extreme along dim
            axis = _normalize_dim(dim, self.ndim, name)
            xp = array_module(self._data)
            arg = xp.argmax if largest else xp.argmin
            index = xp.expand_dims(arg(self._data, axis=axis), axis)  # size 1 on axis
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
        return self._arg(dim, keepdim, array_module(self._data).argmax, "argmax")

    def argmin(self, dim=None, keepdim=False):
        return self._arg(dim, keepdim, array_module(self._data).argmin, "argmin")

    def _arg(self, dim, keepdim, arg, name):
        if dim is None:
            index = arg(self._data)
            return Tensor(array_module(self._data).asarray(index).reshape((1,) * self.ndim if keepdim else ()))
        axis = _normalize_dim(dim, self.ndim, name)
        index = arg(self._data, axis=axis)
        return Tensor(array_module(self._data).expand_dims(index, axis) if keepdim else index)

    # --- elementwise functions -----------------------------------------------------------
    def _as_float(self):
        """Bool and integer tensors as the default float: what exp, log, sigmoid, ... compute on."""
        return self if dtypes.is_floating(self.dtype) else self.type(dtypes.default_float)

    def exp(self):
        return elementwise.Exp.apply(self._as_float())

    def log(self):
        return elementwise.Log.apply(self._as_float())

    def sqrt(self):
        return elementwise.Sqrt.apply(self._as_float())

    def abs(self):
        return elementwise.Abs.apply(self)

    def clamp(self, min=None, max=None):  # noqa: A002  (PyTorch's argument names)
        """Bounds are numbers or tensors (broadcast with this one; they get gradients too); the
        result's dtype follows type promotion over all three (int tensor, 0.5 -> float32)."""
        if min is None and max is None:
            raise RuntimeError("clamp: At least one of 'min' or 'max' must not be None")
        bounds = [b for b in (min, max) if b is not None]
        dtype = dtypes.result_type(self, *bounds)
        low, high = (None if b is None else _as_operand(b, dtype, self) if isinstance(b, Tensor) else b
                     for b in (min, max))
        for name, bound in (("min", low), ("max", high)):
            if isinstance(bound, Tensor):
                elementwise.check_broadcast("clamp", self.shape, bound.shape)
        return elementwise.Clamp.apply(self.type(dtype), low, high)

    clip = clamp

    def relu(self):
        return activation.Relu.apply(self)

    def sigmoid(self):
        return activation.Sigmoid.apply(self._as_float())

    def tanh(self):
        return activation.Tanh.apply(self._as_float())

    # --- index ops, comparisons, logic, conversions, new_*, hooks (minidl/functional/indexing.py,
    # minidl/ops/index.py, minidl/hooks.py) ------------------------------------------------------
    def is_contiguous(self):
        """Whether the entries lie in memory in row-major order without gaps (no transpose, step
        or expand in between)."""
        flags = getattr(self._data, "flags", None)
        return True if flags is None else bool(flags.c_contiguous)

    def contiguous(self):
        """This tensor if it is contiguous, else a row-major copy (differentiable)."""
        return self if self.is_contiguous() else elementwise.Clone.apply(self)

    def eq(self, other):
        return self._compare(other, lambda a, b: a == b, "eq")

    def ne(self, other):
        return self._compare(other, lambda a, b: a != b, "ne")

    def lt(self, other):
        return self._compare(other, lambda a, b: a < b, "lt")

    def le(self, other):
        return self._compare(other, lambda a, b: a <= b, "le")

    def gt(self, other):
        return self._compare(other, lambda a, b: a > b, "gt")

    def ge(self, other):
        return self._compare(other, lambda a, b: a >= b, "ge")

    def _bitwise(self, other, op, name):
        """``op`` on bool or integer operands promoted to their common dtype (no gradient)."""
        a, b = _promoted_arrays(self, other, name)
        if a.dtype.kind not in "biu":
            raise NotImplementedError(f'{name}: "{name}_cpu" not implemented for '
                                      f"'{dtypes.torch_name(a.dtype)}' (only bool and integer tensors)")
        return Tensor(op(a, b))

    def bitwise_and(self, other):
        return self._bitwise(other, lambda a, b: a & b, "bitwise_and")

    def bitwise_or(self, other):
        return self._bitwise(other, lambda a, b: a | b, "bitwise_or")

    def bitwise_xor(self, other):
        return self._bitwise(other, lambda a, b: a ^ b, "bitwise_xor")

    def bitwise_not(self):
        if self.dtype.kind not in "biu":
            raise TypeError(f"bitwise_not: ~ (operator.invert) is only implemented on integer and "
                            f"Boolean-type tensors, got dtype {self.dtype}")
        return Tensor(~self._data)

    __and__ = __rand__ = bitwise_and
    __or__ = __ror__ = bitwise_or
    __xor__ = __rxor__ = bitwise_xor
    __invert__ = bitwise_not

    def __iand__(self, other):
        return apply_inplace(self, "bitwise_and_", lambda: self & other)

    def __ior__(self, other):
        return apply_inplace(self, "bitwise_or_", lambda: self | other)

    def __ixor__(self, other):
        return apply_inplace(self, "bitwise_xor_", lambda: self ^ other)

    def any(self, dim=None, keepdim=False):
        """Whether any entry (along ``dim``) is nonzero: bool (uint8 for a uint8 tensor)."""
        return self._any_all(dim, keepdim, "any")

    def all(self, dim=None, keepdim=False):
        """Whether every entry (along ``dim``) is nonzero: bool (uint8 for a uint8 tensor)."""
        return self._any_all(dim, keepdim, "all")

    def _any_all(self, dim, keepdim, name):
        axes = _normalize_dims(dim, self.ndim, name)
        nonzero = self._data != 0
        result = nonzero.any(axis=axes, keepdims=keepdim) if name == "any" else \
            nonzero.all(axis=axes, keepdims=keepdim)
        result = array_module(self._data).asarray(result)  # a 0-d array, not a NumPy scalar
        return Tensor(result.astype(self.dtype) if self.dtype == np.uint8 else result)

    def int(self):
        return self.type(dtypes.as_dtype("int32"))

    def bool(self):
        return self.type(dtypes.bool)

    def half(self):
        return self.type(dtypes.as_dtype("float16"))

    def type_as(self, other):
        """This tensor cast to ``other``'s dtype."""
        return self.type(other.dtype)

    def repeat(self, *sizes):
        from .functional import indexing  # functional imports tensor: import here

        return indexing.repeat(self, *sizes)

    def index_select(self, dim, index):
        from .functional import indexing

        return indexing.index_select(self, dim, index)

    def gather(self, dim, index):
        from .functional import indexing

        return indexing.gather(self, dim, index)

    def scatter(self, dim, index, src=None, value=None, *, reduce=None):
        from .functional import indexing

        return indexing.scatter(self, dim, index, src, value, reduce=reduce)

    def scatter_add(self, dim, index, src):
        from .functional import indexing

        return indexing.scatter_add(self, dim, index, src)

    def scatter_(self, dim, index, src=None, value=None, *, reduce=None):
        return apply_inplace(self, "scatter_", lambda: self.scatter(dim, index, src, value, reduce=reduce))

    def scatter_add_(self, dim, index, src):
        return apply_inplace(self, "scatter_add_", lambda: self.scatter_add(dim, index, src))

    def sort(self, dim=-1, descending=False, *, stable=False):
        from .functional import indexing

        return indexing.sort(self, dim, descending, stable=stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002  (PyTorch's argument names)
        from .functional import indexing

        return indexing.topk(self, k, dim, largest, sorted)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        from .functional import indexing

        return indexing.norm(self, p, dim, keepdim, dtype)

    def softmax(self, dim, dtype=None):
        from .functional.softmax import softmax

        return softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim, dtype=None):
        from .functional.softmax import log_softmax

        return log_softmax(self, dim, dtype=dtype)

    def _new(self, name, args, dtype, device, requires_grad):
        """``minidl.<name>(*args)`` with this tensor's dtype and device unless given."""
        from . import creation

        return getattr(creation, name)(*args, dtype=self.dtype if dtype is None else dtype,
                                       device=self.device if device is None else device,
                                       requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        """Zeros of ``size`` with this tensor's dtype and device unless given."""
        return self._new("zeros", (_size_args(size, "new_zeros"),), dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new("ones", (_size_args(size, "new_ones"),), dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new("empty", (_size_args(size, "new_empty"),), dtype, device, requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
        return self._new("full", (_size_args((size,), "new_full"), fill_value), dtype, device, requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
        """A copy of ``data`` with this tensor's dtype and device unless given."""
        return self._new("tensor", (data,), dtype, device, requires_grad)

    def register_hook(self, hook):
        """Call ``hook(grad)`` whenever dL/d(this tensor) is computed; a Tensor it returns replaces
        the gradient. Returns a handle whose ``remove()`` unregisters it (minidl/hooks.py)."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require "
                               "gradient")
        if self.grad_fn is None:  # a leaf: run before its .grad is accumulated
            if self._hooks is None:
                self._hooks = HookDict()
            return add_hook(self._hooks, hook)
        return add_hook(node_hooks(self.grad_fn, self._output_nr, create=True), hook)

    def retain_grad(self):
        """Keep dL/d(this non-leaf tensor) in ``.grad`` during backward (a no-op on a leaf)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            retain(self.grad_fn, self._output_nr, self)
            self._retains_grad = True

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` (returning None) after a backward pass has accumulated this leaf's
        ``.grad`` (once per pass, after the sum over all its uses); DistributedDataParallel uses it
        to learn that a parameter's gradient is ready. Returns a handle with ``remove()``."""
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a tensor "
                               "that doesn't require gradient")
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = HookDict()
        return add_hook(self._post_accumulate_hooks, hook)

    @property
    def retains_grad(self):
        """True for a non-leaf tensor after ``retain_grad()``."""
        return self._retains_grad

    # --- printing ---------------------------------------------------------------------------
    def __repr__(self):
        body = np.array2string(to_host(self._data), separator=", ", prefix="tensor(")
        extras = []
        if self.dtype not in (dtypes.default_float, dtypes.int64, dtypes.bool):
            extras.append(f"dtype=minidl.{self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"


autograd.Tensor = accumulate.Tensor = Tensor  # (they cannot import this module: it imports them)

_NON_LEAF_GRAD_WARNING = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad attribute "
    "won't be populated during autograd.backward(). If you indeed want the .grad field to be populated "
    "for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. If you access the non-leaf Tensor "
    "by mistake, make sure you access the leaf Tensor instead. See github.com/pytorch/pytorch/pull/30531 "
    "for more information.")


def _is_operand(value):
    return isinstance(value, (Tensor, numbers.Number, np.ndarray, np.generic))


def _promoted_arrays(tensor, other, name):
    """The arrays of ``tensor`` and ``other`` (a Tensor, array or Python number) in their common
    dtype by PyTorch's promotion rules, after checking that they broadcast; outside the graph."""
    if not _is_operand(other):
        raise TypeError(f"{name}(): argument 'other' must be Tensor or Number, not {type(other).__name__}")
    dtype = dtypes.result_type(tensor, other)
    xp = array_module(tensor._data)
    if isinstance(other, Tensor):
        if other.device != tensor.device:
            raise RuntimeError(f"{name}(): Expected all tensors to be on the same device, but found at "
                               f"least two devices, {tensor.device} and {other.device}!")
        b = other._data
    else:
        b = xp.asarray(other)
    elementwise.check_broadcast(name, tensor.shape, b.shape)
    return tensor._data.astype(dtype, copy=False), b.astype(dtype, copy=False)


def _index_item(item):
    """One index entry as NumPy accepts it; tensors and lists become arrays, checked."""
    if isinstance(item, Tensor):
        item = item._data
    elif isinstance(item, list):
        item = np.asarray(item)
    if is_array(item) and not isinstance(item, np.integer):
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


def _as_operand(value, dtype, like):
    """``value`` (a Tensor, array or Python number) as a Tensor of ``dtype`` (None: its own; a
    Python number then takes ``like``'s dtype). Casting a Tensor is differentiable."""
    if isinstance(value, Tensor):
        return value if dtype is None or value.dtype == dtype else value.type(dtype)
    xp = array_module(like._data)
    if isinstance(value, (np.ndarray, np.generic)):
        return Tensor(xp.asarray(value, dtype=dtype))
    if isinstance(value, numbers.Number):
        return Tensor(xp.asarray(value, dtype=dtype or dtypes.result_type(like, value)))
    raise TypeError(f"unsupported operand type {type(value).__name__} for a minidl Tensor")


def _broadcasts_to(shape, target):
    """Whether an array of ``shape`` broadcasts to exactly ``target`` (NumPy assignment rules)."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def _index_repr(index):
    items = index if isinstance(index, tuple) else (index,)
    return ", ".join(":" if isinstance(i, slice) and i == slice(None) else
                     "..." if i is Ellipsis else repr(i) if not hasattr(i, "shape") else
                     f"<index of shape {tuple(i.shape)}>" for i in items)
