"""conv_transpose2d: conv2d's input gradient used as a layer, and its backward (your solution)."""
import numpy as np  # noqa: F401  (for your solution)

from minidl.backend.reference import col2im, im2col  # given: im2col and col2im (exercises im2col, col2im)


def conv_transpose2d(x, weight, stride, padding, output_padding, dilation, groups):
    """x (N, C, H, W), weight (C, F/G, KH, KW) -> y (N, F, OH, OW), OH = (H-1)*SH - 2*PH + DH*(KH-1) + OPH + 1."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def conv_transpose2d_backward(x, weight, dy, stride, padding, output_padding, dilation, groups):
    """x (N, C, H, W), weight (C, F/G, KH, KW), dy (N, F, OH, OW) -> dx (N, C, H, W), dweight (C, F/G, KH, KW)."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
