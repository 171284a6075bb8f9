"""col2im: the adjoint of im2col (your solution)."""
import numpy as np


def col2im(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW):
    """cols (N, C*KH*KW, OH*OW) -> dx (N, C, H, W): fold every column back, ADDING overlaps."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
