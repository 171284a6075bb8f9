"""Pixel-wise softmax cross-entropy with class weights and ignore_index (the reference solution)."""
import numpy as np


def log_softmax(logits):
    """log softmax over the classes (axis 1) of logits (N, C, H, W)."""
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C, H, W): largest 0, exp cannot overflow
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits, target, weight, ignore_index):
    """logits (N, C, H, W), target (N, H, W) ints, weight (C,) -> the weighted mean loss (a 0-d array)."""
    valid = target != ignore_index  # (N, H, W)
    safe = np.where(valid, target, 0)  # (N, H, W): a class index everywhere
    logp = np.take_along_axis(log_softmax(logits), safe[:, None], axis=1)[:, 0]  # (N, H, W)
    w = weight[safe] * valid  # (N, H, W): the pixel's class weight, 0 where ignored
    return np.asarray(-(w * logp).sum() / w.sum())


def softmax_cross_entropy_backward(logits, target, weight, ignore_index, dloss):
    """-> dlogits (N, C, H, W), the gradient of dloss * softmax_cross_entropy(...)."""
    valid = target != ignore_index  # (N, H, W)
    safe = np.where(valid, target, 0)
    wb = weight[safe] * valid  # (N, H, W)
    p = np.exp(log_softmax(logits))  # (N, C, H, W): the softmax
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, safe[:, None], 1, axis=1)  # (N, C, H, W)
    return dloss * (p - onehot) * (wb / wb.sum())[:, None]
