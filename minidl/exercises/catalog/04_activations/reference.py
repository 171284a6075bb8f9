"""ReLU, sigmoid and tanh: forward and backward (the reference solution)."""
import numpy as np


def relu(x):
    return np.maximum(x, 0)  # (same shape as x)


def relu_backward(x, dy):
    return dy * (x > 0)  # the gradient passes where x > 0 (0 at x == 0, as PyTorch)


def sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows: exp of a value <= 0
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(y, dy):
    return dy * y * (1 - y)  # in terms of the output y = sigmoid(x)


def tanh_backward(y, dy):
    return dy * (1 - y * y)  # in terms of the output y = tanh(x)
