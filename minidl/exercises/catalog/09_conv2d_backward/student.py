"""conv2d backward: dx, dweight, dbias (your solution)."""
import numpy as np  # noqa: F401  (for your solution)

from minidl.backend.reference import col2im, im2col  # given: im2col and col2im (exercise col2im)


def conv2d_backward(x, weight, dy, stride, padding, dilation, groups):
    """x (N, C, H, W), weight (F, C/G, KH, KW), dy (N, F, OH, OW) -> dx, dweight, dbias."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
