"""max_pool2d forward with argmax, and its backward (the reference solution)."""
import numpy as np


def maxpool2d_forward(x, KH, KW, SH, SW, PH, PW):
    """x (N, C, H, W) -> y (N, C, OH, OW) and argmax (N, C, OH, OW): the flat index h*W + w in x."""
    N, C, H, W = x.shape
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=-np.inf)
    windows = np.empty((N, C, OH, OW, KH * KW), dtype=x.dtype)  # tap p*KW + q of every window
    for p in range(KH):
        for q in range(KW):
            windows[..., p * KW + q] = xpad[:, :, p:p + SH * (OH - 1) + 1:SH, q:q + SW * (OW - 1) + 1:SW]
    k = windows.argmax(axis=-1)  # (N, C, OH, OW): the FIRST largest tap (ties: row-major order)
    y = np.take_along_axis(windows, k[..., None], axis=-1)[..., 0]  # (N, C, OH, OW)
    rows = SH * np.arange(OH)[:, None] + k // KW - PH  # (N, C, OH, OW): the row in x
    cols = SW * np.arange(OW) + k % KW - PW  # the column in x
    return y, rows * W + cols


def maxpool2d_backward(dy, argmax, x_shape):
    """dy (N, C, OH, OW), argmax from the forward -> dx (N, C, H, W)."""
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W), dtype=dy.dtype)
    plane = np.repeat(np.arange(N * C), argmax[0, 0].size)  # (N*C*OH*OW,): which (n, c)
    np.add.at(dx, (plane, argmax.reshape(-1)), dy.reshape(-1))  # +=: one pixel can be the max of several windows
    return dx.reshape(x_shape)
