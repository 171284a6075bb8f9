r"""Softmax and log-softmax along one axis.

Shapes: x (any shape), y the same. The softmax axis holds the C scores of one
distribution; for segmentation logits (N,C,H,W) it is axis 1, one softmax per
pixel (N*H*W distributions of C classes each).

Forward, for one slice x_1..x_C along the axis, with m = max_k x_k:
    softmax      y_c = exp(x_c - m) / sum_k exp(x_k - m)
    log_softmax  y_c = (x_c - m) - log sum_k exp(x_k - m)
Subtracting m changes nothing mathematically (exp(-m) cancels between the
numerator and the denominator) but makes every exp(.) <= 1 and the largest
exactly 1: no overflow for x = 1e4, and the log's argument is >= 1.

Backward (derived step by step in docs/gradients/softmax.md, log_softmax.md):
    softmax      dy_c/dx_k = y_c ([c == k] - y_k)             (the Jacobian)
                 dx_k = sum_c dy_c y_c ([c == k] - y_k) = y_k (dy_k - sum_c dy_c y_c)
    log_softmax  dy_c/dx_k = [c == k] - s_k,  s = softmax(x) = exp(y)
                 dx_k = dy_k - s_k sum_c dy_c
Neither builds the C x C Jacobian: one reduction along the axis suffices.
"""
from ..autograd import Function
from ..backend import array_module


def log_softmax_array(x, axis):
    """Stable log-softmax of a raw array along ``axis`` (also used by the losses)."""
    xp = array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)  # every entry <= 0, the largest == 0
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_array(x, axis):
    """Stable softmax of a raw array along ``axis``."""
    xp = array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))  # in (0, 1], the largest == 1
    return e / e.sum(axis=axis, keepdims=True)


def _axis(x, axis):
    """A 0-d tensor has no axis to reduce over: NumPy wants axis=None there."""
    return axis if x.ndim > 0 else None


class Softmax(Function):
    r"""y = softmax(x) along ``axis``.   dx = y * (dy - sum_axis(dy * y))."""

    def forward(self, x, axis):
        axis = _axis(x, axis)
        y = softmax_array(x, axis) if x.size else x.copy()  # an empty tensor stays empty
        self.save(y=y, axis=axis)
        return y

    def backward(self, dy):
        y, axis = self.saved.y, self.saved.axis
        return y * (dy - (dy * y).sum(axis=axis, keepdims=True)), None


class LogSoftmax(Function):
    r"""y = log_softmax(x) along ``axis``.   dx = dy - exp(y) * sum_axis(dy)."""

    def forward(self, x, axis):
        axis = _axis(x, axis)
        y = log_softmax_array(x, axis) if x.size else x.copy()
        self.save(y=y, axis=axis)
        return y

    def backward(self, dy):
        y, axis = self.saved.y, self.saved.axis
        return dy - array_module(y).exp(y) * dy.sum(axis=axis, keepdims=True), None
