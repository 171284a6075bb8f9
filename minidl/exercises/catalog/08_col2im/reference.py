"""col2im: the adjoint of im2col (the reference solution)."""
import numpy as np


def col2im(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW):
    """cols (N, C*KH*KW, OH*OW) -> dx (N, C, H, W): fold every column back, ADDING overlaps."""
    N, C, H, W = x_shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    cols = cols.reshape(N, C, KH, KW, OH, OW)  # (N, C, KH, KW, OH, OW)
    dxpad = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=cols.dtype)
    for p in range(KH):
        for q in range(KW):
            rows = slice(DH * p, DH * p + SH * (OH - 1) + 1, SH)
            columns = slice(DW * q, DW * q + SW * (OW - 1) + 1, SW)
            dxpad[:, :, rows, columns] += cols[:, :, p, q]  # (N, C, OH, OW)
    return dxpad[:, :, PH:PH + H, PW:PW + W].copy()  # drop the padding
