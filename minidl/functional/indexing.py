"""PyTorch's index ops with their argument checks: ``index_select``, ``gather``, ``scatter``,
``scatter_add``, ``sort``, ``topk``, ``norm``, ``repeat``.

The ``Tensor`` methods of the same names call these (``x.gather(1, idx)``). Every check runs
before any work, and raises PyTorch's exception type with a message that names the function,
the argument, what it got and what was expected. The math and the gradients live in
minidl/ops/index.py, minidl/ops/reduce.py (``Norm``) and minidl/ops/shape.py (``Repeat``).
"""
import numbers
from collections import namedtuple

from .. import dtypes
from ..ops import index as _index_ops
from ..ops import reduce as _reduce_ops
from ..ops import shape as _shape_ops
from ..tensor import Tensor, _normalize_dim, _normalize_dims, _size_args

SortResult = namedtuple("sort", ["values", "indices"])
"""What ``sort`` returns, as ``torch.return_types.sort``."""

TopkResult = namedtuple("topk", ["values", "indices"])
"""What ``topk`` returns, as ``torch.return_types.topk``."""

_INDEX_DTYPES = (dtypes.int64, dtypes.as_dtype("int32"))


def _check_index(op, index):
    """An int64 or int32 Tensor (PyTorch 2.13 takes both for every index op here)."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{op}(): argument 'index' must be Tensor, not {type(index).__name__}")
    if index.dtype not in _INDEX_DTYPES:
        raise RuntimeError(f"{op}(): Expected dtype int64 or int32 for index, got {index.dtype}")


def _check_values_in_range(op, index, size, axis, error=RuntimeError):
    """Every index value in [0, size): PyTorch's message otherwise (no negative indices)."""
    if index.numel() == 0:
        return
    low, high = int(index._data.min().item()), int(index._data.max().item())
    bad = low if low < 0 else high if high >= size else None
    if bad is not None:
        raise error(f"{op}(): index {bad} is out of bounds for dimension {axis} with size {size}")


def _check_same_device(op, x, index):
    if index.device != x.device:
        raise RuntimeError(f"{op}(): Expected all tensors to be on the same device, but found at least "
                           f"two devices, {x.device} and {index.device}!")


# ------------------------------------------------------------------------------- index_select
def index_select(input, dim, index):  # noqa: A002  (PyTorch's argument names)
    """The entries ``index`` (1-d, int64 or int32) of ``input`` along ``dim``."""
    if not isinstance(input, Tensor):
        raise TypeError(f"index_select(): argument 'input' must be Tensor, not {type(input).__name__}")
    axis = _normalize_dim(dim, input.ndim, "index_select")
    _check_index("index_select", index)
    if index.ndim > 1:
        raise IndexError(f"index_select(): Index is supposed to be a vector, got index of shape "
                         f"{tuple(index.shape)}")
    _check_same_device("index_select", input, index)
    size = input.shape[axis] if input.ndim else 1
    _check_values_in_range("index_select", index, size, dim, error=IndexError)
    if input.ndim == 0:
        return _index_ops.IndexSelect.apply(input.reshape(1), index.reshape(-1), 0).reshape(())
    return _index_ops.IndexSelect.apply(input, index.reshape(-1), axis)


# ------------------------------------------------------------------------------- gather, scatter
def _check_gather_shapes(op, input, axis, dim, index, src=None):
    """PyTorch's shape rules: index has input's number of dimensions, is no larger than input
    on every axis but ``dim``, and no larger than ``src`` on every axis."""
    if index.ndim != input.ndim and not (index.ndim <= 1 and input.ndim <= 1):
        raise RuntimeError(f"{op}(): Index tensor must have the same number of dimensions as input tensor "
                           f"(index of shape {tuple(index.shape)}, input of shape {tuple(input.shape)})")
    if src is not None and src.ndim != index.ndim and not (index.ndim <= 1 and src.ndim <= 1):
        raise RuntimeError(f"{op}(): Index tensor must have the same number of dimensions as src tensor "
                           f"(index of shape {tuple(index.shape)}, src of shape {tuple(src.shape)})")
    for a in range(index.ndim if input.ndim else 0):
        too_big_self = a != axis and index.shape[a] > input.shape[a]
        too_big_src = src is not None and index.shape[a] > src.shape[a]
        if too_big_self or too_big_src:
            against = f" and to be no larger size than src {list(src.shape)}" if src is not None else ""
            raise RuntimeError(f"{op}(): Size does not match at dimension {a}: expected index "
                               f"{list(index.shape)} to be no larger than self {list(input.shape)} "
                               f"apart from dimension {dim}{against}")


def _as_1d(input, index, src):
    """0-d tensors are handled as 1-d ones of one entry (PyTorch allows them)."""
    one = input.ndim == 0
    input = input.reshape(1) if one else input
    index = index.reshape(1) if index.ndim == 0 else index
    if isinstance(src, Tensor) and src.ndim == 0:
        src = src.reshape(1)
    return one, input, index, src


def gather(input, dim, index):  # noqa: A002
    """``out[i][j][k] = input[i][index[i][j][k]][k]`` for ``dim == 1`` (out has index's shape)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"gather(): argument 'input' must be Tensor, not {type(input).__name__}")
    axis = _normalize_dim(dim, input.ndim, "gather")
    _check_index("gather", index)
    _check_same_device("gather", input, index)
    _check_gather_shapes("gather", input, axis, dim, index)
    _check_values_in_range("gather", index, input.shape[axis] if input.ndim else 1, dim)
    out_shape = index.shape
    _, x, index, _ = _as_1d(input, index, None)
    return _index_ops.Gather.apply(x, index, axis).reshape(out_shape)


def _scatter_checks(op, input, dim, index, src):
    axis = _normalize_dim(dim, input.ndim, op)
    _check_index(op, index)
    _check_same_device(op, input, index)
    if isinstance(src, Tensor):
        _check_same_device(op, input, src)
        if src.dtype != input.dtype:
            raise RuntimeError(f"{op}(): Expected self.dtype to be equal to src.dtype (self is "
                               f"{input.dtype}, src is {src.dtype})")
    _check_gather_shapes(op, input, axis, dim, index, src if isinstance(src, Tensor) else None)
    _check_values_in_range(op, index, input.shape[axis] if input.ndim else 1, dim)
    return axis


def scatter(input, dim, index, src=None, value=None, *, reduce=None):  # noqa: A002
    """``input`` with ``out[i][index[i][j][k]][k] = src[i][j][k]`` for ``dim == 1`` (``src`` a
    Tensor of input's dtype, or ``value`` a number written at every index)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"scatter(): argument 'input' must be Tensor, not {type(input).__name__}")
    if reduce is not None:
        raise NotImplementedError("scatter(): reduce= is not supported by minidl (PyTorch deprecates it); "
                                  "use scatter_add for reduce='add'")
    if (src is None) == (value is None):
        raise TypeError("scatter(): give exactly one of src (a Tensor) or value (a number)")
    if value is None and not isinstance(src, Tensor):
        src, value = None, src  # scatter(dim, index, 1.5): the value form
    if value is not None and not (isinstance(value, numbers.Number) or
                                  (isinstance(value, Tensor) and value.ndim == 0)):
        raise TypeError(f"scatter(): argument 'value' must be a Number, not {type(value).__name__}")
    if isinstance(value, Tensor):
        value = value.item()
    axis = _scatter_checks("scatter", input, dim, index, src)
    one, x, index, src = _as_1d(input, index, src)
    out = _index_ops.Scatter.apply(x, index, src if src is not None else value, axis)
    return out.reshape(()) if one else out


def scatter_add(input, dim, index, src):  # noqa: A002
    """``input`` with ``out[i][index[i][j][k]][k] += src[i][j][k]`` for ``dim == 1``."""
    if not isinstance(input, Tensor):
        raise TypeError(f"scatter_add(): argument 'input' must be Tensor, not {type(input).__name__}")
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add(): argument 'src' (position 3) must be Tensor, not {type(src).__name__}")
    axis = _scatter_checks("scatter_add", input, dim, index, src)
    one, x, index, src = _as_1d(input, index, src)
    out = _index_ops.ScatterAdd.apply(x, index, src, axis)
    return out.reshape(()) if one else out


# ------------------------------------------------------------------------------- sort, topk
def sort(input, dim=-1, descending=False, *, stable=False):  # noqa: A002
    """``(values, indices)`` of ``input`` sorted along ``dim``; values are differentiable,
    indices int64. The sort is always stable (equal values keep their order), which is what
    PyTorch promises for ``stable=True`` and one of the orders it allows otherwise."""
    if not isinstance(input, Tensor):
        raise TypeError(f"sort(): argument 'input' must be Tensor, not {type(input).__name__}")
    axis = _normalize_dim(dim, input.ndim, "sort")
    if input.ndim == 0:
        return SortResult(input.clone(), Tensor(input._data.astype(dtypes.int64) * 0))
    order = _index_ops.sort_indices(input._data, axis, bool(descending)).astype(dtypes.int64, copy=False)
    indices = Tensor(order)
    return SortResult(_index_ops.Gather.apply(input, indices, axis), indices)


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) entries along
    ``dim``, in sorted order (also when ``sorted=False``, which allows any order)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"topk(): argument 'input' must be Tensor, not {type(input).__name__}")
    if not isinstance(k, numbers.Integral) or isinstance(k, bool):
        raise TypeError(f"topk(): argument 'k' must be int, not {type(k).__name__}")
    axis = _normalize_dim(dim, input.ndim, "topk")
    size = input.shape[axis] if input.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"topk(): selected index k out of range (k={k}, but dimension {dim} has "
                           f"size {size})")
    if input.ndim == 0:
        return TopkResult(input.clone(), Tensor(input._data.astype(dtypes.int64) * 0))
    order = _index_ops.sort_indices(input._data, axis, bool(largest)).astype(dtypes.int64, copy=False)
    indices = Tensor(order[(slice(None),) * axis + (slice(0, k),)])  # the first k along axis
    return TopkResult(_index_ops.Gather.apply(input, indices, axis), indices)


# ------------------------------------------------------------------------------- norm, repeat
def norm(input, p="fro", dim=None, keepdim=False, dtype=None):  # noqa: A002
    """The vector p-norm over ``dim`` (all dims by default): p = 'fro' (= 2), any real p,
    ``inf``, ``-inf``. The nuclear norm ('nuc') is not supported."""
    if not isinstance(input, Tensor):
        raise TypeError(f"norm(): argument 'input' must be Tensor, not {type(input).__name__}")
    if p == "fro" or p is None:
        p = 2
    elif isinstance(p, str):
        raise NotImplementedError(f"norm(): p={p!r} is not supported by minidl (use 'fro', a number, "
                                  "inf or -inf)")
    elif not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"norm(): p must be a number, 'fro' or inf, got {p!r}")
    if dtype is not None:
        input = input.type(dtype)
    if not dtypes.is_floating(input.dtype):
        raise RuntimeError(f"norm(): linalg.vector_norm: Expected a floating point or complex tensor as "
                           f"input. Got {dtypes.torch_name(input.dtype)}")
    axes = _normalize_dims(dim, input.ndim, "norm")
    if p in (float("inf"), float("-inf")) and input.numel() == 0:
        raise RuntimeError("norm(): linalg.vector_norm cannot compute the inf norm on an empty tensor "
                           "because the operation does not have an identity")
    return _reduce_ops.Norm.apply(input, float(p), axes, bool(keepdim))


def repeat(input, *sizes):  # noqa: A002
    """``input`` tiled ``sizes[a]`` times along each dim a (``Tensor.repeat``; differentiable)."""
    repeats = _size_args(sizes, "repeat")
    if len(repeats) < input.ndim:
        raise RuntimeError(f"repeat(): Number of dimensions of repeat dims can not be smaller than number "
                           f"of dimensions of tensor (got {len(repeats)} repeats for a tensor of shape "
                           f"{tuple(input.shape)})")
    if any(r < 0 for r in repeats):
        raise RuntimeError(f"repeat(): repeats must be non-negative, got {repeats}")
    return _shape_ops.Repeat.apply(input, repeats)
