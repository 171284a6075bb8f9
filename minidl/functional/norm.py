"""F.batch_norm: per-channel normalisation with batch or running statistics."""
import math

from ..ops import norm
from ._checks import check_tensor as _check_tensor


def _check_channel_vector(name, value, C, input_shape):
    """``value`` must be a Tensor of shape (C,) (running stats, weight, bias)."""
    _check_tensor("batch_norm", name, value)
    if tuple(value.shape) != (C,):
        raise ValueError(
            f"batch_norm: {name} has shape {tuple(value.shape)} but input has {C} channels "
            f"(input shape {tuple(input_shape)}); expected shape ({C},)"
        )


def batch_norm(input, running_mean, running_var, weight=None, bias=None,  # noqa: A002
               training=False, momentum=0.1, eps=1e-5):
    r"""Normalise every channel of ``input`` (N, C, *) to zero mean and unit variance, then
    scale by ``weight`` and shift by ``bias`` (both (C,), optional).

    ``training=True``: use the statistics of this batch (over every axis but C) and, when
    ``running_mean``/``running_var`` are given, update them IN PLACE:
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var  + momentum * unbiased_var
    ``training=False``: use ``running_mean``/``running_var`` (required).
    The running statistics are state, not part of the graph. See ``minidl.ops.norm``.
    """
    _check_tensor("batch_norm", "input", input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must be at least 2-D (N, C, *), got shape {tuple(input.shape)}")
    C = input.shape[1]
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: running_mean and running_var must either both be None or neither be None")
    if running_mean is None and not training:
        raise ValueError("batch_norm: running_mean and running_var must be given when training=False "
                         "(evaluation normalises with the running statistics)")
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None:
            _check_channel_vector(name, value, C, input.shape)
    values_per_channel = math.prod(input.shape) // C if C else 0  # N * prod(*)
    if training and values_per_channel == 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input size {tuple(input.shape)}")
    if training and eps <= 0:
        raise ValueError(f"batch_norm: eps must be positive during training, got {eps}")
    if eps < 0:
        raise ValueError(f"batch_norm: eps must be non-negative, got {eps}")
    # The running statistics are tensors that need no gradient: the op updates their arrays in
    # place when training, and in evaluation it saves running_var, version-checked like any input.
    y = norm.BatchNorm.apply(input, weight, bias, running_mean, running_var, bool(training), momentum, eps)
    if training and running_mean is not None:  # they were changed in place: new versions
        running_mean._version_counter.bump()
        running_var._version_counter.bump()
    return y
