r"""Ops that move entries around without changing their values.

Their gradients move dy back the same way:
    reshape   y = x viewed with a new shape          dx = dy reshaped to x's shape
    permute   y[i_p0, i_p1, ...] = x[i0, i1, ...]    dx = dy permuted by the inverse permutation
    expand    y = x broadcast to a larger shape      dx = dy summed over the broadcast axes
                                                     (done by the engine: ``sum_to_shape``)
    getitem   y = x[index]                           dx = zeros, then dx[index] += dy
              (+= because an integer-array index can pick the same entry twice)
    setitem   y = x, then y[index] = value           dx = dy with 0 at index; dvalue = dy[index]

Reshape, permute, expand and basic indexing are *view ops* (``is_view``): their output shares
the input's memory, as in NumPy and PyTorch, so an in-place change of one is seen by the other.
"""
import numpy as np

from ..autograd import Function
from ..backend import add_at, array_module


class Reshape(Function):
    is_view = True

    def forward(self, x, shape):
        self.save(x_shape=x.shape)
        return x.reshape(shape)

    def backward(self, dy):
        return dy.reshape(self.saved.x_shape), None


class Permute(Function):
    is_view = True

    def forward(self, x, dims):
        self.save(dims=dims)
        return x.transpose(dims)

    def backward(self, dy):
        dims = self.saved.dims
        inverse = [0] * len(dims)
        for i, d in enumerate(dims):
            inverse[d] = i  # output axis i came from input axis d
        return dy.transpose(inverse), None


class Expand(Function):
    is_view = True

    def forward(self, x, shape):
        return array_module(x).broadcast_to(x, shape)

    def backward(self, dy):
        return dy, None  # the engine sums dy down to x's shape


def is_basic_index(index):
    """True when ``index`` uses only ints, slices, None and Ellipsis (no arrays)."""
    items = index if isinstance(index, tuple) else (index,)
    return all((isinstance(i, (int, np.integer, slice)) and not isinstance(i, (bool, np.bool_)))
               or i is None or i is Ellipsis for i in items)


class GetItem(Function):
    is_view = True  # a view for slices, ints and None; an array index copies (so it is no view)

    def forward(self, x, index):
        self.save(x_shape=x.shape, dtype=x.dtype, index=index)
        y = x[index]
        if is_basic_index(index) and y.ndim == 0 and y.base is None:
            y = x[(index if isinstance(index, tuple) else (index,)) + (Ellipsis,)]  # x[0] as a 0-d view
        return y

    def backward(self, dy):
        s = self.saved
        dx = array_module(dy).zeros(s.x_shape, dtype=s.dtype)
        if is_basic_index(s.index):
            dx[s.index] = dy  # a basic index selects each entry at most once
        else:
            add_at(dx, s.index, dy)  # repeated integer indices must add up
        return dx, None


class SetItem(Function):
    r"""y = x with y[index] = value (the out-of-place half of ``x[index] = value``).

    dL/dx = dy, with 0 where index points (those entries were overwritten)
    dL/dvalue = dy[index]   (value was broadcast to x[index]'s shape: the engine sums it back)
    """

    def forward(self, x, value, index):
        self.save(index=index)
        y = x.copy()
        y[index] = value
        return y

    def backward(self, dy):
        index = self.saved.index
        dx = None
        if self.needs_input_grad[0]:
            dx = dy.copy()
            dx[index] = 0
        dvalue = dy[index] if self.needs_input_grad[1] else None
        return dx, dvalue, None


class Repeat(Function):
    r"""y = x tiled ``repeats[a]`` times along each axis a (``Tensor.repeat``); x first gets
    leading size-1 axes up to ``len(repeats)`` (its shape is then ``shape``).

    y[r0*n0 + i0, r1*n1 + i1, ...] = x[i0, i1, ...]   for every copy (r0, r1, ...), so
    dL/dx[i] = sum over the copies r of dy[r*n + i]: dy viewed as (r0, n0, r1, n1, ...),
    summed over the r axes.
    """

    def forward(self, x, repeats):
        shape = (1,) * (len(repeats) - x.ndim) + x.shape
        self.save(x_shape=x.shape, shape=shape, repeats=repeats)
        return array_module(x).tile(x.reshape(shape), repeats)

    def backward(self, dy):
        s = self.saved
        split = [n for pair in zip(s.repeats, s.shape) for n in pair]  # (r0, n0, r1, n1, ...)
        dx = dy.reshape(split).sum(axis=tuple(range(0, len(split), 2)))  # (n0, n1, ...)
        return dx.reshape(s.x_shape), None
