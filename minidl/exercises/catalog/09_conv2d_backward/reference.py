"""conv2d backward: dx, dweight, dbias (the reference solution)."""
import numpy as np

from minidl.backend.reference import col2im, im2col  # given: im2col and col2im (exercise col2im)


def conv2d_backward(x, weight, dy, stride, padding, dilation, groups):
    """x (N, C, H, W), weight (F, C/G, KH, KW), dy (N, F, OH, OW) -> dx, dweight, dbias."""
    N, C, H, W = x.shape
    F, Cg, KH, KW = weight.shape
    (SH, SW), (PH, PW), (DH, DW), G = stride, padding, dilation, groups
    OH, OW = dy.shape[2:]
    cols = im2col(x, KH, KW, SH, SW, PH, PW, DH, DW)  # (N, C*KH*KW, OH*OW)
    cols = cols.reshape(N, G, Cg * KH * KW, OH * OW)  # (N, G, Kg, P): each group's taps
    dy_g = dy.reshape(N, G, F // G, OH * OW)  # (N, G, F/G, P)
    weight_g = weight.reshape(G, F // G, Cg * KH * KW)  # (G, F/G, Kg)
    dweight = (dy_g @ cols.swapaxes(-1, -2)).sum(axis=0)  # (G, F/G, Kg): a sum over the batch
    weight_t = np.ascontiguousarray(weight_g.swapaxes(-1, -2))  # (G, Kg, F/G): contiguous, so @ runs on BLAS
    dcols = weight_t @ dy_g  # (N, G, Kg, P)
    dx = col2im(dcols.reshape(N, C * KH * KW, OH * OW), x.shape, KH, KW, SH, SW, PH, PW, DH, DW)
    dbias = dy.sum(axis=(0, 2, 3))  # (F,)
    return dx, dweight.reshape(weight.shape), dbias
