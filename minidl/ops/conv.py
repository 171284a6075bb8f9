r"""2-D convolution and its transpose, lowered to matrix products by im2col.

A convolution is a matrix product in disguise. im2col (``minidl/backend``) copies the
K = C*KH*KW input values under each output pixel's window into one row of a matrix
``cols`` (N*OH*OW, K); then

    y = cols @ weight.reshape(F, K).T          one dot product per (output pixel, filter)

and every gradient is a matrix product too, plus col2im, the adjoint of im2col, which
folds the rows back onto the image and ADDS where windows overlap. The transposed
convolution uses the same two kernels with their roles swapped. Derivations with worked
examples: docs/gradients/conv2d.md, conv_transpose2d.md, im2col.md.

Groups. With G groups, input channels, filters and hence the columns of ``cols`` split
into G independent blocks: block g of ``cols`` (Kg = K/G columns, channels g*C/G ...)
meets only the F/G filters of block g. The ops view ``cols`` as (M, G, Kg) and ``weight``
as (G, F/G, Kg) and do one batched matrix product over g (G = 1 is the plain case).

Padding. The functional layer passes per-side padding ((top, bottom), (left, right)).
The kernels take one symmetric padding (PH, PW), which covers every case but two: an
even dilated kernel with ``padding='same'`` (one more row/column at the bottom/right)
and a transposed convolution whose output_padding is at least its stride (possible when
dilation > stride). Those pad the input explicitly into a "canvas" of exactly the rows
and columns the windows reach and run the kernels with padding 0 (:class:`Lowering`).

Memory. The column buffer holds KH*KW/(SH*SW) times more values than the input:

    conv2d            N * OH * OW * C * KH * KW * itemsize   bytes
    conv_transpose2d  N * H * W * F * KH * KW * itemsize     bytes

When that exceeds the column-buffer limit (default 512 MiB, see
:func:`set_column_buffer_limit`), the ops work through the batch in chunks of as many
samples as fit (at least one sample, however large), and the convolution recomputes each
chunk's columns in backward instead of keeping them. Under the limit it computes them
once and keeps them for the weight gradient. Either way at most one column buffer is
alive at a time beyond what backward keeps.
"""
from ..autograd import Function
from ..backend import array_module, kernels_for

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


# ---- grouped layouts -------------------------------------------------------------------
# An image-shaped array (n, G*c, h, w) and the matrix the products want, (G, n*h*w, c):
# one row per pixel (n, i, j), one column per channel of the group, one block per group.

def to_groups(a, G):
    """(n, G*c, h, w) -> (G, n*h*w, c): pixels as rows, each group's channels as columns."""
    n, C, h, w = a.shape
    return a.reshape(n, G, C // G, h, w).transpose(1, 0, 3, 4, 2).reshape(G, n * h * w, C // G)


def from_groups(a, n, h, w):
    """(G, n*h*w, c) -> (n, G*c, h, w), C-contiguous: the inverse of :func:`to_groups` (one copy)."""
    G, _, c = a.shape
    a = a.reshape(G, n, h, w, c).transpose(1, 0, 4, 2, 3).reshape(n, G * c, h, w)
    return array_module(a).ascontiguousarray(a)


def cols_to_groups(cols, G):
    """im2col's (M, K) viewed as (G, M, K/G): column block g holds group g's channels."""
    M, K = cols.shape
    return cols.reshape(M, G, K // G).swapaxes(0, 1)


def groups_to_cols(a):
    """(G, M, Kg) -> (M, G*Kg), the inverse of :func:`cols_to_groups` (a copy when G > 1)."""
    G, M, Kg = a.shape
    return a.swapaxes(0, 1).reshape(M, G * Kg)


class Lowering:
    r"""Where the windows of one convolution sit: im2col / col2im for given geometry.

    The convolution reads an input of size (H, W) with kernel (KH, KW), stride S, dilation D
    and padding ``top``, ``left`` (the bottom/right padding is whatever makes the output
    (OH, OW)). Window (i, j) covers padded rows S*i + D*p, p < KH: the last one reached is
    S*(OH-1) + D*(KH-1), so the windows see a padded "canvas" of
        HC = S*(OH-1) + D*(KH-1) + 1   rows  (WC likewise)
    whose rows top .. top+H-1 are the input, the rest zeros (input rows past the canvas are
    never read). When the kernels' symmetric padding (top, left) yields exactly (OH, OW),
    i.e. always except for an extra bottom/right row ('same' with an even dilated kernel)
    and for output_padding >= stride in a transposed conv, they do the padding themselves;
    otherwise the canvas is built explicitly and the kernels run with padding 0.
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

    def _kernel_args(self, padding):
        (KH, KW), (SH, SW), (DH, DW) = self.kernel, self.stride, self.dilation
        return (KH, KW, SH, SW, *padding, DH, DW)

    def _overlap(self):
        """How many input rows/columns lie inside the canvas."""
        (H, W), (HC, WC), (PT, PL) = self.in_size, self.canvas, self.top_left
        return max(0, min(H, HC - PT)), max(0, min(W, WC - PL))

    def im2col(self, kern, x):
        """x (n, C, H, W) -> cols (n*OH*OW, C*KH*KW)."""
        if self.direct:
            return kern.im2col(x, *self._kernel_args(self.top_left))
        xp = array_module(x)
        (PT, PL), (h, w) = self.top_left, self._overlap()
        canvas = xp.zeros(x.shape[:2] + self.canvas, dtype=x.dtype)
        canvas[:, :, PT:PT + h, PL:PL + w] = x[:, :, :h, :w]
        return kern.im2col(canvas, *self._kernel_args((0, 0)))

    def col2im(self, kern, cols, x_shape):
        """cols (n*OH*OW, C*KH*KW) -> dx x_shape = (n, C, H, W): the adjoint of :meth:`im2col`."""
        if self.direct:
            return kern.col2im(cols, x_shape, *self._kernel_args(self.top_left))
        xp = array_module(cols)
        (PT, PL), (h, w) = self.top_left, self._overlap()
        dcanvas = kern.col2im(cols, tuple(x_shape[:2]) + self.canvas, *self._kernel_args((0, 0)))
        dx = xp.zeros(x_shape, dtype=cols.dtype)
        dx[:, :, :h, :w] = dcanvas[:, :, PT:PT + h, PL:PL + w]
        return dx


class Conv2d(Function):
    r"""2-D cross-correlation (PyTorch's conv2d) lowered to one matrix product by im2col.

    Shapes: x (N,C,H,W)  weight (F,C/G,KH,KW)  bias (F,) or None  y (N,F,OH,OW)
            OH = (H + PT + PB - D(KH-1) - 1)//S + 1  (PT, PB = top, bottom padding; P+P usually)
            K = C*KH*KW   Kg = K/G   M = N*OH*OW   G = groups
    Forward, index form (xpad = x with the zero padding; c runs over filter f's group):
        y[n,f,i,j] = bias[f] + sum_{c,p,q} weight[f,c,p,q] * xpad[n, c, S*i + D*p, S*j + D*q]
    Matrix form:
        cols = im2col(x)                       (M, K)    one row per output pixel (n,i,j)
        Y    = cols @ Wm.T + bias              (M, F)    Wm = weight.reshape(F, K)
        (groups: Y[:, g] = cols[:, g] @ Wm[g].T with cols as (M,G,Kg), weight as (G,F/G,Kg))
    Backward, with dY = dy as (M, F):
        dbias   = dY.sum(0)                             every pixel adds bias[f]
        dweight = (dY.T @ cols).reshape(F,C/G,KH,KW)    per group
        dx      = col2im(dY @ Wm)                       col2im is the adjoint of im2col: a pixel
                                                        in several windows receives the SUM of
                                                        their gradients, so col2im adds.
    Column buffer: N*OH*OW*C*KH*KW*itemsize bytes. Up to the limit (module doc) it is built
    once and kept for dweight; beyond it the batch goes in chunks of samples and backward
    rebuilds each chunk's columns from x.
    """

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        N, C, H, W = x.shape
        F, _, KH, KW = weight.shape
        ((PT, PB), (PL, PR)), G = padding, groups
        OH = (H + PT + PB - dilation[0] * (KH - 1) - 1) // stride[0] + 1
        OW = (W + PL + PR - dilation[1] * (KW - 1) - 1) // stride[1] + 1
        lowering = Lowering((H, W), (OH, OW), (KH, KW), stride, (PT, PL), dilation)
        kern = kernels_for(x)
        weight_g = weight.reshape(G, F // G, -1)  # (G, F/G, Kg)
        chunks = batch_chunks(N, OH * OW * C * KH * KW * x.itemsize)
        keep_cols = self.needs_input_grad[1] and len(chunks) == 1

        if len(chunks) == 1:
            cols = lowering.im2col(kern, x)  # (M, K)
            y = from_groups(cols_to_groups(cols, G) @ weight_g.swapaxes(1, 2), N, OH, OW)
        else:
            y = array_module(x).empty((N, F, OH, OW), dtype=x.dtype)
            for part in chunks:
                cols = lowering.im2col(kern, x[part])  # (n*OH*OW, K), n samples in this chunk
                y_g = cols_to_groups(cols, G) @ weight_g.swapaxes(1, 2)  # (G, n*OH*OW, F/G)
                del cols  # free this chunk's buffer before the next one is built
                y[part] = from_groups(y_g, part.stop - part.start, OH, OW)
        if bias is not None:
            y += bias.reshape(F, 1, 1)
        self.save(
            cols=cols if keep_cols else None,  # unchunked: dweight = dY.T @ cols
            x=x if self.needs_input_grad[1] and not keep_cols else None,  # chunked: rebuild cols
            weight=weight, x_shape=x.shape, lowering=lowering, chunks=chunks, groups=G,
        )
        return y

    def backward(self, dy):
        s = self.saved
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        kern, xp, G = kernels_for(dy), array_module(dy), s.groups
        weight_g = s.weight.reshape(G, s.weight.shape[0] // G, -1)  # (G, F/G, Kg)
        N, C, H, W = s.x_shape
        dbias = dy.sum(axis=(0, 2, 3)) if needs_bias else None
        dweight = dx = None
        if needs_x and len(s.chunks) > 1:
            dx = xp.empty(s.x_shape, dtype=dy.dtype)
        for part in s.chunks:
            dy_g = to_groups(dy[part], G)  # (G, m, F/G)   m = n*OH*OW
            if needs_weight:
                cols = s.cols if s.cols is not None else s.lowering.im2col(kern, s.x[part])
                dweight_part = dy_g.swapaxes(1, 2) @ cols_to_groups(cols, G)  # (G, F/G, Kg)
                dweight = dweight_part if dweight is None else dweight + dweight_part
                del cols
            if needs_x:
                dcols = groups_to_cols(dy_g @ weight_g)  # (m, K)
                dx_part = s.lowering.col2im(kern, dcols, (part.stop - part.start, C, H, W))
                del dcols
                if len(s.chunks) == 1:
                    dx = dx_part
                else:
                    dx[part] = dx_part
        if dweight is not None:
            dweight = dweight.reshape(s.weight.shape)
        return dx, dweight, dbias, None, None, None, None


class ConvTranspose2d(Function):
    r"""Transposed 2-D convolution (PyTorch's conv_transpose2d): conv2d's backward as a forward.

    It is the same two kernels with forward and backward swapped: its forward is conv2d's dx
    (col2im of a product), its dx is conv2d's forward (im2col, then a product).
    Shapes: x (N,C,H,W)  weight (C,F/G,KH,KW)  bias (F,) or None  y (N,F,OH,OW)
            OH = (H-1)*S - 2P + D(KH-1) + output_padding + 1
            Kt = F*KH*KW    M = N*H*W    G = groups
    Forward, index form (each input pixel scatters a weighted copy of the kernel):
        y[n,f,h,w] = bias[f] + sum over (c,i,j,p,q) with S*i + D*p = h + P, S*j + D*q = w + P
                               of x[n,c,i,j] * weight[c,f,p,q]
    Matrix form (X = x as (M, C), Wt = weight.reshape(C, Kt)):
        cols = X @ Wt                            (M, Kt)   one row per INPUT pixel (n,i,j)
        y    = col2im(cols) + bias               (N,F,OH,OW)
    Backward, with the conv2d whose input gradient this is (input size OH, padding P):
        dcols   = im2col(dy)                     (M, Kt)
        dx      = dcols @ Wt.T                   (M, C)  -> (N,C,H,W)
        dweight = X.T @ dcols                    (C, Kt) -> (C,F/G,KH,KW)
        dbias   = dy.sum over (n, h, w)
    (groups: the products per group with X as (G,M,C/G), Wt as (G,C/G,Kt/G).)
    output_padding adds rows/columns at the bottom/right that only the bias (and, when
    P > 0, windows reaching into the padding) write to; it disambiguates OH when S > 1.
    Column buffer: N*H*W*F*KH*KW*itemsize bytes, chunked over the batch beyond the limit.
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
        kern = kernels_for(x)
        weight_g = weight.reshape(G, C // G, -1)  # (G, C/G, Kt/G)
        chunks = batch_chunks(N, H * W * F * KH * KW * x.itemsize)
        y = None if len(chunks) == 1 else array_module(x).empty((N, F, OH, OW), dtype=x.dtype)
        for part in chunks:
            n = part.stop - part.start
            cols = groups_to_cols(to_groups(x[part], G) @ weight_g)  # (n*H*W, Kt)
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
        weight_g = s.weight.reshape(G, s.weight.shape[0] // G, -1)  # (G, C/G, Kt/G)
        N, C, H, W = s.x_shape
        dbias = dy.sum(axis=(0, 2, 3)) if needs_bias else None
        dweight = dx = None
        if needs_x and len(s.chunks) > 1:
            dx = xp.empty(s.x_shape, dtype=dy.dtype)
        for part in s.chunks:
            dcols_g = cols_to_groups(s.lowering.im2col(kern, dy[part]), G)  # (G, m, Kt/G)  m = n*H*W
            if needs_weight:
                dweight_part = to_groups(s.x[part], G).swapaxes(1, 2) @ dcols_g  # (G, C/G, Kt/G)
                dweight = dweight_part if dweight is None else dweight + dweight_part
            if needs_x:
                dx_part = from_groups(dcols_g @ weight_g.swapaxes(1, 2), part.stop - part.start, H, W)
                if len(s.chunks) == 1:
                    dx = dx_part
                else:
                    dx[part] = dx_part
            del dcols_g
        if dweight is not None:
            dweight = dweight.reshape(s.weight.shape)
        return dx, dweight, dbias, None, None, None, None, None
