r"""Reference kernels: readable array code, the specification of every backend.

These are the few operations that are not plain array code. Each is a loop
over the (small) kernel window with strided slices, so it is easy to check by
hand; the Numba and CuPy backends implement exactly these functions with the
same signatures and results. They compute with the array module of their
input (``xp``), so they run on NumPy arrays and on the strict test device's.

Notation (as in the ops): N batch, C channels, H, W input size, KH, KW kernel,
S = (SH, SW) stride, P = (PH, PW) padding, D = (DH, DW) dilation, OH, OW output.
"""
import numpy as np

from .devices import array_module
from .winograd_matrices import AT as WINOGRAD_AT
from .winograd_matrices import BT as WINOGRAD_BT
from .winograd_matrices import TILE as WINOGRAD_TILE
from .geometry import conv_output_size

# The convolution routes this module's kernels support (minidl/backend/algorithms.py), and from
# how many channels conv2d takes each by itself: the rotated kernel always; the others only
# when asked, as these kernels are written to be read (the Winograd transforms here made conv2d
# at 128 channels, 128x128, batch 2 take 416 ms against 184 by im2col; the depthwise slices, one
# NumPy pass over y per tap on one thread, 120 ms against 82 at 32@112, batch 8, though 27
# against 42 at 512@14: docs/performance.md).
CONV_ALGORITHMS = {"depthwise": None, "direct": None, "rotated_kernel": 1, "shifted_rows": None, "winograd": None}

# ---- convolution: im2col / col2im -------------------------------------------------------
#
# Output pixel (n, i, j) of a convolution looks at the input cells
#     h = SH*i - PH + DH*p,  p = 0..KH-1        w = SW*j - PW + DW*q,  q = 0..KW-1
# of every channel c. im2col copies those C*KH*KW values into ONE COLUMN of a per-sample matrix
# cols[n] (K, OH*OW), so that the convolution of sample n is the matrix product
# weight.reshape(F, K) @ cols[n] (F, OH*OW), already in NCHW order (see minidl/ops/conv.py).
# This is PyTorch's F.unfold layout. col2im is its adjoint.
# For a fixed channel c and kernel position (p, q), row (c, p, q) of cols[n] is one strided slice
# of the zero-padded input plane xpad[n, c] (xpad[h + PH, w + PW] = x[h, w]):
#     xpad[n, c, DH*p : DH*p + SH*(OH-1) + 1 : SH,  DW*q : DW*q + SW*(OW-1) + 1 : SW]   (OH, OW)
# so both kernels are a loop over the KH*KW positions, vectorised over N, C, OH, OW.


def _col2im_geometry(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW):
    """(OH, OW) of col2im's windows, after checking that cols has the shape they need (every
    backend's col2im starts here, so a wrong call fails the same way on each)."""
    N, C, H, W = x_shape
    OH = conv_output_size(H, KH, SH, PH, DH)
    OW = conv_output_size(W, KW, SW, PW, DW)
    if cols.shape != (N, C * KH * KW, OH * OW):
        raise ValueError(
            f"col2im: cols has shape {tuple(cols.shape)} but x_shape {tuple(x_shape)} with kernel "
            f"({KH}, {KW}), stride ({SH}, {SW}), padding ({PH}, {PW}), dilation ({DH}, {DW}) "
            f"needs ({N}, {C * KH * KW}, {OH * OW})"
        )
    return OH, OW


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW):
    r"""Unfold every convolution window of ``x`` into one column of a per-sample matrix.

    x (N,C,H,W)  ->  cols (N, C*KH*KW, OH*OW),   OH = (H + 2PH - DH(KH-1) - 1)//SH + 1 (same for W)
        cols[n, (c*KH + p)*KW + q, i*OW + j] = xpad[n, c, SH*i + DH*p, SW*j + DW*q]
    Rows are kernel taps (c, p, q) in that order, the order of ``weight.reshape(F, C*KH*KW)``;
    columns are the output pixels (i, j) in row-major order. So ``weight.reshape(F, -1) @
    cols[n]`` is the convolution of sample n, shaped (F, OH*OW): y[n] in NCHW order, no
    transpose needed. (PyTorch's ``F.unfold`` returns this same array.) The zero padding (PH
    rows top and bottom, PW columns left and right) is applied here. Memory: the result holds
    KH*KW/(SH*SW) times as many values as x.
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    OH = conv_output_size(H, KH, SH, PH, DH)
    OW = conv_output_size(W, KW, SW, PW, DW)
    xpad = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW))) if PH or PW else x
    cols = xp.empty((N, C, KH, KW, OH, OW), dtype=x.dtype)
    for p in range(KH):
        rows = slice(DH * p, DH * p + SH * (OH - 1) + 1, SH)  # row of tap p in every window
        for q in range(KW):
            columns = slice(DW * q, DW * q + SW * (OW - 1) + 1, SW)
            cols[:, :, p, q] = xpad[:, :, rows, columns]  # (N,C,OH,OW)
    return cols.reshape(N, C * KH * KW, OH * OW)


def col2im(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW):
    r"""The adjoint of :func:`im2col`: fold the columns back onto the image, ADDING overlaps.

    cols (N, C*KH*KW, OH*OW)  ->  dx x_shape = (N,C,H,W)
        dx[n, c, h, w] = sum of cols[n, (c*KH + p)*KW + q, i*OW + j]
                         over every (i, j, p, q) with SH*i + DH*p = h + PH, SW*j + DW*q = w + PW
    taken in the order p, then q (the loop below; the other backends keep it, so float results
    agree bit for bit). im2col copies a pixel into every window that contains it, so its
    adjoint sums the copies (<im2col(x), cols> = <x, col2im(cols)> for all x, cols). Entries
    that fell on the padding belong to no input pixel and are dropped.
    """
    xp = array_module(cols)
    N, C, H, W = x_shape
    OH, OW = _col2im_geometry(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW)
    cols = cols.reshape(N, C, KH, KW, OH, OW)
    dxpad = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=cols.dtype)
    for p in range(KH):
        rows = slice(DH * p, DH * p + SH * (OH - 1) + 1, SH)
        for q in range(KW):
            columns = slice(DW * q, DW * q + SW * (OW - 1) + 1, SW)
            # within one (p, q) the slice hits distinct cells, so a plain += is exact
            dxpad[:, :, rows, columns] += cols[:, :, p, q]
    if PH or PW:
        return xp.ascontiguousarray(dxpad[:, :, PH:PH + H, PW:PW + W])
    return dxpad


# ---- convolution: shifted rows (a stride-1 conv2d without im2col) ---------------------------

def stack_shifted_rows(x, r0, R, KH, KW, DH, DW, PT, PL, WC, G, out=None):
    r"""The matrix S of output rows r0 .. r0+R-1 of a stride-1 conv2d (minidl/ops/conv_shifted.py).

    x (N, C, H, W) -> S (N, G, KH*C/G, R*WC + DW*(KW-1)),
        S[n, g, p*C/G + c, m] = band[n, g*C/G + c, m + DH*p*WC]
    where band[n, c] is canvas rows r0 .. r0 + R + DH*(KH-1) - 1 of channel c, flattened row by
    row: the canvas is x zero padded, canvas[n, c, r, s] = x[n, c, r - PT, s - PL] where that
    lies inside x, else 0, WC columns wide (input columns past WC are never read). Rows are
    ordered (g, p, c): each group's channels, KH times, shifted DH canvas rows apart. The last
    DW*(KW-1) values of p = KH-1 lie past the band (only dropped output columns read them): 0.
    Memory: KH times the band, where im2col's columns hold KH*KW times the output pixels.
    ``out``: a C-contiguous array of S's shape and x's dtype to write S into (it is returned).
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    band_rows = R + DH * (KH - 1)
    band = xp.zeros((N, C, band_rows + 1, WC), dtype=x.dtype)  # +1 zero row: the last values
    k0, k1 = max(0, PT - r0), max(0, min(band_rows, PT + H - r0))  # band rows that hold rows of x
    w = max(0, min(W, WC - PL))  # columns of x inside the canvas
    if k0 < k1 and w > 0:
        band[:, :, k0:k1, PL:PL + w] = x[:, :, r0 + k0 - PT:r0 + k1 - PT, :w]
    flat = band.reshape(N, G, C // G, (band_rows + 1) * WC)
    width = R * WC + DW * (KW - 1)
    S = xp.empty((N, G, KH * (C // G), width), dtype=x.dtype) if out is None else out
    rows = S.reshape(N, G, KH, C // G, width)  # a view: row (p, c) of each group
    for p in range(KH):
        rows[:, :, p] = flat[..., DH * p * WC:DH * p * WC + width]
    return S


# ---- convolution: depthwise (one input channel per group, no im2col) ------------------------
#
# A depthwise conv2d (groups == C, weight (C*M, 1, KH, KW), M the channel multiplier) convolves
# each channel c with its own M kernels: output channel f = c*M + m reads input channel c only,
#     y[n, c*M + m, i, j] = sum_{p, q} w[c, m, p, q] * xpad[n, c, SH*i + DH*p, SW*j + DW*q]
# with w = weight.reshape(C, M, KH, KW). For a fixed tap (p, q) the cells it reads in all windows
# are one strided slice of the padded plane (as im2col's rows, above), so the convolution is a
# sum of KH*KW scaled slices: no columns, no matrix product (minidl/ops/conv_depthwise.py).
# (PH, PW) is the padding at the top and left; the bottom/right padding is whatever the output
# size (OH, OW) needs (cells past the input read 0), so 'same' with an even kernel works too.


def _depthwise_canvas(x, PH, PW, HC, WC):
    """x (N, C, H, W) -> the zero-padded canvas (N, C, HC, WC): canvas[.., h + PH, w + PW] = x[.., h, w]
    where that lies inside the canvas (input cells past it are never read)."""
    xp = array_module(x)
    N, C, H, W = x.shape
    canvas = xp.zeros((N, C, HC, WC), dtype=x.dtype)
    h, w = max(0, min(H, HC - PH)), max(0, min(W, WC - PW))
    canvas[:, :, PH:PH + h, PW:PW + w] = x[:, :, :h, :w]
    return canvas


def _depthwise_taps(KH, KW, SH, SW, DH, DW, OH, OW):
    """(p, q, rows, columns) for every tap, p then q: the canvas cells tap (p, q) reads in all windows."""
    return [(p, q, slice(DH * p, DH * p + SH * (OH - 1) + 1, SH), slice(DW * q, DW * q + SW * (OW - 1) + 1, SW))
            for p in range(KH) for q in range(KW)]


def depthwise_conv2d(x, weight, SH, SW, PH, PW, DH, DW, OH, OW, bias=None):
    r"""A depthwise conv2d: x (N, C, H, W), weight (C, M, KH, KW), bias (C*M,) or None -> y (N, C*M, OH, OW).

        y[n, c*M + m, i, j] = sum_{p, q} weight[c, m, p, q] * xpad[n, c, SH*i + DH*p, SW*j + DW*q]  (+ bias[c*M + m])
    summed tap by tap, p then q, from 0, the bias added last (the Numba kernel adds in the same
    order, so the two agree bit for bit). xpad is x with PH rows on top and PW columns on the left,
    zeros wherever a window reaches past x.
    """
    xp = array_module(x)
    N, C = x.shape[:2]
    _, M, KH, KW = weight.shape
    canvas = _depthwise_canvas(x, PH, PW, SH * (OH - 1) + DH * (KH - 1) + 1, SW * (OW - 1) + DW * (KW - 1) + 1)
    y = xp.zeros((N, C, M, OH, OW), dtype=x.dtype)
    for p, q, rows, columns in _depthwise_taps(KH, KW, SH, SW, DH, DW, OH, OW):
        # every window's tap (p, q), scaled by each of the channel's M kernels: (N, C, 1, OH, OW) * (C, M, 1, 1)
        y += canvas[:, :, None, rows, columns] * weight[:, :, p, q, None, None]
    if bias is not None:
        y += bias.reshape(C, M, 1, 1)
    return y.reshape(N, C * M, OH, OW)


def depthwise_conv2d_dx(dy, weight, x_shape, SH, SW, PH, PW, DH, DW, out=None):
    r"""The adjoint of :func:`depthwise_conv2d` in x: dy (N, C*M, OH, OW), weight (C, M, KH, KW) -> dx x_shape,
    written into ``out`` when given (the op passes a cached buffer).

        dx[n, c, h, w] = sum over (m, p, q, i, j) with SH*i + DH*p = h + PH, SW*j + DW*q = w + PW
                         of weight[c, m, p, q] * dy[n, c*M + m, i, j]
    Tap by tap, p then q, each tap's M terms summed first (m in order) and then added onto the
    cells it read; terms that fall on the padding are dropped.
    """
    xp = array_module(dy)
    N, C, H, W = x_shape
    _, M, KH, KW = weight.shape
    OH, OW = dy.shape[2:]
    HC, WC = SH * (OH - 1) + DH * (KH - 1) + 1, SW * (OW - 1) + DW * (KW - 1) + 1
    dcanvas = xp.zeros((N, C, max(HC, PH + H), max(WC, PW + W)), dtype=dy.dtype)
    dy = dy.reshape(N, C, M, OH, OW)
    for p, q, rows, columns in _depthwise_taps(KH, KW, SH, SW, DH, DW, OH, OW):
        term = dy[:, :, 0] * weight[:, 0, p, q, None, None]  # (N, C, OH, OW)
        for m in range(1, M):
            term = term + dy[:, :, m] * weight[:, m, p, q, None, None]
        # within one tap the slice hits distinct cells, so a plain += is exact
        dcanvas[:, :, rows, columns] += term
    if out is None:
        return xp.ascontiguousarray(dcanvas[:, :, PH:PH + H, PW:PW + W])
    out[...] = dcanvas[:, :, PH:PH + H, PW:PW + W]
    return out


def depthwise_conv2d_dweight(dy, x, KH, KW, SH, SW, PH, PW, DH, DW, dbias=None):
    r"""The weight gradient of :func:`depthwise_conv2d`: dy (N, C*M, OH, OW), x (N, C, H, W) -> (C, M, KH, KW).

        dweight[c, m, p, q] = sum_{n, i, j} dy[n, c*M + m, i, j] * xpad[n, c, SH*i + DH*p, SW*j + DW*q]
    one product of dy with tap (p, q)'s slice of the canvas, summed over n, i, j (in NumPy's
    order: the Numba kernel sums in another, so the two agree to rounding, not bit for bit).
    With ``dbias`` (C*M,), also the bias gradient into it: dbias[f] = sum_{n, i, j} dy[n, f, i, j]
    (the Numba kernel sums each filter's planes while it reads them for dweight).
    """
    xp = array_module(dy)
    N, C = x.shape[:2]
    F, OH, OW = dy.shape[1:]
    M = F // C
    canvas = _depthwise_canvas(x, PH, PW, SH * (OH - 1) + DH * (KH - 1) + 1, SW * (OW - 1) + DW * (KW - 1) + 1)
    dy = dy.reshape(N, C, M, OH, OW)
    dweight = xp.empty((C, M, KH, KW), dtype=dy.dtype)
    for p, q, rows, columns in _depthwise_taps(KH, KW, SH, SW, DH, DW, OH, OW):
        dweight[:, :, p, q] = (dy * canvas[:, :, None, rows, columns]).sum(axis=(0, 3, 4))  # (C, M)
    if dbias is not None:
        dbias[...] = dy.sum(axis=(0, 3, 4)).reshape(C * M)
    return dweight


# ---- convolution: direct (no columns, no matrix product) -----------------------------------
#
# A conv2d summed tap by tap (minidl/ops/conv_direct.py): for a fixed tap (p, q) every window
# reads the canvas (x zero padded, PT rows on top, PL columns on the left) from (DH*p, DW*q) on,
# every SH-th row and SW-th column, so with groups G (Cg = C/G input channels and Fg = F/G
# filters per group)
#     y[n, g*Fg + f, i, j] = sum_{c, p, q} weight[g*Fg + f, c, p, q] * canvas[n, g*Cg + c, SH*i + DH*p, SW*j + DW*q]
#     dweight[g*Fg + f, c, p, q] = sum_{n, i, j} dy[n, g*Fg + f, i, j] * canvas[n, g*Cg + c, SH*i + DH*p, SW*j + DW*q]
# Here: one product over the channels per tap. The Numba kernels compute every output pixel
# directly from a band of the canvas, without the products (numba_cpu.py).


def _direct_taps(x, KH, KW, SH, SW, PT, PL, DH, DW, G, OH, OW):
    """(p, q, X_pq) for every tap: X_pq (N, G, Cg, OH*OW) = canvas[n, g*Cg + c, SH*i + DH*p, SW*j + DW*q]."""
    N, C = x.shape[:2]
    canvas = _depthwise_canvas(x, PT, PL, SH * (OH - 1) + DH * (KH - 1) + 1, SW * (OW - 1) + DW * (KW - 1) + 1)
    for p, q, rows, columns in _depthwise_taps(KH, KW, SH, SW, DH, DW, OH, OW):
        tap = canvas[:, :, rows, columns]  # (N, C, OH, OW), a view
        yield p, q, tap.reshape(N, G, C // G, OH * OW)  # a copy: the view is not contiguous


def direct_conv2d(x, weight, PT, PL, DH, DW, G, OH, OW, out=None, stride=(1, 1)):
    r"""A conv2d without bias: x (N, C, H, W), weight (F, C/G, KH, KW) -> y (N, F, OH, OW).

        y[n, g*Fg + f, i, j] = sum_{c, p, q} weight[g*Fg + f, c, p, q] * canvas[n, g*Cg + c, SH*i + DH*p, SW*j + DW*q]
    (the section's formula, stride (SH, SW)): per tap, Y[n, g] += W_pq[g] @ X_pq[n, g], (Fg, Cg) @ (Cg, OH*OW).
    Written into ``out`` (N, F, OH, OW) when given (the op passes a cached buffer).
    """
    xp = array_module(x)
    N = x.shape[0]
    F, Cg, KH, KW = weight.shape
    w = weight.reshape(G, F // G, Cg, KH, KW)
    y = xp.zeros((N, G, F // G, OH * OW), dtype=x.dtype)
    for p, q, tap in _direct_taps(x, KH, KW, *stride, PT, PL, DH, DW, G, OH, OW):
        y += w[:, :, :, p, q] @ tap  # (G, Fg, Cg) @ (N, G, Cg, OH*OW)
    if out is None:
        return y.reshape(N, F, OH, OW)
    out[...] = y.reshape(N, F, OH, OW)
    return out


def direct_conv2d_dweight(dy, x, KH, KW, PT, PL, DH, DW, G, stride=(1, 1)):
    r"""The weight gradient of :func:`direct_conv2d`: dy (N, F, OH, OW), x (N, C, H, W) -> (F, C/G, KH, KW).

        dweight[g*Fg + f, c, p, q] = sum_{n, i, j} dy[n, g*Fg + f, i, j] * canvas[n, g*Cg + c, SH*i + DH*p, SW*j + DW*q]
    per tap, dW_pq[g] = sum_n dY[n, g] @ X_pq[n, g].T, (Fg, OH*OW) @ (OH*OW, Cg).
    """
    xp = array_module(dy)
    N, F, OH, OW = dy.shape
    C = x.shape[1]
    dy_g = dy.reshape(N, G, F // G, OH * OW)
    dweight = xp.empty((G, F // G, C // G, KH, KW), dtype=dy.dtype)
    for p, q, tap in _direct_taps(x, KH, KW, *stride, PT, PL, DH, DW, G, OH, OW):
        dweight[:, :, :, p, q] = (dy_g @ tap.swapaxes(-1, -2)).sum(axis=0)  # (N, G, Fg, Cg) summed over n
    return dweight.reshape(F, C // G, KH, KW)


# ---- convolution: Winograd F(4x4, 3x3) tiles ----------------------------------------------
#
# Winograd's minimal filtering algorithm (Lavin & Gray 2016; the op is minidl/ops/conv_winograd.py)
# computes a 4x4 tile of a 3x3 stride-1 convolution's output from the 6x6 input patch d under it:
#     y_tile = AT @ [(G @ w @ G.T) * (BT @ d @ BT.T)] @ AT.T          (4, 4)
# with * elementwise: 36 multiplications per tile and channel instead of 16*9 = 144. Output tile
# (n, ti, tj) holds y[n, :, 4ti : 4ti+4, 4tj : 4tj+4]; its patch is rows 4ti - PT .. 4ti - PT + 5
# and columns 4tj - PL .. 4tj - PL + 5 of x (zero outside x). Tiles are numbered
#     t = (n*TH + ti)*TW + tj,      TH = ceil(OH/4),  TW = ceil(OW/4)
# and every kernel below handles the tiles t0 <= t < t1 (a block), so the ops can bound memory.
# Per Winograd point (a, b) the products over channels are matrix products (the op does them):
#     M[6a+b] = U[6a+b] @ V[6a+b]      (F, C) @ (C, tiles)     U = G w G.T,  V = BT d BT.T
# The four kernels here are the transforms of V and M and their adjoints (for backward).
# A backend may leave these four kernels out (the CuPy one does, for now): its CONV_ALGORITHMS
# table then does not offer the winograd route (below, and minidl/backend/algorithms.py).
WINOGRAD_KERNELS = ("winograd_input_tiles", "winograd_input_tiles_adjoint",
                    "winograd_output_tiles", "winograd_output_tiles_adjoint")
# Kernels that only speed an op up; a backend may leave them out and the op takes another path.
DEPTHWISE_KERNELS = ("depthwise_conv2d", "depthwise_conv2d_dx", "depthwise_conv2d_dweight")
DIRECT_KERNELS = ("direct_conv2d", "direct_conv2d_dweight")
OPTIONAL_KERNELS = WINOGRAD_KERNELS + DEPTHWISE_KERNELS + DIRECT_KERNELS + ("stack_shifted_rows",)


def _winograd_tiles(TH, TW, t0, t1):
    """(n, ti, tj) of tiles t0 .. t1-1, each an int array of length t1 - t0."""
    n, rest = np.divmod(np.arange(t0, t1), TH * TW)
    ti, tj = np.divmod(rest, TW)
    return n, ti, tj


def _padded_rows_and_columns(TH, TW):
    """The rows and columns of xpad that some tile reads: m*TH + 2, m*TW + 2."""
    return WINOGRAD_TILE * TH + 2, WINOGRAD_TILE * TW + 2


def winograd_input_tiles(x, PT, PL, TH, TW, t0, t1):
    r"""The input transform of tiles t0 .. t1-1: V (36, C, t1 - t0).

        V[6a + b, c, t] = (BT @ d @ BT.T)[a, b],   d = xpad[n, c, 4ti : 4ti + 6, 4tj : 4tj + 6]
    where xpad[n, c, r, s] = x[n, c, r - PT, s - PL] (0 outside x) and t = (n*TH + ti)*TW + tj.
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    m, p = WINOGRAD_TILE, len(WINOGRAD_BT)  # tile and patch side
    HP, WP = _padded_rows_and_columns(TH, TW)
    xpad = xp.zeros((N, C, HP, WP), dtype=x.dtype)
    h, w = max(0, min(H, HP - PT)), max(0, min(W, WP - PL))
    xpad[:, :, PT:PT + h, PL:PL + w] = x[:, :, :h, :w]
    n, ti, tj = _winograd_tiles(TH, TW, t0, t1)
    d = xp.empty((p, p, C, t1 - t0), dtype=x.dtype)
    for i in range(p):
        for j in range(p):
            d[i, j] = xpad[n, :, m * ti + i, m * tj + j].T  # (C, tiles)
    BT = xp.asarray(WINOGRAD_BT, dtype=x.dtype)
    return xp.einsum("ai,ijct,bj->abct", BT, d, BT, optimize=True).reshape(p * p, C, t1 - t0)


def winograd_input_tiles_adjoint(dV, PT, PL, TH, TW, t0, dx):
    r"""dx += the adjoint of :func:`winograd_input_tiles` applied to dV (36, C, tiles), in place.

    V = BT d BT.T is linear in d, so its adjoint is dd = BT.T @ dV_t @ BT per tile and channel;
    patches of neighbouring tiles overlap (by 2 rows or columns), so the pixels they share
    ADD the gradients of every tile that read them; what falls on the padding is dropped.
    """
    xp = array_module(dV)
    N, C, H, W = dx.shape
    m, p = WINOGRAD_TILE, len(WINOGRAD_BT)
    t1 = t0 + dV.shape[2]
    BT = xp.asarray(WINOGRAD_BT, dtype=dV.dtype)
    dd = xp.einsum("ai,abct,bj->ijct", BT, dV.reshape(p, p, C, -1), BT, optimize=True)  # (6, 6, C, tiles)
    n, ti, tj = _winograd_tiles(TH, TW, t0, t1)
    HP, WP = _padded_rows_and_columns(TH, TW)
    dxpad = xp.zeros((N, C, HP, WP), dtype=dV.dtype)
    for i in range(p):
        for j in range(p):
            # for one (i, j) every tile hits a different cell, so a plain += is exact
            dxpad[n, :, m * ti + i, m * tj + j] += dd[i, j].T
    h, w = max(0, min(H, HP - PT)), max(0, min(W, WP - PL))
    dx[:, :, :h, :w] += dxpad[:, :, PT:PT + h, PL:PL + w]


def winograd_output_tiles(M, TH, TW, t0, y):
    r"""The output transform of tiles t0 .. t0 + tiles - 1, written into y (N, F, OH, OW).

        y[n, f, 4ti + a, 4tj + b] = (AT @ mt @ AT.T)[a, b],   mt[i, j] = M[6i + j, f, t]
    for a, b in 0..3; the cells of the last tiles that fall past OH or OW are not written.
    """
    xp = array_module(M)
    N, F, OH, OW = y.shape
    m, p = WINOGRAD_TILE, len(WINOGRAD_BT)
    t1 = t0 + M.shape[2]
    AT = xp.asarray(WINOGRAD_AT, dtype=M.dtype)
    tiles = xp.einsum("ai,ijft,bj->abft", AT, M.reshape(p, p, F, -1), AT, optimize=True)  # (4, 4, F, tiles)
    n, ti, tj = _winograd_tiles(TH, TW, t0, t1)
    for a in range(m):
        for b in range(m):
            h, w = m * ti + a, m * tj + b
            inside = (h < OH) & (w < OW)
            y[n[inside], :, h[inside], w[inside]] = tiles[a, b][:, inside].T  # (tiles inside, F)


def winograd_output_tiles_adjoint(dy, TH, TW, t0, t1):
    r"""The adjoint of :func:`winograd_output_tiles` for tiles t0 .. t1-1: dM (36, F, t1 - t0).

        dM[6i + j, f, t] = (AT.T @ g @ AT)[i, j],   g[a, b] = dy[n, f, 4ti + a, 4tj + b] (0 past dy)
    """
    xp = array_module(dy)
    N, F, OH, OW = dy.shape
    m, p = WINOGRAD_TILE, len(WINOGRAD_BT)
    n, ti, tj = _winograd_tiles(TH, TW, t0, t1)
    g = xp.zeros((m, m, F, t1 - t0), dtype=dy.dtype)
    for a in range(m):
        for b in range(m):
            h, w = m * ti + a, m * tj + b
            inside = (h < OH) & (w < OW)
            g[a, b][:, inside] = dy[n[inside], :, h[inside], w[inside]].T
    AT = xp.asarray(WINOGRAD_AT, dtype=dy.dtype)
    return xp.einsum("ai,abft,bj->ijft", AT, g, AT, optimize=True).reshape(p * p, F, t1 - t0)


# ---- pooling ------------------------------------------------------------------------------
#
# The window of output cell (i, j) covers the input cells
#     h = SH*i - PH + DH*p,  p = 0..KH-1        w = SW*j - PW + DW*q,  q = 0..KW-1
# The kernels pad the input once (xpad[h + PH, w + PW] = x[h, w]) and loop over the KH*KW
# window positions (p, q). For a fixed (p, q) the cells that position picks in ALL windows
# form one strided slice of xpad,
#     xpad[:, :, DH*p : DH*p + SH*(OH-1) + 1 : SH,  DW*q : DW*q + SW*(OW-1) + 1 : SW]   (N,C,OH,OW)
# so every step is vectorised over N, C, OH, OW. With ceil_mode the last window may reach past
# the bottom/right padding: the padded array is made large enough, and those extra cells are
# filled like padding (but never counted as padding by avg-pool's divisor).


def _pool_window(p, D, S, O):
    """The cells that window position p picks in all O windows along one axis (padded coords)."""
    return slice(D * p, D * p + S * (O - 1) + 1, S)


def _pool_padded(x, PH, PW, rows, cols, fill):
    """x (N,C,H,W) placed at offset (PH, PW) inside a (N,C,rows,cols) array of ``fill``."""
    N, C, H, W = x.shape
    xpad = array_module(x).full((N, C, rows, cols), fill, dtype=x.dtype)
    xpad[:, :, PH:PH + H, PW:PW + W] = x
    return xpad


def _pool_extent(size, K, S, P, D, O):
    """Length of the padded axis: the input plus both paddings, or more if the last window
    (ceil_mode) reaches further: its last cell sits at S*(O-1) + D*(K-1) in padded coords."""
    return max(size + 2 * P, S * (O - 1) + D * (K - 1) + 1)


def maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    r"""Max-pool with the argmax of every window.

    x (N,C,H,W)  ->  y (N,C,OH,OW),  argmax (N,C,OH,OW) int64
        y[n,c,i,j]      = max_{p,q} xpad[n,c, SH*i + DH*p, SW*j + DW*q]      (padding = -inf)
        argmax[n,c,i,j] = h*W + w of the winning cell (h, w): a flat index into the unpadded
                          H x W plane of x, exactly PyTorch's ``return_indices`` format.
    Scan order and ties, as PyTorch's CPU kernel: the positions are visited p-major, then q,
    starting from "maximum -inf at the window's first in-bounds cell"; a cell replaces the
    current maximum when it is strictly greater, or NaN. Hence the FIRST of several equal
    maxima wins (a later equal value does not replace it), the LAST NaN of a window wins (NaN
    propagates), and a window whose cells are all -inf reports its first in-bounds cell.
    Every window must hold at least one input cell (the caller checks).
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    rows = _pool_extent(H, KH, SH, PH, DH, OH)
    cols = _pool_extent(W, KW, SW, PW, DW, OW)
    xpad = _pool_padded(x, PH, PW, rows, cols, -np.inf)
    h0 = SH * xp.arange(OH) - PH  # (OH,) input row of position p = 0 of each window
    w0 = SW * xp.arange(OW) - PW  # (OW,)
    # PyTorch's starting argmax: the first in-bounds cell (skip whole dilation steps of padding)
    h_first = h0 + DH * ((xp.maximum(-h0, 0) + DH - 1) // DH)
    w_first = w0 + DW * ((xp.maximum(-w0, 0) + DW - 1) // DW)
    y = xp.full((N, C, OH, OW), -np.inf, dtype=x.dtype)
    argmax = xp.empty((N, C, OH, OW), dtype=np.int64)
    argmax[...] = h_first[:, None] * W + w_first[None, :]
    for p in range(KH):
        for q in range(KW):
            value = xpad[:, :, _pool_window(p, DH, SH, OH), _pool_window(q, DW, SW, OW)]
            index = (h0 + DH * p)[:, None] * W + (w0 + DW * q)[None, :]  # (OH,OW) flat h*W + w
            wins = (value > y) | xp.isnan(value)  # strict: an equal later value does not win
            y = xp.where(wins, value, y)
            argmax = xp.where(wins, index, argmax)
    return y, argmax


def maxpool2d_backward(dy, argmax, x_shape):
    r"""The adjoint of "gather the winners": scatter-ADD dy to the cells that won.

    dy, argmax (N,C,OH,OW)  ->  dx x_shape = (N,C,H,W)
        dx[n,c].flat[argmax[n,c,i,j]] += dy[n,c,i,j]      for every (n, c, i, j)
    It must add: when stride < kernel, windows overlap and one cell can win several of them.
    """
    xp = array_module(dy)
    N, C, H, W = x_shape
    dx = xp.zeros((N * C, H * W), dtype=dy.dtype)
    plane = xp.arange(N * C)[:, None]  # (N*C, 1): row of dx that each argmax row indexes into
    OH, OW = argmax.shape[2:]
    xp.add.at(dx, (plane, argmax.reshape(N * C, OH * OW)), dy.reshape(N * C, OH * OW))
    return dx.reshape(x_shape)


def _avgpool2d_divisor(H, W, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad, divisor_override,
                       dtype):
    r"""(OH, OW): what each window sum is divided by, with PyTorch's rules.

    Along one axis the window of output i spans [start, end) with start = S*i - P,
    end = min(start + K, size + P): a window is cut at the far edge of the PADDED input (only
    ceil_mode windows reach past it, and the cells past it are never counted). Then
        count_include_pad=True:   divisor = (end - start) along H  *  (end - start) along W
        count_include_pad=False:  the same with [start, end) clipped to the input [0, size)
        divisor_override=d:       divisor = d for every window (it wins over both)
    """
    if divisor_override is not None:
        return np.full((OH, OW), divisor_override, dtype=dtype)

    def counts(size, K, S, P, O):
        start = S * np.arange(O) - P
        end = np.minimum(start + K, size + P)
        if count_include_pad:
            return end - start
        return np.minimum(end, size) - np.maximum(start, 0)

    return np.outer(counts(H, KH, SH, PH, OH), counts(W, KW, SW, PW, OW)).astype(dtype)


def avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad, divisor_override):
    r"""Average-pool: the sum of each window divided by its divisor.

    x (N,C,H,W)  ->  y (N,C,OH,OW)
        y[n,c,i,j] = (1 / divisor[i,j]) * sum_{p,q} xpad[n,c, SH*i + p, SW*j + q]   (padding = 0)
    with divisor as in ``_avgpool2d_divisor`` (count_include_pad, divisor_override).
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    rows = _pool_extent(H, KH, SH, PH, 1, OH)
    cols = _pool_extent(W, KW, SW, PW, 1, OW)
    xpad = _pool_padded(x, PH, PW, rows, cols, 0)
    total = xp.zeros((N, C, OH, OW), dtype=x.dtype)
    for p in range(KH):
        for q in range(KW):
            total += xpad[:, :, _pool_window(p, 1, SH, OH), _pool_window(q, 1, SW, OW)]
    divisor = _avgpool2d_divisor(H, W, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad,
                                 divisor_override, x.dtype)
    return total / xp.asarray(divisor)


def avgpool2d_backward(dy, x_shape, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad,
                       divisor_override):
    r"""dx for ``avgpool2d_forward``: every cell of window (i, j) receives dy[i,j] / divisor[i,j].

    dy (N,C,OH,OW)  ->  dx x_shape = (N,C,H,W)
        dxpad[n,c, SH*i + p, SW*j + q] += dy[n,c,i,j] / divisor[i,j]    for all i, j, p, q
    then the padding is cut off (its gradient goes nowhere). Overlapping windows add.
    """
    xp = array_module(dy)
    N, C, H, W = x_shape
    rows = _pool_extent(H, KH, SH, PH, 1, OH)
    cols = _pool_extent(W, KW, SW, PW, 1, OW)
    divisor = _avgpool2d_divisor(H, W, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad,
                                 divisor_override, dy.dtype)
    share = dy / xp.asarray(divisor)  # (N,C,OH,OW) what each cell of window (i, j) receives
    dxpad = xp.zeros((N, C, rows, cols), dtype=dy.dtype)
    for p in range(KH):
        for q in range(KW):
            # within one (p, q) the slice hits distinct cells, so += is safe here
            dxpad[:, :, _pool_window(p, 1, SH, OH), _pool_window(q, 1, SW, OW)] += share
    return xp.ascontiguousarray(dxpad[:, :, PH:PH + H, PW:PW + W])
