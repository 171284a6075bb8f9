"""im2col: every convolution window as one column (the reference solution)."""
import numpy as np


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW):
    """x (N, C, H, W) -> cols (N, C*KH*KW, OH*OW): rows are the taps (c, p, q), columns the windows (i, j)."""
    N, C, H, W = x.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))  # (N, C, H + 2*PH, W + 2*PW): zeros around
    cols = np.empty((N, C, KH, KW, OH, OW), dtype=x.dtype)
    for p in range(KH):
        for q in range(KW):
            rows = slice(DH * p, DH * p + SH * (OH - 1) + 1, SH)  # row of tap p in every window
            columns = slice(DW * q, DW * q + SW * (OW - 1) + 1, SW)
            cols[:, :, p, q] = xpad[:, :, rows, columns]  # (N, C, OH, OW)
    return cols.reshape(N, C * KH * KW, OH * OW)  # rows (c, p, q), q fastest; columns (i, j), j fastest
