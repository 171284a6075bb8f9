r"""Which route computes a conv2d: the one place that chooses.

The textbook route (:class:`~minidl.ops.conv.Conv2d`, im2col) takes every convolution. The
faster routes beside it take some, each deciding itself whether it can (its ``why_not``). The
kernel module of the input declares which routes it offers and from how many channels it takes
each without being asked (its ``CONV_ALGORITHMS`` table); ``minidl.backend.conv_algorithm``
forces one (minidl/backend/algorithms.py).

    auto     the first of depthwise, winograd, direct, shifted_rows, rotated_kernel that the table
             offers from the convolution's channel count, that can take it and for which the
             weight is not the large operand (more output positions N*OH*OW than WEIGHT_BOUND[route]
             per filter of a group, WEIGHT_BOUND_STRIDED[route] with stride > 1); else im2col
    forced   that route if the table offers it (at any channel count) and it can take the
             convolution; else im2col, with a warning the first time (never another fast route)
"""
import math
import warnings

from ..backend import algorithms
from .conv import Conv2d, Lowering
from .conv_depthwise import Conv2dDepthwise
from .conv_direct import Conv2dDirect
from .conv_rotated import Conv2dRotatedKernel
from .conv_shifted import Conv2dShiftedRows
from .conv_winograd import Conv2dWinograd

ROUTES = {"im2col": Conv2d, "rotated_kernel": Conv2dRotatedKernel, "shifted_rows": Conv2dShiftedRows,
          "winograd": Conv2dWinograd, "depthwise": Conv2dDepthwise,
          "direct": Conv2dDirect}
AUTO_ORDER = ("depthwise", "winograd", "direct", "shifted_rows", "rotated_kernel")  # the fastest first, where each applies
_warned = set()  # (route, reason) pairs already reported
# Auto skips a route when the output has at most this many positions N*OH*OW per filter of a
# group (measured on the Numba backend: docs/performance.md, "Small images, large weights"):
# every fast route but depthwise rearranges the whole weight (Winograd into 36 transformed
# matrices, the others shifted or rotated copies) at a cost that grows with the weight, not the
# image, while im2col only reads it in its one matrix product; the direct route only pads its
# filters to whole blocks, and beat im2col down to 32 positions for 64 filters.
WEIGHT_BOUND = {"winograd": 0.5, "direct": 0.125, "shifted_rows": 4, "rotated_kernel": 4}
# With stride > 1 (only the direct route takes it) the bound is higher: its dx is one product per
# phase of the stride, and its weight gradient's loops over a small image's pixels are short.
WEIGHT_BOUND_STRIDED = {"direct": 32}


def _channels(name, weight_shape, groups, stride=(1, 1)):
    """The channel count a route's threshold is compared with."""
    F, Cg = weight_shape[:2]
    if name == "winograd":
        # its products are as long as the input channels and as tall as the output ones: both must
        # be wide. Counted by their geometric mean (128 -> 64: 90), once both have 64 (512 -> 16: 16)
        narrow = min(F, Cg * groups)
        return math.isqrt(F * Cg * groups) if narrow >= 64 else narrow
    if name == "direct" and stride != (1, 1):
        # its band holds SH*SW phase planes of each channel (a 3-channel 7x7 stem: 12)
        return min(F // groups, Cg * stride[0] * stride[1])
    if name == "direct" and F // groups <= 3:
        return Cg  # a layer of 1-3 filters (a network's last 3x3): the direct kernels beat the others there too
    if name in ("shifted_rows", "direct"):
        return min(F // groups, Cg)  # per group, in and out: its products' inner dimensions
    return Cg * groups


def _takes(threshold, channels):
    """Whether a table entry takes a convolution of ``channels``: None never, n from n channels
    on, (n, m) from n up to m - 1."""
    if threshold is None:
        return False
    low, high = threshold if isinstance(threshold, tuple) else (threshold, None)
    return channels >= low and (high is None or channels < high)


def _weight_bound(name, x_shape, weight_shape, stride, padding, dilation, groups):
    """Whether the output has at most WEIGHT_BOUND[name] positions N*OH*OW per filter of a group
    (fc6 of FCN-8s: 2*5*5 = 50 positions, 1024 filters of 128x7x7)."""
    if name not in WEIGHT_BOUND:  # depthwise: one small filter per channel
        return False
    OH, OW = Lowering.of_conv2d(x_shape, weight_shape, stride, padding, dilation).out_size
    bound = WEIGHT_BOUND[name] if stride == (1, 1) else WEIGHT_BOUND_STRIDED.get(name, WEIGHT_BOUND[name])
    return x_shape[0] * OH * OW <= bound * (weight_shape[0] // groups)


def choose_conv2d(kern, x_shape, weight_shape, stride, padding, dilation, groups):
    """The Function class that computes conv2d(x, weight) on kernel module ``kern`` (see above)."""
    table = getattr(kern, "CONV_ALGORITHMS", {})
    geometry = (x_shape, weight_shape, stride, padding, dilation, groups)
    forced = algorithms.get_conv_algorithm()
    if forced == "im2col":
        return Conv2d
    if forced != "auto":
        route = ROUTES[forced]
        reason = (f"the {kern.__name__} kernels do not offer it" if forced not in table
                  else route.why_not(*geometry))
        if reason is None:
            return route
        if (forced, reason) not in _warned:
            _warned.add((forced, reason))
            warnings.warn(f"conv_algorithm({forced!r}) cannot take a conv2d of weight {tuple(weight_shape)}, "
                          f"stride {tuple(stride)}, dilation {tuple(dilation)}, groups {groups}: {reason}; "
                          "it runs on im2col (this warning is shown once)", RuntimeWarning, stacklevel=3)
        return Conv2d
    for name in AUTO_ORDER:
        if _takes(table.get(name), _channels(name, weight_shape, groups, stride)) \
                and ROUTES[name].why_not(*geometry) is None \
                and not _weight_bound(name, *geometry):
            return ROUTES[name]
    return Conv2d
