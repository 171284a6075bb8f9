"""F.batch_norm: per-channel normalisation with batch or running statistics."""
import math

from ..autograd import no_grad
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


# ----------------------------------------------------------------------------- layer, group, instance norm
def _shape_list(shape):
    return list(shape)  # PyTorch writes shapes as [2, 3] in these messages


def _affine(x_hat, weight, bias, shape):
    """weight * x_hat + bias, the (optional) vectors reshaped to ``shape`` to broadcast."""
    y = x_hat if weight is None else x_hat * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    r"""Normalise over the last ``len(normalized_shape)`` dimensions (which must equal
    ``normalized_shape``), one mean and variance per leading index, then ``weight * x_hat + bias``
    (both of shape ``normalized_shape``, optional). See ``minidl.ops.norm.Normalize``."""
    _check_tensor("layer_norm", "input", input)
    if isinstance(normalized_shape, int) or not isinstance(normalized_shape, (tuple, list)) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in normalized_shape):
        raise TypeError(f"layer_norm: argument 'normalized_shape' must be a tuple of ints, "
                        f"not {normalized_shape!r}")
    shape = tuple(normalized_shape)
    if not shape:
        raise RuntimeError("layer_norm: Expected normalized_shape to be at least 1-dimensional, i.e., containing "
                           "at least one element, but got normalized_shape = []")
    k = len(shape)
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise RuntimeError(f"layer_norm: Given normalized_shape={_shape_list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size{_shape_list(input.shape)}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            _check_tensor("layer_norm", name, value)
            if tuple(value.shape) != shape:
                raise RuntimeError(f"layer_norm: Expected {name} to be of same shape as normalized_shape, but got "
                                   f"{name} of shape {_shape_list(value.shape)} and normalized_shape = "
                                   f"{_shape_list(shape)}")
    axes = tuple(range(input.ndim - k, input.ndim))  # the last k axes
    x_hat = norm.Normalize.apply(input, axes, eps)
    return _affine(x_hat, weight, bias, shape)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):  # noqa: A002
    r"""Split the C channels of ``input`` (N, C, *) into ``num_groups`` groups of C/num_groups
    consecutive channels; normalise each (sample, group) over its channels and spatial positions,
    then ``weight * x_hat + bias`` per channel (both (C,), optional)."""
    _check_tensor("group_norm", "input", input)
    if isinstance(num_groups, bool) or not isinstance(num_groups, int):
        raise TypeError(f"group_norm: num_groups must be an int, got {num_groups!r}")
    if input.ndim < 2:
        raise RuntimeError(f"group_norm: Expected at least 2 dimensions for input tensor but received {input.ndim}")
    N, C = input.shape[:2]
    if num_groups <= 0 or C % num_groups != 0:
        raise RuntimeError(f"group_norm: Expected number of channels in input to be divisible by num_groups, but "
                           f"got input of shape {_shape_list(input.shape)} and num_groups={num_groups}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            _check_tensor("group_norm", name, value)
            if tuple(value.shape) != (C,):
                raise RuntimeError(f"group_norm: Expected {name} to be a vector of size equal to the number of "
                                   f"channels in input, but got {name} of shape {_shape_list(value.shape)} and "
                                   f"input of shape {_shape_list(input.shape)}")
    group_size = (C // num_groups) * math.prod(input.shape[2:])  # values per (n, g)
    grouped = input.reshape(N, num_groups, group_size)  # (N, G, C/G * prod(*))
    x_hat = norm.Normalize.apply(grouped, (2,), eps).reshape(input.shape)  # (N, C, *)
    return _affine(x_hat, weight, bias, norm.channel_shape(input.ndim, C))


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,  # noqa: A002
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    r"""Normalise every (sample, channel) of ``input`` (N, C, *) over its spatial positions, then
    ``weight * x_hat + bias`` per channel (both (C,), optional).

    ``use_input_stats=True``: the statistics of each instance; when ``running_mean``/``running_var``
    are given they are updated IN PLACE with the batch average of the instance statistics:
        running_mean = (1 - momentum) * running_mean + momentum * mean_n(mean[n, c])
        running_var  = (1 - momentum) * running_var  + momentum * mean_n(unbiased_var[n, c])
    ``use_input_stats=False``: normalise with ``running_mean``/``running_var`` (``batch_norm`` in
    evaluation mode).
    """
    _check_tensor("instance_norm", "input", input)
    if input.ndim < 2:
        raise ValueError(f"instance_norm: input must be at least 2-D (N, C, *), got shape {tuple(input.shape)}")
    C = input.shape[1]
    spatial = math.prod(input.shape[2:])
    if use_input_stats and spatial <= 1:
        raise ValueError(f"instance_norm: Expected more than 1 spatial element when training, got input size "
                         f"{tuple(input.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("instance_norm: running_mean and running_var must either both be None or neither be None")
    if not use_input_stats and running_mean is None:
        raise ValueError("instance_norm: running_mean and running_var must be given when use_input_stats=False")
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None:
            _check_tensor("instance_norm", name, value)
            if tuple(value.shape) != (C,):
                raise RuntimeError(f"instance_norm: {name} should contain {C} elements not {value.numel()} "
                                   f"(input shape {tuple(input.shape)})")
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    axes = tuple(range(2, input.ndim))  # the spatial axes
    x_hat = norm.Normalize.apply(input, axes, eps)
    if running_mean is not None and input.shape[0] > 0:
        with no_grad():
            x = input.detach()
            mean = x.mean(dim=axes)  # (N, C)
            var = x.var(dim=axes, correction=1)  # (N, C), unbiased as the running variance is
            running_mean.mul_(1 - momentum).add_(mean.mean(dim=0) * momentum)
            running_var.mul_(1 - momentum).add_(var.mean(dim=0) * momentum)
    return _affine(x_hat, weight, bias, norm.channel_shape(input.ndim, C))
