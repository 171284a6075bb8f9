"""Loss functions (``F.cross_entropy``, ``F.binary_cross_entropy``, ...).

Each function checks its arguments (shapes, dtypes, class range, options) and
raises a clear error naming the function, the argument and the shapes before
any work; the math and the gradients live in ``minidl.ops.loss``.

Layouts are PyTorch's: scores (N, C) or (N, C, d1, ...) with the classes on
dim 1 (so (N, C, H, W) segmentation logits with (N, H, W) class-index targets
work directly), or an unbatched (C,) with a 0-d target.
``reduction='none'`` returns the per-element (per-pixel) loss, e.g. to multiply
it by a per-pixel weight map.
"""
import numbers
import warnings

import numpy as np

from .. import dtypes
from ..autograd import is_grad_enabled
from ..ops import loss as _ops
from ..backend import deferred_checks
from ..backend.devices import array_module, to_host
from ..tensor import Tensor
from ._checks import check_tensor

_REDUCTIONS = ("none", "mean", "sum")


# --- argument checks ---------------------------------------------------------------------------
def legacy_get_string(size_average, reduce):
    """PyTorch's deprecated ``size_average``/``reduce`` pair as a ``reduction`` string (with a warning)."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                  "instead.", UserWarning, stacklevel=3)
    return reduction


def _reduction(op, size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        reduction = legacy_get_string(size_average, reduce)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return reduction


def _shape(t):
    return tuple(t.shape)


def _check_float(op, name, value):
    if not dtypes.is_floating(value.dtype):
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got dtype {value.dtype} "
                        f"(shape {_shape(value)})")


def _check_constant(op, name, value):
    """weight / pos_weight are constants: PyTorch cannot differentiate the losses by them."""
    check_tensor(op, name, value)
    if value.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{op}: {name} is not differentiable and cannot require grad "
                           f"(pass {name}.detach())")


def _check_same_shape(op, input, target):  # noqa: A002
    if _shape(target) != _shape(input):
        raise ValueError(f"{op}: target shape {_shape(target)} must equal input shape {_shape(input)}")


def _check_broadcasts_to(op, name, value, shape):
    """``value`` must broadcast to ``shape`` without enlarging it (the loss keeps the input's shape)."""
    ok = value.ndim <= len(shape) and all(
        v in (1, n) for v, n in zip(reversed(value.shape), reversed(shape)))
    if not ok:
        raise ValueError(f"{op}: {name} of shape {_shape(value)} does not broadcast to the input "
                         f"shape {tuple(shape)}")


def _check_range(op, name, value, hint=""):
    """All entries in [0, 1] (NaN fails too)."""
    data = value._data
    if data.size and not ((data >= 0) & (data <= 1)).all():
        raise ValueError(f"{op}: all elements of {name} must be in [0, 1], got values in "
                         f"[{float(data.min())}, {float(data.max())}] (shape {_shape(value)}){hint}")


def _check_scores(op, input):  # noqa: A002
    check_tensor(op, "input", input)
    _check_float(op, "input", input)
    if input.ndim == 0:
        raise ValueError(f"{op}: input must be (C,), (N, C) or (N, C, d1, ...) with the classes on "
                         f"dim 1, got a 0-d tensor")


def _index_target_shape(input):  # noqa: A002
    """(N, d1, ...) for input (N, C, d1, ...); () for an unbatched (C,)."""
    return _shape(input)[:1] + _shape(input)[2:] if input.ndim > 1 else ()


def _check_class_weight(op, weight, input):  # noqa: A002
    if weight is None:
        return
    _check_constant(op, "weight", weight)
    num_classes = input.shape[1 if input.ndim > 1 else 0]
    if _shape(weight) != (num_classes,):
        raise ValueError(f"{op}: weight must have shape ({num_classes},), one weight per class, got "
                         f"shape {_shape(weight)} (input shape {_shape(input)})")


def _check_index_target(op, input, target, ignore_index):  # noqa: A002
    """Class indices: integer dtype, shape (N, d1, ...), values in [0, C) or ignore_index (None: no
    value is ignored). Returns the target to compute with: ``target`` itself, except on a device,
    whose value check is read at the next copy to the host (backend/deferred_checks.py): there the
    offending entries are replaced by class 0 so that the op can run until the error is raised."""
    expected = _index_target_shape(input)
    if _shape(target) != expected:
        raise ValueError(f"{op}: target shape {_shape(target)} does not match input shape "
                         f"{_shape(input)}: expected class indices of shape {expected}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: class-index target must have an integer dtype (int64), got "
                        f"{target.dtype} (target shape {_shape(target)})")
    if ignore_index is not None and (not isinstance(ignore_index, int) or isinstance(ignore_index, bool)):
        raise TypeError(f"{op}: ignore_index must be an int, got {ignore_index!r}")
    num_classes = input.shape[1 if input.ndim > 1 else 0]
    t = target._data
    bad = (t < 0) | (t >= num_classes)
    if ignore_index is not None:
        bad &= t != ignore_index

    def error():
        value = int(to_host(t)[to_host(bad)].ravel()[0])  # the first offending entry
        allowed = "" if ignore_index is None else f" or equal ignore_index={ignore_index}"
        hint = f"; classes must be in [0, {num_classes - 1}]{allowed}" if value < 0 else ""
        return IndexError(f"{op}: target contains class {value} but input has {num_classes} classes "
                          f"(input shape {_shape(input)}){hint}")

    deferred_checks.check(bad.any(), error)  # on a device: at the next copy to the host
    if array_module(t) is np:
        return target
    return Tensor(array_module(t).where(bad, 0, t))


# --- cross-entropy and NLL ---------------------------------------------------------------------
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,  # noqa: A002
                  reduce=None, reduction="mean", label_smoothing=0.0):
    r"""Cross-entropy between logits ``input`` and ``target``: log_softmax along dim 1, then NLL.

    Shapes: input (N, C), (N, C, d1, ...) or unbatched (C,) raw scores (logits);
            target either class indices, integer, shape (N,), (N, d1, ...) or (), with
            values in [0, C) or ``ignore_index``; or class probabilities, floating, the
            input's shape (chosen when the shapes are equal, as PyTorch).
            weight (C,) per-class weights. Output: (N, d1, ...) for 'none', else a scalar.
    Class indices:   loss_i = (1 - e) (-w_t logp[i,t]) + (e / C) (-sum_c w_c logp[i,c]),
                     e = label_smoothing; 'mean' divides by the sum of w_t over the
                     non-ignored elements (nan if all are ignored, as PyTorch).
    Probabilities:   loss_i = -sum_c w_c q[i,c] logp[i,c],  q = (1 - e) target + e / C;
                     'mean' divides by N*d1*...
    One fused op; its gradient is softmax minus the (smoothed, weighted) target
    (docs/gradients/cross_entropy.md). ``size_average``/``reduce`` are PyTorch's
    deprecated spelling of ``reduction``.
    """
    op = "cross_entropy"
    _check_scores(op, input)
    check_tensor(op, "target", target)
    reduction = _reduction(op, size_average, reduce, reduction)
    _check_class_weight(op, weight, input)
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    label_smoothing = float(label_smoothing)
    if _shape(target) == _shape(input):  # class probabilities
        if not dtypes.is_floating(target.dtype):
            raise TypeError(f"{op}: target of the input's shape {_shape(input)} holds class "
                            f"probabilities and must be floating point, got dtype {target.dtype}; "
                            f"class indices have shape {_index_target_shape(input)}")
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index={ignore_index} is not supported with class-"
                             f"probability targets (target shape {_shape(target)})")
        return _ops.CrossEntropyProbs.apply(input, target, weight, reduction, label_smoothing)
    expected = _index_target_shape(input)
    if _shape(target) != expected:
        raise ValueError(f"{op}: target shape {_shape(target)} does not match input shape "
                         f"{_shape(input)}: expected class indices of shape {expected} or class "
                         f"probabilities of shape {_shape(input)}")
    target = _check_index_target(op, input, target, ignore_index)
    return _ops.CrossEntropy.apply(input, target, weight, ignore_index, reduction, label_smoothing)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100,  # noqa: A002
             reduce=None, reduction="mean"):
    r"""Negative log-likelihood: loss_i = -weight[t] input[i, t] for log-probabilities ``input``.

    Shapes as :func:`cross_entropy` with class-index targets; ``input`` is usually
    ``log_softmax(logits, dim=1)`` (``cross_entropy`` fuses the two).
    'mean' divides by the sum of weight[t] over the non-ignored elements.
    """
    op = "nll_loss"
    _check_scores(op, input)
    check_tensor(op, "target", target)
    reduction = _reduction(op, size_average, reduce, reduction)
    _check_class_weight(op, weight, input)
    target = _check_index_target(op, input, target, ignore_index)
    return _ops.NLLLoss.apply(input, target, weight, ignore_index, reduction)


# --- binary losses -----------------------------------------------------------------------------
def _check_binary(op, input, target, weight, extra=None):  # noqa: A002
    check_tensor(op, "input", input)
    check_tensor(op, "target", target)
    _check_float(op, "input", input)
    _check_float(op, "target", target)
    _check_same_shape(op, input, target)
    for name, value in (("weight", weight), extra or (None, None)):
        if value is not None:
            _check_constant(op, name, value)
            _check_broadcasts_to(op, name, value, input.shape)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,  # noqa: A002
                         reduction="mean"):
    r"""-weight (t log x + (1 - t) log(1 - x)) for probabilities x = input in [0, 1].

    Shapes: input, target the same (any) shape; weight broadcasts to it.
    Each log is clamped at -100 (as PyTorch), so x = 0 or 1 gives a finite loss.
    For logits use :func:`binary_cross_entropy_with_logits` (stable, and faster).
    """
    op = "binary_cross_entropy"
    _check_binary(op, input, target, weight)
    reduction = _reduction(op, size_average, reduce, reduction)
    _check_range(op, "input", input, hint="; apply sigmoid first, or use "
                 "binary_cross_entropy_with_logits on the raw scores")
    _check_range(op, "target", target)
    return _ops.BinaryCrossEntropy.apply(input, target, weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,  # noqa: A002
                                     reduce=None, reduction="mean", pos_weight=None):
    r"""Binary cross-entropy of sigmoid(input) against target, computed stably from the logits.

    loss = weight ((1 - t) x + (1 + (pos_weight - 1) t) (log(1 + exp(-|x|)) + max(-x, 0)))
    Shapes: input, target the same (any) shape; weight and pos_weight broadcast to it
    (pos_weight of shape (C,) weights the positives of each class of an (N, C) input).
    """
    op = "binary_cross_entropy_with_logits"
    _check_binary(op, input, target, weight, ("pos_weight", pos_weight))
    reduction = _reduction(op, size_average, reduce, reduction)
    return _ops.BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight, reduction)


# --- regression and overlap losses -------------------------------------------------------------
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean",  # noqa: A002
             weight=None):
    r"""(input - target)^2, optionally times ``weight`` (same shape); weighted 'mean' divides by sum(weight).

    Unlike PyTorch (which warns and broadcasts), a target of another shape is an
    error: broadcasting (N, 1) against (N,) silently computes an (N, N) loss.
    """
    op = "mse_loss"
    check_tensor(op, "input", input)
    check_tensor(op, "target", target)
    _check_float(op, "input", input)
    _check_float(op, "target", target)
    _check_same_shape(op, input, target)
    reduction = _reduction(op, size_average, reduce, reduction)
    if weight is not None:
        check_tensor(op, "weight", weight)
        _check_float(op, "weight", weight)
        if _shape(weight) != _shape(input):
            raise ValueError(f"{op}: weight shape {_shape(weight)} must equal input shape {_shape(input)}")
    return _ops.MSELoss.apply(input, target, weight, reduction)


def dice_loss(input, target, smooth=1.0, reduction="mean"):  # noqa: A002
    r"""Soft Dice loss for segmentation: 1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth).

    Not in PyTorch; defined here as follows.
    Shapes: input p holds probabilities (after softmax over dim 1, or sigmoid):
              (N, C, H, W) (any (N, C, d1, ..., dk) with k >= 2), or (N, H, W) for a
              single (binary) class;
            target either the input's shape, floating (one-hot masks or probabilities),
              or class indices (N, H, W) / (N, d1, ...), integer, for an (N, C, ...) input.
    For every sample n and class c the sums run over the pixels:
            dice[n,c] = (2 sum_j p t + smooth) / (sum_j p + sum_j t + smooth)
    and the loss is 1 - dice[n,c]: 'none' returns it per (sample, class), shape (N, C)
    (or (N,) for (N, H, W) input); 'mean' gives 1 - mean dice; 'sum' sums over (n, c).
    ``smooth`` (>= 0) keeps an empty class (sum p = sum t = 0) at dice 1 instead of 0/0.
    Gradient: docs/gradients/dice_loss.md.
    """
    op = "dice_loss"
    check_tensor(op, "input", input)
    check_tensor(op, "target", target)
    _check_float(op, "input", input)
    reduction = _reduction(op, None, None, reduction)
    if isinstance(smooth, bool) or not isinstance(smooth, numbers.Real) or not smooth >= 0:
        raise ValueError(f"{op}: smooth must be a number >= 0, got {smooth!r}")
    shape = _shape(input)
    if _shape(target) == shape:
        if not dtypes.is_floating(target.dtype):
            raise TypeError(f"{op}: target of the input's shape {shape} must be floating point "
                            f"(one-hot masks or probabilities), got dtype {target.dtype}; use "
                            f"target.float(), or class indices of shape {shape[:1] + shape[2:]}")
        if input.ndim == 3:  # (N, H, W): one class per sample
            axes = (1, 2)
        elif input.ndim >= 4:  # (N, C, d1, ...)
            axes = tuple(range(2, input.ndim))
        else:
            raise ValueError(f"{op}: input must be (N, C, H, W) (or (N, C, d1, ..., dk)) or (N, H, W), "
                             f"got shape {shape}")
    elif input.ndim >= 3 and _shape(target) == shape[:1] + shape[2:]:
        target = _check_index_target(op, input, target, ignore_index=None)
        axes = tuple(range(2, input.ndim))
    else:
        raise ValueError(f"{op}: target shape {_shape(target)} does not match input shape {shape}: "
                         f"expected {shape} (masks or probabilities) or class indices of shape "
                         f"{shape[:1] + shape[2:]}")
    return _ops.DiceLoss.apply(input, target, axes, float(smooth), reduction)


__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "dice_loss",
           "mse_loss", "nll_loss"]
