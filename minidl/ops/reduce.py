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


class Norm(Function):
    r"""The vector p-norm of x over ``axes`` (``Tensor.norm``, ``linalg.vector_norm``):

        y = (sum_i |x_i|^p)^(1/p)     p = 2 ('fro'): sqrt(sum x_i^2);  p = 1: sum |x_i|
        y = max_i |x_i|  (p = inf),   min_i |x_i|  (p = -inf),   #{i : x_i != 0}  (p = 0)

    Backward (docs/gradients/norm.md), with y kept at size 1 on the reduced axes:
        p = 2      dL/dx_i = dy * x_i / y
        p = 1      dL/dx_i = dy * sign(x_i)
        general p  dL/dx_i = dy * sign(x_i) |x_i|^(p-1) / y^(p-1)
        p = +-inf  dL/dx_i = dy * sign(x_i) * [|x_i| == y] / (number of such i)   (ties share)
        p = 0      dL/dx_i = 0   (a count is piecewise constant)
    Where y == 0 (so x == 0 on the slice) the gradient is 0, as PyTorch gives: the
    subgradient of the norm's kink at 0 closest to zero.
    """

    def forward(self, x, p, axes, keepdim):
        xp = array_module(x)
        a = xp.abs(x)
        if p == float("inf"):
            y = a.max(axis=axes, keepdims=True)
        elif p == float("-inf"):
            y = a.min(axis=axes, keepdims=True)
        elif p == 0:
            y = (a != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
        elif p == 1:
            y = a.sum(axis=axes, keepdims=True)
        elif p == 2:
            y = xp.sqrt((x * x).sum(axis=axes, keepdims=True))
        else:
            y = ((a ** p).sum(axis=axes, keepdims=True)) ** (1.0 / p)
        self.save(x=x, y=y, p=p, axes=axes)
        return y if keepdim else y.reshape([n for i, n in enumerate(y.shape) if i not in axes])

    def backward(self, dy):
        s = self.saved
        x, y, p = s.x, s.y, s.p
        xp = array_module(x)
        dy = dy.reshape(y.shape)  # size 1 on the reduced axes, whether or not keepdim
        if p == 0:
            return xp.zeros_like(x), None, None, None
        if p == 1:
            return xp.sign(x) * dy, None, None, None
        if p in (float("inf"), float("-inf")):
            a = xp.abs(x)
            winners = (a == y) | xp.isnan(a)  # (x.shape) every (tied) extreme
            return xp.sign(x) * winners * (dy / winners.sum(axis=s.axes, keepdims=True)), None, None, None
        scale = dy / xp.where(y == 0, 1, y) ** (p - 1)  # where y == 0, x == 0: the gradient is 0
        if p == 2:
            return x * scale, None, None, None
        a = xp.abs(x)
        safe = xp.where(a == 0, 1, a)
        return xp.where(a == 0, 0, xp.sign(x) * safe ** (p - 1)) * scale, None, None, None
