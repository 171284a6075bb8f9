r"""2-D convolution and its transpose, lowered to matrix products by im2col: the textbook routes.

A convolution is a matrix product in disguise. im2col (``minidl/backend``) copies the
K = C*KH*KW input values under each output pixel's window into one COLUMN of a per-sample matrix
``cols[n]`` (K, P), P = OH*OW (PyTorch's ``F.unfold`` layout); then

    y[n] = Wm @ cols[n]        (F, K) @ (K, P) -> (F, P)      Wm = weight.reshape(F, K)

one dot product per (filter, output pixel), and (F, P) is already sample n of the NCHW output.
Every gradient is a matrix product too, plus col2im, the adjoint of im2col, which folds the
columns back onto the image and ADDS where windows overlap. The transposed convolution uses the
same two kernels with their roles swapped. Derivations with worked examples:
docs/gradients/conv2d.md, conv_transpose2d.md, im2col.md.

Groups split channels, filters and the rows of ``cols`` into G independent blocks: the ops view
``cols`` as (N, G, Kg, P) and ``weight`` as (G, F/G, Kg), one batched product over (n, g).
Where the windows sit (padding on one side only, windows that tile the image) is
:class:`Lowering`'s business; the ops do not change. The columns are built a block of pixels at a
time (:func:`conv_blocks`) and chunked over the batch beyond a memory limit
(:func:`set_column_buffer_limit`): why, and what it costs, in docs/performance.md.

conv2d also has faster routes to the same numbers, each its own Function beside this one
(conv_rotated.py, conv_shifted.py, conv_winograd.py); ``minidl/ops/conv_algorithms.py`` picks one,
and ``minidl.backend.conv_algorithm("im2col")`` forces this one.
"""
import math

from ..autograd import Function
from ..backend import array_module, kernels_for
from ..backend.geometry import conv_output_size, conv_transpose_output_size

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


# Blocks of conv2d's columns: about BLOCK_BYTES each, so that im2col writes a block and the
# products read it while it is in cache, but at least MIN_BLOCK_PIXELS output pixels, as every
# block costs Python calls and BLAS is slow on thin products (measurements: docs/performance.md).
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


# ---- weight gradients over a batch -------------------------------------------------------

# Columns up to this size (one block: a small image) are kept from the forward for the weight
# gradient instead of rebuilt: at most ~2 MiB per layer, where rebuilding them costs as much as
# a small layer's product.
KEPT_COLUMNS_BYTES = 2**21


def samples_side_by_side(n, R, Q, P):
    """Whether :func:`sum_over_samples` does n samples' (R, P) @ (P, Q) as one product."""
    return n == 1 or P * (R + Q) < R * Q


def sum_over_samples(a, b):
    """sum_n a[n] @ b[n].T, per group: a (n, G, R, P), b (n, G, Q, P) -> (G, R, Q), a new array.

    A weight gradient: R x Q channels (or a channel's window values), P pixels per sample.
    Per sample it is n products, each writing an (R, Q) partial sum that is then summed. With
    few pixels and many channels (the deep layers of small images) those partial sums dwarf the
    pixels, so the samples' pixels go side by side instead, and ONE product does the sum:
        [a[0] .. a[n-1]] @ [b[0] .. b[n-1]].T     (R, n*P) @ (n*P, Q)
    at the price of copying a and b: taken when P*(R + Q) < R*Q (and for one sample, where the
    side-by-side arrays are views).
    """
    n, G, R, P = a.shape
    Q = b.shape[2]
    if not samples_side_by_side(n, R, Q, P):
        return (a @ b.swapaxes(-1, -2)).sum(axis=0)  # (n, G, R, Q) summed over n
    a_side = a.transpose(1, 2, 0, 3).reshape(G, R, n * P)  # (G, R, n*P)
    b_side = b.transpose(1, 2, 0, 3).reshape(G, Q, n * P)  # (G, Q, n*P)
    return a_side @ b_side.swapaxes(-1, -2)


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
        # the kernels pad (PT, PL) on both sides: direct when that yields exactly (OH, OW)
        self.direct = (conv_output_size(H, KH, SH, PT, DH), conv_output_size(W, KW, SW, PL, DW)) == (OH, OW)
        self.tiles = ((KH, KW) == (SH, SW) and (PT, PL) == (0, 0)
                      and (DH == 1 or KH == 1) and (DW == 1 or KW == 1)
                      and (H, W) == (OH * KH, OW * KW))

    @classmethod
    def of_conv2d(cls, x_shape, weight_shape, stride, padding, dilation):
        """The Lowering of conv2d(x, weight) with per-side ``padding`` ((top, bottom), (left, right))."""
        H, W = x_shape[2:]
        KH, KW = weight_shape[2:]
        (PT, PB), (PL, PR) = padding
        out_size = (conv_output_size(H, KH, stride[0], (PT, PB), dilation[0]),
                    conv_output_size(W, KW, stride[1], (PL, PR), dilation[1]))
        return cls((H, W), out_size, (KH, KW), stride, (PT, PL), dilation)

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
        if (rows.start, rows.stop) == (0, self.out_size[0]):
            return self.im2col(kern, x)  # every row: no band to copy (the kernel pads by itself)
        band = self.canvas_band(x, *self._band(rows))  # (n, C, r1 - r0, WC): all these windows read
        if self.tiles:
            return self._unfold_tiles(kern, band)
        return kern.im2col(band, *self._kernel_args((0, 0)))

    def col2im_rows(self, kern, cols, dcanvas, rows):
        """dcanvas[:, :, band] += col2im(cols): the adjoint of :meth:`im2col_rows`, in place."""
        r0, r1 = self._band(rows)
        n, C, _, WC = dcanvas.shape
        if self.tiles:
            dcanvas[:, :, r0:r1] += self._fold_tiles(kern, cols, (n, C, r1 - r0, WC))
        else:
            dcanvas[:, :, r0:r1] += kern.col2im(cols, (n, C, r1 - r0, WC), *self._kernel_args((0, 0)))

    def _unfold_tiles(self, kern, x):
        """im2col when the windows tile x (n, C, KH*oh, KW*ow): a reshape (a view for 1x1). The
        Numba backend's ``unfold_tiles`` makes the same copy in one pass on every core (NumPy's
        transposed copy moves KW values at a time)."""
        (KH, KW), (n, C, H, W) = self.kernel, x.shape
        kernel = getattr(kern, "unfold_tiles", None) if (KH, KW) != (1, 1) else None
        if kernel is not None:
            return kernel(x, KH, KW)
        # x[n, c, KH*i + p, KW*j + q] = cols[n, (c, p, q), (i, j)]
        tiles = x.reshape(n, C, H // KH, KH, W // KW, KW).transpose(0, 1, 3, 5, 2, 4)  # (n,C,KH,KW,oh,ow)
        return array_module(x).ascontiguousarray(tiles).reshape(n, C * KH * KW, (H // KH) * (W // KW))

    def _fold_tiles(self, kern, cols, x_shape):
        """The inverse of :meth:`_unfold_tiles`: no overlaps, so nothing adds; a reshape (the Numba
        backend: ``fold_tiles``)."""
        (KH, KW), (n, C, H, W) = self.kernel, x_shape
        kernel = getattr(kern, "fold_tiles", None) if (KH, KW) != (1, 1) else None
        if kernel is not None:
            return kernel(cols, KH, KW, x_shape)
        tiles = cols.reshape(n, C, KH, KW, H // KH, W // KW).transpose(0, 1, 4, 2, 5, 3)  # (n,C,oh,KH,ow,KW)
        return array_module(cols).ascontiguousarray(tiles).reshape(x_shape)

    def im2col(self, kern, x):
        """x (n, C, H, W) -> cols (n, C*KH*KW, OH*OW)."""
        if self.tiles:
            return self._unfold_tiles(kern, x)
        if self.direct:
            return kern.im2col(x, *self._kernel_args(self.top_left))
        return kern.im2col(self.to_canvas(x), *self._kernel_args((0, 0)))

    def col2im(self, kern, cols, x_shape):
        """cols (n, C*KH*KW, OH*OW) -> dx x_shape = (n, C, H, W): the adjoint of :meth:`im2col`."""
        if self.tiles:
            return self._fold_tiles(kern, cols, x_shape)
        if self.direct:
            return kern.col2im(cols, x_shape, *self._kernel_args(self.top_left))
        dcanvas = kern.col2im(cols, tuple(x_shape[:2]) + self.canvas, *self._kernel_args((0, 0)))
        return self.from_canvas(dcanvas, x_shape)


class Conv2d(Function):
    r"""2-D cross-correlation (PyTorch's conv2d) lowered to matrix products by im2col: the textbook
    route, derived in docs/gradients/conv2d.md.

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
    Blocks: the columns are built a block of pixels at a time (:func:`conv_blocks`) and rebuilt
    in backward instead of kept: each block's products are the formulas above on its columns,
    and the blocks' dweight and col2im contributions add up (docs/performance.md says why).
    Columns of at most KEPT_COLUMNS_BYTES in one block (small images) are kept for dweight.
    Faster routes to the same numbers (minidl/backend/algorithms.py) subclass or replace this.
    """

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        lowering = Lowering.of_conv2d(x.shape, weight.shape, stride, padding, dilation)
        kern, xp = kernels_for(x), array_module(x)
        x = xp.ascontiguousarray(x)  # so that the reshapes below are views
        y, cols = self._forward_by_columns(kern, x, weight, bias, lowering, groups)
        self._save_for_backward(x, weight, lowering, groups, cols)
        return y

    # The backward uses the forward's columns (the rotated-kernel route's does not).
    keeps_columns = True

    def _save_for_backward(self, x, weight, lowering, groups, cols=None):
        """``cols``: the columns of the one block, kept for dweight when they are small; else the
        backward rebuilds them from x (x is saved either way: it is version-checked)."""
        N, C = x.shape[:2]
        small = cols is not None and cols.nbytes <= KEPT_COLUMNS_BYTES and self.keeps_columns
        self.save(x=x if self.needs_input_grad[1] else None,
                  cols=cols if small and self.needs_input_grad[1] else None,
                  weight=weight, x_shape=x.shape, lowering=lowering, groups=groups,
                  blocks=self._blocks(lowering, N, C, x.itemsize, array_module(x)))

    def _forward_by_columns(self, kern, x, weight, bias, lowering, G):
        """y = Wm @ im2col(x) + bias, block by block (the class docstring's forward); returns y
        and, when one block holds them all, the columns (else None)."""
        xp = array_module(x)
        N, C = x.shape[:2]
        F = weight.shape[0]
        OH, OW = lowering.out_size
        weight_g = weight.reshape(G, F // G, -1)  # (G, F/G, Kg)
        y = xp.empty((N, F, OH, OW), dtype=x.dtype)
        y_g = split_groups(y, G)  # (N, G, F/G, P), a view of y
        bias_g = bias.reshape(G, F // G, 1) if bias is not None else None
        blocks = self._blocks(lowering, N, C, x.itemsize, xp)
        for samples, rows in blocks:
            cols = lowering.im2col_rows(kern, x[samples], rows)  # (n, K, p) p = len(rows)*OW
            y_block = _pixels(y_g[samples], rows, OH, OW)  # (n, G, F/G, p), a view of y
            # Y[n, g][:, block] = Wm[g] @ cols[n, g]: (G, F/G, Kg) @ (n, G, Kg, p), into y
            xp.matmul(weight_g, split_groups(cols, G), out=y_block)
            if bias_g is not None:
                y_block += bias_g  # while the block is in cache, not in one more pass over y
        return y, (cols if len(blocks) == 1 else None)

    @staticmethod
    def _blocks(lowering, N, C, itemsize, xp):
        (KH, KW), (OH, OW) = lowering.kernel, lowering.out_size
        if lowering.tiles:  # im2col is a reshape (a view for 1x1): whole samples, up to the limit
            return [(part, slice(0, OH)) for part in batch_chunks(N, lowering.column_bytes(C, itemsize))]
        return conv_blocks(N, OH, OW, C * KH * KW * itemsize, on_cpu=xp.__name__ == "numpy")

    def backward(self, dy):
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        dy = array_module(dy).ascontiguousarray(dy)  # so that split_groups is a view
        dbias = dy.sum(axis=(0, 2, 3)) if needs_bias else None
        dx, dweight = self._backward_by_col2im(dy, needs_x, needs_weight)
        return dx, dweight, dbias, None, None, None, None

    def _backward_by_col2im(self, dy, needs_x, needs_weight):
        """The class docstring's backward: dweight from the columns of x, dx = col2im(dcols)."""
        s = self.saved
        kern, xp, G = kernels_for(dy), array_module(dy), s.groups
        F, Cg, KH, KW = s.weight.shape
        weight_t = s.weight.reshape(G, F // G, -1).swapaxes(1, 2)  # Wm[g].T (G, Kg, F/G)
        N, C, H, W = s.x_shape
        OH, OW = s.lowering.out_size
        dweight = None
        whole_samples = all((rows.start, rows.stop) == (0, OH) for _, rows in s.blocks)
        # blocks of whole samples: dx straight from col2im, block by block; bands of rows: their
        # col2im overlap, so they add up on a zero canvas
        dx_parts = []
        dcanvas = xp.zeros((N, C) + s.lowering.canvas, dtype=dy.dtype) if needs_x and not whole_samples else None
        dy_g = split_groups(dy, G)  # (N, G, F/G, P)
        for samples, rows in s.blocks:
            dy_block = _pixels(dy_g[samples], rows, OH, OW)  # (n, G, F/G, p)
            if needs_weight:
                cols = s.cols if s.cols is not None else s.lowering.im2col_rows(kern, s.x[samples], rows)  # (n, K, p)
                # dweight[g] += sum_n dY[n, g] @ cols[n, g].T: (n, G, F/G, p), (n, G, Kg, p) -> (G, F/G, Kg)
                part = sum_over_samples(dy_block, split_groups(cols, G))  # a new array
                if dweight is None:
                    dweight = part
                else:
                    dweight += part
                del cols
            if needs_x:
                # dcols[n, g] = Wm[g].T @ dY[n, g]: (G, Kg, F/G) @ (n, G, F/G, p) -> (n, G, Kg, p)
                dcols = weight_t @ dy_block
                n, p = dcols.shape[0], dcols.shape[-1]
                if whole_samples:
                    dx_parts.append(s.lowering.col2im(kern, dcols.reshape(n, C * KH * KW, p), (n, C, H, W)))
                else:
                    s.lowering.col2im_rows(kern, dcols.reshape(n, C * KH * KW, p), dcanvas[samples], rows)
                del dcols
        dx = None
        if needs_x:
            dx = (s.lowering.from_canvas(dcanvas, s.x_shape) if not whole_samples
                  else dx_parts[0] if len(dx_parts) == 1 else xp.concatenate(dx_parts))  # (N, C, H, W)
        if needs_weight:
            dweight = xp.zeros(s.weight.shape, dy.dtype) if dweight is None else dweight.reshape(s.weight.shape)
        return dx, dweight


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
        F = Fg * groups
        OH, OW = (conv_transpose_output_size(n, k, s, p, o, d) for n, k, s, p, o, d
                  in zip((H, W), (KH, KW), stride, padding, output_padding, dilation))
        # the conv2d that maps y's shape (OH, OW) back to x's (H, W): its dx is our forward
        lowering = Lowering((OH, OW), (H, W), (KH, KW), stride, padding, dilation)
        kern, xp, G = kernels_for(x), array_module(x), groups
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
                # dweight[g] = sum_n X[n, g] @ dcols[n, g].T: (n, G, C/G, L), (n, G, Kt/G, L) -> (G, C/G, Kt/G)
                part_sum = sum_over_samples(split_groups(s.x[part], G), dcols_g)  # a new array
                if dweight is None:
                    dweight = part_sum
                else:
                    dweight += part_sum
            if needs_x:
                # dX[n, g] = Wt[g] @ dcols[n, g]: (G, C/G, Kt/G) @ (n, G, Kt/G, L) -> (n, G, C/G, L)
                xp.matmul(weight_g, dcols_g, out=split_groups(dx[part], G))
            del dcols_g
        if dweight is not None:
            dweight = dweight.reshape(s.weight.shape)
        return dx, dweight, dbias, None, None, None, None, None
