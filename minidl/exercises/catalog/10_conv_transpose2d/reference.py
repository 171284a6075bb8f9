"""conv_transpose2d: conv2d's input gradient used as a layer, and its backward (the reference solution)."""
import numpy as np  # noqa: F401  (for your solution)

from minidl.backend.reference import col2im, im2col  # given: im2col and col2im (exercises im2col, col2im)


def conv_transpose2d(x, weight, stride, padding, output_padding, dilation, groups):
    """x (N, C, H, W), weight (C, F/G, KH, KW) -> y (N, F, OH, OW), OH = (H-1)*SH - 2*PH + DH*(KH-1) + OPH + 1."""
    N, C, H, W = x.shape
    _, Fg, KH, KW = weight.shape
    (SH, SW), (PH, PW), (OPH, OPW), (DH, DW), G = stride, padding, output_padding, dilation, groups
    F = Fg * G
    OH = (H - 1) * SH - 2 * PH + DH * (KH - 1) + OPH + 1
    OW = (W - 1) * SW - 2 * PW + DW * (KW - 1) + OPW + 1
    x_g = x.reshape(N, G, C // G, H * W)  # (N, G, C/G, L): X[n, g], one column per input pixel
    weight_g = weight.reshape(G, C // G, Fg * KH * KW)  # (G, C/G, Kt/G): Wt[g]
    weight_t = np.ascontiguousarray(weight_g.swapaxes(-1, -2))  # (G, Kt/G, C/G): contiguous, so @ runs on BLAS
    cols = weight_t @ x_g  # (N, G, Kt/G, L): column (i, j) = the stamp of pixel (i, j)
    y = col2im(cols.reshape(N, F * KH * KW, H * W), (N, F, OH, OW), KH, KW, SH, SW, PH, PW, DH, DW)
    return y


def conv_transpose2d_backward(x, weight, dy, stride, padding, output_padding, dilation, groups):
    """x (N, C, H, W), weight (C, F/G, KH, KW), dy (N, F, OH, OW) -> dx (N, C, H, W), dweight (C, F/G, KH, KW)."""
    N, C, H, W = x.shape
    _, Fg, KH, KW = weight.shape
    (SH, SW), (PH, PW), (DH, DW), G = stride, padding, dilation, groups
    dcols = im2col(dy, KH, KW, SH, SW, PH, PW, DH, DW)  # (N, Kt, L): the dy under each stamp
    dcols = dcols.reshape(N, G, Fg * KH * KW, H * W)  # (N, G, Kt/G, L)
    x_g = x.reshape(N, G, C // G, H * W)  # (N, G, C/G, L)
    weight_g = weight.reshape(G, C // G, Fg * KH * KW)  # (G, C/G, Kt/G)
    dx = (weight_g @ dcols).reshape(N, C, H, W)  # (N, G, C/G, L) -> (N, C, H, W): a conv2d of dy
    dweight = (x_g @ dcols.swapaxes(-1, -2)).sum(axis=0)  # (G, C/G, Kt/G): a sum over the batch
    return dx, dweight.reshape(weight.shape)
