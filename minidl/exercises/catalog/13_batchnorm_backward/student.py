"""Batch norm in training mode: dx, dgamma, dbeta (your solution)."""
import numpy as np


def batchnorm_forward(x, gamma, beta, eps):
    """Given: x (N, C, H, W), gamma and beta (C,) -> y (N, C, H, W), statistics per channel over N, H, W."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1)
    var = x.var(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1), biased: divide by M = N*H*W
    xhat = (x - mean) / np.sqrt(var + eps)
    return gamma.reshape(1, -1, 1, 1) * xhat + beta.reshape(1, -1, 1, 1)


def batchnorm_backward(x, gamma, eps, dy):
    """x (N, C, H, W), gamma (C,), dy (N, C, H, W) -> dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
