"""F.softmax and F.log_softmax: a probability distribution along one dim.

For segmentation logits (N, C, H, W), ``dim=1`` is the pixel-wise softmax:
every pixel gets its own distribution over the C classes.
"""
import warnings

from .. import dtypes
from ..ops import softmax as _ops
from ..tensor import _normalize_dim
from ._checks import check_tensor


def _prepare(op, input, dim, dtype):  # noqa: A002
    check_tensor(op, "input", input)
    if dim is None:
        # PyTorch's deprecated guess, kept so that old programs run: dim 0 for 0-, 1- and 3-D
        # input, else dim 1. It depends on the rank and is a classic source of bugs, so it warns.
        dim = 0 if input.ndim in (0, 1, 3) else 1
        warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the call to "
                      f"include dim=X as an argument (minidl chose dim={dim} for input of shape "
                      f"{tuple(input.shape)}).", UserWarning, stacklevel=4)
    axis = _normalize_dim(dim, input.ndim, op)
    if dtype is not None:
        input = input.type(dtype)  # PyTorch casts before the op (the cast is differentiable)
    if not dtypes.is_floating(input.dtype):
        raise TypeError(f"{op}: input must be a floating-point tensor, got dtype {input.dtype} "
                        f"(shape {tuple(input.shape)}); convert it with .float() or pass dtype=")
    return input, axis


def softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002  (PyTorch's signature)
    r"""softmax(x)_c = exp(x_c) / sum_k exp(x_k) along ``dim`` (computed stably).

    Without ``dim``, PyTorch's deprecated guess (0 for 0-, 1-, 3-D input, else 1) with its
    warning; ``dtype``, if given, casts the input first. ``_stacklevel`` is accepted and ignored.
    """
    input, axis = _prepare("softmax", input, dim, dtype)
    return _ops.Softmax.apply(input, axis)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002
    r"""log(softmax(x)) along ``dim``, computed as (x - m) - log sum exp(x - m): never log(0)."""
    input, axis = _prepare("log_softmax", input, dim, dtype)
    return _ops.LogSoftmax.apply(input, axis)
