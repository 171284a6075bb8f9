r"""conv2d 3x3, stride 1, by Winograd's minimal filtering F(2x2, 3x3): 2.25x fewer multiplications.

im2col turns a 3x3 convolution into one matrix product of 9*C*F multiply-adds per output
pixel. Winograd's algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016) computes each 2x2 tile of the output from the 4x4 input patch d under it,
per (filter f, channel c) pair, as

    y_tile = AT @ [ (G @ w[f,c] @ G.T)  *  (BT @ d[c] @ BT.T) ] @ AT.T           (2, 2)
                    U[f,c]: (4, 4)          V[c]: (4, 4)          * elementwise

summed over c: 16 products per tile instead of 4*9 = 36. (BT, G, AT: minidl/backend/reference.py;
they hold 0, +-1 and 1/2 only, so the transforms are a few additions.) The sum over channels
commutes with AT @ . @ AT.T, so for each of the 16 Winograd points (a, b) it is a matrix product

    M[ab] = U[ab] @ V[ab]       (F, C) @ (C, tiles)      ab = 4a + b
    y     = output_tiles(M)     AT @ M_tile @ AT.T per tile and filter

16 products of (F, C) by (C, tiles), where im2col makes one of (F, 9C) by (9C, 4*tiles): 16/36
of the arithmetic. The transforms (``winograd_*`` kernels) cost memory passes instead, so this
pays only where the products dominate, with many channels, and only with fast transforms: each
kernel backend says from how many channels on (its ``WINOGRAD_MIN_CHANNELS``; the Numba one
from 128, the reference none, as its readable transforms are slower than its im2col), and
:func:`set_winograd_min_channels` overrides that for every backend.

Backward. Every step above is linear, so each gradient is the adjoint step (transpose) run
backwards (derivation: docs/gradients/conv2d_winograd.md):

    dM[ab]   = output_tiles_adjoint(dy)       AT.T @ dy_tile @ AT      (16, F, tiles)
    dU[ab]   = sum over tiles dM[ab] @ V[ab].T                          (16, F, C)
    dw[f,c]  = G.T @ dU[f,c] @ G                                        (3, 3)
    dV[ab]   = U[ab].T @ dM[ab]                                         (16, C, tiles)
    dx       = input_tiles_adjoint(dV)        BT.T @ dV_tile @ BT, overlapping patches ADD

The two weight transforms are one small matrix product each: with GG = kron(G, G) (16, 9),
vec(G @ w @ G.T) = GG @ vec(w) and its adjoint vec(G.T @ dU @ G) = GG.T @ vec(dU).

Blocks. Tiles are processed in blocks (:func:`tile_blocks`), so V and M never hold more than
about TILE_BLOCK_BYTES; backward recomputes a block's V from x instead of keeping it. (Keeping
every block from forward was measured: the U-Net step got slower, 7.8 s against 7.3 s at base 64,
because kept tiles are fresh memory, 4x the input, and first touches of memory are slow.)
"""
import numpy as np

from ..backend import array_module
from ..backend.reference import OPTIONAL_KERNELS, WINOGRAD_G
from . import conv  # for its column-buffer limit (conv imports this module too; used at call time)

WINOGRAD_MIN_CHANNELS = None  # None: each backend's own threshold (see the module docstring)
TILE_BLOCK_BYTES = 16 * 2**20  # V and M of one block together
MIN_BLOCK_TILES = 512  # fewer tiles per block make thin products and pay the kernels' per-call cost more often


def set_winograd_min_channels(channels=None):
    """Use Winograd for a 3x3 stride-1 conv2d when in and out channels are both >= ``channels``,
    on every backend that has the tile kernels.

    ``None`` restores the default: each backend's own ``WINOGRAD_MIN_CHANNELS`` (Numba: 128,
    where the U-Net step at base 32 was fastest; the reference backend: never). 1 uses it for
    every such conv; a huge number never. Returns the previous value, to restore it.
    """
    global WINOGRAD_MIN_CHANNELS
    if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels < 1):
        raise ValueError(f"set_winograd_min_channels: channels must be an int >= 1 or None, got {channels!r}")
    previous, WINOGRAD_MIN_CHANNELS = WINOGRAD_MIN_CHANNELS, channels
    return previous


def min_channels(kern):
    """The channel threshold in force for kernel module ``kern`` (None: never Winograd)."""
    if WINOGRAD_MIN_CHANNELS is not None:
        return WINOGRAD_MIN_CHANNELS
    return getattr(kern, "WINOGRAD_MIN_CHANNELS", None)


def winograd_applies(kern, x_shape, weight_shape, stride, dilation, groups):
    """Whether conv2d takes the Winograd path: a 3x3 kernel, stride 1, no dilation, no groups,
    enough channels, and a backend that has the tile kernels."""
    F, C, KH, KW = weight_shape
    if (KH, KW) != (3, 3) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1) or groups != 1:
        return False  # (decided without asking the kernel module)
    threshold = min_channels(kern)
    return (threshold is not None and min(C, F) >= threshold
            and all(hasattr(kern, name) for name in OPTIONAL_KERNELS))


def tile_grid(out_size):
    """(TH, TW): the 2x2 output tiles covering (OH, OW), the last row/column possibly cut."""
    OH, OW = out_size
    return (OH + 1) // 2, (OW + 1) // 2


def tile_blocks(tiles, C, F, itemsize):
    """[t0, t1) ranges covering ``tiles`` tiles, each block's V and M about TILE_BLOCK_BYTES
    (at least MIN_BLOCK_TILES tiles, at most the column-buffer limit of minidl.ops.conv)."""
    bytes_per_tile = 16 * (C + F) * itemsize
    target = min(TILE_BLOCK_BYTES, conv.get_column_buffer_limit())
    step = max(1, min(max(MIN_BLOCK_TILES, target // bytes_per_tile),
                      conv.get_column_buffer_limit() // bytes_per_tile))
    return [(t0, min(t0 + step, tiles)) for t0 in range(0, tiles, step)]


def _kron_g(dtype):
    """GG = kron(G, G) (16, 9): vec(G @ w @ G.T) = GG @ vec(w) for a 3x3 w (row-major vec)."""
    return np.kron(WINOGRAD_G, WINOGRAD_G).astype(dtype)


def transform_weight(weight):
    """U (16, F, C): U[4a + b, f, c] = (G @ weight[f, c] @ G.T)[a, b]."""
    F, C = weight.shape[:2]
    xp = array_module(weight)
    GG = xp.asarray(_kron_g(weight.dtype))
    return (GG @ weight.reshape(F * C, 9).T).reshape(16, F, C)  # (16, 9) @ (9, F*C)


def transform_weight_adjoint(dU):
    """dweight (F, C, 3, 3) from dU (16, F, C): dweight[f, c] = G.T @ dU[:, f, c] (4x4) @ G."""
    _, F, C = dU.shape
    xp = array_module(dU)
    GG = xp.asarray(_kron_g(dU.dtype))
    return (GG.T @ dU.reshape(16, F * C)).T.reshape(F, C, 3, 3)  # (9, 16) @ (16, F*C), transposed


def winograd_forward(kern, x, weight, bias, top_left, out_size):
    """y (N, F, OH, OW) of a 3x3 stride-1 conv2d with top/left padding ``top_left``."""
    xp = array_module(x)
    N = x.shape[0]
    F, C = weight.shape[:2]
    (PT, PL), (TH, TW) = top_left, tile_grid(out_size)
    U = transform_weight(weight)  # (16, F, C)
    y = xp.empty((N, F) + tuple(out_size), dtype=x.dtype)
    for t0, t1 in tile_blocks(N * TH * TW, C, F, x.itemsize):
        V = kern.winograd_input_tiles(x, PT, PL, TH, TW, t0, t1)  # (16, C, tiles)
        M = U @ V  # (16, F, C) @ (16, C, tiles) -> (16, F, tiles): one product per Winograd point
        kern.winograd_output_tiles(M, TH, TW, t0, y)
        del V, M
    if bias is not None:
        y += bias.reshape(F, 1, 1)
    return y


def winograd_backward(kern, dy, x, x_shape, weight, top_left, needs_x, needs_weight):
    """(dx or None, dweight or None) of :func:`winograd_forward`, given dy (N, F, OH, OW).

    ``x`` is needed only for dweight (it may be None otherwise); ``x_shape`` is dx's shape."""
    xp = array_module(dy)
    N, C = x_shape[:2]
    F = weight.shape[0]
    (PT, PL), (TH, TW) = top_left, tile_grid(dy.shape[2:])
    U_t = transform_weight(weight).swapaxes(1, 2) if needs_x else None  # U[ab].T (16, C, F), a view
    dU = xp.zeros((16, F, C), dtype=dy.dtype) if needs_weight else None
    dx = xp.zeros(x_shape, dtype=dy.dtype) if needs_x else None  # the tiles' gradients add into it
    for t0, t1 in tile_blocks(N * TH * TW, C, F, dy.itemsize):
        dM = kern.winograd_output_tiles_adjoint(dy, TH, TW, t0, t1)  # (16, F, tiles)
        if needs_weight:
            V = kern.winograd_input_tiles(x, PT, PL, TH, TW, t0, t1)  # (16, C, tiles), rebuilt
            dU += dM @ V.swapaxes(1, 2)  # (16, F, tiles) @ (16, tiles, C)
            del V
        if needs_x:
            kern.winograd_input_tiles_adjoint(U_t @ dM, PT, PL, TH, TW, t0, dx)  # (16, C, F) @ (16, F, tiles)
        del dM
    dweight = transform_weight_adjoint(dU) if needs_weight else None
    return dx, dweight
