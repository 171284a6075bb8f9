r"""Pooling: max, average, adaptive average, and max-unpool (the adjoint of max-pool).

Notation: x (N,C,H,W), y (N,C,OH,OW), kernel (KH,KW), stride S = (SH,SW), padding
P = (PH,PW), dilation D = (DH,DW). The window of output cell (i, j) covers the input cells

    h = SH*i - PH + DH*p   (p = 0..KH-1)        w = SW*j - PW + DW*q   (q = 0..KW-1)

Every op acts on each (n, c) plane separately, so the channel and batch axes just come along.
What the backwards look like, in one line each:

    max-pool        dx = dy scattered (ADDED) to the one cell that won each window
    avg-pool        dx = each window's dy / divisor spread over its cells (overlaps add)
    adaptive avg    the same with windows of varying size
    max-unpool      dx = dy gathered at the indices (forward was the scatter)

The geometry (pairs, output sizes) arrives checked and normalised from
``minidl.functional.pool``; derivations: docs/gradients/{max_pool2d,avg_pool2d,
adaptive_avg_pool2d,max_unpool2d}.md.
"""
from ..autograd import Function
from ..backend import array_module, kernels_for
from ..backend.geometry import conv_output_size


def pool_output_size(size, K, S, P, D, ceil_mode):
    """Output length of a pooling window sliding over one axis (minidl/backend/geometry.py)."""
    return conv_output_size(size, K, S, P, D, ceil_mode)


def window_max(x, kernel_size, stride, padding, dilation, output_size):
    """The maximum of every max-pool window of the array x and where it is: (y, argmax).

    y (N,C,OH,OW) the window maxima; argmax (N,C,OH,OW) int64, ``argmax[n,c,i,j] = h*W + w``,
    a flat index into x's (H, W) plane (the ``indices`` that ``max_pool2d(...,
    return_indices=True)`` returns), so that ``y[n,c,i,j] = x[n,c].flat[argmax[n,c,i,j]]``.
    One kernel pass finds both. Searching is not differentiable; the gradient flows through
    the gather :class:`MaxPool2d`. Ties: see ``maxpool2d_forward``.
    """
    (KH, KW), (SH, SW), (PH, PW), (DH, DW), (OH, OW) = (kernel_size, stride, padding,
                                                         dilation, output_size)
    return kernels_for(x).maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)


def _planes(a):
    """(N,C,H,W) -> (N*C, H*W): one row per plane, the layout the flat indices refer to."""
    N, C, H, W = a.shape
    return a.reshape(N * C, H * W)


class MaxPool2d(Function):
    r"""Max-pool as a gather: each output is the input cell that won its window.

    Shapes: x (N,C,H,W)   argmax, y (N,C,OH,OW) from :func:`window_max`
    Index form:
        y[n,c,i,j] = max_{p,q} xpad[n,c, SH*i + DH*p, SW*j + DW*q]        (padding = -inf)
                   = x[n,c].flat[argmax[n,c,i,j]]                           (argmax = h*W + w)
    Splitting the op into "find the winner" (a kernel, no gradient) and "gather it" makes the
    gradient plain: y[n,c,i,j] depends on ONE input cell, with derivative 1, so
        dx[n,c].flat[argmax[n,c,i,j]] += dy[n,c,i,j]        (every other cell gets 0)
    The gradient goes to the one input that won each window; ties: to the first in scan order
    (p-major, then q), as PyTorch. It ADDS: with stride < kernel a cell can win several
    overlapping windows (``maxpool2d_backward``, a scatter-add kernel).

    The kernel that found the winners has already gathered them, so ``forward`` receives that
    gather, y, and returns it instead of indexing x a second time (one pass and one
    (N,C,OH,OW) temporary less). ``x`` is an input only so that the graph links dx to it; only
    its shape is kept.
    """

    def forward(self, x, argmax, y):
        self.save(argmax=argmax, x_shape=x.shape)
        return y

    def backward(self, dy):
        s = self.saved
        return kernels_for(dy).maxpool2d_backward(dy, s.argmax, s.x_shape), None, None


class AvgPool2d(Function):
    r"""Average pooling: the mean of each window, with PyTorch's choice of divisor.

    Shapes: x (N,C,H,W)   y (N,C,OH,OW)
    Index form, with xpad padded by zeros:
        y[n,c,i,j] = (1 / divisor[i,j]) * sum_{p,q} xpad[n,c, SH*i + p, SW*j + q]
        divisor[i,j] = KH*KW for an interior window; at the border:
            count_include_pad=True   the window's cells inside the PADDED input (padding counts)
            count_include_pad=False  only the window's cells inside the input
            divisor_override=d       d, always
        (ceil_mode windows may reach past the padded input; those cells never count.)
    Gradient: y[n,c,i,j] is linear in each cell of its window with coefficient 1/divisor[i,j]:
        dx[n,c,h,w] = sum over the windows (i,j) containing (h,w) of dy[n,c,i,j] / divisor[i,j]
    (the kernel ``avgpool2d_backward``: spread each share over its window, overlaps add, drop
    the padding).
    """

    def forward(self, x, kernel_size, stride, padding, output_size, count_include_pad,
                divisor_override):
        (KH, KW), (SH, SW), (PH, PW), (OH, OW) = kernel_size, stride, padding, output_size
        self.save(x_shape=x.shape, window=(KH, KW, SH, SW, PH, PW, OH, OW),
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
        return kernels_for(x).avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, OH, OW,
                                                count_include_pad, divisor_override)

    def backward(self, dy):
        s = self.saved
        dx = kernels_for(dy).avgpool2d_backward(dy, s.x_shape, *s.window, s.count_include_pad,
                                                s.divisor_override)
        return dx, None, None, None, None, None, None


def adaptive_windows(size, out):
    """[(start, end), ...] for the ``out`` windows of adaptive pooling along one axis.

    start = floor(i*size/out), end = ceil((i+1)*size/out): the windows cover the axis,
    neighbours overlap by at most one cell, and sizes differ by at most one (PyTorch's rule).
    """
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


class AdaptiveAvgPool2d(Function):
    r"""Average over windows chosen so that the output has a GIVEN size (OH, OW).

    Shapes: x (N,C,H,W)   y (N,C,OH,OW)
    Windows (see :func:`adaptive_windows`): rows [h0(i), h1(i)), columns [w0(j), w1(j)) with
        h0(i) = floor(i*H/OH),  h1(i) = ceil((i+1)*H/OH)     (and the same for w with W, OW)
    Index form:
        y[n,c,i,j] = (1 / area[i,j]) * sum_{h=h0(i)}^{h1(i)-1} sum_{w=w0(j)}^{w1(j)-1} x[n,c,h,w]
        area[i,j]  = (h1(i) - h0(i)) * (w1(j) - w0(j))
    The window is a product of a row range and a column range, so the sum is done in two
    passes (rows, then columns), each a loop over the OH (or OW) output positions.
    Gradient: every cell of window (i,j) receives dy[n,c,i,j] / area[i,j]; cells in several
    (overlapping) windows add them up. Backward runs the two passes in reverse order.
    """

    def forward(self, x, output_size):
        xp = array_module(x)
        N, C, H, W = x.shape
        OH, OW = output_size
        rows, cols = adaptive_windows(H, OH), adaptive_windows(W, OW)
        row_sums = xp.zeros((N, C, OH, W), dtype=x.dtype)  # sum over the rows of window i
        for i, (h0, h1) in enumerate(rows):
            row_sums[:, :, i, :] = x[:, :, h0:h1, :].sum(axis=2)
        y = xp.zeros((N, C, OH, OW), dtype=x.dtype)
        for j, (w0, w1) in enumerate(cols):
            y[:, :, :, j] = row_sums[:, :, :, w0:w1].sum(axis=3)
        area = self._area(xp, rows, cols, x.dtype)
        self.save(x_shape=x.shape, rows=rows, cols=cols, area=area)
        return y / area

    @staticmethod
    def _area(xp, rows, cols, dtype):
        heights = xp.asarray([h1 - h0 for h0, h1 in rows], dtype=dtype)
        widths = xp.asarray([w1 - w0 for w0, w1 in cols], dtype=dtype)
        return heights[:, None] * widths[None, :]  # (OH, OW)

    def backward(self, dy):
        s = self.saved
        xp = array_module(dy)
        N, C, H, W = s.x_shape
        share = dy / s.area  # (N,C,OH,OW) what each cell of window (i, j) receives
        d_row_sums = xp.zeros((N, C, len(s.rows), W), dtype=dy.dtype)
        for j, (w0, w1) in enumerate(s.cols):
            d_row_sums[:, :, :, w0:w1] += share[:, :, :, j:j + 1]
        dx = xp.zeros(s.x_shape, dtype=dy.dtype)
        for i, (h0, h1) in enumerate(s.rows):
            dx[:, :, h0:h1, :] += d_row_sums[:, :, i:i + 1, :]
        return dx, None


class MaxUnpool2d(Function):
    r"""Max-unpool: put each value back where max-pool found it; zeros elsewhere.

    Shapes: x (N,C,H,W)   indices (N,C,H,W) int64, flat into the (OH, OW) output plane
            y (N,C,OH,OW)
    Index form:
        y[n,c].flat[indices[n,c,h,w]] = x[n,c,h,w]        every other y entry is 0
    It is the scatter whose adjoint is max-pool's gather, so the gradient is the gather:
        dx[n,c,h,w] = dy[n,c].flat[indices[n,c,h,w]]
    (``indices`` is an integer input: no gradient.) If two entries share an index, one of them
    lands there (which one is unspecified, as in PyTorch), while backward gives both the
    gradient at that index (as PyTorch).
    """

    def forward(self, x, indices, output_size):
        xp = array_module(x)
        N, C = x.shape[:2]
        OH, OW = output_size
        plane = xp.arange(N * C)[:, None]  # (N*C, 1) the plane each row of indices refers to
        y = xp.zeros((N * C, OH * OW), dtype=x.dtype)
        y[plane, _planes(indices)] = _planes(x)
        self.save(plane=plane, indices=indices)
        return y.reshape(N, C, OH, OW)

    def backward(self, dy):
        s = self.saved
        dx = _planes(dy)[s.plane, _planes(s.indices)].reshape(s.indices.shape)
        return dx, None, None
