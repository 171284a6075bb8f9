"""F.conv2d and F.conv_transpose2d: argument checks and normalisation, then ``minidl.ops.conv``.

Every problem is reported before any work, naming the function, the argument and the
shapes involved. The math, its gradient and the memory policy live in
:mod:`minidl.ops.conv`; the derivations in docs/gradients/conv2d.md and conv_transpose2d.md.
"""
from .. import dtypes
from ..backend import kernels_for
from ..ops import conv
from ..ops.conv_algorithms import choose_conv2d
from ._checks import check_ndim as _check_ndim
from ._checks import check_tensor as _check_tensor
from ._checks import pair as _pair

__all__ = ["conv2d", "conv_transpose2d"]


def _positive_pair(op, name, value):
    """stride / dilation: an int or a pair of ints, all > 0."""
    values = _pair(op, name, value)
    if min(values) <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {values}")
    return values


def _non_negative_pair(op, name, value):
    """padding / output_padding given as numbers: an int or a pair of ints, all >= 0."""
    values = _pair(op, name, value)
    if min(values) < 0:
        raise ValueError(f"{op}: {name} must be non-negative, got {values}")
    return values


def _check_common(op, input, weight, bias, groups):
    """Checks shared by conv2d and conv_transpose2d; returns (batched input, was_unbatched)."""
    _check_tensor(op, "input", input)
    _check_tensor(op, "weight", weight)
    _check_ndim(op, "input", input, (3, 4))
    if weight.ndim != 4:
        layout = "(in_channels, out_channels/groups, kH, kW)" if "transpose" in op \
            else "(out_channels, in_channels/groups, kH, kW)"
        raise ValueError(f"{op}: weight must be 4-D {layout}, got shape {tuple(weight.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    for name, value in (("input", input), ("weight", weight), ("bias", bias)):
        if value is None:
            continue
        _check_tensor(op, name, value)
        if value.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be a floating-point tensor, got dtype {value.dtype}")
        if value.dtype not in (dtypes.float32, dtypes.float64):
            raise TypeError(f"{op}: {name} has dtype {value.dtype}; the convolution kernels take float32 "
                            "and float64 (convert with .float())")
    if 0 in weight.shape:
        raise ValueError(f"{op}: weight must have at least one output and one input channel and a "
                         f"non-empty kernel, got shape {tuple(weight.shape)}")
    # no type promotion here (PyTorch's messages): float32 input with float64 weight is an error
    if weight.dtype != input.dtype:
        raise RuntimeError(f"{op}: expected scalar type {dtypes.torch_name(input.dtype)} but found "
                           f"{dtypes.torch_name(weight.dtype)} (input is {input.dtype}, weight is "
                           f"{weight.dtype}; convert one of them with .float() or .double())")
    if bias is not None and bias.dtype != input.dtype:
        raise RuntimeError(f"{op}: Input type ({dtypes.c_name(input.dtype)}) and bias type "
                           f"({dtypes.c_name(bias.dtype)}) should be the same")


def _check_bias(op, bias, F, weight):
    if bias is not None and tuple(bias.shape) != (F,):
        raise ValueError(f"{op}: bias must have shape ({F},) (one value per output channel of weight "
                         f"{tuple(weight.shape)}), got shape {tuple(bias.shape)}")


def _same_padding(kernel, dilation):
    """padding='same': total D*(K-1) per axis, split as PyTorch does (the odd one bottom/right)."""
    pads = []
    for K, D in zip(kernel, dilation):
        total = D * (K - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    r"""2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    input (N, C, H, W) or unbatched (C, H, W)   weight (F, C/groups, KH, KW)   bias (F,) or None
    -> (N, F, OH, OW),   OH = (H + 2P - D(KH-1) - 1)//S + 1   (the same for W)

        y[n,f,i,j] = bias[f] + sum_{c,p,q} weight[f,c,p,q] * xpad[n, c, S*i + D*p, S*j + D*q]

    stride, dilation: int or (h, w) pair, positive. padding: int or (h, w) pair of zeros
    added on both sides, or ``'valid'`` (no padding) or ``'same'`` (output size = input size;
    stride 1 only; total padding D*(K-1) per axis, the odd one at the bottom/right, as
    PyTorch). groups: split channels into independent groups (C and F divisible by it).
    See :class:`minidl.ops.conv.Conv2d` for the matrix form and the gradients; the route that
    computes it (im2col or a faster one) is chosen by minidl/ops/conv_algorithms.py.
    """
    op = "conv2d"
    _check_common(op, input, weight, bias, groups)
    stride = _positive_pair(op, "stride", stride)
    dilation = _positive_pair(op, "dilation", dilation)
    F, Cg, KH, KW = weight.shape
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                                 f"(stride={stride})")
            pads = _same_padding((KH, KW), dilation)
        else:
            raise ValueError(f"{op}: invalid padding string {padding!r}, expected 'same' or 'valid'")
    else:
        PH, PW = _non_negative_pair(op, "padding", padding)
        pads = ((PH, PH), (PW, PW))
    C, H, W = input.shape[-3:]
    if C % groups:
        raise ValueError(f"{op}: input has {C} channels, which groups={groups} does not divide "
                         f"(input shape {tuple(input.shape)})")
    if F % groups:
        raise ValueError(f"{op}: weight has {F} output channels, which groups={groups} does not "
                         f"divide (weight shape {tuple(weight.shape)})")
    if C != Cg * groups:
        raise ValueError(f"{op}: input has {C} channels but weight expects {Cg * groups} "
                         f"(weight shape {tuple(weight.shape)}, groups={groups})")
    _check_bias(op, bias, F, weight)
    padded = (H + sum(pads[0]), W + sum(pads[1]))
    dilated = (dilation[0] * (KH - 1) + 1, dilation[1] * (KW - 1) + 1)
    if dilated[0] > padded[0] or dilated[1] > padded[1]:
        raise ValueError(f"{op}: kernel size (dilated) {dilated} is larger than the padded input "
                         f"{padded} (input shape {tuple(input.shape)}, weight shape "
                         f"{tuple(weight.shape)}, padding {pads}, dilation {dilation})")
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    route = choose_conv2d(kernels_for(x._data), x.shape, weight.shape, stride, pads, dilation, groups)
    y = route.apply(x, weight, bias, stride, pads, dilation, groups)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,  # noqa: A002
                     groups=1, dilation=1):
    r"""Transposed 2-D convolution, as ``torch.nn.functional.conv_transpose2d``.

    input (N, C, H, W) or unbatched (C, H, W)   weight (C, F/groups, KH, KW)   bias (F,) or None
    -> (N, F, OH, OW),   OH = (H-1)*S - 2P + D(KH-1) + output_padding + 1   (the same for W)

    The gradient of conv2d with respect to its input, used as a layer: every input pixel
    adds ``x[n,c,i,j] * weight[c,:,:,:]`` to the output at (S*i - P, S*j - P). ``padding``
    removes P rows/columns from each border of that result; ``output_padding`` (smaller
    than stride or dilation) adds rows/columns at the bottom/right, choosing among the
    input sizes that a stride-S conv2d maps to the same H.
    See :class:`minidl.ops.conv.ConvTranspose2d`.
    """
    op = "conv_transpose2d"
    _check_common(op, input, weight, bias, groups)
    stride = _positive_pair(op, "stride", stride)
    dilation = _positive_pair(op, "dilation", dilation)
    padding = _non_negative_pair(op, "padding", padding)
    output_padding = _non_negative_pair(op, "output_padding", output_padding)
    C_w, Fg, KH, KW = weight.shape
    C, H, W = input.shape[-3:]
    if C_w % groups:
        raise ValueError(f"{op}: weight has {C_w} input channels, which groups={groups} does not "
                         f"divide (weight shape {tuple(weight.shape)})")
    if C != C_w:
        raise ValueError(f"{op}: input has {C} channels but weight expects {C_w} "
                         f"(weight shape {tuple(weight.shape)}, groups={groups})")
    F = Fg * groups
    _check_bias(op, bias, F, weight)
    (SH, SW), (DH, DW), (OPH, OPW) = stride, dilation, output_padding
    if not (OPH < SH or OPH < DH) or not (OPW < SW or OPW < DW):
        raise ValueError(
            f"{op}: output padding must be smaller than either stride or dilation, but got "
            f"output_padding_height: {OPH} output_padding_width: {OPW} stride_height: {SH} "
            f"stride_width: {SW} dilation_height: {DH} dilation_width: {DW}")
    OH = (H - 1) * SH - 2 * padding[0] + DH * (KH - 1) + OPH + 1
    OW = (W - 1) * SW - 2 * padding[1] + DW * (KW - 1) + OPW + 1
    if OH <= 0 or OW <= 0:
        raise ValueError(f"{op}: the output size ({OH}, {OW}) is not positive (input shape "
                         f"{tuple(input.shape)}, weight shape {tuple(weight.shape)}, stride {stride}, "
                         f"padding {padding}, dilation {dilation}, output_padding {output_padding})")
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    y = conv.ConvTranspose2d.apply(x, weight, bias, stride, padding, output_padding, groups, dilation)
    return y.squeeze(0) if unbatched else y
