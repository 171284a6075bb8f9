r"""Reductions over some axes: sum, mean, var, max/min.

A reduction maps x (shape S) to y (S with the reduced axes removed, or kept as
size 1 with keepdim=True). In the backward, ``dy`` is first given back the
reduced axes as size 1 (``_keep``) so that it broadcasts against x:

    sum:   y = sum_i x_i                 dL/dx_i = dy                    (copied to every i)
    mean:  y = (1/n) sum_i x_i           dL/dx_i = dy / n
    var:   y = sum_i (x_i - m)^2 / (n-c) dL/dx_i = dy * 2 (x_i - m) / (n-c)
           (the terms through m = mean(x) cancel because sum_i (x_i - m) = 0)
    max:   y = x_k for the maximising k  dL/dx_i = dy * [x_i == y] / (number of ties)

``axes`` is a tuple of non-negative axes, already checked by the caller.
"""
from ..autograd import Function
from ..backend import array_module


def _keep(dy, x_shape, axes, keepdim):
    """Reinsert the reduced axes of ``dy`` as size 1 so it broadcasts to ``x``."""
    if keepdim:
        return dy
    shape = [1 if i in axes else n for i, n in enumerate(x_shape)]
    return dy.reshape(shape)


class Sum(Function):
    def forward(self, x, axes, keepdim):
        self.save(x_shape=x.shape, axes=axes, keepdim=keepdim)
        return x.sum(axis=axes, keepdims=keepdim)

    def backward(self, dy):
        s = self.saved
        dy = _keep(dy, s.x_shape, s.axes, s.keepdim)
        return array_module(dy).broadcast_to(dy, s.x_shape), None, None


class Mean(Function):
    def forward(self, x, axes, keepdim):
        count = 1
        for a in axes:
            count *= x.shape[a]
        self.save(x_shape=x.shape, axes=axes, keepdim=keepdim, count=count)
        return x.mean(axis=axes, keepdims=keepdim)

    def backward(self, dy):
        s = self.saved
        dy = _keep(dy, s.x_shape, s.axes, s.keepdim) / s.count
        return array_module(dy).broadcast_to(dy, s.x_shape), None, None


class Var(Function):
    def forward(self, x, axes, correction, keepdim):
        count = 1
        for a in axes:
            count *= x.shape[a]
        centred = x - x.mean(axis=axes, keepdims=True)
        self.save(centred=centred, axes=axes, keepdim=keepdim, denom=count - correction)
        return (centred * centred).sum(axis=axes, keepdims=keepdim) / (count - correction)

    def backward(self, dy):
        s = self.saved
        dy = _keep(dy, s.centred.shape, s.axes, s.keepdim)
        return dy * (2 / s.denom) * s.centred, None, None, None


class AMax(Function):
    """Maximum over ``axes``; the gradient is shared evenly among tied maxima (as PyTorch's amax)."""

    largest = True

    def forward(self, x, axes, keepdim):
        y = x.max(axis=axes, keepdims=True) if self.largest else x.min(axis=axes, keepdims=True)
        self.save(x=x, y=y, axes=axes, keepdim=keepdim)
        return y if keepdim else y.reshape([n for i, n in enumerate(y.shape) if i not in axes])

    def backward(self, dy):
        s = self.saved
        winners = s.x == s.y  # (x.shape) True at every (tied) extreme
        count = winners.sum(axis=s.axes, keepdims=True)
        return _keep(dy, s.x.shape, s.axes, s.keepdim) * winners / count, None, None


class AMin(AMax):
    """Minimum over ``axes``; the gradient is shared evenly among tied minima."""

    largest = False


class TakeAlongDim(Function):
    r"""y = x[..., index, ...] along one axis: the values of ``max(dim)``/``min(dim)``.

    ``index`` has x's shape with size 1 on ``axis`` (the argmax of each row).
    Forward gathers one entry per row; backward scatters dy back to exactly that
    entry (PyTorch sends the whole gradient to the returned index).
    """

    def forward(self, x, index, axis, keepdim):
        xp = array_module(x)
        self.save(x_shape=x.shape, dtype=x.dtype, index=index, axis=axis)
        y = xp.take_along_axis(x, index, axis=axis)  # size 1 on axis
        return y if keepdim else y.squeeze(axis)

    def backward(self, dy):
        s = self.saved
        xp = array_module(dy)
        dx = xp.zeros(s.x_shape, dtype=s.dtype)
        xp.put_along_axis(dx, s.index, dy.reshape(s.index.shape), axis=s.axis)
        return dx, None, None, None
