r"""Shape planning for the segmentation models: which sizes fit, what comes out, where to crop.

Everything here is integer (and exact-fraction) arithmetic on ONE spatial dimension; the
models call it once for the height and once for the width. Nothing here touches tensors.

U-Net (``plan_unet``)
    A 3x3 convolution without padding removes one pixel on each side, so the two convolutions
    of one level shrink a size ``n`` to ``n - 4`` (``"valid"``; ``"same"`` keeps ``n``). A 2x2
    max-pool halves it and must see an EVEN size, else the last row would be silently dropped
    and the decoder could not line up with the encoder again. Up-sampling doubles. With the
    paper's depth 5 and a 572 input::

        572 -> 568 | 284 -> 280 | 140 -> 136 | 68 -> 64 | 32 -> 28         (contracting)
                                                         56 -> 52   crop 64 -> 56 at offset 4
                                             104 -> 100   crop 136 -> 104 at offset 16
                                 200 -> 196   crop 280 -> 200 at offset 40
                     392 -> 388   crop 568 -> 392 at offset 88                 (expanding)

    The crop offset of a level is ``(skip - up) // 2``, the top (and left) of the centre crop.

FCN (``CoordMap``)
    Pixel ``j`` of a feature map "sits" at image coordinate ``scale * j + offset``: the centre
    of its receptive field, in input pixels. Each layer changes the map in a fixed way
    (``CoordMap.through``); two maps with the same scale differ by a whole number of pixels,
    and that number is the crop offset that aligns them (``CoordMap.crop_offset``). The
    FCN docstring (``unet/fcn.py``) and ``docs/models.md`` work the numbers out.
"""
import numbers
from dataclasses import dataclass
from fractions import Fraction

import minidl.nn as nn
from minidl.functional import conv_output_size, conv_transpose_output_size

__all__ = [
    "CoordMap", "UNetLevel", "UNetPlan", "SizeError", "check_unet_config", "plan_unet",
    "unet_valid_input_size", "nearest_unet_input_sizes", "conv_output_size", "pool_output_size",
    "conv_transpose_output_size", "output_size_through",
]


class SizeError(ValueError):
    """An input size that a network cannot take (a ``ValueError`` with the reason)."""


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_positive_int(where, name, value):
    if not _is_int(value) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")


# ============================================================================ U-Net
@dataclass(frozen=True)
class UNetLevel:
    """One level of the U (level 1 is the top, full resolution), for one spatial dimension.

    ``skip``: size of the encoder's output at this level (the tensor copied across);
    ``up``: size of the decoder tensor after up-sampling into this level;
    ``crop_offset``: top (left) offset of the centre crop of ``skip`` down to ``up``
    (0 in "same" mode); ``out``: size after the decoder's two convolutions.
    """

    level: int
    skip: int
    up: int
    crop_offset: int
    out: int


@dataclass(frozen=True)
class UNetPlan:
    """Sizes through a U-Net for one spatial dimension. ``levels[0]`` is level 1 (the top)."""

    input_size: int
    depth: int
    padding: str
    levels: tuple
    bottleneck_in: int
    bottleneck_out: int
    output_size: int

    @property
    def crop_offsets(self):
        """Crop offset of each level, top level first."""
        return [lv.crop_offset for lv in self.levels]


def _shrink(padding):
    """How much one DoubleConv (two 3x3 convolutions) takes off a size."""
    return 4 if padding == "valid" else 0


def check_unet_config(depth, padding):
    """A clear error for a depth or padding that no U-Net has."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"UNet: depth must be an int >= 1 (the number of levels, 5 in the paper), "
                         f"got depth={depth!r}")
    if padding not in ("valid", "same"):
        raise ValueError(f"UNet: padding must be 'valid' (the paper) or 'same', got padding={padding!r}")


def _try_plan(n, depth, padding):
    """The plan for input size ``n``, or a string saying why ``n`` does not fit."""
    shrink = _shrink(padding)
    size, skips = n, []
    for level in range(1, depth):                      # contracting path
        size -= shrink
        if size < 1:
            return f"the feature map shrinks to {size} at level {level}"
        if size % 2:
            return f"max-pool {level} would see the odd size {size}"
        skips.append(size)
        size //= 2
    bottleneck_in = size
    size -= shrink
    if size < 1:
        return f"the feature map shrinks to {size} at the bottom level {depth}"
    bottleneck_out = size
    levels = []
    for level in range(depth - 1, 0, -1):              # expanding path, deepest first
        up = 2 * size
        skip = skips[level - 1]
        size = up - shrink
        if size < 1:
            return f"the feature map shrinks to {size} on the way up at level {level}"
        levels.append(UNetLevel(level, skip, up, (skip - up) // 2, size))
    return UNetPlan(n, depth, padding, tuple(reversed(levels)), bottleneck_in, bottleneck_out, size)


def _size_from_bottom(b, depth, padding):
    """The input size whose contracting path reaches the bottom level at size ``b``: every
    level above doubles it and adds what its convolutions take off,
    ``n = 2**(depth-1) * b + shrink * (2**(depth-1) - 1)``."""
    scale = 2 ** (depth - 1)
    return scale * b + _shrink(padding) * (scale - 1)


def unet_valid_input_size(min_size, depth, padding):
    """The smallest input size >= ``min_size`` that the U-Net takes (every max-pool sees an
    even size and no feature map shrinks to nothing).

    Only sizes ``_size_from_bottom(b)`` can pass every max-pool evenly, so the search steps
    through bottom sizes ``b`` (a few tries) rather than through every integer (2**(depth-1)
    of them between two valid sizes).
    """
    check_unet_config(depth, padding)
    _check_positive_int("UNet.valid_input_size", "min_size", min_size)
    scale = 2 ** (depth - 1)
    b = max(1, -(-(int(min_size) - _size_from_bottom(0, depth, padding)) // scale))  # ceil
    while isinstance(_try_plan(_size_from_bottom(b, depth, padding), depth, padding), str):
        b += 1        # too small for the expanding path; a larger bottom always fits
    return _size_from_bottom(b, depth, padding)


def nearest_unet_input_sizes(n, depth, padding):
    """The valid sizes just below (None if there is none) and just above ``n``."""
    above = unet_valid_input_size(max(n, 1), depth, padding)
    scale = 2 ** (depth - 1)
    b = (min(n, above) - 1 - _size_from_bottom(0, depth, padding)) // scale   # floor: below n
    while b >= 1 and isinstance(_try_plan(_size_from_bottom(b, depth, padding), depth, padding), str):
        b -= 1
    return (_size_from_bottom(b, depth, padding) if b >= 1 else None), above


def plan_unet(n, depth, padding, what="input size"):
    """Sizes through a U-Net of ``depth`` levels for an input of size ``n`` (one dimension).

    Raises :class:`SizeError` naming the problem and the nearest sizes that work.
    ``what`` names the dimension in the message ("input height", ...).
    """
    check_unet_config(depth, padding)
    if not _is_int(n):
        raise TypeError(f"UNet: {what} must be an int, got {n!r}")
    n = int(n)
    plan = _try_plan(n, depth, padding) if n >= 1 else "sizes must be positive"
    if not isinstance(plan, str):
        return plan
    below, above = nearest_unet_input_sizes(n, depth, padding)
    if below is None:
        nearest = f"it is too small: the smallest size it takes is {above}"
    else:
        nearest = f"the nearest sizes it takes are {below} and {above}"
    rule = (f"in 'same' mode the size must be divisible by 2**(depth-1) = {2 ** (depth - 1)}"
            if padding == "same" else
            "in 'valid' mode every max-pool must see an even size, and each level's two 3x3 "
            "convolutions take 4 pixels off")
    raise SizeError(f"UNet(depth={depth}, padding={padding!r}) cannot take an {what} of {n}: "
                    f"{plan} ({rule}); {nearest} (see UNet.valid_input_size)")


# ============================================================================ sizes of layers
def pool_output_size(n, kernel_size, stride, padding=0, dilation=1, ceil_mode=False):
    """MaxPool2d: as a convolution, rounding up with ``ceil_mode`` (PyTorch's and Caffe's rule:
    a window that would START in the right padding is dropped)."""
    return conv_output_size(n, kernel_size, stride, padding, dilation, ceil_mode)


# ============================================================================ layer geometry
_PASS_THROUGH = (nn.ReLU, nn.Dropout, nn.Dropout2d, nn.Identity, nn.BatchNorm2d)


def _square(module, name):
    """A square (isotropic) geometry value of ``module`` as one int."""
    value = getattr(module, name)
    if isinstance(value, str):
        raise ValueError(f"planner: {type(module).__name__}.{name}={value!r}; give the padding "
                         "as numbers to plan with it")
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if pair[0] != pair[1]:
        raise ValueError(f"planner: {type(module).__name__} has {name}={pair}; the planner handles "
                         "square kernels, strides and paddings only")
    return int(pair[0])


def _geometry(module):
    """``(kind, K, S, P, D)`` of a layer, ``None`` for a layer that keeps coordinates."""
    if isinstance(module, _PASS_THROUGH):
        return None
    if isinstance(module, nn.ConvTranspose2d):
        kind = "transposed"
    elif isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        kind = "window"
    else:
        raise TypeError(f"planner: no geometry rule for a {type(module).__name__} layer; "
                        "known: Conv2d, MaxPool2d, ConvTranspose2d, and layers that keep the "
                        "geometry (ReLU, Dropout, Dropout2d, Identity, BatchNorm2d)")
    dilation = _square(module, "dilation") if hasattr(module, "dilation") else 1
    return (kind, _square(module, "kernel_size"), _square(module, "stride"),
            _square(module, "padding"), dilation)


def _layers(modules):
    """The leaf layers of ``modules`` in forward order (Sequentials are opened)."""
    for module in modules:
        if isinstance(module, nn.Sequential):
            yield from _layers(module)
        else:
            yield module


def output_size_through(n, *modules):
    """Size of one spatial dimension after the chain ``modules`` (Sequentials are opened)."""
    for layer in _layers(modules):
        geo = _geometry(layer)
        if geo is None:
            continue
        kind, K, S, P, D = geo
        if kind == "transposed":
            n = conv_transpose_output_size(n, K, S, P, _square(layer, "output_padding"), D)
        elif isinstance(layer, nn.MaxPool2d):
            n = pool_output_size(n, K, S, P, D, layer.ceil_mode)
        else:
            n = conv_output_size(n, K, S, P, D)
    return n


@dataclass(frozen=True)
class CoordMap:
    r"""Pixel ``j`` of a feature map is centred on image coordinate ``scale * j + offset``.

    The input image is ``CoordMap(1, 0)``. Through a layer with kernel K, stride S, padding P
    (a convolution or a pooling), output pixel ``j`` covers input pixels ``S*j - P ...
    S*j - P + K - 1``, centred on ``S*j + c`` with ``c = (K-1)/2 - P``, so

        window:      (scale, offset) -> (scale * S,  offset + scale * c)
        transposed:  output o = S*i + c  <=>  i = (o - c) / S
                     (scale, offset) -> (scale / S,  offset - scale * c / S)
        crop by t:   (scale, offset) -> (scale,      offset + scale * t)

    (dilation D replaces K-1 by D(K-1)). Fractions keep the half pixels exact.
    """

    scale: Fraction = Fraction(1)
    offset: Fraction = Fraction(0)

    def through(self, *modules):
        """The map after the chain ``modules`` (layers or Sequentials, in forward order)."""
        scale, offset = Fraction(self.scale), Fraction(self.offset)
        for layer in _layers(modules):
            geo = _geometry(layer)
            if geo is None:
                continue
            kind, K, S, P, D = geo
            c = Fraction(D * (K - 1), 2) - P
            if kind == "window":
                scale, offset = scale * S, offset + scale * c
            else:
                scale, offset = scale / S, offset - scale * c / S
        return CoordMap(scale, offset)

    def crop_offset(self, reference):
        """The whole number of pixels ``t`` to cut from the start of THIS map's tensor so that
        its pixel ``t + j`` sits where ``reference``'s pixel ``j`` sits."""
        if self.scale != reference.scale:
            raise ValueError(f"planner: cannot align feature maps of different strides "
                             f"({self.scale} and {reference.scale} image pixels per pixel)")
        t = (reference.offset - self.offset) / self.scale
        if t.denominator != 1 or t < 0:
            raise ValueError(f"planner: the maps are {t} pixels apart; a crop needs a whole, "
                             f"non-negative number (maps {self} and {reference})")
        return int(t)
