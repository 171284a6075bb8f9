r"""Resizing (``interpolate``): nearest and (bi)linear, as one matrix per spatial axis.

Derivation: docs/gradients/interpolate.md.

Every mode here is *separable*: each output row is a weighted combination of
input rows, and each output column of input columns, with the same weights for
every row/plane. So one spatial axis of size ``n_in -> n_out`` is a matrix
``A`` of shape (n_out, n_in), and for one (H, W) plane

    y = A_h  x  A_w^T          A_h (OH, H),  A_w (OW, W),  x (H, W),  y (OH, OW)
    y[i, j] = sum_{h, w} A_h[i, h] x[h, w] A_w[j, w]

(the same for every n, c; 3-D input (N, C, W) has only A_w). The gradient of a
linear map is its transpose (the adjoint):

    dx = A_h^T  dy  A_w        dx[h, w] = sum_{i, j} A_h[i, h] dy[i, j] A_w[j, w]

i.e. every input pixel collects dy from all outputs that read it, times the
weight with which they read it (a scatter-add of the interpolation weights).

Rows of A (PyTorch's index rules, CPU kernels; s = the user's scale_factor
when given and not recomputed, else None):

* nearest:        y[i] = x[src(i)]:  A[i, src(i)] = 1.   PyTorch's legacy rule:
                  src(i) = i           if n_out == n_in
                         = i // 2      if n_out == 2 n_in
                         = min(floor(i * scale), n_in - 1)  otherwise, in float32,
                  scale = 1/s if s is given, else n_in / n_out.
                  (PyTorch's CPU *forward* skips the two shortcuts for 1-D input and for
                  2-D outputs with OH + OW > 128, but its backward always takes them, so its
                  forward and gradient disagree when s is given with floor(n_in * s) equal
                  to n_in or 2 n_in but s != 1, 2. minidl uses this one rule both ways.)
* nearest-exact:  src(i) = min(floor((i + 0.5) * scale), n_in - 1)  (pixel centres).
* linear:         y[i] = l0 x[i0] + l1 x[i1] with src = the real source position,
                  i0 = min(floor(src), n_in - 1), i1 = i0 + 1 (i0 at the last entry),
                  l1 = src - i0 (clamped to [0, 1]), l0 = 1 - l1, and
                    align_corners=True:   src = i * (n_in - 1) / (n_out - 1)  (0 if n_out == 1):
                                          the corner pixels' centres line up;
                    align_corners=False:  src = max((i + 0.5) * scale - 0.5, 0) with
                                          scale = 1/s if s is given, else n_in / n_out:
                                          pixel areas line up; negative positions near the
                                          first edge are clamped to 0;
                  and A = identity when n_out == n_in.

The matrices are dense (n_out x n_in); applying them costs O(OH*H*W + OH*W*OW)
per plane, which BLAS does fast at U-Net sizes. One consequence: 0 * inf = nan,
so a non-finite input entry spoils its whole row/column of the output.
"""
import numpy as np

from ..autograd import Function
from ..backend import array_module


def nearest_source_index(n_in, n_out, scale_factor=None, exact=False):
    """src(i) for i = 0 .. n_out - 1 (PyTorch's ``nearest_idx`` / ``nearest_exact_idx``), as int64.

    PyTorch computes ``scale`` in float32 and rounds the source position to float32
    before ``floor``; so do we, so that positions that land on an integer agree.
    """
    i = np.arange(n_out)
    if not exact and n_out == n_in:
        return i
    if not exact and n_out == 2 * n_in:
        return i // 2
    if scale_factor is not None and scale_factor > 0:
        scale = np.float32(1.0 / scale_factor)
    else:
        scale = np.float32(n_in) / np.float32(n_out)
    if exact:
        src = np.float32((i + 0.5) * np.float64(scale))  # (i + 0.5) * scale in double, then float
    else:
        src = i.astype(np.float32) * scale  # i * scale in float
    return np.minimum(np.floor(src).astype(np.int64), n_in - 1)


def nearest_matrix(n_in, n_out, scale_factor=None, exact=False):
    """A (n_out, n_in) with A[i, src(i)] = 1: row i picks one input entry."""
    a = np.zeros((n_out, n_in))
    a[np.arange(n_out), nearest_source_index(n_in, n_out, scale_factor, exact)] = 1.0
    return a


def linear_matrix(n_in, n_out, align_corners, scale_factor=None):
    """A (n_out, n_in) with A[i, i0] += l0, A[i, i1] += l1 (see the module docstring)."""
    if n_out == n_in:
        return np.eye(n_in)
    i = np.arange(n_out)
    if align_corners:
        ratio = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = ratio * i
    else:
        ratio = 1.0 / scale_factor if scale_factor is not None and scale_factor > 0 else n_in / n_out
        src = np.maximum(ratio * (i + 0.5) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = i0 + (i0 < n_in - 1)  # at the last entry both indices are the same
    l1 = np.clip(src - i0, 0.0, 1.0)
    a = np.zeros((n_out, n_in))
    np.add.at(a, (i, i0), 1.0 - l1)  # add: i0 == i1 at the last entry
    np.add.at(a, (i, i1), l1)
    return a


def axis_matrix(mode, n_in, n_out, align_corners, scale_factor):
    """The (n_out, n_in) matrix of one spatial axis for ``mode``."""
    if mode == "nearest":
        return nearest_matrix(n_in, n_out, scale_factor)
    if mode == "nearest-exact":
        return nearest_matrix(n_in, n_out, scale_factor, exact=True)
    if mode in ("linear", "bilinear"):
        return linear_matrix(n_in, n_out, align_corners, scale_factor)
    raise ValueError(f"interpolate: unknown mode {mode!r}")


class Interpolate(Function):
    r"""Resize the last one (3-D input) or two (4-D input) dimensions.

    Shapes: x (N, C, H, W)   y (N, C, OH, OW)   A_h (OH, H)   A_w (OW, W)
            (3-D: x (N, C, W), y (N, C, OW), A_w only)
    Forward:  y = A_h @ x @ A_w^T      y[n,c,i,j] = sum_{h,w} A_h[i,h] x[n,c,h,w] A_w[j,w]
    Backward: dx = A_h^T @ dy @ A_w    dx[n,c,h,w] = sum_{i,j} A_h[i,h] dy[n,c,i,j] A_w[j,w]
    ``out_size`` and ``scale_factors`` have one entry per spatial axis; the
    matrices come from :func:`axis_matrix` (rules in the module docstring).
    """

    def forward(self, x, out_size, mode, align_corners, scale_factors):
        xp = array_module(x)
        spatial = x.shape[2:]
        mats = [xp.asarray(axis_matrix(mode, n_in, n_out, align_corners, s), dtype=x.dtype)
                for n_in, n_out, s in zip(spatial, out_size, scale_factors)]
        a_w = mats[-1]
        a_h = mats[0] if len(mats) == 2 else None
        self.save(a_h=a_h, a_w=a_w)
        y = x @ a_w.T  # (N, C, H, OW)
        if a_h is not None:
            y = a_h @ y  # (N, C, OH, OW)
        return y

    def backward(self, dy):
        a_h, a_w = self.saved.a_h, self.saved.a_w
        dx = dy @ a_w  # (N, C, OH, W)
        if a_h is not None:
            dx = a_h.T @ dx  # (N, C, H, W)
        return dx, None, None, None, None
