"""``Upsample`` (and its fixed-mode variants): a module around ``F.interpolate``."""

from ..functional.shape import interpolate
from .module import Module

__all__ = ["Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d"]


class Upsample(Module):
    r"""Resize (N, C, W) or (N, C, H, W) input by ``size`` or ``scale_factor``.

    Exactly one of ``size`` (int or tuple) and ``scale_factor`` (float or tuple) is
    given; the output size is ``size`` or ``floor(in * scale_factor)``. ``mode`` is
    ``'nearest'``, ``'nearest-exact'``, ``'linear'`` (3-D) or ``'bilinear'`` (4-D);
    ``align_corners`` is for the linear modes only. U-Net's bilinear decoder uses
    ``Upsample(scale_factor=2, mode='bilinear', align_corners=True)``.
    The index rules and the gradient are in ``minidl/ops/resize.py``.
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(factor) for factor in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                           recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self):
        if self.scale_factor is not None:
            info = "scale_factor=" + repr(self.scale_factor)
        else:
            info = "size=" + repr(self.size)
        return info + ", mode=" + repr(self.mode)


class UpsamplingNearest2d(Upsample):
    """``Upsample(size, scale_factor, mode='nearest')`` for 4-D input."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample(size, scale_factor, mode='bilinear', align_corners=True)`` for 4-D input."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
