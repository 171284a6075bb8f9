r"""2-D convolution and its transpose, lowered to matrix products by im2col.

A convolution is a matrix product in disguise. im2col (``minidl/backend``) copies the
K = C*KH*KW input values under each output pixel's window into one COLUMN of a per-sample
matrix ``cols[n]`` (K, P), P = OH*OW (PyTorch's ``F.unfold`` layout); then

    y[n] = Wm @ cols[n]        (F, K) @ (K, P) -> (F, P)      Wm = weight.reshape(F, K)

one dot product per (filter, output pixel), and (F, P) is already sample n of the NCHW
output: no transpose, no copy. Every gradient is a matrix product too, plus col2im, the
adjoint of im2col, which folds the columns back onto the image and ADDS where windows
overlap. The transposed convolution uses the same two kernels with their roles swapped.
Derivations with worked examples: docs/gradients/conv2d.md, conv_transpose2d.md, im2col.md.

Groups. With G groups, input channels, filters and hence the rows of ``cols`` split into G
independent blocks: block g of ``cols[n]`` (Kg = K/G rows, channels g*C/G ...) meets only
the F/G filters of block g. The ops view ``cols`` as (N, G, Kg, P) and ``weight`` as
(G, F/G, Kg) and do one batched matrix product over (n, g) (G = 1 is the plain case).

Padding. The functional layer passes per-side padding ((top, bottom), (left, right)).
The kernels take one symmetric padding (PH, PW), which covers every case but two: an
even dilated kernel with ``padding='same'`` (one more row/column at the bottom/right)
and a transposed convolution whose output_padding is at least its stride (possible when
dilation > stride). Those pad the input explicitly into a "canvas" of exactly the rows
and columns the windows reach and run the kernels with padding 0 (:class:`Lowering`).

Windows that tile the image. When kernel == stride, without padding or dilation, and the
windows cover the image exactly (1x1 convolutions; the 2x2/stride-2 transposed convolution
of a U-Net), no two windows overlap and none reaches past the image: im2col is then a
reshape and a transpose of x (for 1x1, a mere view) and col2im its inverse, with no sums.
:class:`Lowering` takes that path itself, so the ops do not change.

Winograd. A 3x3 stride-1 conv2d with many channels (on the Numba backend at least 128 in and
out; see minidl/ops/conv_winograd.py and docs/gradients/conv2d_winograd.md) skips im2col:
Winograd's F(4x4, 3x3) needs 36 multiplications per 4x4 output tile where the matrix product
on columns needs 16 * 9 = 144. ``Conv2d`` hands those cases to that module, forward and backward.

Shifted rows. A stride-1 conv2d with enough input channels per group (on the Numba backend
16) skips im2col too, forward and backward: with the padded input flattened row by row, each
kernel tap (p, q) reads it at a fixed shift, so KW products on shifted views of the input's
rows stacked KH times replace the product on columns that copy it KH*KW times (see
minidl/ops/conv_shifted.py and docs/gradients/conv2d.md).

Memory. The column buffer holds KH*KW/(SH*SW) times more values than the input:

    conv2d            N * C * KH * KW * OH * OW * itemsize   bytes
    conv_transpose2d  N * F * KH * KW * H * W * itemsize     bytes

(none for a 1x1 stride-1 conv2d, whose columns are a view of x). When that exceeds the
column-buffer limit (default 512 MiB, see :func:`set_column_buffer_limit`), the ops work
through the batch in chunks of as many samples as fit (at least one sample, however
large). conv2d goes further and builds its columns in cache-sized blocks (:func:`conv_blocks`)
and rebuilds them in backward instead of keeping them: at most one block of columns is
alive at a time.
"""
import math

from ..autograd import Function
from ..backend import allocator, array_module, kernels_for
from . import conv_shifted
from .conv_winograd import winograd_applies, winograd_backward, winograd_forward

DEFAULT_COLUMN_BUFFER_LIMIT = 512 * 2**20  # bytes
_column_buffer_limit = DEFAULT_COLUMN_BUFFER_LIMIT


def set_column_buffer_limit(nbytes=None):
    """Bound, in bytes, on the im2col buffer of one conv call (``None`` restores 512 MiB).

    A batch whose columns (N*OH*OW*C*KH*KW*itemsize bytes for conv2d) exceed the bound is
    processed in chunks of samples; results and gradients are the same, only slower
    (conv2d then recomputes the columns in backward). Returns the previous limit, so
    ``old = set_column_buffer_limit(2**20); ...; set_column_buffer_limit(old)`` restores it.
    """
    global _column_buffer_limit
    if nbytes is None:
        nbytes = DEFAULT_COLUMN_BUFFER_LIMIT
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise ValueError(f"set_column_buffer_limit: nbytes must be a positive int (bytes), got {nbytes!r}")
    previous, _column_buffer_limit = _column_buffer_limit, nbytes
    return previous


def get_column_buffer_limit():
    """The current bound, in bytes, on one conv call's column buffer (see the module doc)."""
    return _column_buffer_limit


def batch_chunks(N, bytes_per_sample):
    """Slices of the batch whose column buffers fit the limit: one slice when all of it fits."""
    if N * bytes_per_sample <= _column_buffer_limit:
        return [slice(0, N)]
    step = max(1, _column_buffer_limit // bytes_per_sample)
    return [slice(n0, min(n0 + step, N)) for n0 in range(0, N, step)]


# Blocks of conv2d's columns. Built all at once, conv2d's columns are far larger than any
# cache (32 channels at 256x256: 75 MB per sample), and the matrix products on them run at a
# fraction of the machine's peak. So conv2d builds them a block at a time, a block being
# whole samples or, for large images, a band of output rows of one sample: each block is
# written by im2col and read at once by the products while it is still in cache. A block
# holds about BLOCK_BYTES of columns but at least MIN_BLOCK_PIXELS output pixels, because
# every block costs Python calls and hand-overs between Numba's and BLAS's threads, and
# BLAS is slow on thin products. (Measured on 2 threads, forward+backward products of
# 32 -> 32 channels at 256x256: 103 ms on 4.7 MB blocks against 265 ms on whole samples;
# 512 -> 512 channels at 16x16 lost 30% when cut into bands of 14 and 2 rows.)
BLOCK_BYTES = 4 * 2**20
MIN_BLOCK_PIXELS = 4096


def conv_blocks(N, OH, OW, bytes_per_pixel, on_cpu=True):
    """(samples, output rows) slices covering the batch, each block's columns about BLOCK_BYTES.

    ``bytes_per_pixel`` is one output pixel's column (K * itemsize). Whole samples per block
    while one sample fits, else bands of rows of one sample. The target is BLOCK_BYTES or
    MIN_BLOCK_PIXELS pixels' worth, whichever is more; never more than the column-buffer limit
    (:func:`set_column_buffer_limit`); at least one output row. On the GPU (``on_cpu=False``)
    the target is the limit itself: large products are what a GPU wants.
    """
    target = max(BLOCK_BYTES, MIN_BLOCK_PIXELS * bytes_per_pixel) if on_cpu else _column_buffer_limit
    target = min(target, _column_buffer_limit)
    bytes_per_row = OW * bytes_per_pixel
    per_sample = OH * bytes_per_row
    if per_sample <= target:
        step = max(1, target // max(1, per_sample))  # samples per block
        return [(slice(n0, min(n0 + step, N)), slice(0, OH)) for n0 in range(0, N, step)]
    step = max(1, target // max(1, bytes_per_row))  # output rows per block
    return [(slice(n, n + 1), slice(i0, min(i0 + step, OH)))
            for n in range(N) for i0 in range(0, OH, step)]


# ---- grouped layouts -------------------------------------------------------------------
# An image-shaped array (n, G*c, h, w) and the matrices the products want, (n, G, c, h*w):
# one matrix per (sample, group), a row per channel of the group, a column per pixel.

def split_groups(a, G):
    """(n, G*c, *pixels) -> (n, G, c, prod(pixels)): a view when ``a`` is C-contiguous."""
    n, Gc = a.shape[:2]
    return a.reshape(n, G, Gc // G, math.prod(a.shape[2:]))


class Lowering:
    r"""Where the windows of one convolution sit: im2col / col2im for given geometry.

    The convolution reads an input of size (H, W) with kernel (KH, KW), stride S, dilation D
    and padding ``top``, ``left`` (the bottom/right padding is whatever makes the output
    (OH, OW)). Window (i, j) covers padded rows S*i + D*p, p < KH: the last one reached is
    S*(OH-1) + D*(KH-1), so the windows see a padded "canvas" of
        HC = S*(OH-1) + D*(KH-1) + 1   rows  (WC likewise)
    whose rows top .. top+H-1 are the input, the rest zeros (input rows past the canvas are
    never read). Three ways to lower, chosen here once:
      tiles   kernel == stride, no padding, no dilation, H = OH*KH and W = OW*KW: window
              (i, j) is the tile x[.., KH*i : KH*(i+1), KW*j : KW*(j+1)], so im2col is a
              reshape + transpose (a view for 1x1) and col2im its inverse, no kernel at all;
      direct  the kernels' symmetric padding (top, left) yields exactly (OH, OW): always,
              except for an extra bottom/right row ('same' with an even dilated kernel) and
              for output_padding >= stride in a transposed conv;
      canvas  otherwise: the canvas is built explicitly and the kernels run with padding 0.
    """

    def __init__(self, in_size, out_size, kernel, stride, top_left, dilation):
        (H, W), (OH, OW), (KH, KW) = in_size, out_size, kernel
        (SH, SW), (PT, PL), (DH, DW) = stride, top_left, dilation
        self.in_size, self.out_size, self.kernel = (H, W), (OH, OW), (KH, KW)
        self.stride, self.top_left, self.dilation = (SH, SW), (PT, PL), (DH, DW)
        self.canvas = (SH * (OH - 1) + DH * (KH - 1) + 1, SW * (OW - 1) + DW * (KW - 1) + 1)
        extent_h, extent_w = H + 2 * PT - DH * (KH - 1) - 1, W + 2 * PL - DW * (KW - 1) - 1
        self.direct = (extent_h >= 0 and extent_w >= 0
                       and (extent_h // SH + 1, extent_w // SW + 1) == (OH, OW))
        self.tiles = ((KH, KW) == (SH, SW) and (PT, PL) == (0, 0)
                      and (DH == 1 or KH == 1) and (DW == 1 or KW == 1)
                      and (H, W) == (OH * KH, OW * KW))

    def column_bytes(self, C, itemsize):
        """Bytes of one sample's columns (C*KH*KW, OH*OW); 0 when im2col is a view (1x1 tiles)."""
        (KH, KW), (OH, OW) = self.kernel, self.out_size
        if self.tiles and (KH, KW) == (1, 1):
            return 0
        return C * KH * KW * OH * OW * itemsize

    def _kernel_args(self, padding):
        (KH, KW), (SH, SW), (DH, DW) = self.kernel, self.stride, self.dilation
        return (KH, KW, SH, SW, *padding, DH, DW)

    def _overlap(self):
        """How many input rows/columns lie inside the canvas."""
        (H, W), (HC, WC), (PT, PL) = self.in_size, self.canvas, self.top_left
        return max(0, min(H, HC - PT)), max(0, min(W, WC - PL))

    def to_canvas(self, x):
        """x (n, C, H, W) -> the zero-padded canvas (n, C, HC, WC) the windows read (x itself
        when there is no padding and the windows reach every pixel)."""
        xp = array_module(x)
        (PT, PL), (h, w) = self.top_left, self._overlap()
        if (PT, PL) == (0, 0) and self.canvas == tuple(x.shape[2:]):
            return x
        canvas = xp.zeros(x.shape[:2] + self.canvas, dtype=x.dtype)
        canvas[:, :, PT:PT + h, PL:PL + w] = x[:, :, :h, :w]
        return canvas

    def from_canvas(self, dcanvas, x_shape):
        """The adjoint of :meth:`to_canvas`: the canvas gradient cut back to x_shape."""
        xp = array_module(dcanvas)
        (PT, PL), (h, w) = self.top_left, self._overlap()
        if (PT, PL) == (0, 0) and self.canvas == tuple(x_shape[2:]):
            return dcanvas
        dx = xp.zeros(x_shape, dtype=dcanvas.dtype)  # rows past the canvas are never read: 0
        dx[:, :, :h, :w] = dcanvas[:, :, PT:PT + h, PL:PL + w]
        return dx

    def _band(self, rows):
        """The canvas rows [r0, r1) that the windows of output rows ``rows`` read."""
        (KH, _), (SH, _), (DH, _) = self.kernel, self.stride, self.dilation
        return SH * rows.start, SH * (rows.stop - 1) + DH * (KH - 1) + 1

    def canvas_band(self, x, r0, r1):
        """Rows [r0, r1) of the canvas of x (n, C, H, W): (n, C, r1 - r0, WC), zero padded.

        Built per band rather than whole: a band is small enough to stay in cache until
        im2col reads it, and reuses memory that NumPy just freed, where a whole padded copy
        of a large activation is fresh memory (page faults) written once and read back from
        main memory. A view of x when there is no padding to add."""
        xp = array_module(x)
        (PT, PL), (h, w) = self.top_left, self._overlap()
        if (PT, PL) == (0, 0) and self.canvas == tuple(x.shape[2:]):
            return x[:, :, r0:r1]
        band = xp.zeros(x.shape[:2] + (r1 - r0, self.canvas[1]), dtype=x.dtype)
        a, b = max(r0, PT), min(r1, PT + h)  # the canvas rows that hold input rows a-PT .. b-PT-1
        if a < b:
            band[:, :, a - r0:b - r0, PL:PL + w] = x[:, :, a - PT:b - PT, :w]
        return band

    def im2col_rows(self, kern, x, rows):
        """x (n, C, H, W) -> the columns of output rows ``rows``: (n, K, len(rows)*OW)."""
        band = self.canvas_band(x, *self._band(rows))  # (n, C, r1 - r0, WC): all these windows read
        if self.tiles:
            return self._unfold_tiles(band)
        return kern.im2col(band, *self._kernel_args((0, 0)))

    def col2im_rows(self, kern, cols, dcanvas, rows):
        """dcanvas[:, :, band] += col2im(cols): the adjoint of :meth:`im2col_rows`, in place."""
        r0, r1 = self._band(rows)
        n, C, _, WC = dcanvas.shape
        if self.tiles:
            dcanvas[:, :, r0:r1] += self._fold_tiles(cols, (n, C, r1 - r0, WC))
        else:
            dcanvas[:, :, r0:r1] += kern.col2im(cols, (n, C, r1 - r0, WC), *self._kernel_args((0, 0)))

    def _unfold_tiles(self, x):
        """im2col when the windows tile x (n, C, KH*oh, KW*ow): a reshape (a view for 1x1)."""
        (KH, KW), (n, C, H, W) = self.kernel, x.shape
        # x[n, c, KH*i + p, KW*j + q] = cols[n, (c, p, q), (i, j)]
        tiles = x.reshape(n, C, H // KH, KH, W // KW, KW).transpose(0, 1, 3, 5, 2, 4)  # (n,C,KH,KW,oh,ow)
        return array_module(x).ascontiguousarray(tiles).reshape(n, C * KH * KW, (H // KH) * (W // KW))

    def _fold_tiles(self, cols, x_shape):
        """The inverse of :meth:`_unfold_tiles`: no overlaps, so nothing adds; a reshape."""
        (KH, KW), (n, C, H, W) = self.kernel, x_shape
        tiles = cols.reshape(n, C, KH, KW, H // KH, W // KW).transpose(0, 1, 4, 2, 5, 3)  # (n,C,oh,KH,ow,KW)
        return array_module(cols).ascontiguousarray(tiles).reshape(x_shape)

    def im2col(self, kern, x):
        """x (n, C, H, W) -> cols (n, C*KH*KW, OH*OW)."""
        if self.tiles:
            return self._unfold_tiles(x)
        if self.direct:
            return kern.im2col(x, *self._kernel_args(self.top_left))
        return kern.im2col(self.to_canvas(x), *self._kernel_args((0, 0)))

    def col2im(self, kern, cols, x_shape):
        """cols (n, C*KH*KW, OH*OW) -> dx x_shape = (n, C, H, W): the adjoint of :meth:`im2col`."""
        if self.tiles:
            return self._fold_tiles(cols, x_shape)
        if self.direct:
            return kern.col2im(cols, x_shape, *self._kernel_args(self.top_left))
        dcanvas = kern.col2im(cols, tuple(x_shape[:2]) + self.canvas, *self._kernel_args((0, 0)))
        return self.from_canvas(dcanvas, x_shape)


class Conv2d(Function):
    r"""2-D cross-correlation (PyTorch's conv2d) lowered to matrix products by im2col.

    Shapes: x (N,C,H,W)  weight (F,C/G,KH,KW)  bias (F,) or None  y (N,F,OH,OW)
            OH = (H + PT + PB - D(KH-1) - 1)//S + 1  (PT, PB = top, bottom padding; P+P usually)
            K = C*KH*KW   Kg = K/G   P = OH*OW   G = groups
    Forward, index form (xpad = x with the zero padding; c runs over filter f's group):
        y[n,f,i,j] = bias[f] + sum_{c,p,q} weight[f,c,p,q] * xpad[n, c, S*i + D*p, S*j + D*q]
    Matrix form, per sample n (Y[n] = y[n] as (F, P), a view of NCHW):
        cols = im2col(x)                       (N, K, P)  one column per output pixel (i,j)
        Y[n] = Wm @ cols[n] + bias             (F, P)     Wm = weight.reshape(F, K)
        (groups: Y[n,g] = Wm[g] @ cols[n,g] with cols as (N,G,Kg,P), weight as (G,F/G,Kg))
    Backward, with dY[n] = dy[n] as (F, P):
        dbias   = sum_{n,i,j} dy[n,:,i,j]                    every pixel adds bias[f]
        dweight = sum_n dY[n] @ cols[n].T   -> (F,C/G,KH,KW)  per group
        dcols   = Wm.T @ dY[n]              (K, P)  per sample
        dx      = col2im(dcols)             col2im is the adjoint of im2col: a pixel in several
                                            windows receives the SUM of their gradients
    Winograd: a 3x3 stride-1 conv2d without groups or dilation, with enough channels for the
    kernel backend (Numba: 128 in and out), is handed whole to minidl/ops/conv_winograd.py,
    forward and backward (36 multiplications per 4x4 output tile instead of 144); everything
    else in this docstring describes the im2col path. A stride-1 conv2d with at least the
    backend's SHIFTED_ROWS_MIN_CHANNELS input channels per group (Numba: 16) replaces im2col by
    shifted views of the input's rows, forward and (for dx and dweight, from dy's rows) backward:
    minidl/ops/conv_shifted.py, the same sums in another order.
    Stride 1 (every 'same' convolution; padding at most D*(K-1)), when dx is wanted, takes
    another route to the same numbers: dx is then a
    conv2d of dy with the kernel rotated by 180 degrees, filters and channels swapped,
        dX[n]   = Wrot @ dcols[n]           (C, F*KH*KW) @ (F*KH*KW, H*W)   dcols = im2col(dy)
        dWrot   = sum_n X[n] @ dcols[n].T   dweight = dWrot with the rotation undone
    one im2col of dy serving both products, whose inner dimension is F*KH*KW or H*W, where
    Wm.T @ dY has only F and writes KH*KW times more than it reads
    (:meth:`_backward_by_flipped_kernel`; the derivation in docs/gradients/conv2d.md).
    Blocks. The columns are never built whole: the products are split along their P axis
    into blocks of whole samples or bands of output rows (:func:`conv_blocks`), each block's
    columns built by im2col just before its products, while they are in cache. Column j of
    cols[n] depends only on the window of pixel j, so Y[n] is computed column block by column
    block; dweight is a sum over pixels, so the blocks' products add up; and col2im of a band
    adds into the rows of (the padded) dx that the band's windows cover, so bands that share
    rows (3x3 windows of neighbouring output rows) add there, as col2im itself would.
    Backward rebuilds each block's columns (from x, or for stride 1 from dy; one more im2col,
    cheap while the block is in cache) instead of keeping N*K*P values alive from forward to
    backward.
    """

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        N, C, H, W = x.shape
        F, _, KH, KW = weight.shape
        ((PT, PB), (PL, PR)), G = padding, groups
        OH = (H + PT + PB - dilation[0] * (KH - 1) - 1) // stride[0] + 1
        OW = (W + PL + PR - dilation[1] * (KW - 1) - 1) // stride[1] + 1
        kern, xp = kernels_for(x), array_module(x)
        x = xp.ascontiguousarray(x)  # so that the reshapes below are views
        if winograd_applies(kern, x.shape, weight.shape, stride, dilation, groups):  # many channels, 3x3
            self.save(x=x if self.needs_input_grad[1] else None, weight=weight, x_shape=x.shape,
                      winograd_padding=(PT, PL))
            return winograd_forward(kern, x, weight, bias, (PT, PL), (OH, OW))
        lowering = Lowering((H, W), (OH, OW), (KH, KW), stride, (PT, PL), dilation)
        weight_g = weight.reshape(G, F // G, -1)  # (G, F/G, Kg)
        blocks = self._blocks(lowering, N, C, x.itemsize, xp)

        y = xp.empty((N, F, OH, OW), dtype=x.dtype)
        if conv_shifted.applies(kern, lowering, C // G):  # stride 1: KW products on shifted rows, no im2col
            shifted_blocks = conv_blocks(N, OH, OW, KH * C * x.itemsize)  # S holds KH*C values per pixel
            conv_shifted.conv_by_shifted_rows(kern, lowering, x, conv_shifted.shifted_weights(weight, G),
                                              shifted_blocks, y, bias)
            self.save(x=x if self.needs_input_grad[1] else None, weight=weight, x_shape=x.shape,
                      lowering=lowering, blocks=blocks, groups=G, winograd_padding=None)
            return y
        y_g = split_groups(y, G)  # (N, G, F/G, P), a view of y
        bias_g = bias.reshape(G, F // G, 1) if bias is not None else None
        for samples, rows in blocks:
            cols = lowering.im2col_rows(kern, x[samples], rows)  # (n, K, p) p = len(rows)*OW
            y_block = _pixels(y_g[samples], rows, OH, OW)  # (n, G, F/G, p), a view of y
            # Y[n, g][:, block] = Wm[g] @ cols[n, g]: (G, F/G, Kg) @ (n, G, Kg, p), into y
            xp.matmul(weight_g, split_groups(cols, G), out=y_block)
            if bias_g is not None:
                y_block += bias_g  # while the block is in cache, not in one more pass over y
        self.save(x=x if self.needs_input_grad[1] else None,  # backward rebuilds the columns
                  weight=weight, x_shape=x.shape, lowering=lowering, blocks=blocks, groups=G,
                  winograd_padding=None)
        return y

    @staticmethod
    def _blocks(lowering, N, C, itemsize, xp):
        (KH, KW), (OH, OW) = lowering.kernel, lowering.out_size
        if lowering.tiles:  # im2col is a reshape (a view for 1x1): whole samples, up to the limit
            return [(part, slice(0, OH)) for part in batch_chunks(N, lowering.column_bytes(C, itemsize))]
        return conv_blocks(N, OH, OW, C * KH * KW * itemsize, on_cpu=xp.__name__ == "numpy")

    def backward(self, dy):
        s = self.saved
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        xp = array_module(dy)
        dy = xp.ascontiguousarray(dy)  # so that split_groups is a view
        dbias = dy.sum(axis=(0, 2, 3)) if needs_bias else None
        if s.winograd_padding is not None:
            dx, dweight = winograd_backward(kernels_for(dy), dy, s.x, s.x_shape, s.weight,
                                            s.winograd_padding, needs_x, needs_weight)
            return dx, dweight, dbias, None, None, None, None
        flipped = self._flipped_lowering(s.lowering) if needs_x else None
        if flipped is not None:  # stride 1: dx (and dweight) from the columns of dy
            dx, dweight = self._backward_by_flipped_kernel(dy, s.x, s.weight, flipped, s.x_shape,
                                                           s.groups, needs_weight)
        else:
            dx, dweight = self._backward_by_col2im(dy, needs_x, needs_weight)
        return dx, dweight, dbias, None, None, None, None

    def _backward_by_col2im(self, dy, needs_x, needs_weight):
        """The general backward (any stride): dweight from the columns of x, dx = col2im(dcols)."""
        s = self.saved
        kern, xp, G = kernels_for(dy), array_module(dy), s.groups
        F, Cg, KH, KW = s.weight.shape
        weight_t = s.weight.reshape(G, F // G, -1).swapaxes(1, 2)  # Wm[g].T (G, Kg, F/G)
        N, C, H, W = s.x_shape
        OH, OW = s.lowering.out_size
        dweight = xp.zeros((G, F // G, Cg * KH * KW), dtype=dy.dtype) if needs_weight else None
        dcanvas = xp.zeros((N, C) + s.lowering.canvas, dtype=dy.dtype) if needs_x else None
        dy_g = split_groups(dy, G)  # (N, G, F/G, P)
        for samples, rows in s.blocks:
            dy_block = _pixels(dy_g[samples], rows, OH, OW)  # (n, G, F/G, p)
            if needs_weight:
                cols = s.lowering.im2col_rows(kern, s.x[samples], rows)  # (n, K, p)
                # dweight[g] += sum_n dY[n, g] @ cols[n, g].T: (n, G, F/G, p) @ (n, G, p, Kg)
                dweight += (dy_block @ split_groups(cols, G).swapaxes(-1, -2)).sum(axis=0)
                del cols
            if needs_x:
                # dcols[n, g] = Wm[g].T @ dY[n, g]: (G, Kg, F/G) @ (n, G, F/G, p) -> (n, G, Kg, p)
                dcols = weight_t @ dy_block
                n, p = dcols.shape[0], dcols.shape[-1]
                s.lowering.col2im_rows(kern, dcols.reshape(n, C * KH * KW, p), dcanvas[samples], rows)
                del dcols
        dx = s.lowering.from_canvas(dcanvas, s.x_shape) if needs_x else None
        if dweight is not None:
            dweight = dweight.reshape(s.weight.shape)
        return dx, dweight

    @staticmethod
    def _flipped_lowering(lowering):
        """The Lowering of dx as a stride-1 conv2d of dy (see :meth:`_backward_by_flipped_kernel`),
        or None where that does not apply: stride > 1, or padding above D*(K-1) on top/left."""
        (KH, KW), (DH, DW), (PT, PL) = lowering.kernel, lowering.dilation, lowering.top_left
        top, left = DH * (KH - 1) - PT, DW * (KW - 1) - PL
        if lowering.stride != (1, 1) or top < 0 or left < 0:
            return None
        return Lowering(lowering.out_size, lowering.in_size, (KH, KW), (1, 1), (top, left), (DH, DW))

    @staticmethod
    def _backward_by_flipped_kernel(dy, x, weight, lowering, x_shape, G, needs_weight):
        r"""dx of a stride-1 conv2d as a conv2d of dy with the rotated kernel; dweight from the
        same columns of dy. Returns (dx, dweight or None).

        With stride 1 the index form of dx (class docstring) is, for p' = KH-1-p, q' = KW-1-q,
            dx[n,c,h,w] = sum_{f,p',q'} weight[f,c,KH-1-p',KW-1-q'] * dypad[n, f, h + D*p', w + D*q']
        with dy padded by D*(KH-1) - PT rows on top (D*(KW-1) - PL columns on the left): a
        conv2d of dy whose weight is ``weight`` rotated 180 degrees, filters and channels
        swapped, wrot[c,f,p',q'] = weight[f,c,KH-1-p',KW-1-q']. So col2im(Wm.T @ dY) equals
            dX[n] = Wrot @ dcols[n]       (C, F*KH*KW) @ (F*KH*KW, H*W),  dcols = im2col(dy)
        the same products as forward: inner dimension F*KH*KW (not F), no KH*KW-times larger
        Wm.T @ dY to write and fold, no overlapping sums. And the weight gradient, read off
        the same index form (x is 0 in the padding, so the sum may run over x's pixels only),
            dweight[f,c,KH-1-p',KW-1-q'] = sum_{n,h,w} x[n,c,h,w] * dypad[n, f, h + D*p', w + D*q']
            i.e. dWrot = sum_n X[n] @ dcols[n].T     (C, H*W) @ (H*W, F*KH*KW)
        so one im2col of dy per block serves both, and x needs no columns at all.
        Blocks as in forward, here over dx's pixels (the columns of dcols).
        """
        xp, kern = array_module(dy), kernels_for(dy)
        N, C, H, W = x_shape
        F, Cg, KH, KW = weight.shape
        # wrot[g][c, (f, p', q')] = weight[g*F/G + f, c, KH-1-p', KW-1-q']
        rotated = weight.reshape(G, F // G, Cg, KH, KW)[:, :, :, ::-1, ::-1]  # (G, F/G, C/G, KH, KW)
        rotated = xp.ascontiguousarray(rotated.transpose(0, 2, 1, 3, 4))  # (G, C/G, F/G, KH, KW)
        if conv_shifted.applies(kern, lowering, F // G):  # dy's shifted rows instead of its columns
            blocks = conv_blocks(N, H, W, KH * F * dy.itemsize)  # S holds KH*F values per pixel
            dx, dweight_rot = conv_shifted.backward_by_shifted_rows(
                kern, lowering, dy, x if needs_weight else None, rotated.reshape(C, F // G, KH, KW), G,
                blocks, needs_weight)
            return dx, Conv2d._unrotate(dweight_rot, weight.shape, G) if needs_weight else None
        weight_rot = rotated.reshape(G, Cg, -1)  # (G, C/G, F/G*KH*KW)
        dweight_rot = xp.zeros(weight_rot.shape, dtype=dy.dtype) if needs_weight else None
        x_g = split_groups(x, G) if needs_weight else None  # (N, G, C/G, H*W)
        dx = allocator.empty(x_shape, dy.dtype, xp)  # a cached buffer: fresh memory is slow (allocator.py)
        dx_g = split_groups(dx, G)  # (N, G, C/G, H*W), a view of dx
        for samples, rows in Conv2d._blocks(lowering, N, F, dy.itemsize, xp):
            dcols = split_groups(lowering.im2col_rows(kern, dy[samples], rows), G)  # (n, G, F/G*KH*KW, p)
            # dX[n, g][:, block] = Wrot[g] @ dcols[n, g]: (G, C/G, F/G*KH*KW) @ (n, G, F/G*KH*KW, p)
            xp.matmul(weight_rot, dcols, out=_pixels(dx_g[samples], rows, H, W))
            if needs_weight:
                # dWrot[g] += sum_n X[n, g][:, block] @ dcols[n, g].T: (n, G, C/G, p) @ (n, G, p, F/G*KH*KW)
                x_block = _pixels(x_g[samples], rows, H, W)
                for i in range(x_block.shape[0]):  # sample by sample: no (n, G, C/G, F/G*KH*KW) temporary
                    dweight_rot += x_block[i] @ dcols[i].swapaxes(-1, -2)
        return dx, Conv2d._unrotate(dweight_rot, weight.shape, G) if needs_weight else None

    @staticmethod
    def _unrotate(dweight_rot, weight_shape, G):
        """dweight from dWrot, (G, C/G, F/G*KH*KW) or (C, F/G, KH, KW) (the same values in the same
        order): dweight[g*F/G + f, c, p, q] = dWrot[g, c, (f, KH-1-p, KW-1-q)]."""
        F, Cg, KH, KW = weight_shape
        dweight_rot = dweight_rot.reshape(G, Cg, F // G, KH, KW)[:, :, :, ::-1, ::-1]
        dweight = dweight_rot.transpose(0, 2, 1, 3, 4)  # (G, F/G, C/G, KH, KW)
        return array_module(dweight_rot).ascontiguousarray(dweight).reshape(F, Cg, KH, KW)


def _pixels(a, rows, OH, OW):
    """a (..., OH*OW) -> the pixels of output rows ``rows``: a view (all of ``a`` for all rows)."""
    if (rows.start, rows.stop) == (0, OH):
        return a
    return a[..., rows.start * OW:rows.stop * OW]


class ConvTranspose2d(Function):
    r"""Transposed 2-D convolution (PyTorch's conv_transpose2d): conv2d's backward as a forward.

    It is the same two kernels with forward and backward swapped: its forward is conv2d's dx
    (col2im of a product), its dx is conv2d's forward (im2col, then a product).
    Shapes: x (N,C,H,W)  weight (C,F/G,KH,KW)  bias (F,) or None  y (N,F,OH,OW)
            OH = (H-1)*S - 2P + D(KH-1) + output_padding + 1
            Kt = F*KH*KW    L = H*W    G = groups
    Forward, index form (each input pixel scatters a weighted copy of the kernel):
        y[n,f,h,w] = bias[f] + sum over (c,i,j,p,q) with S*i + D*p = h + P, S*j + D*q = w + P
                               of x[n,c,i,j] * weight[c,f,p,q]
    Matrix form, per sample n (X[n] = x[n] as (C, L), Wt = weight.reshape(C, Kt)):
        cols[n] = Wt.T @ X[n]                    (Kt, L)   one column per INPUT pixel (i,j)
        y       = col2im(cols) + bias            (N,F,OH,OW)
    Backward, with the conv2d whose input gradient this is (input size OH, padding P):
        dcols   = im2col(dy)                     (N, Kt, L)
        dX[n]   = Wt @ dcols[n]                  (C, L)  -> (N,C,H,W)
        dweight = sum_n X[n] @ dcols[n].T        (C, Kt) -> (C,F/G,KH,KW)
        dbias   = dy.sum over (n, h, w)
    (groups: the products per group with X as (N,G,C/G,L), Wt as (G,C/G,Kt/G).)
    output_padding adds rows/columns at the bottom/right that only the bias (and, when
    P > 0, windows reaching into the padding) write to; it disambiguates OH when S > 1.
    With kernel == stride (the U-Net's 2x2/stride-2 up-convolution) the windows tile y and
    col2im is a reshape (see :class:`Lowering`).
    Column buffer: N*F*KH*KW*H*W*itemsize bytes, chunked over the batch beyond the limit.
    Backward never needs the forward's columns (it rebuilds them from dy), so none are kept.
    """

    def forward(self, x, weight, bias, stride, padding, output_padding, groups, dilation):
        N, C, H, W = x.shape
        _, Fg, KH, KW = weight.shape
        (SH, SW), (PH, PW), (DH, DW), G = stride, padding, dilation, groups
        F = Fg * G
        OH = (H - 1) * SH - 2 * PH + DH * (KH - 1) + output_padding[0] + 1
        OW = (W - 1) * SW - 2 * PW + DW * (KW - 1) + output_padding[1] + 1
        # the conv2d that maps y's shape (OH, OW) back to x's (H, W): its dx is our forward
        lowering = Lowering((OH, OW), (H, W), (KH, KW), stride, padding, dilation)
        kern, xp = kernels_for(x), array_module(x)
        x = xp.ascontiguousarray(x)  # so that split_groups is a view
        weight_t = weight.reshape(G, C // G, -1).swapaxes(1, 2)  # Wt[g].T (G, Kt/G, C/G)
        chunks = batch_chunks(N, H * W * F * KH * KW * x.itemsize)
        y = None if len(chunks) == 1 else xp.empty((N, F, OH, OW), dtype=x.dtype)
        for part in chunks:
            n = part.stop - part.start
            # cols[n, g] = Wt[g].T @ X[n, g]: (G, Kt/G, C/G) @ (n, G, C/G, L) -> (n, G, Kt/G, L)
            cols = (weight_t @ split_groups(x[part], G)).reshape(n, F * KH * KW, H * W)  # (n, Kt, L)
            y_part = lowering.col2im(kern, cols, (n, F, OH, OW))
            del cols
            if len(chunks) == 1:
                y = y_part
            else:
                y[part] = y_part
        if bias is not None:
            y += bias.reshape(F, 1, 1)
        self.save(x=x if self.needs_input_grad[1] else None, weight=weight,
                  x_shape=x.shape, lowering=lowering, chunks=chunks, groups=G)
        return y

    def backward(self, dy):
        s = self.saved
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        kern, xp, G = kernels_for(dy), array_module(dy), s.groups
        weight_g = s.weight.reshape(G, s.weight.shape[0] // G, -1)  # Wt (G, C/G, Kt/G)
        N, C, H, W = s.x_shape
        dbias = dy.sum(axis=(0, 2, 3)) if needs_bias else None
        dweight = None
        dx = xp.empty(s.x_shape, dtype=dy.dtype) if needs_x else None
        for part in s.chunks:
            dcols_g = split_groups(s.lowering.im2col(kern, dy[part]), G)  # (n, G, Kt/G, L)
            if needs_weight:
                # dweight[g] = sum_n X[n, g] @ dcols[n, g].T: (n, G, C/G, L) @ (n, G, L, Kt/G)
                dweight_part = (split_groups(s.x[part], G) @ dcols_g.swapaxes(-1, -2)).sum(axis=0)
                dweight = dweight_part if dweight is None else dweight + dweight_part
            if needs_x:
                # dX[n, g] = Wt[g] @ dcols[n, g]: (G, C/G, Kt/G) @ (n, G, Kt/G, L) -> (n, G, C/G, L)
                xp.matmul(weight_g, dcols_g, out=split_groups(dx[part], G))
            del dcols_g
        if dweight is not None:
            dweight = dweight.reshape(s.weight.shape)
        return dx, dweight, dbias, None, None, None, None, None
