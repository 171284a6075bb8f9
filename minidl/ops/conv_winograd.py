r"""conv2d 3x3, stride 1, by Winograd's minimal filtering F(4x4, 3x3): 4x fewer multiplications.

im2col turns a 3x3 convolution into one matrix product of 9*C*F multiply-adds per output
pixel. Winograd's algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016) computes each 4x4 tile of the output from the 6x6 input patch d under it,
per (filter f, channel c) pair, as

    y_tile = AT @ [ (G @ w[f,c] @ G.T)  *  (BT @ d[c] @ BT.T) ] @ AT.T           (4, 4)
                    U[f,c]: (6, 6)          V[c]: (6, 6)          * elementwise

summed over c: 36 products per tile instead of 16*9 = 144. (BT, G, AT: minidl/backend/winograd_matrices.py;
docs/gradients/conv2d_winograd.md derives them, and the smaller F(2x2, 3x3) first.) The sum over
channels commutes with AT @ . @ AT.T, so for each of the 36 Winograd points (a, b) it is a
matrix product

    M[ab] = U[ab] @ V[ab]       (F, C) @ (C, tiles)      ab = 6a + b
    y     = output_tiles(M)     AT @ M_tile @ AT.T per tile and filter

36 products of (F, C) by (C, tiles), where im2col makes one of (F, 9C) by (9C, 16*tiles): 36/144
of the arithmetic. The transforms (``winograd_*`` kernels) cost memory passes instead, so this
pays only where the products dominate, with many channels, and only with fast transforms: each
kernel backend's ``CONV_ALGORITHMS`` table says from how many channels on (the Numba one from
a geometric mean of 90 input and output channels, both 64 or more: 128 -> 64, not 64 -> 64;
the reference only when forced, as its readable transforms are slower than its im2col).

Backward. Every step above is linear, so each gradient is the adjoint step (transpose) run
backwards (derivation: docs/gradients/conv2d_winograd.md):

    dM[ab]   = output_tiles_adjoint(dy)       AT.T @ dy_tile @ AT      (36, F, tiles)
    dU[ab]   = sum over tiles dM[ab] @ V[ab].T                          (36, F, C)
    dw[f,c]  = G.T @ dU[f,c] @ G                                        (3, 3)
    dV[ab]   = U[ab].T @ dM[ab]                                         (36, C, tiles)
    dx       = input_tiles_adjoint(dV)        BT.T @ dV_tile @ BT, overlapping patches ADD

The two weight transforms are one small matrix product each: with GG = kron(G, G) (36, 9),
vec(G @ w @ G.T) = GG @ vec(w) and its adjoint vec(G.T @ dU @ G) = GG.T @ vec(dU).

Rounding. G holds 1/6 and 1/24 and AT up to 8, so float32 results carry more rounding error
than im2col's: about 1e-5 of the largest value against 5e-7 at U-Net sizes (measured against
float64, docs/gradients/conv2d_winograd.md); float64 agrees with im2col to 1e-12.

Blocks. Tiles are processed in blocks (:func:`tile_blocks`), so V and M never hold more than
about TILE_BLOCK_BYTES; backward recomputes a block's V from x instead of keeping it, and makes
the transformed weight U and its gradient dU (each 4x the weight) for a chunk of the input
channels at a time (:func:`channel_chunks`), so that neither exists whole: at 1024 channels
each is 144 MiB (measurements: docs/performance.md).
"""
import numpy as np

from ..autograd import Function
from ..backend import allocator, array_module, kernels_for
from ..backend.geometry import conv_output_size
from ..backend.winograd_matrices import G as WINOGRAD_G
from ..backend.winograd_matrices import POINTS, TILE
from .conv import get_column_buffer_limit

TILE_BLOCK_BYTES = 16 * 2**20  # V and M of one block together
MIN_BLOCK_TILES = 512  # fewer tiles per block make thin products and pay the kernels' per-call cost more often


class Conv2dWinograd(Function):
    """conv2d 3x3, stride 1, by Winograd's F(4x4, 3x3), forward and backward (module docstring).

    Shapes: x (N,C,H,W)  weight (F,C,3,3)  bias (F,) or None  y (N,F,OH,OW)."""

    @staticmethod
    def why_not(x_shape, weight_shape, stride, padding, dilation, groups):
        """None when this route can take the convolution, else why not."""
        if tuple(weight_shape[2:]) != (3, 3) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1):
            return "it computes 3x3 convolutions with stride 1 and no dilation"
        if groups != 1:
            return "it does not take groups"
        return None

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        (PT, PB), (PL, PR) = padding
        H, W = x.shape[2:]
        out_size = (conv_output_size(H, 3, 1, (PT, PB)), conv_output_size(W, 3, 1, (PL, PR)))
        x = array_module(x).ascontiguousarray(x)
        self.save(x=x if self.needs_input_grad[1] else None, weight=weight, x_shape=x.shape,
                  top_left=(PT, PL))
        return winograd_forward(kernels_for(x), x, weight, bias, (PT, PL), out_size)

    def backward(self, dy):
        s = self.saved
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        dy = array_module(dy).ascontiguousarray(dy)
        dbias = dy.sum(axis=(0, 2, 3)) if needs_bias else None
        dx, dweight = winograd_backward(kernels_for(dy), dy, s.x, s.x_shape, s.weight, s.top_left,
                                        needs_x, needs_weight)
        return dx, dweight, dbias, None, None, None, None


def tile_grid(out_size):
    """(TH, TW): the 4x4 output tiles covering (OH, OW), the last row/column possibly cut."""
    OH, OW = out_size
    return -(-OH // TILE), -(-OW // TILE)


def tile_blocks(tiles, C, F, itemsize):
    """[t0, t1) ranges covering ``tiles`` tiles, each block's V and M about TILE_BLOCK_BYTES
    (at least MIN_BLOCK_TILES tiles, at most the column-buffer limit of minidl.ops.conv)."""
    bytes_per_tile = POINTS * (C + F) * itemsize
    target = min(TILE_BLOCK_BYTES, get_column_buffer_limit())
    step = max(1, min(max(MIN_BLOCK_TILES, target // bytes_per_tile),
                      get_column_buffer_limit() // bytes_per_tile))
    return [(t0, min(t0 + step, tiles)) for t0 in range(0, tiles, step)]


def _kron_g(dtype):
    """GG = kron(G, G) (36, 9): vec(G @ w @ G.T) = GG @ vec(w) for a 3x3 w (row-major vec)."""
    return np.kron(WINOGRAD_G, WINOGRAD_G).astype(dtype)


def transform_weight(weight):
    """U (36, F, C): U[6a + b, f, c] = (G @ weight[f, c] @ G.T)[a, b]."""
    F, C = weight.shape[:2]
    xp = array_module(weight)
    GG = xp.asarray(_kron_g(weight.dtype))
    return (GG @ weight.reshape(F * C, 9).T).reshape(POINTS, F, C)  # (36, 9) @ (9, F*C)


def transform_weight_adjoint(dU):
    """dweight (F, C, 3, 3) from dU (36, F, C): dweight[f, c] = G.T @ dU[:, f, c] (6x6) @ G."""
    _, F, C = dU.shape
    xp = array_module(dU)
    GG = xp.asarray(_kron_g(dU.dtype))
    return (dU.reshape(POINTS, F * C).T @ GG).reshape(F, C, 3, 3)  # (F*C, 36) @ (36, 9)


def channel_chunks(F, C, itemsize):
    """Slices of the C input channels, each one's U[:, :, chunk] (36, F, chunk) about
    TILE_BLOCK_BYTES at most: backward's weight transforms and their gradients, one chunk at a
    time (at 1024 channels U is 144 MiB, 4x the weight)."""
    largest = max(1, min(TILE_BLOCK_BYTES, get_column_buffer_limit()) // (POINTS * F * itemsize))
    step = -(-C // -(-C // largest))  # as many chunks as needed, of equal sizes (no thin last one)
    return [slice(c0, min(c0 + step, C)) for c0 in range(0, C, step)]


def winograd_forward(kern, x, weight, bias, top_left, out_size):
    """y (N, F, OH, OW) of a 3x3 stride-1 conv2d with top/left padding ``top_left``."""
    xp = array_module(x)
    N = x.shape[0]
    F, C = weight.shape[:2]
    (PT, PL), (TH, TW) = top_left, tile_grid(out_size)
    U = transform_weight(weight)  # (36, F, C)
    y = xp.empty((N, F) + tuple(out_size), dtype=x.dtype)
    for t0, t1 in tile_blocks(N * TH * TW, C, F, x.itemsize):
        V = kern.winograd_input_tiles(x, PT, PL, TH, TW, t0, t1)  # (36, C, tiles)
        M = U @ V  # (36, F, C) @ (36, C, tiles) -> (36, F, tiles): one product per Winograd point
        kern.winograd_output_tiles(M, TH, TW, t0, y)
        del V, M
    if bias is not None:
        y += bias.reshape(F, 1, 1)
    return y


def _backward_temporary_bytes(weight_shape, blocks, chunks, itemsize):
    """About the most bytes :func:`winograd_backward` holds at once outside the allocator's cache
    (dy, x and dx are in it or live already): dweight, a block's dM with dV or V, a chunk of U or
    dU and dU's weight-domain sum."""
    F, C = weight_shape[:2]
    tiles = max(t1 - t0 for t0, t1 in blocks)
    chunk = max(c.stop - c.start for c in chunks)
    return itemsize * (F * C * 9 + POINTS * tiles * (F + C) + POINTS * F * chunk + F * chunk * 9)


def winograd_backward(kern, dy, x, x_shape, weight, top_left, needs_x, needs_weight):
    """(dx or None, dweight or None) of :func:`winograd_forward`, given dy (N, F, OH, OW).

    ``x`` is needed only for dweight (it may be None otherwise); ``x_shape`` is dx's shape.
    The input channels go in chunks (:func:`channel_chunks`): U and dU, each 4x the weight,
    exist one chunk at a time; dweight sums each block's and chunk's G.T @ dU @ G."""
    xp = array_module(dy)
    N, C = x_shape[:2]
    F = weight.shape[0]
    (PT, PL), (TH, TW) = top_left, tile_grid(dy.shape[2:])
    chunks = channel_chunks(F, C, dy.itemsize)
    blocks = tile_blocks(N * TH * TW, C, F, dy.itemsize)
    dx = None
    if needs_x:  # the tiles' gradients add into it; from the cache (a freed gradient's memory)
        dx = allocator.empty(x_shape, dy.dtype, xp)
        dx[...] = 0
    if xp is np:
        allocator.make_room(_backward_temporary_bytes(weight.shape, blocks, chunks, dy.itemsize))
    # U[ab].T (36, C, F), a view; computed once when it is one chunk, else per chunk and block
    U_t = transform_weight(weight).swapaxes(1, 2) if needs_x and len(chunks) == 1 else None
    dweight = xp.zeros(weight.shape, dtype=dy.dtype) if needs_weight else None
    for t0, t1 in blocks:
        dM = kern.winograd_output_tiles_adjoint(dy, TH, TW, t0, t1)  # (36, F, tiles)
        if needs_x:
            dV = xp.empty((POINTS, C, t1 - t0), dtype=dy.dtype)  # (36, C, tiles)
            for c in chunks:
                U_c = U_t if U_t is not None else transform_weight(weight[:, c]).swapaxes(1, 2)
                xp.matmul(U_c, dM, out=dV[:, c])  # dV[ab][c] = U[ab][:, c].T @ dM[ab]: (36, C/k, F) @ (36, F, tiles)
                del U_c
            if t1 == blocks[-1][1]:
                U_t = None  # its last use: U is freed before dU (as large) is built
            kern.winograd_input_tiles_adjoint(dV, PT, PL, TH, TW, t0, dx)
            del dV
        if needs_weight:
            V = kern.winograd_input_tiles(x, PT, PL, TH, TW, t0, t1)  # (36, C, tiles), rebuilt
            for c in chunks:
                dU = dM @ V[:, c].swapaxes(1, 2)  # dU[ab][:, c] of this block: (36, F, tiles) @ (36, tiles, C/k)
                dweight[:, c] += transform_weight_adjoint(dU)
                del dU
            del V
        del dM
    return dx, dweight
