r"""Padding and cropping: ops that add a border to the last dimensions or cut one off.

Derivations: docs/gradients/pad.md and docs/gradients/center_crop.md.

``pad`` lists the widths last dimension first, as PyTorch does:
``pad = (left, right, top, bottom, ...)`` pads the last dimension by
``left``/``right`` and the one before it by ``top``/``bottom``. Below, one
padded dimension of size ``n`` with widths ``before``/``after`` becomes
``m = before + n + after`` entries.

Constant padding and cropping are adjoint to each other:
    constant pad   forward: put x into a larger array of ``value``s    backward: crop dy
    crop           forward: cut the middle out of x                   backward: zero-pad dy
(a negative width crops, so one op does both, as in PyTorch).

Reflect, replicate and circular padding *copy* input entries into the border,
so every output entry j along a padded dimension is one input entry src[j]:
    y[..., j] = x[..., src[j]]
and the chain rule sends each dy[..., j] back to where it was copied from;
an input entry copied several times receives the SUM (see :class:`CopyPad`).
"""
import numpy as np

from ..autograd import Function
from ..backend import array_module


def source_index(mode, n, before, after):
    r"""src[j] for ``j = 0 .. before + n + after - 1``: which input entry output entry j copies.

    With ``u = j - before`` (the output position in input coordinates):
        reflect    mirror at the edges without repeating them: u < 0 -> -u,  u > n-1 -> 2(n-1) - u
                   (n = 4, before = after = 2:  x2 x1 | x0 x1 x2 x3 | x2 x1)
        replicate  clamp to the edges: min(max(u, 0), n-1)
                   (n = 4, before = after = 2:  x0 x0 | x0 x1 x2 x3 | x3 x3)
        circular   wrap around (n = 4, before = after = 2:  x2 x3 | x0 x1 x2 x3 | x0 x1)
    A negative width crops that side first. For reflect and replicate the
    formula above already does it; circular wraps around the cropped range
    [start, start + k) with start = max(-before, 0), k = n - max(-before, 0) - max(-after, 0)
    (PyTorch's behaviour for all three). Index arrays are built with NumPy on the
    host whatever the device of x: they are small and depend on shapes only.
    """
    u = np.arange(before + n + after) - before
    if mode == "reflect":
        u = np.abs(u)  # left edge: -u
        return np.where(u > n - 1, 2 * (n - 1) - u, u)  # right edge: 2(n-1) - u
    if mode == "replicate":
        return np.clip(u, 0, n - 1)
    if mode == "circular":
        start, k = max(-before, 0), n - max(-before, 0) - max(-after, 0)
        return start + (np.arange(before + n + after) - max(before, 0)) % k
    raise ValueError(f"pad: unknown copy mode {mode!r}")


def _crop_and_pad_widths(widths):
    """Split signed widths [(before, after), ...] into the crop part and the pad part (both >= 0)."""
    crop = [(max(-b, 0), max(-a, 0)) for b, a in widths]
    grow = [(max(b, 0), max(a, 0)) for b, a in widths]
    return crop, grow


def _cut(a, widths):
    """a with widths[i] = (before, after) entries removed from each end of the last len(widths) dims."""
    lead = (slice(None),) * (a.ndim - len(widths))
    return a[lead + tuple(slice(b, a.shape[a.ndim - len(widths) + i] - e) for i, (b, e) in enumerate(widths))]


def _zero_pad(a, widths):
    """a with widths[i] = (before, after) zeros added to each end of the last len(widths) dims."""
    xp = array_module(a)
    return xp.pad(a, [(0, 0)] * (a.ndim - len(widths)) + list(widths))


class ConstantPad(Function):
    r"""Constant padding; a negative width crops.

    Shapes: x (..., n_1, ..., n_k)   y (..., m_1, ..., m_k)   m_i = before_i + n_i + after_i
            ``widths`` = [(before_1, after_1), ..., (before_k, after_k)] for the LAST k dims,
            in natural order (the functional ``pad`` tuple reversed pairwise).
    Forward (one dimension; the others are alike):
        y[j] = x[j - before]   if 0 <= j - before < n
             = value           otherwise
    Backward: y[j] depends on x[i] only for j = i + before, with derivative 1, so
        dx[i] = dy[i + before]           (the value entries depend on no input)
    i.e. dx is dy with the border cut off: crop dy by the positive widths. Entries of
    x that a negative width cropped away did not reach y, so their gradient is 0:
    zero-pad by the negative widths.
    """

    def forward(self, x, widths, value):
        crop, grow = _crop_and_pad_widths(widths)
        self.save(crop=crop, grow=grow)
        xp = array_module(x)
        lead = [(0, 0)] * (x.ndim - len(widths))
        return xp.pad(_cut(x, crop), lead + grow, mode="constant", constant_values=value)

    def backward(self, dy):
        crop, grow = self.saved.crop, self.saved.grow
        return _zero_pad(_cut(dy, grow), crop), None, None


class CopyPad(Function):
    r"""Reflect, replicate or circular padding of the last k dims (k = len(widths)).

    Shapes: x (..., n_1, ..., n_k)   y (..., m_1, ..., m_k)   m_i = before_i + n_i + after_i
    Forward, one dimension at a time, with src = :func:`source_index` (mode, n, before, after):
        y[..., j] = x[..., src[j]]                   j = 0 .. m-1
    Backward: y[j] depends on x[i] exactly when src[j] = i, with derivative 1, so
        dx[..., i] = sum_{j : src[j] = i} dy[..., j]
    The middle of y is a plain copy of x (see :func:`middle`), so dx starts as that
    part of dy; each border entry j then ADDS dy[..., j] onto the entry it copied:
        dx[..., src[j]] += dy[..., j]                for every border j
    Example (reflect, n = 3, before = after = 1): y = (x1, x0, x1, x2, x1), so
        dx0 = dy1,  dx1 = dy0 + dy2 + dy4,  dx2 = dy3.
    The loop runs over the border only (a few entries), each step one slice-add.
    Dimensions are padded one after another; backward undoes them in reverse order.
    """

    def forward(self, x, widths, mode):
        first = x.ndim - len(widths)
        sources = [source_index(mode, x.shape[first + k], b, a) for k, (b, a) in enumerate(widths)]
        self.save(sources=sources, widths=widths, x_shape=x.shape)
        xp = array_module(x)
        y = x
        for k, src in enumerate(sources):
            y = xp.take(y, xp.asarray(src), axis=first + k)  # y[..., j, ...] = y[..., src[j], ...]
        return y

    def backward(self, dy):
        sources, widths, x_shape = self.saved.sources, self.saved.widths, self.saved.x_shape
        xp = array_module(dy)
        first = len(x_shape) - len(widths)
        for k in reversed(range(len(widths))):  # undo the last padded dimension first
            axis, src, (before, after) = first + k, sources[k], widths[k]
            lo, start, size = middle(x_shape[axis], before, after)
            shape = list(dy.shape)
            shape[axis] = x_shape[axis]
            dx = xp.zeros(shape, dtype=dy.dtype)
            dx[_along(axis, slice(start, start + size))] = dy[_along(axis, slice(lo, lo + size))]
            for j in [*range(lo), *range(lo + size, len(src))]:  # the border entries
                dx[_along(axis, int(src[j]))] += dy[_along(axis, j)]
            dy = dx
        return dy, None, None


def middle(n, before, after):
    """(lo, start, size): y[lo:lo+size] = x[start:start+size] is the copied middle of a padded dim.

    A positive ``before`` shifts the copy right (lo = before); a negative one crops
    x (start = -before); a negative ``after`` crops the end.
    """
    start = max(-before, 0)
    return max(before, 0), start, n - start - max(-after, 0)


def _along(axis, index):
    """The index tuple that applies ``index`` to dimension ``axis``: a[_along(2, 5)] is a[:, :, 5]."""
    return (slice(None),) * axis + (index,)


class Crop(Function):
    r"""y = x[..., top:top+h, left:left+w]: a window of the last two dims.

    Shapes: x (..., H, W)   y (..., h, w)
    Forward:  y[..., i, j] = x[..., top + i, left + j]
    Backward: dx[..., top + i, left + j] = dy[..., i, j] and 0 outside the window:
              dy placed back into zeros, i.e. dy zero-padded by
              (top, H - h - top) rows and (left, W - w - left) columns.
    (``center_crop`` picks top = (H - h) // 2, left = (W - w) // 2.)
    """

    def forward(self, x, top, left, h, w):
        H, W = x.shape[-2:]
        self.save(widths=[(top, H - h - top), (left, W - w - left)])
        return x[..., top:top + h, left:left + w]

    def backward(self, dy):
        return _zero_pad(dy, self.saved.widths), None, None, None, None
