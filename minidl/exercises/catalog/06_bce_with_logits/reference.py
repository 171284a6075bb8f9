"""Binary cross-entropy with logits, stable for any logit (the reference solution)."""
import numpy as np


def softplus(u):
    """log(1 + exp(u)) elementwise, for any u (+-1e3 too): nothing may overflow."""
    return np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))  # = log(1 + exp(u)); exp(-|u|) is in (0, 1]


def bce_with_logits(z, target, weight, pos_weight, reduction):
    """z, target (N, C); weight (N, 1); pos_weight (C,); reduction 'none' | 'sum' | 'mean'
    -> the loss: (N, C) for 'none', else a 0-d array."""
    # -log sigmoid(z) = softplus(-z),  -log(1 - sigmoid(z)) = softplus(z)
    loss = weight * (pos_weight * target * softplus(-z) + (1 - target) * softplus(z))  # (N, C)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum())
    return np.asarray(loss.sum() / loss.size)


def bce_with_logits_backward(z, target, weight, pos_weight, reduction, dy):
    """-> dz (N, C), the gradient of sum(dy * bce_with_logits(...)); dy is the loss's shape."""
    g = dy / z.size if reduction == "mean" else dy  # dL/dloss[n, c]: the mean divides by N*C
    s = np.exp(-softplus(-z))  # (N, C): sigmoid(z) = exp(log sigmoid(z)), never overflows
    # d softplus(-z)/dz = s - 1,  d softplus(z)/dz = s
    return g * weight * (pos_weight * target * (s - 1) + (1 - target) * s)
