"""Pooling layers: thin wrappers around ``minidl.functional.pool`` (no parameters).

Constructor arguments, attributes and ``repr`` follow PyTorch's ``torch.nn`` pooling layers.
"""

from ..functional import pool as F
from .module import Module

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d", "MaxUnpool2d"]


def _as_pair(value):
    """PyTorch's ``_pair``: an int becomes (int, int); a sequence becomes a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class MaxPool2d(Module):
    r"""Max over each KH x KW window: (N,C,H,W) or (C,H,W) -> (N,C,OH,OW) or (C,OH,OW).

    ``OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1`` (ceil with ``ceil_mode``); ``stride``
    defaults to ``kernel_size``. With ``return_indices=True`` the forward returns
    ``(output, indices)``, the flat indices that :class:`MaxUnpool2d` takes. The gradient goes to
    the one input that won each window (ties: the first in scan order, as PyTorch).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input):  # noqa: A002
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxUnpool2d(Module):
    r"""Partial inverse of :class:`MaxPool2d`: values back to their indices, zeros elsewhere.

    ``forward(input, indices, output_size=None)``: input and indices (N,C,H,W) or (C,H,W) ->
    (N,C,OH,OW) with default ``OH = (H - 1)*SH - 2*PH + KH``; pass ``output_size`` (for example
    the shape of the pooled tensor) when the pooling dropped rows or columns.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _as_pair(kernel_size)
        self.stride = _as_pair(stride if stride is not None else kernel_size)
        self.padding = _as_pair(padding)

    def forward(self, input, indices, output_size=None):  # noqa: A002
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    r"""Mean over each KH x KW window: (N,C,H,W) or (C,H,W) -> (N,C,OH,OW) or (C,OH,OW).

    The divisor at the border: cells inside the padded input (``count_include_pad=True``,
    the default), only cells inside the input (``False``), or ``divisor_override``.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):  # noqa: A002
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    r"""Mean over windows chosen so that the output is ``output_size`` (OH, OW).

    ``output_size``: an int (square) or a pair; a ``None`` entry keeps that input size.
    (N,C,H,W) or (C,H,W) -> (N,C,OH,OW) or (C,OH,OW). ``AdaptiveAvgPool2d(1)`` is global
    average pooling.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):  # noqa: A002
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
