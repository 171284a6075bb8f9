r"""Gradient clipping, in place on ``p.grad``, as ``torch.nn.utils.clip_grad_norm_`` / ``_value_``.

Both run under ``no_grad`` with ordinary in-place tensor ops, so every gradient's version
counter moves as with any other in-place change, on whatever device the gradients live.
"""
import math

from ...autograd import no_grad
from ...creation import tensor
from ...functional.shape import stack
from ...tensor import Tensor


def _gradients(parameters, op):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    parameters = list(parameters)
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: parameters[{i}] must be a Tensor, got {type(p).__name__}")
    return [p.grad for p in parameters if p.grad is not None]


def _as_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    r"""The ``norm_type`` norm of all ``tensors`` together, as if concatenated into one vector::

        total = ||(||t_1||_p, ..., ||t_k||_p)||_p        (p = inf: max_i max |t_i|)

    A 0-d tensor (``tensor(0.)`` for no tensors). ``error_if_nonfinite`` raises if it is nan or
    inf. ``foreach`` is accepted and ignored (one code path). Usually given the ``.grad`` of
    the parameters (what :func:`clip_grad_norm_` does).
    """
    tensors = _as_list(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"get_total_norm: tensors[{i}] must be a Tensor, got {type(t).__name__}")
    norm_type = float(norm_type)
    if not tensors:
        return tensor(0.0)
    with no_grad():
        norms = stack([t.detach().norm(norm_type) for t in tensors])  # (k,) one norm per tensor
        total = norms.norm(norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`")
    return total


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    r"""Scale the gradients of ``parameters`` in place by ``min(max_norm / (total_norm + 1e-6), 1)``
    (``total_norm`` from :func:`get_total_norm`). Returns None."""
    grads = _gradients(parameters, "clip_grads_with_norm_")
    if not grads:
        return
    with no_grad():
        coef = (float(max_norm) / (total_norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.to(g.device, g.dtype))  # in place: the gradient's version moves


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    r"""Scale all gradients together so that their joint norm is at most ``max_norm``.

    With ``g`` the concatenation of every gradient (``norm_type`` p)::

        total = ||g||_p = || (||g_1||_p, ..., ||g_k||_p) ||_p     (p = inf: max_i |g_i|)
        coef  = min(max_norm / (total + 1e-6), 1)
        g_i  <- coef * g_i                                      (for every i, in place)

    Returns ``total``, the norm *before* clipping, as a 0-d tensor. ``error_if_nonfinite``
    raises if ``total`` is nan or inf instead of scaling by it. ``foreach`` is accepted and
    ignored (one code path). The two steps are :func:`get_total_norm` and
    :func:`clip_grads_with_norm_`, as in PyTorch.
    """
    parameters = _as_list(parameters)
    grads = _gradients(parameters, "clip_grad_norm_")
    max_norm = float(max_norm)
    if not grads:
        return tensor(0.0)
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total, foreach)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    r"""Clamp every gradient entry into ``[-clip_value, clip_value]``, in place."""
    grads = _gradients(parameters, "clip_grad_value_")
    clip_value = float(clip_value)
    with no_grad():
        for g in grads:
            g.clamp_(min=-clip_value, max=clip_value)
