"""``Conv2d`` and ``ConvTranspose2d`` layers (PyTorch's names, arguments, defaults and init)."""

import math

from .. import dtypes
from ..creation import empty
from ..functional._checks import check_ndim, check_tensor
from ..functional.conv import conv2d, conv_transpose2d
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv2d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate")


def _pair(name, value):
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: argument checks, parameters, init, repr."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, transposed,
                 output_padding, groups, bias, padding_mode, device, dtype):
        super().__init__()
        name = type(self).__name__
        for what, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: {what} must be a positive int, got {value!r}")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups!r}")
        if in_channels % groups != 0:
            raise ValueError(f"{name}: in_channels={in_channels} must be divisible by groups={groups}")
        if out_channels % groups != 0:
            raise ValueError(f"{name}: out_channels={out_channels} must be divisible by groups={groups}")
        kernel_size = _pair(f"{name}: kernel_size", kernel_size)
        stride = _pair(f"{name}: stride", stride)
        dilation = _pair(f"{name}: dilation", dilation)
        if min(kernel_size) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
            raise ValueError(f"{name}: kernel_size, stride and dilation must be positive, got "
                             f"kernel_size={kernel_size}, stride={stride}, dilation={dilation}")
        if isinstance(padding, str):
            if transposed:
                raise ValueError(f"{name}: padding must be an int or a pair of ints, got {padding!r}")
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: invalid padding string {padding!r}, should be 'same' or 'valid'")
            if padding == "same" and stride != (1, 1):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions "
                                 f"(stride={stride})")
        else:
            padding = _pair(f"{name}: padding", padding)
            if min(padding) < 0:
                raise ValueError(f"{name}: padding must be non-negative, got {padding}")
        if padding_mode not in _PADDING_MODES:
            hint = " ('circular' is not implemented in minidl)" if padding_mode == "circular" else ""
            raise ValueError(f"{name}: padding_mode must be one of {list(_PADDING_MODES)}, but got "
                             f"padding_mode={padding_mode!r}{hint}")
        if transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {name}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = transposed
        self.output_padding = _pair(f"{name}: output_padding", output_padding)
        self.groups = groups
        self.padding_mode = padding_mode
        dtype = dtypes.default_float if dtype is None else dtypes.as_dtype(dtype)
        if transposed:  # (C, F/G, KH, KW): the layout of the conv2d whose adjoint this is
            shape = (in_channels, out_channels // groups, *kernel_size)
        else:  # (F, C/G, KH, KW)
            shape = (out_channels, in_channels // groups, *kernel_size)
        self.weight = Parameter(empty(shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty((out_channels,), dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        r"""PyTorch's default: weight, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

        fan_in = weight.shape[1] * KH * KW (C/G * KH*KW for Conv2d, F/G * KH*KW for
        ConvTranspose2d, exactly as PyTorch computes it from the weight's shape).
        kaiming_uniform_(a=sqrt(5)) has gain sqrt(2/(1+5)) and bound
        sqrt(3) * gain / sqrt(fan_in) = 1/sqrt(fan_in).
        """
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    r"""2-D convolution layer: ``y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)``.

    Shapes: input (N, C, H, W) or (C, H, W)   weight (F, C/groups, KH, KW)   bias (F,)
            output (N, F, OH, OW),  OH = (H + 2P - D(KH-1) - 1)//S + 1   (the same for W)
    ``padding``: int, (h, w), ``'valid'`` or ``'same'`` (stride 1). ``padding_mode``: how the
    border is filled: ``'zeros'`` (inside the conv), ``'reflect'`` or ``'replicate'`` (an
    explicit ``F.pad`` first, then a conv without padding, as PyTorch).
    Init (PyTorch's default): weight, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = C/groups * KH * KW.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False,
                         (0, 0), groups, bias, padding_mode, device, dtype)

    def _border(self):
        """F.pad's (left, right, top, bottom) for padding_mode != 'zeros' (PyTorch's split)."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            pads = []
            for K, D in zip(reversed(self.kernel_size), reversed(self.dilation)):  # W first, then H
                total = D * (K - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        PH, PW = self.padding
        return (PW, PW, PH, PH)

    def forward(self, input):  # noqa: A002  (PyTorch's argument name)
        if self.padding_mode != "zeros":
            from ..functional.shape import pad  # lazily: shape.py imports nothing from here

            padded = pad(input, self._border(), mode=self.padding_mode)
            return conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    r"""Transposed 2-D convolution layer (the gradient of Conv2d with respect to its input).

    Shapes: input (N, C, H, W) or (C, H, W)   weight (C, F/groups, KH, KW)   bias (F,)
            output (N, F, OH, OW),  OH = (H-1)*S - 2P + D(KH-1) + output_padding + 1
    ``forward(input, output_size=None)``: with a stride S > 1, S different sizes map to the
    same size under Conv2d; ``output_size`` (h, w), or the full (N, F, h, w) / (F, h, w),
    picks one, overriding ``output_padding`` with ``output_size - (minimum size)``.
    Init (PyTorch's default): weight, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = weight.shape[1] * KH * KW = F/groups * KH * KW.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True,
                         output_padding, groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input, output_size):
        """output_padding that gives ``output_size`` (PyTorch's rule), or self.output_padding."""
        if output_size is None:
            return self.output_padding
        check_tensor("ConvTranspose2d", "input", input)
        check_ndim("ConvTranspose2d", "input", input, (3, 4))
        output_size = tuple(int(v) for v in output_size)
        batch_dims = input.ndim - 2
        if len(output_size) == batch_dims + 2:
            output_size = output_size[batch_dims:]
        if len(output_size) != 2:
            raise ValueError(f"ConvTranspose2d: for {input.ndim}-D input, output_size must have 2 or "
                             f"{batch_dims + 2} elements (got {len(output_size)})")
        spatial = tuple(input.shape[-2:])
        min_sizes = tuple((n - 1) * S - 2 * P + D * (K - 1) + 1 for n, S, P, D, K in
                          zip(spatial, self.stride, self.padding, self.dilation, self.kernel_size))
        max_sizes = tuple(m + S - 1 for m, S in zip(min_sizes, self.stride))
        if any(not lo <= size <= hi for size, lo, hi in zip(output_size, min_sizes, max_sizes)):
            raise ValueError(f"ConvTranspose2d: requested an output size of {output_size}, but valid "
                             f"sizes range from {min_sizes} to {max_sizes} (for an input of size "
                             f"{spatial}, stride {self.stride})")
        return tuple(size - lo for size, lo in zip(output_size, min_sizes))

    def forward(self, input, output_size=None):  # noqa: A002  (PyTorch's argument name)
        output_padding = self._output_padding(input, output_size)
        return conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                self.groups, self.dilation)
