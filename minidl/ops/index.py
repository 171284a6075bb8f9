r"""Ops that pick entries along one axis by an integer index tensor: index_select, gather,
scatter, scatter_add. ``sort`` and ``topk`` find their indices without autograd and take their
values with :class:`Gather`, so they need no backward of their own.

Written for axis 1 of a 3-d tensor (every other axis is alike); ``index`` is an int64/int32 array:

    index_select  y[i, j, k] = x[i, index[j], k]            (index 1-d)
                  dx = 0, then dx[i, index[j], k] += dy[i, j, k]
    gather        y[i, j, k] = x[i, index[i, j, k], k]      (y has index's shape)
                  dx = 0, then dx[i, index[i, j, k], k] += dy[i, j, k]
    scatter       y = x, then y[i, index[i, j, k], k] = src[i, j, k]
                  dx = dy with 0 where y was overwritten;  dsrc[i, j, k] = dy[i, index[i, j, k], k]
    scatter_add   y = x, then y[i, index[i, j, k], k] += src[i, j, k]
                  dx = dy;                                 dsrc[i, j, k] = dy[i, index[i, j, k], k]

The backward of index_select and gather ADDS (``add_at``) because an index may name one entry
several times: each use contributes its gradient. scatter's dsrc gathers dy at every index, also
for a src entry whose write lost to a later duplicate (PyTorch's rule). Derivations:
docs/gradients/gather_scatter.md, docs/gradients/sort_topk.md.

Arguments are checked by the callers (minidl/functional/indexing.py) before any work.
"""
from ..autograd import Function
from ..backend import add_at, array_module


def along_axis(index, axis):
    """The advanced index that reads ``x[..., index[...], ...]`` along ``axis``: ``index`` at
    ``axis`` and, at every other axis a, ``arange(index.shape[a])`` shaped to broadcast against it.
    ``x[along_axis(index, axis)]`` has index's shape (index may be smaller than x on the other
    axes, as PyTorch allows)."""
    xp = array_module(index)
    grid = []
    for a, n in enumerate(index.shape):
        if a == axis:
            grid.append(index)
        else:
            shape = [1] * index.ndim
            shape[a] = n
            grid.append(xp.arange(n).reshape(shape))  # (1, .., n, .., 1)
    return tuple(grid)


def _leading(src, shape):
    """The leading block of ``src`` with ``shape`` (src may be larger than index on every axis)."""
    return src[tuple(slice(0, n) for n in shape)]


class IndexSelect(Function):
    r"""y = x with the entries index[0], index[1], ... taken along ``axis`` (index 1-d).

    dL/dx = 0, then dL/dx[.., index[j], ..] += dy[.., j, ..]   (repeated indices add up)
    """

    def forward(self, x, index, axis):
        self.save(x_shape=x.shape, dtype=x.dtype, index=index, axis=axis)
        return array_module(x).take(x, index, axis=axis)

    def backward(self, dy):
        s = self.saved
        dx = array_module(dy).zeros(s.x_shape, dtype=s.dtype)
        add_at(dx, (slice(None),) * s.axis + (s.index,), dy)
        return dx, None, None


class Gather(Function):
    r"""y[i, j, k] = x[i, index[i, j, k], k] along ``axis`` (here 1); y has index's shape.

    dL/dx = 0, then dL/dx[i, index[i, j, k], k] += dy[i, j, k]   (repeated indices add up)
    """

    def forward(self, x, index, axis):
        self.save(x_shape=x.shape, dtype=x.dtype, index=index, axis=axis)
        return x[along_axis(index, axis)]

    def backward(self, dy):
        s = self.saved
        dx = array_module(dy).zeros(s.x_shape, dtype=s.dtype)
        add_at(dx, along_axis(s.index, s.axis), dy)
        return dx, None, None


class Scatter(Function):
    r"""y = x, then y[i, index[i, j, k], k] = src[i, j, k] along ``axis`` (here 1).

    ``src`` is an array (at least index's shape; its leading block is used) or a Python number.
    With repeated indices one write wins (the last one here; PyTorch leaves it unspecified).

    dL/dx = dy with 0 at every written entry (their old values no longer matter)
    dL/dsrc[i, j, k] = dy[i, index[i, j, k], k], 0 outside the leading block
    """

    def forward(self, x, index, src, axis):
        self.save(index=index, axis=axis, src_shape=getattr(src, "shape", None))
        y = x.copy()
        y[along_axis(index, axis)] = _leading(src, index.shape) if hasattr(src, "shape") else src
        return y

    def backward(self, dy):
        s = self.saved
        grid = along_axis(s.index, s.axis)
        dx = dsrc = None
        if self.needs_input_grad[0]:
            dx = dy.copy()
            dx[grid] = 0
        if self.needs_input_grad[2]:
            dsrc = _gather_into(dy, grid, s.src_shape)
        return dx, None, dsrc, None


class ScatterAdd(Function):
    r"""y = x, then y[i, index[i, j, k], k] += src[i, j, k] along ``axis`` (here 1).

    Repeated indices add up (``add_at``).
    dL/dx = dy;   dL/dsrc[i, j, k] = dy[i, index[i, j, k], k], 0 outside the leading block
    """

    def forward(self, x, index, src, axis):
        self.save(index=index, axis=axis, src_shape=src.shape)
        y = x.copy()
        add_at(y, along_axis(index, axis), _leading(src, index.shape))
        return y

    def backward(self, dy):
        s = self.saved
        dsrc = None
        if self.needs_input_grad[2]:
            dsrc = _gather_into(dy, along_axis(s.index, s.axis), s.src_shape)
        return dy, None, dsrc, None


def _gather_into(dy, grid, src_shape):
    """dL/dsrc: dy read at the scattered places, in src's shape (zeros outside index's block)."""
    picked = dy[grid]  # (index's shape)
    if tuple(src_shape) == picked.shape:
        return picked
    dsrc = array_module(dy).zeros(src_shape, dtype=dy.dtype)
    dsrc[tuple(slice(0, n) for n in picked.shape)] = picked
    return dsrc


def sort_indices(x, axis, descending):
    """The indices that sort ``x`` along ``axis``, stably: equal values keep their order, in
    both directions (PyTorch's ``stable=True``); NaN counts as the largest value, as in PyTorch.

    Descending and stable: sort the reversed array ascending (equal values then come in
    decreasing position), reverse the result (increasing position, values descending) and
    map each position j of the reversed array back to n - 1 - j.
    """
    xp = array_module(x)
    if not descending:
        return xp.argsort(x, axis=axis, kind="stable")
    n = x.shape[axis]
    order = xp.argsort(xp.flip(x, axis=axis), axis=axis, kind="stable")
    return (n - 1) - xp.flip(order, axis=axis)
