r"""Joining tensors (cat, stack) and taking pieces out of one (split, chunk).

Derivations: docs/gradients/cat.md and docs/gradients/split.md.

cat and split are each other's adjoint:
    cat      forward: lay the inputs end to end along ``dim``     backward: cut dy into the same pieces
    narrow   forward: cut one piece out of x along ``dim``        backward: put dy back in its place, zeros elsewhere
``split``/``chunk`` return one :class:`Narrow` per piece, so each piece is its own
graph node; when several pieces of one tensor reach the loss, the engine adds
their (zero-padded) gradients, and together they tile dx exactly.
"""
import numpy as np

from ..autograd import Function
from ..backend import allocator, array_module


def promote_types(dtypes):
    """The dtype of ``cat``/``stack`` of tensors with these dtypes (PyTorch's rule).

    The highest category present wins (bool < integer < floating point) and,
    within it, the widest type: int64 with float32 gives float32 (NumPy would
    give float64), float32 with float64 gives float64, bool with int64 gives int64.
    """
    dtypes = [np.dtype(d) for d in dtypes]
    for kinds in ("f", "iu", "b"):
        of_kind = [d for d in dtypes if d.kind in kinds]
        if of_kind:
            return np.result_type(*of_kind)
    return np.result_type(*dtypes)


def _along(dim, index):
    """The index tuple that applies ``index`` to dimension ``dim``: a[_along(2, 5)] is a[:, :, 5]."""
    return (slice(None),) * dim + (index,)


class Cat(Function):
    r"""Concatenate along ``dim``: ``Cat.apply(dim, x_0, x_1, ..., x_{k-1})``.

    Shapes: x_t (..., n_t, ...) with n_t at position ``dim``, equal elsewhere;
            y (..., n_0 + ... + n_{k-1}, ...).    offset_t = n_0 + ... + n_{t-1}
    Forward:  y[..., offset_t + i, ...] = x_t[..., i, ...]          i = 0 .. n_t - 1
    Backward: every y entry is exactly one x entry (derivative 1), so
              dx_t = dy[..., offset_t : offset_t + n_t, ...]         (a slice of dy per input)
    ``dim`` is not differentiable: its gradient is None. Inputs of different dtypes
    are promoted first (:func:`promote_types`); the engine casts each slice back.
    """

    def forward(self, dim, *xs):
        dtype = promote_types([x.dtype for x in xs])
        sizes = [x.shape[dim] for x in xs]
        self.save(dim=dim, offsets=np.cumsum([0] + sizes).tolist())
        xp = array_module(xs[0])
        shape = xs[0].shape[:dim] + (sum(sizes),) + xs[0].shape[dim + 1:]
        y = allocator.empty(shape, dtype, xp)  # a cached buffer: fresh memory made cat 6-12x slower
        return xp.concatenate([x.astype(dtype, copy=False) for x in xs], axis=dim, out=y)

    def backward(self, dy):
        dim, offsets = self.saved.dim, self.saved.offsets
        pieces = tuple(dy[_along(dim, slice(offsets[t], offsets[t + 1]))] if need else None
                       for t, need in enumerate(self.needs_input_grad[1:]))
        return (None,) + pieces


class Stack(Function):
    r"""Stack equal-shaped tensors along a NEW dimension ``dim``: ``Stack.apply(dim, x_0, ..., x_{k-1})``.

    Shapes: x_t (A..., B...) all alike;  y (A..., k, B...) with k at position ``dim``.
    Forward:  y[a, t, b] = x_t[a, b]
    Backward: dx_t[a, b] = dy[a, t, b], i.e. dx_t = dy[..., t, ...] (index ``t`` along ``dim``).
    (stack = cat of the inputs each unsqueezed at ``dim``.)
    """

    def forward(self, dim, *xs):
        dtype = promote_types([x.dtype for x in xs])
        self.save(dim=dim)
        return array_module(xs[0]).stack([x.astype(dtype, copy=False) for x in xs], axis=dim)

    def backward(self, dy):
        dim = self.saved.dim
        return (None,) + tuple(dy[_along(dim, t)] if need else None
                               for t, need in enumerate(self.needs_input_grad[1:]))


class Narrow(Function):
    r"""One piece of x along ``dim``: y = x[..., start : start + length, ...].

    Shapes: x (..., n, ...)   y (..., length, ...)   (n, length at position ``dim``)
    Forward:  y[..., i, ...] = x[..., start + i, ...]
    Backward: dx[..., start + i, ...] = dy[..., i, ...], and dx = 0 outside the piece
              (those entries of x did not reach y).
    """

    def forward(self, x, dim, start, length):
        self.save(x_shape=x.shape, dim=dim, start=start)
        return x[_along(dim, slice(start, start + length))]

    def backward(self, dy):
        s = self.saved
        dx = array_module(dy).zeros(s.x_shape, dtype=dy.dtype)
        dx[_along(s.dim, slice(s.start, s.start + dy.shape[s.dim]))] = dy
        return dx, None, None, None
