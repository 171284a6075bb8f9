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
input KH times, where im2col copies it KH*KW times into (KH*KW*C, OH*OW) (what that saves:
docs/performance.md). Groups: each group's channels form their own S and Wq. The backend kernel
``stack_shifted_rows`` builds S, zero padding included.

Backward (:func:`backward_by_shifted_rows`): dx of a stride-1 conv2d is a stride-1 conv2d of
dy with the rotated kernel (minidl/ops/conv_rotated.py), so the same products on the stacked
rows of dy compute it, and the weight gradient is the adjoint of those products on the same S
(derivation there and in docs/gradients/conv2d.md). Without dx, dweight is the textbook's.

Blocks as im2col's (:func:`conv_blocks`): whole samples or bands of R output rows of one
sample, whose S is built just before its products, while it is in cache; S and the products'
outputs live in buffers reused from block to block (:class:`Scratch`).
"""
import math

from ..backend import allocator, array_module, kernels_for
from .conv import Conv2d, Lowering, conv_blocks
from .conv_rotated import rotated_lowering, rotated_weight, unrotate


class Conv2dShiftedRows(Conv2d):
    """conv2d by products on shifted rows, forward and backward (module docstring)."""

    @staticmethod
    def why_not(x_shape, weight_shape, stride, padding, dilation, groups):
        """None when this route can take the convolution, else why not."""
        lowering = Lowering.of_conv2d(x_shape, weight_shape, stride, padding, dilation)
        if lowering.stride != (1, 1):
            return "it needs stride 1"
        if lowering.tiles:
            return "the windows tile the input: im2col needs no copies at all"
        if rotated_lowering(lowering) is None:
            return "its dx needs padding at most D*(K-1)"
        return None

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        lowering = Lowering.of_conv2d(x.shape, weight.shape, stride, padding, dilation)
        kern, xp = kernels_for(x), array_module(x)
        x = xp.ascontiguousarray(x)
        N, C = x.shape[:2]
        F, _, KH, _ = weight.shape
        OH, OW = lowering.out_size
        y = xp.empty((N, F, OH, OW), dtype=x.dtype)
        blocks = conv_blocks(N, OH, OW, KH * C * x.itemsize)  # S holds KH*C values per pixel
        conv_by_shifted_rows(kern, lowering, x, shifted_weights(weight, groups), blocks, y, bias)
        self._save_for_backward(x, weight, lowering, groups)
        return y

    def backward(self, dy):
        s = self.saved
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        if not needs_x:  # dweight alone: the textbook's, from the columns of x
            return Conv2d.backward(self, dy)
        xp, kern, G = array_module(dy), kernels_for(dy), s.groups
        dy = xp.ascontiguousarray(dy)
        dbias = dy.sum(axis=(0, 2, 3)) if needs_bias else None
        N, C, H, W = s.x_shape
        F, Cg, KH, KW = s.weight.shape
        blocks = conv_blocks(N, H, W, KH * F * dy.itemsize)  # S of dy holds KH*F values per pixel
        dx, dweight_rot = backward_by_shifted_rows(
            kern, rotated_lowering(s.lowering), dy, s.x if needs_weight else None,
            rotated_weight(s.weight, G).reshape(C, F // G, KH, KW), G, blocks, needs_weight)
        dweight = unrotate(dweight_rot, s.weight.shape, G) if needs_weight else None
        return dx, dweight, dbias, None, None, None, None


def shifted_weights(weight, G):
    """weight (F, C/G, KH, KW) -> Wq (KW, G, F/G, KH*C/G): Wq[q, g][f, (p, c)] = weight[g*F/G + f, c, p, q]."""
    F, Cg, KH, KW = weight.shape
    w = weight.reshape(G, F // G, Cg, KH, KW).transpose(4, 0, 1, 3, 2)  # (KW, G, F/G, KH, C/G)
    return array_module(weight).ascontiguousarray(w).reshape(KW, G, F // G, KH * Cg)


class Scratch:
    """Arrays reused from block to block instead of allocated per block: memory the process
    has just written is in cache and mapped, a fresh allocation may be neither."""

    def __init__(self, xp, dtype):
        self.xp, self.dtype, self.buffers = xp, dtype, {}

    def get(self, name, shape):
        """A C-contiguous array of ``shape``: the start of buffer ``name``, grown when too small."""
        size = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[name] = self.xp.empty(size, dtype=self.dtype)
        return buffer[:size].reshape(shape)


def stacked_rows(kern, lowering, x, rows, G, scratch):
    """S of the output rows ``rows``, x (n, C, H, W) -> (n, G, KH*C/G, R*WC + D*(KW-1)), R = len(rows),
    by the backend's ``stack_shifted_rows`` (zero padding included, see minidl/backend/reference.py)."""
    (KH, KW), (DH, DW), (PT, PL) = lowering.kernel, lowering.dilation, lowering.top_left
    n, C = x.shape[:2]
    R, WC = rows.stop - rows.start, lowering.canvas[1]
    S = scratch.get("S", (n, G, KH * (C // G), R * WC + DW * (KW - 1)))
    # stride 1: output row i's windows start at canvas row i, so the band starts at rows.start
    return kern.stack_shifted_rows(x, rows.start, R, KH, KW, DH, DW, PT, PL, WC, G, out=S)


def shifted_weights_adjoint(dweight_q, weight_shape):
    """The inverse of :func:`shifted_weights`: dWq (KW, G, F/G, KH*C/G) -> (F, C/G, KH, KW)."""
    F, Cg, KH, KW = weight_shape
    _, G, Fg, _ = dweight_q.shape
    dw = dweight_q.reshape(KW, G, Fg, KH, Cg).transpose(1, 2, 4, 3, 0)  # (G, F/G, C/G, KH, KW)
    return array_module(dweight_q).ascontiguousarray(dw).reshape(weight_shape)


def _products(weight_q, S, wide, DW, scratch):
    """sum_q Wq[q] @ S[..., DW*q : DW*q + wide]: (KW, G, F/G, KH*C/G), (n, G, KH*C/G, >= wide)
    -> (n, G, F/G, wide), KW products on shifted views of S, summed."""
    xp = array_module(S)
    shape = S.shape[:2] + (weight_q.shape[2], wide)  # (n, G, F/G, wide)
    y_wide, term = scratch.get("y_wide", shape), scratch.get("term", shape)
    xp.matmul(weight_q[0], S[..., :wide], out=y_wide)
    for q in range(1, weight_q.shape[0]):
        xp.matmul(weight_q[q], S[..., DW * q:DW * q + wide], out=term)
        y_wide += term
    return y_wide


def conv_by_shifted_rows(kern, lowering, x, weight_q, blocks, y, bias=None):
    """y (N, F, OH, OW) = the stride-1 conv2d of x (N, C, H, W) with Wq (:func:`shifted_weights`)
    (+ bias (F,)), written block by block into ``y``; returns y."""
    xp = array_module(x)
    G, Fg = weight_q.shape[1:3]
    OW, WC = lowering.out_size[1], lowering.canvas[1]
    scratch = Scratch(xp, x.dtype)
    for samples, rows in blocks:
        S = stacked_rows(kern, lowering, x[samples], rows, G, scratch)  # (n, G, KH*C/G, R*WC + DW*(KW-1))
        n, R = S.shape[0], rows.stop - rows.start
        # y_wide[n, g] = sum_q Wq[q, g] @ S[n, g][:, DW*q : DW*q + R*WC]: (G, F/G, KH*C/G) @ (n, G, KH*C/G, R*WC)
        y_wide = _products(weight_q, S, R * WC, lowering.dilation[1], scratch)  # (n, G, F/G, R*WC)
        y_wide = y_wide.reshape(n, G * Fg, R, WC)[..., :OW]  # (n, F, R, OW): the wrapped columns dropped
        if bias is not None:
            xp.add(y_wide, bias.reshape(G * Fg, 1, 1), out=y[samples, :, rows])
        else:
            y[samples, :, rows] = y_wide
    return y


def backward_by_shifted_rows(kern, lowering, dy, x, weight_rot, G, blocks, needs_weight):
    r"""dx, and the gradient of the rotated weight, of a stride-1 conv2d by shifted rows of dy.

    ``lowering`` is the one of dx as a conv2d of dy (conv_rotated.rotated_lowering), with the
    rotated kernel ``weight_rot`` (C, F/G, KH, KW) (docs/gradients/conv2d.md):

        dx = the stride-1 conv2d of dy with weight_rot       (shifted rows of dy, as forward)
        dWrot[c, f, p, q] = sum_{n, h, w} x[n, c, h, w] * dypad[n, f, h + D*p, w + D*q]

    With x_wide = x on dx's wide pixels (x[c, h, w] at l = h*WC + w, zero in the dropped
    columns w >= W) and the same S of dy, dypad[f, h + D*p, w + D*q] = S[(p, f), l + D*q], so
        dWq[q][c, (p, f)] = sum_l x_wide[c, l] * S[(p, f), l + D*q]  =  x_wide @ S[:, D*q : D*q + L].T
    the adjoint of forward's products, one S per block serving dx and dweight. Returns
    (dx (N, C, H, W), dWrot (C, F/G, KH, KW) or None).
    """
    xp = array_module(dy)
    N, C, (H, W) = dy.shape[0], weight_rot.shape[0], lowering.out_size  # dx's shape
    DW, WC = lowering.dilation[1], lowering.canvas[1]
    weight_q = shifted_weights(weight_rot, G)  # (KW, G, C/G, KH*F/G)
    dweight_q = xp.zeros_like(weight_q) if needs_weight else None
    dx = allocator.empty((N, C, H, W), dy.dtype, xp)  # a cached buffer: fresh memory is slow (allocator.py)
    scratch = Scratch(xp, dy.dtype)
    for samples, rows in blocks:
        S = stacked_rows(kern, lowering, dy[samples], rows, G, scratch)  # (n, G, KH*F/G, R*WC + DW*(KW-1))
        n, R = S.shape[0], rows.stop - rows.start
        wide = R * WC
        dx_wide = _products(weight_q, S, wide, DW, scratch)  # (n, G, C/G, R*WC)
        dx[samples, :, rows] = dx_wide.reshape(n, C, R, WC)[..., :W]
        if needs_weight:
            x_wide = scratch.get("x_wide", (n, C, R, WC))
            x_wide[..., :W] = x[samples, :, rows]
            x_wide[..., W:] = 0  # the dropped columns: no term of dweight
            x_wide = x_wide.reshape(n, G, C // G, wide)  # (n, G, C/G, R*WC)
            for q in range(weight_q.shape[0]):
                for i in range(n):  # sample by sample: no (n, G, C/G, KH*F/G) temporary
                    # dWq[q, g] += x_wide[i, g] @ S[i, g][:, DW*q : DW*q + L].T: (G, C/G, L) @ (G, L, KH*F/G)
                    dweight_q[q] += x_wide[i] @ S[i, ..., DW * q:DW * q + wide].swapaxes(-1, -2)
    dweight_rot = shifted_weights_adjoint(dweight_q, weight_rot.shape) if needs_weight else None
    return dx, dweight_rot
