"""Padding layers for 4-D (N, C, H, W) or 3-D (C, H, W) input: thin wrappers around ``F.pad``.

``padding`` is an int (the same on all four sides) or ``(left, right, top, bottom)``, PyTorch's
order (last dimension first). The modes, their gradients and their errors are ``F.pad``'s
(minidl/functional/shape.py, minidl/ops/pad.py, docs/gradients/pad.md).
"""
import numbers

from .. import functional as F
from .module import Module

__all__ = ["ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "ZeroPad2d"]


def _quadruple(name, padding):
    """An int or 4 ints as the tuple (left, right, top, bottom)."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        return (int(padding),) * 4
    if (isinstance(padding, (tuple, list)) and len(padding) == 4
            and all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in padding)):
        return tuple(int(p) for p in padding)
    raise ValueError(f"{name}: padding must be an int or a tuple of 4 ints (left, right, top, bottom), "
                     f"got {padding!r}")


class _Pad2d(Module):
    mode = None

    def __init__(self, padding):
        super().__init__()
        self.padding = _quadruple(type(self).__name__, padding)

    def forward(self, input):
        return F.pad(input, self.padding, self.mode)

    def extra_repr(self):
        return f"{self.padding}"


class ConstantPad2d(_Pad2d):
    """Pads the last two dimensions with ``value``; a negative padding crops."""

    mode = "constant"

    def __init__(self, padding, value):
        super().__init__(padding)
        self.value = value

    def forward(self, input):
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    """Pads the last two dimensions with zeros; a negative padding crops."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class ReflectionPad2d(_Pad2d):
    """Pads the last two dimensions with their mirror image, not repeating the edge
    (``x2 x1 | x0 x1 x2``); each padding must be smaller than the size of its dimension."""

    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pads the last two dimensions by repeating the edge (``x0 x0 | x0 x1 x2``)."""

    mode = "replicate"
