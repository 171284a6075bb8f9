"""F.softmax and F.log_softmax: a probability distribution along one dim.

For segmentation logits (N, C, H, W), ``dim=1`` is the pixel-wise softmax:
every pixel gets its own distribution over the C classes.
"""
from .. import dtypes
from ..ops import softmax as _ops
from ..tensor import _normalize_dim
from ._checks import check_tensor


def _prepare(op, input, dim, dtype):  # noqa: A002
    check_tensor(op, "input", input)
    if dim is None:
        # PyTorch guesses a dim here (with a deprecation warning); the guess
        # depends on the number of dimensions and is a classic source of bugs.
        raise TypeError(f"{op}: dim is required (got None) for input of shape {tuple(input.shape)}; "
                        f"pass dim=1 for class scores (N, C) or (N, C, H, W), or dim=-1 for the last dim")
    axis = _normalize_dim(dim, input.ndim, op)
    if dtype is not None:
        input = input.type(dtype)  # PyTorch casts before the op (the cast is differentiable)
    if not dtypes.is_floating(input.dtype):
        raise TypeError(f"{op}: input must be a floating-point tensor, got dtype {input.dtype} "
                        f"(shape {tuple(input.shape)}); convert it with .float() or pass dtype=")
    return input, axis


def softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002  (PyTorch's signature)
    r"""softmax(x)_c = exp(x_c) / sum_k exp(x_k) along ``dim`` (computed stably).

    ``dim`` is required (PyTorch's implicit choice is deprecated); ``dtype``, if
    given, casts the input first. ``_stacklevel`` is accepted and ignored.
    """
    input, axis = _prepare("softmax", input, dim, dtype)
    return _ops.Softmax.apply(input, axis)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002
    r"""log(softmax(x)) along ``dim``, computed as (x - m) - log sum exp(x - m): never log(0)."""
    input, axis = _prepare("log_softmax", input, dim, dtype)
    return _ops.LogSoftmax.apply(input, axis)
