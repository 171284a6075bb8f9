r"""A stride-1 conv2d as KW matrix products on shifted rows: im2col without most of its copies.

With stride 1, output pixel (i, j) reads canvas pixels (i + D*p, j + D*q), p < KH, q < KW,
where the canvas is the zero-padded input, WC = OW + D*(KW-1) columns wide (minidl/ops/conv.py,
:class:`Lowering`). Flatten the canvas row-major, ``flat[c, r*WC + s] = canvas[c, r, s]``, and
give output pixel (i, j) the flat index l = i*WC + j, as if the output were WC wide too:
then the pixel it reads is a SHIFT of l,

    canvas[c, i + D*p, j + D*q] = flat[c, l + D*p*WC + D*q]

(for j < OW; the columns j = OW .. WC-1 of this wide output read wrapped-around pixels and are
dropped at the end). So, with l running over the R*WC wide pixels of R output rows,

    y[f, l] = sum_{p, q, c} weight[f, c, p, q] * flat[c, l + D*p*WC + D*q]
            = sum_q Wq @ S[:, D*q : D*q + R*WC]                    q = 0 .. KW-1

    S[(p, c), m] = flat[c, m + D*p*WC]         (KH*C, R*WC + D*(KW-1))   the rows stacked KH times
    Wq[f, (p, c)] = weight[f, c, p, q]         (F, KH*C)

KW products, each of inner dimension KH*C, on SHIFTED VIEWS of one matrix S: S copies the
input KH times, where im2col copies it KH*KW times into (KH*KW*C, OH*OW). (Copying it 9 times
costs more than the 3 products' extra passes over the output: measured on 2 threads, batch 4,
conv2d forward of 64 -> 32 channels at 256x256, 75 ms against 132 ms with im2col; 32 -> 32 at
256x256 38 against 62 ms.) Groups: each group's channels form their own S and Wq.

Blocks as im2col's (:func:`conv_blocks`): whole samples or bands of R output rows of one
sample, whose S is built just before its products, while it is in cache.
"""
from ..backend import array_module


def applies(kern, lowering, channels_per_group):
    """Whether this route is taken: a stride-1 convolution whose windows do not merely tile
    the input (a 1x1 conv needs no copies at all, see :class:`Lowering`), on a backend that
    asks for it, with at least its ``SHIFTED_ROWS_MIN_CHANNELS`` input channels per group
    (fewer make products too thin for BLAS: their inner dimension is KH*C/G, not KH*KW*C/G)."""
    if lowering.stride != (1, 1) or lowering.tiles:
        return False  # (decided without asking the kernel module)
    threshold = getattr(kern, "SHIFTED_ROWS_MIN_CHANNELS", None)
    return threshold is not None and channels_per_group >= threshold


def shifted_weights(weight, G):
    """weight (F, C/G, KH, KW) -> Wq (KW, G, F/G, KH*C/G): Wq[q, g][f, (p, c)] = weight[g*F/G + f, c, p, q]."""
    F, Cg, KH, KW = weight.shape
    w = weight.reshape(G, F // G, Cg, KH, KW).transpose(4, 0, 1, 3, 2)  # (KW, G, F/G, KH, C/G)
    return array_module(weight).ascontiguousarray(w).reshape(KW, G, F // G, KH * Cg)


def stacked_rows(lowering, x, rows, G):
    """S of the output rows ``rows``, x (n, C, H, W) -> (n, G, KH*C/G, R*WC + D*(KW-1)), R = len(rows)."""
    xp = array_module(x)
    (KH, KW), (DH, DW) = lowering.kernel, lowering.dilation
    WC = lowering.canvas[1]
    n, C = x.shape[:2]
    band = lowering.canvas_band(x, *lowering._band(rows))  # (n, C, R + DH*(KH-1), WC)
    flat = band.reshape(n, G, C // G, -1)  # (n, G, C/G, (R + DH*(KH-1))*WC), flat[c, r*WC + s]
    width = (rows.stop - rows.start) * WC + DW * (KW - 1)
    S = xp.empty((n, G, KH, C // G, width), dtype=x.dtype)
    for p in range(KH):
        start = DH * p * WC
        part = flat[..., start:start + width]
        S[..., p, :, :part.shape[-1]] = part
        # the last D*(KW-1) values of the last p lie past the band; only dropped columns read them
        S[..., p, :, part.shape[-1]:] = 0
    return S.reshape(n, G, KH * (C // G), width)  # rows ordered (p, c), as Wq's columns


def conv_by_shifted_rows(lowering, x, weight_q, blocks, y, bias=None):
    """y (N, F, OH, OW) = the stride-1 conv2d of x (N, C, H, W) with Wq (:func:`shifted_weights`)
    (+ bias (F,)), written block by block into ``y``; returns y."""
    xp = array_module(x)
    KW, G, Fg, _ = weight_q.shape
    DW = lowering.dilation[1]
    OH, OW = lowering.out_size
    WC = lowering.canvas[1]
    for samples, rows in blocks:
        S = stacked_rows(lowering, x[samples], rows, G)  # (n, G, KH*C/G, R*WC + DW*(KW-1))
        n, R = S.shape[0], rows.stop - rows.start
        wide = R * WC  # the block's output pixels, WC per row
        # y_wide[n, g] = sum_q Wq[q, g] @ S[n, g][:, DW*q : DW*q + R*WC]: (G, F/G, KH*C/G) @ (n, G, KH*C/G, R*WC)
        y_wide = xp.matmul(weight_q[0], S[..., :wide])  # (n, G, F/G, R*WC)
        term = xp.empty_like(y_wide)
        for q in range(1, KW):
            xp.matmul(weight_q[q], S[..., DW * q:DW * q + wide], out=term)
            y_wide += term
        y_wide = y_wide.reshape(n, G * Fg, R, WC)[..., :OW]  # (n, F, R, OW): the wrapped columns dropped
        if bias is not None:
            xp.add(y_wide, bias.reshape(G * Fg, 1, 1), out=y[samples, :, rows])
        else:
            y[samples, :, rows] = y_wide
    return y
