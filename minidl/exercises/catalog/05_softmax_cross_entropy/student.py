"""Pixel-wise softmax cross-entropy with class weights and ignore_index (your solution)."""
import numpy as np


def log_softmax(logits):
    """log softmax over the classes (axis 1) of logits (N, C, H, W)."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def softmax_cross_entropy(logits, target, weight, ignore_index):
    """logits (N, C, H, W), target (N, H, W) ints, weight (C,) -> the weighted mean loss (a 0-d array)."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def softmax_cross_entropy_backward(logits, target, weight, ignore_index, dloss):
    """-> dlogits (N, C, H, W), the gradient of dloss * softmax_cross_entropy(...)."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
