"""max_pool2d forward with argmax, and its backward (your solution)."""
import numpy as np


def maxpool2d_forward(x, KH, KW, SH, SW, PH, PW):
    """x (N, C, H, W) -> y (N, C, OH, OW) and argmax (N, C, OH, OW): the flat index h*W + w in x."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def maxpool2d_backward(dy, argmax, x_shape):
    """dy (N, C, OH, OW), argmax from the forward -> dx (N, C, H, W)."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
