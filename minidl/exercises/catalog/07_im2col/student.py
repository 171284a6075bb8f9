"""im2col: every convolution window as one column (your solution)."""
import numpy as np  # noqa: F401  (for your solution)


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW):
    """x (N, C, H, W) -> cols (N, C*KH*KW, OH*OW): rows are the taps (c, p, q), columns the windows (i, j)."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
