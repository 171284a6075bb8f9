r"""The switch between the textbook convolution and the faster routes beside it.

``conv2d`` has one textbook route, im2col (minidl/ops/conv.py, derived in
docs/gradients/conv2d.md), and faster routes that compute the same numbers another way:

    rotated_kernel  dx of a stride-1 conv2d as a conv2d of dy with the kernel rotated (conv_rotated.py)
    shifted_rows    a stride-1 conv2d by products on shifted rows, no im2col (conv_shifted.py)
    winograd        a 3x3 stride-1 conv2d by Winograd's F(4x4, 3x3) (conv_winograd.py)
    depthwise       a conv2d with groups == in_channels, per channel, no im2col (conv_depthwise.py)
    direct          a stride-1 3x3 conv2d summed tap by tap, no columns, no product (conv_direct.py)

Which ones a kernel module offers, and from how many channels it takes each without being
asked, is its ``CONV_ALGORITHMS`` table (``{"shifted_rows": 16, "direct": (4, 128), ...}``: from 16
channels on; from 4 up to 127; None: offered but only when forced; what a route counts as its
channels: ``_channels`` in minidl/ops/conv_algorithms.py).
``minidl/ops/conv_algorithms.py`` chooses from it.

This switch overrides the choice, for teaching, tests and benchmarks:

    minidl.backend.conv_algorithm("im2col")          # from now on
    with minidl.backend.conv_algorithm("im2col"):    # inside the block only
        ...
    MINIDL_CONV_ALGORITHM=auto|im2col|rotated_kernel|shifted_rows|winograd|depthwise|direct   (read at import)

``auto`` (the default) lets each kernel module's table decide. A forced route that cannot take
a convolution (winograd for a 5x5 kernel, a route the backend lacks) runs it on im2col and says
so once with a warning; it never falls back silently to another fast route.
"""
import os

ALGORITHMS = ("auto", "im2col", "rotated_kernel", "shifted_rows", "winograd", "depthwise", "direct")


def _checked(name, who):
    if name not in ALGORITHMS:
        raise ValueError(f"{who}: unknown convolution algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
    return name


_current = _checked(os.environ.get("MINIDL_CONV_ALGORITHM") or "auto", "MINIDL_CONV_ALGORITHM")


def get_conv_algorithm():
    """The algorithm in force: ``"auto"`` or the name of the forced route."""
    return _current


class conv_algorithm:
    """Force a convolution algorithm: from now on, or, as a context manager, inside the block."""

    def __init__(self, name):
        global _current
        self.previous = _current
        _current = _checked(name, "conv_algorithm")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        global _current
        _current = self.previous
        return False
