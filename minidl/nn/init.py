r"""Weight initialisation, with PyTorch's names, formulas and defaults.

Every function fills ``tensor`` IN PLACE, as ``tensor.copy_(values)`` under
``no_grad()`` (no graph is recorded; the tensor's version counter moves on), and
returns ``tensor``.  Random numbers come from
``minidl.random.generator()`` (or the ``generator`` argument), so
``minidl.manual_seed(s)`` makes initialisation reproducible.

Fans.  For a weight of shape ``(F, C)`` (Linear: out, in) or
``(F, C, KH, KW)`` (Conv2d), with receptive field ``R = KH*KW`` (1 for Linear):

    fan_in  = C * R      (inputs that feed one output)
    fan_out = F * R      (outputs that one input feeds)

Why the variances: an output ``y = sum_i w_i x_i`` over ``fan_in`` terms has
``Var(y) = fan_in * Var(w) * Var(x)`` for independent zero-mean terms, so
``Var(w) = 1/fan_in`` keeps the signal's scale from layer to layer.

    xavier (Glorot):  std = gain * sqrt(2 / (fan_in + fan_out))
    kaiming (He):     std = gain / sqrt(fan)          fan = fan_in or fan_out
    uniform versions: U(-bound, bound) with bound = sqrt(3) * std
                      (a U(-b, b) variable has variance b^2 / 3)
"""

import math
import warnings

import numpy as np

from .. import random as _random
from ..autograd import no_grad

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
]


def _rng(generator):
    return _random.generator(generator)  # the global one, or a minidl.Generator's


def _fill(tensor, values):
    """Write ``values`` into ``tensor`` in place (cast to its dtype); return tensor."""
    with no_grad():
        return tensor.copy_(values)


def calculate_gain(nonlinearity, param=None):
    r"""The recommended gain for a nonlinearity (PyTorch's table).

    ==================  =====================================
    linear / conv*      1
    sigmoid             1
    tanh                5/3
    relu                sqrt(2)
    leaky_relu          sqrt(2 / (1 + negative_slope^2))   param = negative_slope, default 0.01
    selu                3/4
    ==================  =====================================
    """
    linear_fns = [
        "linear", "conv1d", "conv2d", "conv3d",
        "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    ]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif (not isinstance(param, bool) and isinstance(param, int)) or isinstance(param, float):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with samples of U(a, b)."""
    return _fill(tensor, _rng(generator).uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with samples of N(mean, std^2)."""
    return _fill(tensor, _rng(generator).normal(mean, std, size=tensor.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    r"""Fill with samples of N(mean, std^2) restricted to ``[a, b]``.

    Rejection sampling: draw, then redraw the entries that fell outside
    ``[a, b]`` until none are left.  When ``[a, b]`` holds little of the
    normal's mass (< 30%), proposals come from U(a, b) instead and are kept
    with probability ``pdf(x) / max pdf on [a, b]``, as PyTorch does.
    """
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
            "The distribution of values may be incorrect.",
            stacklevel=2,
        )
    rng = _rng(generator)
    shape = tensor.shape

    def norm_cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    mass = norm_cdf((b - mean) / std) - norm_cdf((a - mean) / std)
    if mass > 0.3:
        def propose(n):
            return rng.normal(mean, std, size=n)

        def accept(x):
            return (x >= a) & (x <= b)
    else:
        peak = max(a, min(mean, b))  # where the normal pdf is largest on [a, b]

        def propose(n):
            return rng.uniform(a, b, size=n)

        def accept(x):
            log_ratio = -0.5 * ((x - mean) / std) ** 2 + 0.5 * ((peak - mean) / std) ** 2
            return np.log(rng.uniform(size=x.shape)) <= log_ratio

    values = propose(int(np.prod(shape)))
    pending = ~accept(values)
    while pending.any():
        redraw = propose(int(pending.sum()))
        values[pending] = redraw
        still = ~accept(redraw)
        pending[pending] = still
    return _fill(tensor, values.reshape(shape))


def constant_(tensor, val):
    """Fill with the value ``val``."""
    return _fill(tensor, val)


def ones_(tensor):
    """Fill with 1."""
    return _fill(tensor, 1.0)


def zeros_(tensor):
    """Fill with 0."""
    return _fill(tensor, 0.0)


def _calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out) = (C*R, F*R)`` for a weight of shape ``(F, C, *kernel)``.

    ``R = prod(kernel)`` is the receptive field (1 for a Linear weight).
    """
    if tensor.ndim < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
            f"(got shape {tuple(tensor.shape)})"
        )
    num_output_fmaps = tensor.shape[0]  # F
    num_input_fmaps = tensor.shape[1]  # C
    receptive_field_size = 1  # R = KH*KW (1 for a Linear weight)
    for s in tensor.shape[2:]:
        receptive_field_size *= s
    return num_input_fmaps * receptive_field_size, num_output_fmaps * receptive_field_size


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise ValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor, gain=1.0, generator=None):
    r"""Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).

    That is std = gain * sqrt(2 / (fan_in + fan_out)), the compromise between
    keeping the forward variance (1/fan_in) and the backward one (1/fan_out).
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    r"""Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    r"""He uniform: U(-b, b) with b = gain * sqrt(3 / fan), fan = fan_in or fan_out (``mode``).

    ``a`` is the negative slope of a following leaky ReLU (used only when
    ``nonlinearity='leaky_relu'``).  ``Linear`` and ``Conv2d`` call this with
    ``a=sqrt(5)``: gain = sqrt(2/6) = sqrt(1/3), so b = 1/sqrt(fan_in).
    """
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    r"""He normal: N(0, std^2) with std = gain / sqrt(fan), fan = fan_in or fan_out (``mode``)."""
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)
