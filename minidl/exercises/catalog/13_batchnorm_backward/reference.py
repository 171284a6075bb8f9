"""Batch norm in training mode: dx, dgamma, dbeta (the reference solution)."""
import numpy as np


def batchnorm_forward(x, gamma, beta, eps):
    """Given: x (N, C, H, W), gamma and beta (C,) -> y (N, C, H, W), statistics per channel over N, H, W."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1)
    var = x.var(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1), biased: divide by M = N*H*W
    xhat = (x - mean) / np.sqrt(var + eps)
    return gamma.reshape(1, -1, 1, 1) * xhat + beta.reshape(1, -1, 1, 1)


def batchnorm_backward(x, gamma, eps, dy):
    """x (N, C, H, W), gamma (C,), dy (N, C, H, W) -> dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    N, C, H, W = x.shape
    M = N * H * W  # the values of one channel
    axes = (0, 2, 3)  # every axis but C
    centred = x - x.mean(axis=axes, keepdims=True)  # (N, C, H, W)
    variance = (centred * centred).mean(axis=axes, keepdims=True)  # (1, C, 1, 1), biased
    inv_std = 1 / np.sqrt(variance + eps)  # (1, C, 1, 1)
    xhat = centred * inv_std  # (N, C, H, W)
    dbeta = dy.sum(axis=axes)  # (C,)
    dgamma = (dy * xhat).sum(axis=axes)  # (C,)
    sum_dy, sum_dy_xhat = dbeta.reshape(1, C, 1, 1), dgamma.reshape(1, C, 1, 1)  # (1, C, 1, 1) each
    dx = gamma.reshape(1, C, 1, 1) * inv_std / M * (M * dy - sum_dy - xhat * sum_dy_xhat)
    return dx, dgamma, dbeta
