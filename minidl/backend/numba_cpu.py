r"""Numba kernels: the reference kernels (``reference.py``) compiled to parallel machine code.

Every public function here but the two batch-norm fusions at the end (their specification is the
array code of BatchNorm in minidl/ops/norm.py) has the signature, the result and the docstring formula of the
function of the same name in ``reference.py``, the specification: read that one to learn
what a kernel computes. This file only says how the loops are arranged for speed. Each
kernel is two parts:

    a thin Python wrapper   the reference's signature; allocates the output, computes sizes
    a compiled loop nest    ``_name``: indexing only, every array it touches passed in

Loops. The outer loop is a ``prange`` over an axis whose iterations write DISJOINT parts of
the output (rows (n, c, p, q) of ``cols``; the (n, c) planes of ``dx`` and of pooling), so
no two threads write the same location, nothing needs a lock, and the result does not depend
on the number of threads. Sums (col2im, the pooling backwards) add their terms in the same
order as the reference (kernel position p, then q), in the array's dtype (float32 stays
float32), and ``fastmath`` is off, so the results are bitwise the reference's. The exception is
the Winograd tile transforms: they apply the separable 6x6 and 4x4 transforms row by row, where the
reference contracts both sides in one einsum, so they agree to rounding (1e-12 in float64 in
tests/backend/test_winograd_kernels.py), not bit for bit; so are the direct convolution and
batch-norm kernels, whose sums are split into vector lanes (their sections say how).

Compilation. Numba compiles a kernel on its first call for each dtype (float32, float64):
``import minidl`` does not import Numba, and the first convolution of a process pays roughly
a second per kernel. ``cache=True`` stores the machine code on disk, so the next process
loads it instead (see ``python -m benchmarks.numba_compile``). The cache goes to
``__pycache__`` next to this file (also for an editable install); if that directory is not
writable Numba falls back to a per-user directory (``~/.cache/numba`` style), and the
environment variable ``NUMBA_CACHE_DIR`` puts it anywhere. The cache is keyed on this file's
modification time, so an edit recompiles once.

Threads. Numba starts one thread per core; :func:`start_threads`, which
``minidl.backend.kernel_module("numba")`` calls once before the first kernel runs, picks the
``tbb`` threading layer (Intel TBB, the ``tbb`` package: the calling thread takes a share of each
loop), else Numba's own ``workqueue``, never GNU OpenMP, whose runtime PyTorch's wheel shares
(unless ``NUMBA_THREADING_LAYER`` or ``NUMBA_THREADING_LAYER_PRIORITY`` is set; an OpenMP chosen
that way waits passively unless ``OMP_WAIT_POLICY`` is set; why, with measurements:
docs/performance.md, "Threads"). A child process forked from the one that imported this module
(a DataLoader worker) runs every kernel on its calling thread (the serial twins below): a thread
pool does not survive a fork under every layer.

Division follows NumPy (``error_model="numpy"``): no ZeroDivisionError checks inside the loops
(no divisor here is ever zero).
"""
import ctypes
import functools
import os
import types
from importlib import metadata

import numba
import numpy as np
from numba import prange

# one geometry, written once
from . import allocator, simd, winograd_matrices
from .geometry import conv_output_size
from .reference import _avgpool2d_divisor, _col2im_geometry

# The convolution routes of minidl/backend/algorithms.py that conv2d takes on this backend, from
# this many channels on (input channels per group for shifted rows; for Winograd the geometric
# mean of in and out, once both have 64 (minidl/ops/conv_algorithms.py); in and out per group for
# direct, which takes 4 to 127 (a strided conv's input channels times its SH*SW phase planes)
# where Winograd does not come first; depthwise: every depthwise conv2d of 2 channels or more):
# where each became faster than the others in measurements (docs/performance.md).
CONV_ALGORITHMS = {"depthwise": 2, "direct": (4, 128), "rotated_kernel": 1, "shifted_rows": 16, "winograd": 90}

_JIT = dict(parallel=True, cache=True, fastmath=False, error_model="numpy")

# ---- one thread or all ---------------------------------------------------------------------
#
# Handing a parallel loop to Numba's threads costs up to 0.1-0.2 ms where they sleep between
# kernels (the workqueue layer; TBB's, start_threads below, cost less while awake), more than a
# small kernel's whole work on one thread: ReLU of 2x64x32x32 took 0.15 ms through workqueue's
# threads and 0.013 ms on the calling thread.
# So every parallel kernel has a serial twin, the same Python function compiled without
# ``parallel`` (its prange runs as range: each task's loop, in the same order), which the
# wrappers call for small work: below SERIAL_VALUES values in the largest array a loop moves
# through memory, or below SERIAL_FLOPS floating-point operations for the direct convolution's
# arithmetic, or below SERIAL_WINDOW_CELLS window cells for pooling (a cell, a compare or an add
# with its bounds tests, costs ~5 ns: 30-50 times a value of an elementwise loop) and for the
# depthwise convolution (a cell, a tap's multiply-add: its threads won at every size measured,
# from 2**14 cells; counted by values, 512 channels of 8x14x14 ran on one thread). All three are
# crossovers measured on a 2-vCPU machine (docs/performance.md; SERIAL_FLOPS and
# SERIAL_WINDOW_CELLS on TBB's threads, which wake faster than workqueue's).
SERIAL_VALUES = 2**20
SERIAL_FLOPS = 2**23
SERIAL_WINDOW_CELLS = 2**13
_serial_twins = {}


def _serial_twin(kernel):
    """``kernel`` (a parallel Numba kernel) compiled without ``parallel``, once, under a name of its
    own (so that the two never share an entry of Numba's on-disk cache)."""
    if kernel not in _serial_twins:
        f = kernel.py_func
        twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__, f.__closure__)
        twin.__qualname__, twin.__doc__ = f.__qualname__ + "_serial", f.__doc__
        options = {k: v for k, v in kernel.targetoptions.items() if k not in ("parallel", "nopython")}
        _serial_twins[kernel] = numba.njit(cache=True, **options)(twin)
    return _serial_twins[kernel]


def _by_values(kernel, *arrays):
    """``kernel``, or its serial twin if the largest of ``arrays`` has fewer than SERIAL_VALUES values
    (or in a forked child: :func:`_pool_is_ours`)."""
    return kernel if max(a.size for a in arrays) >= SERIAL_VALUES and _pool_is_ours() else _serial_twin(kernel)


def _by_flops(kernel, flops):
    """``kernel``, or its serial twin for fewer than SERIAL_FLOPS floating-point operations (or in a
    forked child: :func:`_pool_is_ours`)."""
    return kernel if flops >= SERIAL_FLOPS and _pool_is_ours() else _serial_twin(kernel)


def _by_window_cells(kernel, cells):
    """``kernel``, or its serial twin below SERIAL_WINDOW_CELLS cells of pooling or depthwise windows
    (outputs times window size; or in a forked child: :func:`_pool_is_ours`)."""
    return kernel if cells >= SERIAL_WINDOW_CELLS and _pool_is_ours() else _serial_twin(kernel)


_forked = False  # True in a child forked from the process that imported this module


def _note_fork():
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_note_fork)


def _pool_is_ours():
    """Whether this process may use Numba's thread pool: not in a child forked from the process
    that imported this module, where the pool may be gone (GNU OpenMP's is: Numba ends such a
    child with "fork() called from a process already using GNU OpenMP") and every kernel runs
    serial."""
    return not _forked


def _load_tbb():
    """Load the TBB library of the ``tbb`` package, if installed, so that Numba's TBB layer finds
    it: pip puts it in the environment's lib directory, where the system's loader does not look."""
    try:
        files = metadata.files("tbb") or []
    except metadata.PackageNotFoundError:
        return
    for file in files:
        if file.name in ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll"):
            try:
                ctypes.CDLL(str(file.locate()), mode=ctypes.RTLD_GLOBAL)
            except OSError:  # a broken install: Numba falls back to workqueue
                pass
            return


def start_threads():
    """Start Numba's thread pool: TBB, else workqueue, unless chosen already.

    Called once by ``minidl.backend.kernel_module("numba")`` before the first kernel runs
    (why these choices: docs/performance.md, "Threads")."""
    _load_tbb()  # (also for a TBB chosen through the environment)
    if "NUMBA_THREADING_LAYER" not in os.environ and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
        numba.config.THREADING_LAYER = "default"  # the first of the priority list that loads
        numba.config.THREADING_LAYER_PRIORITY = ["tbb", "workqueue", "omp"]  # (no effect once the pool runs)
    if "OMP_WAIT_POLICY" in os.environ:
        numba.get_num_threads()
        return
    os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        numba.get_num_threads()  # loads the threading layer: OpenMP reads the variable now
    finally:
        del os.environ["OMP_WAIT_POLICY"]



# ---- convolution: im2col / col2im ---------------------------------------------------------
#
# Along one axis, kernel tap q of window j reads input column w = SW*j + off with
# off = DW*q - PW. The windows whose tap q lands inside the input are one range of j:
#     0 <= SW*j + off < W   <=>   j0 <= j < j1,   j0 = ceil(-off/SW),  j1 = floor((W-1-off)/SW) + 1
# so the innermost loops run over that range without a bounds test, and the rest is padding.

# Rows shorter than this are copied by a loop: a slice makes an array view (with a reference
# count) per row, which costs more than copying a few values (images of width < ~16).
SHORT_RUN = 16


@numba.njit(cache=True)
def _valid_windows(off, S, size, O):
    """[j0, j1): the windows j < O whose tap at S*j + off lies in [0, size)."""
    j0 = min(max(0, -(off // S)), O)  # -(off // S) = ceil(-off / S)
    j1 = min(max(0, (size - 1 - off) // S + 1), O) if off <= size - 1 else 0
    return j0, max(j0, j1)


@numba.njit(**_JIT)
def _im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, cols):
    """cols[n, (c*KH + p)*KW + q, i*OW + j] = xpad[n, c, SH*i + DH*p, SW*j + DW*q]."""
    N, C, H, W = x.shape
    K = C * KH * KW
    for nk in prange(N * K):  # one thread per row (n, c, p, q) of cols: OH*OW contiguous values
        n, k = nk // K, nk % K
        c, p, q = k // (KH * KW), (k // KW) % KH, k % KW
        j0, j1 = _valid_windows(DW * q - PW, SW, W, OW)  # the same for every window row i
        for i in range(OH):
            h = SH * i - PH + DH * p
            first = i * OW  # the column of cols of pixel (i, 0)
            if h < 0 or h >= H:  # tap p of this window row is in the padding
                for j in range(OW):
                    cols[n, k, first + j] = 0
                continue
            cols[n, k, first:first + j0] = 0
            if SW == 1 and j1 - j0 >= SHORT_RUN:  # a long contiguous run of the input row: a slice copy
                cols[n, k, first + j0:first + j1] = x[n, c, h, j0 + DW * q - PW:j1 + DW * q - PW]
            else:
                for j in range(j0, j1):
                    cols[n, k, first + j] = x[n, c, h, SW * j + DW * q - PW]
            cols[n, k, first + j1:first + OW] = 0


@numba.njit(**_JIT)
def _col2im(cols, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, dx):
    """dx[n, c, h, w] = sum of cols[n, (c*KH + p)*KW + q, i*OW + j]  where SH*i + DH*p = h + PH, ...

    Each thread owns whole planes (n, c) of dx: it zeroes the plane, then adds the KH*KW rows
    (c, p, q) of cols onto it, p then q, so every pixel adds its terms in the reference's order.
    """
    N, C, H, W = dx.shape
    for nc in prange(N * C):  # one thread per plane (n, c)
        n, c = nc // C, nc % C
        for h in range(H):
            for w in range(W):
                dx[n, c, h, w] = 0
        for p in range(KH):
            i0, i1 = _valid_windows(DH * p - PH, SH, H, OH)  # window rows whose tap p is inside
            for q in range(KW):
                k = (c * KH + p) * KW + q
                j0, j1 = _valid_windows(DW * q - PW, SW, W, OW)
                for i in range(i0, i1):
                    h = SH * i - PH + DH * p
                    first = i * OW
                    if SW == 1 and j1 - j0 >= SHORT_RUN:  # a long contiguous run of the row: a slice add
                        w0 = j0 + DW * q - PW
                        dx[n, c, h, w0:w0 + j1 - j0] += cols[n, k, first + j0:first + j1]
                    else:
                        for j in range(j0, j1):
                            dx[n, c, h, SW * j + DW * q - PW] += cols[n, k, first + j]


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW):
    """See ``reference.im2col``: x (N,C,H,W) -> cols (N, C*KH*KW, OH*OW)."""
    N, C, H, W = x.shape
    OH = conv_output_size(H, KH, SH, PH, DH)
    OW = conv_output_size(W, KW, SW, PW, DW)
    cols = np.empty((N, C * KH * KW, OH * OW), dtype=x.dtype)
    _by_values(_im2col, cols)(np.ascontiguousarray(x), KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, cols)
    return cols


def col2im(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW):
    """See ``reference.col2im``: cols (N, C*KH*KW, OH*OW) -> dx x_shape, overlaps ADDED."""
    N, C, H, W = x_shape
    OH, OW = _col2im_geometry(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW)
    dx = np.empty((N, C, H, W), dtype=cols.dtype)  # every plane is zeroed by its thread
    _by_values(_col2im, cols)(np.ascontiguousarray(cols), KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, dx)
    return dx


@numba.njit(**_JIT)
def _stack_shifted_rows(x, r0, R, KH, DH, PT, PL, WC, G, S):
    """S[n, g, p*C/G + c, m] = band[n, g*C/G + c, m + DH*p*WC] (reference.stack_shifted_rows):
    band row k of S's row p is canvas row r0 + DH*p + k, written to S[..., k*WC : (k+1)*WC]."""
    N, C, H, W = x.shape
    Cg, width = C // G, S.shape[-1]
    band_rows = R + DH * (KH - 1)
    w = max(0, min(W, WC - PL))  # columns of x inside the canvas
    for nc in prange(N * C):  # one thread per channel (n, c): its KH rows of S
        n, ch = nc // C, nc % C
        g, c = ch // Cg, ch % Cg
        for p in range(KH):
            row = p * Cg + c
            for k in range(R + 1):  # R rows and the start of one more (the last DW*(KW-1) values)
                m0, m1 = k * WC, min((k + 1) * WC, width)
                if m0 >= m1:
                    break
                band_row = DH * p + k
                h = r0 + band_row - PT  # the row of x in this canvas row
                if band_row >= band_rows or h < 0 or h >= H:  # past the band, or padding
                    S[n, g, row, m0:m1] = 0
                    continue
                # canvas columns 0 .. PL-1 and PL+w .. are padding, PL .. PL+w-1 hold x[.., h, :w]
                a, b = min(m0 + PL, m1), min(m0 + PL + w, m1)
                S[n, g, row, m0:a] = 0
                S[n, g, row, a:b] = x[n, ch, h, :b - a]
                S[n, g, row, b:m1] = 0


def stack_shifted_rows(x, r0, R, KH, KW, DH, DW, PT, PL, WC, G, out=None):
    """See ``reference.stack_shifted_rows``: x (N,C,H,W) -> S (N, G, KH*C/G, R*WC + DW*(KW-1))."""
    N, C = x.shape[:2]
    S = np.empty((N, G, KH * (C // G), R * WC + DW * (KW - 1)), dtype=x.dtype) if out is None else out
    _by_values(_stack_shifted_rows, S)(np.ascontiguousarray(x), r0, R, KH, DH, PT, PL, WC, G, S)
    return S



# ---- convolution: windows that tile the image (kernel == stride) -------------------------------
#
# Extra routes beside Lowering._unfold_tiles / _fold_tiles in minidl/ops/conv.py (their
# specification: the same copies, bit for bit): one (sample, channel) plane per task, each
# (p, q) row of the columns written in one pass.


@numba.njit(parallel=True, cache=True)
def _unfold_tiles(x, KH, KW, cols):
    """cols[n, (c*KH + p)*KW + q, i*OW + j] = x[n, c, i*KH + p, j*KW + q]; cols (N, C*KH*KW, OH*OW)."""
    N, C, H, W = x.shape
    OH, OW = H // KH, W // KW
    for task in prange(N * C):
        n, c = task // C, task % C
        for p in range(KH):
            for q in range(KW):
                row = cols[n, (c * KH + p) * KW + q]
                for i in range(OH):
                    for j in range(OW):
                        row[i * OW + j] = x[n, c, i * KH + p, j * KW + q]


@numba.njit(parallel=True, cache=True)
def _fold_tiles(cols, KH, KW, x):
    """The inverse of _unfold_tiles: x[n, c, i*KH + p, j*KW + q] = cols[n, (c*KH + p)*KW + q, i*OW + j]."""
    N, C, H, W = x.shape
    OH, OW = H // KH, W // KW
    for task in prange(N * C):
        n, c = task // C, task % C
        for i in range(OH):
            for p in range(KH):
                for j in range(OW):
                    for q in range(KW):
                        x[n, c, i * KH + p, j * KW + q] = cols[n, (c * KH + p) * KW + q, i * OW + j]


def unfold_tiles(x, KH, KW):
    """x (N, C, KH*OH, KW*OW) -> cols (N, C*KH*KW, OH*OW): im2col of windows that tile x; x may be
    a strided view (a concatenation's gradient): the kernel reads it in place, no copy."""
    N, C, H, W = x.shape
    cols = allocator.empty((N, C * KH * KW, (H // KH) * (W // KW)), x.dtype)  # (see fold_tiles)
    _by_values(_unfold_tiles, cols)(x, KH, KW, cols)
    return cols


def fold_tiles(cols, KH, KW, x_shape):
    """cols (N, C*KH*KW, OH*OW) -> x x_shape = (N, C, KH*OH, KW*OW): the inverse of unfold_tiles."""
    x = allocator.empty(tuple(x_shape), cols.dtype)  # from the cache: outside it, it adds to the cache's mark
    _by_values(_fold_tiles, x)(np.ascontiguousarray(cols), KH, KW, x)
    return x


@numba.njit(cache=True)
def _share_start(k, total, parts):
    """Where share k of ``total`` items cut into ``parts`` shares starts: shares differ by at most
    one item (ceil-sized shares would leave the last ones empty and their thread idle)."""
    return k * total // parts


# ---- convolution: depthwise ----------------------------------------------------------------
#
# The shifted-rows trick (minidl/ops/conv_shifted.py), per plane. A plane is copied, zero padded,
# into a flat canvas WC = SW*(OW-1) + DW*(KW-1) + 1 columns wide (plus one row), and output pixel
# (i, j) of a stride-1 convolution gets the flat index l = i*WC + j, as if the output were WC
# wide: then tap (p, q) of every window is the canvas SHIFTED by DH*p*WC + DW*q, and each tap is
# one long contiguous loop (Numba vectorises it) over a band of output rows, however narrow the
# image (at 14x14, loops over single rows spent their time starting rows: 8.0 against 3.6 ms for
# dx at 512 channels, batch 8); the columns j >= OW read wrapped-around values and are dropped.
# The sums run over the same taps in the same order as the reference's (padding adds w * 0), so
# forward and dx are the reference's bit for bit; a 3x3 kernel's nine taps are summed per pixel
# in one pass (`_depthwise_taps_3x3`, the same order), one store per pixel instead of nine. The
# planes (n, c) of y or dx are the tasks, for dweight the output channels f, cut into at most
# DEPTHWISE_CHUNKS chunks that the threads share, each chunk making its buffers once (not once
# per plane: 4096 planes of 14x14 at 512 channels, batch 8); for dweight: a 3x3 kernel's nine
# sums are held in registers over each band (`_depthwise_tap_sums_3x3`, ``reassoc``: equal to
# the reference to rounding) and added into float64 totals; other kernels' products go into
# rows of partial sums (one per wide pixel, no sum reordered), summed at the end.
#   dx     = the stride-1 correlation of dy's canvas with the kernel rotated (conv_rotated.py):
#            dx[h, w] = sum_{p,q} w[p, q] * dycanvas[h + DH*(KH-1-p), w + DW*(KW-1-q)], where with
#            stride S the canvas holds dy SPREAD out, dy[i, j] at (S*i, S*j) + offset, zeros between
#   dweight[p, q] = sum over wide pixels l of spread dy[l] * xcanvas[l + DH*p*WC + DW*q]
# With stride S the spread dy makes S*S times the multiply-adds, but contiguous ones: at 64
# channels, 112x112, stride 2 this took as long as loops over rows with strided access (20 ms).
# Forward with a stride goes row by row instead (the stride-1 trick would compute S*S times the
# output and drop most of it): each row of y is zeroed, then every tap adds its scaled run of x
# (the windows' valid range, `_valid_windows`: no bounds tests), p then q, while the row is in L1.
DEPTHWISE_BAND = 1024  # values of a band of output rows: its sums stay in L1
DEPTHWISE_CHUNKS = 64  # chunks of planes (or filters) a kernel's tasks are cut into: buffers made per chunk


@numba.njit(**_JIT)
def _depthwise_conv2d(x, weight, bias, SH, SW, PH, PW, DH, DW, y):
    """y[n, c*M + m, i, j] = sum_{p, q} weight[c, m, p, q] * xpad[n, c, SH*i + DH*p, SW*j + DW*q]
    (+ bias[c*M + m] when bias has values)."""
    N, C, H, W = x.shape
    _, M, KH, KW = weight.shape
    _, _, OH, OW = y.shape
    for nc in prange(N * C):  # one thread per input plane (n, c): its M output planes
        n, c = nc // C, nc % C
        for m in range(M):
            f = c * M + m
            for i in range(OH):
                out = y[n, f, i]
                out[:] = 0
                for p in range(KH):
                    h = SH * i - PH + DH * p
                    if h < 0 or h >= H:  # tap p of this window row is in the padding
                        continue
                    for q in range(KW):
                        wt = weight[c, m, p, q]
                        j0, j1 = _valid_windows(DW * q - PW, SW, W, OW)
                        # the runs as views, indexed from 0: Numba then knows no index is negative
                        o, r = out[j0:j1], x[n, c, h, SW * j0 + DW * q - PW:]
                        if SW == 1:
                            for k in range(j1 - j0):
                                o[k] += wt * r[k]
                        else:
                            for k in range(j1 - j0):
                                o[k] += wt * r[SW * k]
                if bias.shape[0] > 0:  # added to the sums, as y + bias would: the same roundings
                    out += bias[f]


@numba.njit(cache=True)
def _fill_canvas(plane, top, left, SH, SW, canvas):
    """canvas[r, s] = plane[(r - top) / SH, (s - left) / SW] where both divide and lie inside the
    plane, else 0 (top, left may be negative): the plane zero padded, and with strides > 1 spread
    out, SH - 1 rows and SW - 1 columns of zeros between its values."""
    rows, width = canvas.shape
    H, W = plane.shape
    j0 = max(0, (SW - 1 - left) // SW)  # the first column of the plane inside: left + SW*j0 >= 0
    s0 = min(left + SW * j0, width)  # the canvas column that holds it
    s1 = max(min(width, left + SW * (W - 1) + 1), s0)  # past the last one
    count = (s1 - s0 + SW - 1) // SW  # values of a row of the plane inside
    flat = canvas.reshape(rows * width)
    for k in range(rows * width):  # explicit loops: forward 1.44 against 1.7-1.9 ms by slices at 512@14
        flat[k] = 0
    for r in range(rows):
        if r - top < 0 or (r - top) % SH != 0 or (r - top) // SH >= H:
            continue
        src, dst = plane[(r - top) // SH, j0:], flat[r * width + s0:]
        for k in range(count):
            dst[SW * k] = src[k]


@numba.njit(cache=True, error_model="numpy")
def _depthwise_taps_3x3(canvas, start, w, row_step, col_step, L, a):
    """a[k] = sum_{p,q} w[p, q] * canvas[start + p*row_step + q*col_step + k], k < L (steps may be
    negative: dx walks the kernel rotated): a 3x3 kernel's nine taps summed per pixel in one pass,
    p then q, as the tap-by-tap loops add them from 0: the same sums bit for bit, with one load
    and store of a[k] instead of nine."""
    w00, w01, w02, w10, w11, w12, w20, w21, w22 = (w[0, 0], w[0, 1], w[0, 2], w[1, 0], w[1, 1],
                                                   w[1, 2], w[2, 0], w[2, 1], w[2, 2])
    r0, r1, r2 = start, start + row_step, start + 2 * row_step  # the three rows' offsets
    s00, s01, s02 = canvas[r0:], canvas[r0 + col_step:], canvas[r0 + 2 * col_step:]
    s10, s11, s12 = canvas[r1:], canvas[r1 + col_step:], canvas[r1 + 2 * col_step:]
    s20, s21, s22 = canvas[r2:], canvas[r2 + col_step:], canvas[r2 + 2 * col_step:]
    for k in range(L):
        a[k] = (w00 * s00[k] + w01 * s01[k] + w02 * s02[k] + w10 * s10[k] + w11 * s11[k]
                + w12 * s12[k] + w20 * s20[k] + w21 * s21[k] + w22 * s22[k])


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _depthwise_tap_sums_3x3(g, canvas, start, row_step, col_step, L, totals):
    """totals[3p + q] += sum_{k < L} g[k] * canvas[start + p*row_step + q*col_step + k]: the nine
    sums of a 3x3 kernel's weight gradient over one band, held in registers (``reassoc`` splits
    them into vector lanes: equal to the tap-by-tap sums to rounding, not bit for bit)."""
    r0, r1, r2 = start, start + row_step, start + 2 * row_step
    s00, s01, s02 = canvas[r0:], canvas[r0 + col_step:], canvas[r0 + 2 * col_step:]
    s10, s11, s12 = canvas[r1:], canvas[r1 + col_step:], canvas[r1 + 2 * col_step:]
    s20, s21, s22 = canvas[r2:], canvas[r2 + col_step:], canvas[r2 + 2 * col_step:]
    zero = g.dtype.type(0)
    a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = zero
    for k in range(L):
        v = g[k]
        a00 += v * s00[k]
        a01 += v * s01[k]
        a02 += v * s02[k]
        a10 += v * s10[k]
        a11 += v * s11[k]
        a12 += v * s12[k]
        a20 += v * s20[k]
        a21 += v * s21[k]
        a22 += v * s22[k]
    totals[0] += a00
    totals[1] += a01
    totals[2] += a02
    totals[3] += a10
    totals[4] += a11
    totals[5] += a12
    totals[6] += a20
    totals[7] += a21
    totals[8] += a22


@numba.njit(**_JIT)
def _depthwise_conv2d_stride1(x, weight, bias, PH, PW, DH, DW, y):
    N, C, H, W = x.shape
    _, M, KH, KW = weight.shape
    _, _, OH, OW = y.shape
    HC, WC = OH + DH * (KH - 1), OW + DW * (KW - 1)
    R = max(1, DEPTHWISE_BAND // WC)  # output rows per band
    chunks = min(N * C, DEPTHWISE_CHUNKS)
    for chunk in prange(chunks):
        canvas = np.empty((HC + 1) * WC, dtype=x.dtype)  # one more row: what the wrapped columns read
        acc = np.empty(R * WC, dtype=x.dtype)
        for nc in range(_share_start(chunk, N * C, chunks), _share_start(chunk + 1, N * C, chunks)):
            n, c = nc // C, nc % C
            _fill_canvas(x[n, c], PH, PW, 1, 1, canvas.reshape((HC + 1, WC)))
            for m in range(M):
                for i0 in range(0, OH, R):
                    rows = min(R, OH - i0)
                    a = acc[:rows * WC]
                    if KH == 3 and KW == 3:  # the nine taps in one pass: one store per pixel, not nine
                        _depthwise_taps_3x3(canvas, i0 * WC, weight[c, m], DH * WC, DW, rows * WC, a)
                    else:
                        a[:] = 0
                        for p in range(KH):
                            for q in range(KW):
                                wt, src = weight[c, m, p, q], canvas[(i0 + DH * p) * WC + DW * q:]
                                for k in range(rows * WC):
                                    a[k] += wt * src[k]
                    for k in range(rows):
                        row, wide_row = y[n, c * M + m, i0 + k], a[k * WC:k * WC + OW]
                        if bias.shape[0] > 0:  # added as the row is written: one pass over y, not two
                            for j in range(OW):
                                row[j] = wide_row[j] + bias[c * M + m]
                        else:
                            row[:] = wide_row


@numba.njit(**_JIT)
def _depthwise_conv2d_dx_spread(dy, weight, SH, SW, PH, PW, DH, DW, dx):
    N, C, H, W = dx.shape
    _, M, KH, KW = weight.shape
    HD, WD = H + DH * (KH - 1), W + DW * (KW - 1)  # dy's canvas: dx's windows in the rotated kernel
    R = max(1, DEPTHWISE_BAND // WD)
    chunks = min(N * C, DEPTHWISE_CHUNKS)
    for chunk in prange(chunks):
        canvas = np.empty((M, (HD + 1) * WD), dtype=dy.dtype)
        acc = np.empty(R * WD, dtype=dy.dtype)
        for nc in range(_share_start(chunk, N * C, chunks), _share_start(chunk + 1, N * C, chunks)):
            n, c = nc // C, nc % C
            for m in range(M):
                _fill_canvas(dy[n, c * M + m], DH * (KH - 1) - PH, DW * (KW - 1) - PW, SH, SW,
                             canvas[m].reshape((HD + 1, WD)))
            for i0 in range(0, H, R):
                rows = min(R, H - i0)
                a = acc[:rows * WD]
                if M == 1 and KH == 3 and KW == 3:  # the nine taps in one pass, the kernel rotated
                    _depthwise_taps_3x3(canvas[0], (i0 + 2 * DH) * WD + 2 * DW, weight[c, 0], -DH * WD, -DW,
                                        rows * WD, a)
                    for k in range(rows):
                        dx[n, c, i0 + k, :] = a[k * WD:k * WD + W]
                    continue
                a[:] = 0
                for p in range(KH):
                    for q in range(KW):
                        base = (i0 + DH * (KH - 1 - p)) * WD + DW * (KW - 1 - q)
                        if M == 1:
                            wt, src = weight[c, 0, p, q], canvas[0, base:]
                            for k in range(rows * WD):
                                a[k] += wt * src[k]
                        else:
                            for k in range(rows * WD):
                                term = weight[c, 0, p, q] * canvas[0, base + k]
                                for m in range(1, M):
                                    term += weight[c, m, p, q] * canvas[m, base + k]
                                a[k] += term
                for k in range(rows):
                    dx[n, c, i0 + k, :] = a[k * WD:k * WD + W]


@numba.njit(**_JIT)
def _depthwise_conv2d_dweight_spread(dy, x, KH, KW, SH, SW, PH, PW, DH, DW, dweight, dbias):
    N, C, H, W = x.shape
    _, F, OH, OW = dy.shape
    M = F // C
    RS = SH * (OH - 1) + 1  # the rows of dy spread out
    HC, WC = RS + DH * (KH - 1), SW * (OW - 1) + DW * (KW - 1) + 1
    R = max(1, DEPTHWISE_BAND // (2 * WC))  # KH*KW rows of partial sums per band
    three = KH == 3 and KW == 3  # the nine sums in registers, added into totals (float64)
    chunks = min(F, DEPTHWISE_CHUNKS)
    for chunk in prange(chunks):
        canvas = np.empty((HC + 1) * WC, dtype=x.dtype)
        wide = np.empty(RS * WC, dtype=dy.dtype)  # dy spread out on the wide pixels; 0 elsewhere
        partial = np.empty((KH * KW, 0 if three else R * WC), dtype=dy.dtype)
        totals = np.empty(KH * KW)
        for f in range(_share_start(chunk, F, chunks), _share_start(chunk + 1, F, chunks)):
            c, m = f // M, f % M
            partial[:] = 0
            totals[:] = 0
            dy_sum = 0.0  # dbias[f], when asked for: float64 over the plane while it is in cache
            for n in range(N):
                _fill_canvas(x[n, c], PH, PW, 1, 1, canvas.reshape((HC + 1, WC)))
                _fill_canvas(dy[n, f], 0, 0, SH, SW, wide.reshape((RS, WC)))
                if dbias.shape[0] > 0:
                    for i in range(OH):
                        for j in range(OW):
                            dy_sum += dy[n, f, i, j]
                for i0 in range(0, RS, R):
                    rows = min(R, RS - i0)
                    g = wide[i0 * WC:]
                    if three:  # one pass over the band, not nine
                        _depthwise_tap_sums_3x3(g, canvas, i0 * WC, DH * WC, DW, rows * WC, totals)
                        continue
                    for p in range(KH):
                        for q in range(KW):
                            acc, src = partial[p * KW + q], canvas[(i0 + DH * p) * WC + DW * q:]
                            for k in range(rows * WC):
                                acc[k] += g[k] * src[k]
            for p in range(KH):
                for q in range(KW):
                    dweight[c, m, p, q] = totals[p * KW + q] if three else partial[p * KW + q].sum()
            if dbias.shape[0] > 0:
                dbias[f] = dy_sum


def depthwise_conv2d(x, weight, SH, SW, PH, PW, DH, DW, OH, OW, bias=None):
    """See ``reference.depthwise_conv2d``: x (N,C,H,W), weight (C,M,KH,KW), bias (C*M,) or None
    -> y (N, C*M, OH, OW)."""
    N, C = x.shape[:2]
    y = np.empty((N, C * weight.shape[1], OH, OW), dtype=x.dtype)  # every row is written by its thread
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    bias = np.empty(0, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)  # none: no values
    taps = y.size * weight.shape[2] * weight.shape[3]  # window cells: one multiply-add each
    if (SH, SW) == (1, 1):
        _by_window_cells(_depthwise_conv2d_stride1, taps)(x, weight, bias, PH, PW, DH, DW, y)
    else:
        _by_window_cells(_depthwise_conv2d, taps)(x, weight, bias, SH, SW, PH, PW, DH, DW, y)
    return y


def depthwise_conv2d_dx(dy, weight, x_shape, SH, SW, PH, PW, DH, DW, out=None):
    """See ``reference.depthwise_conv2d_dx``: dy (N, C*M, OH, OW) -> dx x_shape (into ``out`` if given)."""
    dx = np.empty(tuple(x_shape), dtype=dy.dtype) if out is None else out  # every plane is written by its thread
    dy, weight = np.ascontiguousarray(dy), np.ascontiguousarray(weight)
    taps = dy.size * weight.shape[2] * weight.shape[3]  # every tap of every window sends dy back
    _by_window_cells(_depthwise_conv2d_dx_spread, taps)(dy, weight, SH, SW, PH, PW, DH, DW, dx)
    return dx


def depthwise_conv2d_dweight(dy, x, KH, KW, SH, SW, PH, PW, DH, DW, dbias=None):
    """See ``reference.depthwise_conv2d_dweight``: dy (N, C*M, OH, OW), x (N,C,H,W) -> (C, M, KH, KW);
    with ``dbias`` (C*M,), also dbias[f] = the sum of dy[:, f]."""
    C, F = x.shape[1], dy.shape[1]
    dweight = np.empty((C, F // C, KH, KW), dtype=dy.dtype)
    dy, x = np.ascontiguousarray(dy), np.ascontiguousarray(x)
    sums = np.empty(0, dy.dtype) if dbias is None else dbias
    _by_window_cells(_depthwise_conv2d_dweight_spread, dy.size * KH * KW)(dy, x, KH, KW, SH, SW, PH, PW, DH, DW,
                                                                           dweight, sums)
    return dweight


# ---- convolution: direct (stride 1 or more, no columns, no matrix product) --------------------
#
# The formulas of reference.direct_conv2d / direct_conv2d_dweight, computed pixel by pixel without
# products: where im2col's products are thin (16-32 channels: inner dimension 9*C, few rows) a
# loop that keeps every value it loads in registers for 18 multiply-adds runs faster than the
# products (measured: docs/performance.md). One task per (sample, band of RB output rows):
#   * the band's canvas rows (x zero padded, all channels) are copied flat into the task's buffer,
#     and output pixel (i, j) of the band gets the wide index l = i*WC + j (the shifted-rows trick,
#     minidl/ops/conv_shifted.py): tap (p, q) of every window is the band shifted by a fixed offset
#     (_DirectGeometry.taps), so each (filter, channel) pair is ONE contiguous loop over l, one shifted
#     view of the band per tap, which LLVM vectorises; columns j >= OW read wrapped-around values
#     and are dropped (forward) or zero (dweight);
#   * stride S > 1: window (i, j) reads canvas row S*i + D*p, so the band holds each channel's
#     canvas split into S*S phase planes, plane (a, b) = canvas[S*u + a, S*v + b]: tap (p, q) reads
#     plane ((D*p) % S, (D*q) % S) shifted by ((D*p) // S, (D*q) // S), a unit-stride shift again
#     (stride 1: one plane, shifts (D*p, D*q));
#   * forward: for each input channel and each PAIR of filters, acc[f, l] += the taps of both
#     filters: each loaded value serves 2 multiply-adds (3x3: nine loads serve 18, in registers);
#   * dweight: for each block of 3 filters x 4 input channels and each tap, 12 sums over the
#     band's pixels of dy_wide[f, l] * band[c, l + shift], held in registers: 7 loads serve 12
#     multiply-adds and the 12 sums fit AVX2's 16 vector registers (a pair of filters x 9 taps,
#     18 sums, ran at half the speed on AVX2, docs/performance.md); groups' filters and channels
#     are padded to whole blocks with zero rows of dy and of the band; the tasks are cut into at most
#     DIRECT_DWEIGHT_CHUNKS chunks (fixed by the sizes, not by the threads), each chunk adds its
#     tasks' sums in order into its own partial sums and the wrapper adds the chunks in order,
#     so the result does not depend on the number of threads and the partial sums take at most
#     that many weights' memory (one per task took 75 MiB at 64 -> 32 channels, 4 of 256x256).
#     Its loop is compiled with ``fastmath={"reassoc"}`` (the sums are split into vector lanes)
#     and both with ``"contract"`` (fused multiply-adds): the sums are those of the reference in
#     another order, equal to rounding, not bit for bit.
# A group's odd last filter is paired with a zero filter (the wrappers pad the weight and drop it).
#   * float32 on a CPU with AVX-512 or AVX2 (``DIRECT_VECTORS``): the forward's products hold a
#     block of pixels x filters in registers across all input channels and taps
#     (minidl/backend/simd.py), loading each tap once for the block's filters and each output
#     once: with AVX-512, 64 pixels x 4 filters (16 of the 32 512-bit registers); with AVX2,
#     16 pixels x 6 filters (12 of the 16 256-bit ones; 4 filters there ran 1.3x slower, the
#     pair-of-filters loops 1.5x); the band's pixels are rounded up to whole vectors (the pixels
#     past L are dropped, and the band's buffer holds enough rows for their taps), filters
#     padded to a multiple of the block's and packed so that a block's weights for one channel
#     are one row, tap by tap (_packed_filters).
_JIT_DIRECT = dict(parallel=True, cache=True, error_model="numpy", fastmath={"contract"})
_JIT_DIRECT_SUMS = dict(parallel=True, cache=True, error_model="numpy", fastmath={"contract", "reassoc"})
DIRECT_BAND_BYTES = 2**18  # a task's canvas band: about this much, so that it stays in L2
DIRECT_DWEIGHT_CHUNKS = 64  # dweight's partial sums: one per chunk of tasks (memory: chunks x weight)
DIRECT_DWEIGHT_BLOCK = (3, 4)  # dweight's sums in registers: filters x channels (the kernel's loops)
DIRECT_VECTORS = simd.AVX512 or simd.AVX2  # float32 forward products in simd's vectors (see above)
DIRECT_VECTOR_FILTERS = 4 if simd.AVX512 else 6  # ... that many filters a block (4 or 6)
DIRECT_VECTOR_CHANNELS = 8  # ... summed over blocks of this many input channels, then added up


class _DirectGeometry:
    """Where a band's taps are, for kernel (KH, KW), stride (SH, SW), dilation (DH, DW) and OW
    output columns: tap (p, q) of window (i, j) is canvas[S*i + D*p, S*j + D*q], i.e. pixel
    (i + (D*p) // S, j + (D*q) // S) of phase plane ((D*p) % S, (D*q) % S)."""

    def __init__(self, KH, KW, SH, SW, DH, DW, OW):
        self.phases = SH * SW  # a channel's planes in the band
        self.down = [(DH * p) // SH for p in range(KH)]  # plane rows below the window's first
        self.right = [(DW * q) // SW for q in range(KW)]  # plane columns right of it
        self.plane_of = [((DH * p) % SH) * SW + (DW * q) % SW for p in range(KH) for q in range(KW)]
        self.WC = OW + self.right[-1]  # a wide row: the output's columns and the taps' reach
        self.reach = self.down[-1] * self.WC + self.right[-1]  # the farthest tap from its pixel
        self._taps = {}  # plane size -> taps(plane)

    def rows(self, L):
        """Plane rows a band of L wide pixels needs: its taps reach pixel L - 1 + reach."""
        return -(-(L + self.reach) // self.WC)

    def taps(self, plane):
        """offsets (KH, KW) int64: tap (p, q) of wide pixel l is band[c, l + offsets[p, q]], a
        channel's band being its phase planes of ``plane`` values one after another; offsets[0, 0]
        = 0, and offsets[p, q] = offsets[p, 0] + offsets[0, q] (a row's part and a column's).
        Made once per plane size (the kernels only read it)."""
        if plane not in self._taps:
            KH, KW = len(self.down), len(self.right)
            self._taps[plane] = np.array([[self.plane_of[p * KW + q] * plane + self.down[p] * self.WC + self.right[q]
                                           for q in range(KW)] for p in range(KH)], dtype=np.int64)
        return self._taps[plane]


@functools.lru_cache(maxsize=256)
def _direct_geometry(KH, KW, SH, SW, DH, DW, OW):
    """The _DirectGeometry of a convolution, made once per geometry (every call of a layer asks)."""
    return _DirectGeometry(KH, KW, SH, SW, DH, DW, OW)


@numba.njit(cache=True)
def _direct_band(x, n, r0, rows, PT, PL, SH, SW, WC, G, band):
    """band[g*Cp + c, (a*SW + b)*plane + r*WC + s] = canvas[n, g*Cg + c, SH*(r0 + r) + a, SW*s + b]
    (x at row PT, column PL; zero elsewhere), r < rows, zero in the plane's rows after those;
    plane = band.shape[1] // (SH*SW) (a multiple of WC); band has G*Cp rows: each group's Cg
    channels, then Cp - Cg zero rows (the forward passes G = 1: one row per channel)."""
    C, H, W = x.shape[1:]
    Cp = band.shape[0] // G
    Cg = C // G
    plane = band.shape[1] // (SH * SW)
    for g in range(G):
        for c in range(Cp):
            flat = band[g * Cp + c]
            flat[:] = 0
            if c >= Cg:
                continue
            if SH == 1 and SW == 1:  # one plane of whole rows (the general copy ran 1.1-1.5x slower)
                w = max(0, min(W, WC - PL))  # columns of x inside the canvas
                for r in range(rows):
                    h = r0 + r - PT
                    if 0 <= h < H:
                        flat[r * WC + PL:r * WC + PL + w] = x[n, g * Cg + c, h, :w]
                continue
            for a in range(SH):
                for b in range(SW):
                    # plane columns s with canvas column SW*s + b on x: s_lo <= s < s_hi
                    s_lo, s_hi = max(0, -(-(PL - b) // SW)), min(WC, -(-(W + PL - b) // SW))
                    v0 = SW * s_lo + b - PL  # x's column of plane column s_lo
                    for r in range(rows):
                        h = SH * (r0 + r) + a - PT
                        if 0 <= h < H and s_lo < s_hi:
                            start = (a * SW + b) * plane + r * WC
                            flat[start + s_lo:start + s_hi] = x[n, g * Cg + c, h, v0:v0 + SW * (s_hi - s_lo):SW]


def _direct_band_rows(C, WC, OH, itemsize, phases=1):
    """Output rows per task: a canvas band of about DIRECT_BAND_BYTES, at least 1, at most OH."""
    return max(1, min(OH, DIRECT_BAND_BYTES // max(1, C * phases * WC * itemsize) - 3))


@numba.njit(**_JIT_DIRECT)
def _direct_conv2d_loops(x, weight, taps, PT, PL, SH, SW, WC, Fg, RB, plane, bands_buffer, acc_buffer, y):
    """y[n, g*Fg + f, i, j] = sum_{c,p,q} weight[g, f, c, p*KW + q] * canvas[n, g*Cg + c, SH*i + DH*p, SW*j + DW*q],
    the taps at ``taps`` (_DirectGeometry, for phase planes of ``plane`` values); weight (G, Fp, Cg, KH*KW),
    Fp = Fg rounded up to even (a zero filter pads an odd group); bands_buffer (T, >= C*SH*SW*plane)
    and acc_buffer (T, >= G*Fp*RB*WC): a row of each per thread."""
    N, C = x.shape[:2]
    G, Fp = weight.shape[:2]
    OH = y.shape[2]
    bands = (OH + RB - 1) // RB
    T = bands_buffer.shape[0]
    per_thread = (N * bands + T - 1) // T
    for t in prange(T):  # thread t: tasks t*per_thread ...; a task: (sample, band of RB output rows)
        for task in range(t * per_thread, min((t + 1) * per_thread, N * bands)):
            n, i0 = task // bands, (task % bands) * RB
            R = min(RB, OH - i0)
            L = R * WC  # the band's wide output pixels
            band = bands_buffer[t, :C * SH * SW * plane].reshape((C, SH * SW * plane))
            _direct_band(x, n, i0, R + plane // WC - RB, PT, PL, SH, SW, WC, 1, band)  # (the last band: fewer rows)
            acc = acc_buffer[t, :G * Fp * L].reshape((G * Fp, L))
            acc[:] = 0
            _direct_band_products(band, weight, taps, L, acc)
            _direct_rows_out(acc, n, i0, R, WC, Fg, y)


@numba.njit(cache=True)
def _direct_rows_out(acc, n, i0, R, WC, Fg, y):
    """y[n, g*Fg + f, i0 + r, :] = the band's wide row r of filter f of group g in acc (G*Fp, >= R*WC);
    the padding filters and the wide pixels j >= OW are dropped."""
    OW = y.shape[3]
    Fp = acc.shape[0] // (y.shape[1] // Fg)
    for g in range(y.shape[1] // Fg):
        for f in range(Fg):
            for r in range(R):
                y[n, g * Fg + f, i0 + r, :] = acc[g * Fp + f, r * WC:r * WC + OW]


@numba.njit(**_JIT_DIRECT)
def _direct_conv2d_vectors(x, weight, taps, PT, PL, SH, SW, WC, Fg, FB, RB, plane, bands_buffer, acc_buffer, y):
    """_direct_conv2d_loops for float32 with simd's vectors, FB = 4 or 6 filters a block
    (_direct_band_products_4x or _6x): weight packed (G, Fp/FB, Cg, KH*KW*FB) (_packed_filters);
    a band's L = R*WC wide pixels rounded up to whole vectors, its phase planes (``plane`` values
    each) holding their taps."""
    N, C = x.shape[:2]
    G, Fp = weight.shape[0], weight.shape[1] * FB
    OH = y.shape[2]
    bands = (OH + RB - 1) // RB
    T = bands_buffer.shape[0]
    per_thread = (N * bands + T - 1) // T
    for t in prange(T):  # as _direct_conv2d_loops
        for task in range(t * per_thread, min((t + 1) * per_thread, N * bands)):
            n, i0 = task // bands, (task % bands) * RB
            R = min(RB, OH - i0)
            L = _direct_vector_pixels(R, WC)
            band = bands_buffer[t, :C * SH * SW * plane].reshape((C, SH * SW * plane))
            _direct_band(x, n, i0, R + plane // WC - RB, PT, PL, SH, SW, WC, 1, band)  # (the last band: fewer rows)
            acc = acc_buffer[t, :G * Fp * L].reshape((G * Fp, L))
            if FB == 4:
                _direct_band_products_4x(band, weight, taps, L, acc)
            else:
                _direct_band_products_6x(band, weight, taps, L, acc)
            _direct_rows_out(acc, n, i0, R, WC, Fg, y)


@numba.njit(cache=True)
def _direct_vector_pixels(R, WC):
    """A band's R*WC wide pixels rounded up to whole vectors."""
    return -(-R * WC // simd.WIDTH) * simd.WIDTH


@numba.njit(cache=True)
def _evenly_spaced_3x3(taps):
    """(True, row step, column step) when taps (KH, KW) are a 3x3 kernel's at p*row + q*column (stride 1:
    _DirectGeometry.taps gives offsets[p, q] = offsets[p, 0] + offsets[0, q]); else (False, 0, 0)."""
    if taps.shape[0] == 3 and taps.shape[1] == 3 and taps[2, 0] == 2 * taps[1, 0] and taps[0, 2] == 2 * taps[0, 1]:
        return True, taps[1, 0], taps[0, 1]
    return False, 0, 0


@numba.njit(inline="always")
def _taps_4x(b, l0, taps, T, u, a0, a1, a2, a3):
    """a_k += sum_{t < T} u[4*t + k] * (the vector of b at l0 + taps[t]), k < 4 (_direct_band_products_4x)."""
    for t in range(T):
        x = simd.load(b, l0 + taps[t])  # tap t of the windows
        a0 = simd.fma(x, simd.splat(u[4 * t]), a0)
        a1 = simd.fma(x, simd.splat(u[4 * t + 1]), a1)
        a2 = simd.fma(x, simd.splat(u[4 * t + 2]), a2)
        a3 = simd.fma(x, simd.splat(u[4 * t + 3]), a3)
    return a0, a1, a2, a3


@numba.njit(cache=True, error_model="numpy")
def _direct_band_products_4x(band, weight, taps, L, acc):
    """acc[g*Fp + f, l] = sum_{c,t} w[g, f, c, t] * band[g*Cg + c, l + taps[t]], l < L (a multiple
    of simd.WIDTH), all float32, the weight packed by blocks of 4 filters (_packed_filters: weight
    (G, Fp/4, Cg, T*4), weight[g, f // 4, c, 4*t + f % 4] = w[g, f, c, t]): for each vector of
    pixels and 4 filters, the four sums stay in registers across every input channel and tap;
    each tap is loaded once for the four, and one row of the packed weight holds a channel's
    broadcasts."""
    G, FB, Cg, K = weight.shape
    Fp, T = 4 * FB, K // 4
    steps, row, column = _evenly_spaced_3x3(taps)
    offsets = taps.reshape(T)
    for g in range(G):
        for l0 in range(0, L, simd.WIDTH):
            for f in range(0, Fp, 4):
                o0, o1, o2, o3 = acc[g * Fp + f], acc[g * Fp + f + 1], acc[g * Fp + f + 2], acc[g * Fp + f + 3]
                # the channels in blocks: each block's sum (at most T*DIRECT_VECTOR_CHANNELS products
                # in one chain of roundings) is added to the block sums before it
                for c0 in range(0, Cg, DIRECT_VECTOR_CHANNELS):
                    a0, a1, a2, a3 = simd.zeros(), simd.zeros(), simd.zeros(), simd.zeros()
                    for c in range(c0, min(c0 + DIRECT_VECTOR_CHANNELS, Cg)):
                        b = band[g * Cg + c]
                        u = weight[g, f // 4, c]  # (T*4,): tap t of the four filters at 4*t ...
                        if steps:  # a 3x3 kernel at stride 1: nine taps unrolled, at two steps' multiples
                            for p in range(3):
                                for q in range(3):
                                    x = simd.load(b, l0 + p * row + q * column)  # tap (p, q) of the windows
                                    t = 4 * (3 * p + q)
                                    a0 = simd.fma(x, simd.splat(u[t]), a0)
                                    a1 = simd.fma(x, simd.splat(u[t + 1]), a1)
                                    a2 = simd.fma(x, simd.splat(u[t + 2]), a2)
                                    a3 = simd.fma(x, simd.splat(u[t + 3]), a3)
                        elif T == 9:  # 3x3 at stride > 1: a loop of known length, unrolled (1.06x faster)
                            a0, a1, a2, a3 = _taps_4x(b, l0, offsets, 9, u, a0, a1, a2, a3)
                        else:  # any other kernel: a loop over its taps (ran 1.2x slower at stride 1)
                            a0, a1, a2, a3 = _taps_4x(b, l0, offsets, T, u, a0, a1, a2, a3)
                    if c0 > 0:
                        a0, a1 = simd.add(simd.load(o0, l0), a0), simd.add(simd.load(o1, l0), a1)
                        a2, a3 = simd.add(simd.load(o2, l0), a2), simd.add(simd.load(o3, l0), a3)
                    simd.store(o0, l0, a0)
                    simd.store(o1, l0, a1)
                    simd.store(o2, l0, a2)
                    simd.store(o3, l0, a3)


@numba.njit(inline="always")
def _taps_6x(b, l0, taps, T, u, a0, a1, a2, a3, a4, a5):
    """a_k += sum_{t < T} u[6*t + k] * (the vector of b at l0 + taps[t]), k < 6 (_direct_band_products_6x)."""
    for t in range(T):
        x = simd.load(b, l0 + taps[t])  # tap t of the windows
        a0 = simd.fma(x, simd.splat(u[6 * t]), a0)
        a1 = simd.fma(x, simd.splat(u[6 * t + 1]), a1)
        a2 = simd.fma(x, simd.splat(u[6 * t + 2]), a2)
        a3 = simd.fma(x, simd.splat(u[6 * t + 3]), a3)
        a4 = simd.fma(x, simd.splat(u[6 * t + 4]), a4)
        a5 = simd.fma(x, simd.splat(u[6 * t + 5]), a5)
    return a0, a1, a2, a3, a4, a5


@numba.njit(cache=True, error_model="numpy")
def _direct_band_products_6x(band, weight, taps, L, acc):
    """_direct_band_products_4x with 6 filters a block (weight (G, Fp/6, Cg, T*6)): on AVX2, 6 sums
    of two registers each (12 of the 16) and one tap; each tap is loaded once for six filters."""
    G, FB, Cg, K = weight.shape
    Fp, T = 6 * FB, K // 6
    steps, row, column = _evenly_spaced_3x3(taps)
    offsets = taps.reshape(T)
    for g in range(G):
        for l0 in range(0, L, simd.WIDTH):
            for f in range(0, Fp, 6):
                o0, o1, o2 = acc[g * Fp + f], acc[g * Fp + f + 1], acc[g * Fp + f + 2]
                o3, o4, o5 = acc[g * Fp + f + 3], acc[g * Fp + f + 4], acc[g * Fp + f + 5]
                for c0 in range(0, Cg, DIRECT_VECTOR_CHANNELS):  # as _direct_band_products_4x
                    a0, a1, a2 = simd.zeros(), simd.zeros(), simd.zeros()
                    a3, a4, a5 = simd.zeros(), simd.zeros(), simd.zeros()
                    for c in range(c0, min(c0 + DIRECT_VECTOR_CHANNELS, Cg)):
                        b = band[g * Cg + c]
                        u = weight[g, f // 6, c]  # (T*6,): tap t of the six filters at 6*t ...
                        if steps:  # as _direct_band_products_4x
                            for p in range(3):
                                for q in range(3):
                                    x = simd.load(b, l0 + p * row + q * column)
                                    t = 6 * (3 * p + q)
                                    a0 = simd.fma(x, simd.splat(u[t]), a0)
                                    a1 = simd.fma(x, simd.splat(u[t + 1]), a1)
                                    a2 = simd.fma(x, simd.splat(u[t + 2]), a2)
                                    a3 = simd.fma(x, simd.splat(u[t + 3]), a3)
                                    a4 = simd.fma(x, simd.splat(u[t + 4]), a4)
                                    a5 = simd.fma(x, simd.splat(u[t + 5]), a5)
                        elif T == 9:  # as _direct_band_products_4x
                            a0, a1, a2, a3, a4, a5 = _taps_6x(b, l0, offsets, 9, u, a0, a1, a2, a3, a4, a5)
                        else:
                            a0, a1, a2, a3, a4, a5 = _taps_6x(b, l0, offsets, T, u, a0, a1, a2, a3, a4, a5)
                    if c0 > 0:
                        a0, a1 = simd.add(simd.load(o0, l0), a0), simd.add(simd.load(o1, l0), a1)
                        a2, a3 = simd.add(simd.load(o2, l0), a2), simd.add(simd.load(o3, l0), a3)
                        a4, a5 = simd.add(simd.load(o4, l0), a4), simd.add(simd.load(o5, l0), a5)
                    simd.store(o0, l0, a0)
                    simd.store(o1, l0, a1)
                    simd.store(o2, l0, a2)
                    simd.store(o3, l0, a3)
                    simd.store(o4, l0, a4)
                    simd.store(o5, l0, a5)


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _direct_band_products(band, weight, taps, L, acc):
    """acc[g*Fp + f, l] += sum_{c,t} weight[g, f, c, t] * band[g*Cg + c, l + taps[t]], l < L."""
    G, Fp, Cg, T = weight.shape
    taps = taps.reshape(T)
    for g in range(G):
        for c in range(Cg):
            b = band[g * Cg + c]
            if T == 9:  # 3x3: the nine taps' values in registers serve both filters of a pair
                # tap k of every window: the band shifted by taps[k] (views from 0: no negative
                # indices for Numba to check)
                t0, t1, t2 = b[taps[0]:], b[taps[1]:], b[taps[2]:]
                t3, t4, t5 = b[taps[3]:], b[taps[4]:], b[taps[5]:]
                t6, t7, t8 = b[taps[6]:], b[taps[7]:], b[taps[8]:]
                for f in range(0, Fp, 2):  # a pair of filters: each loaded value serves both
                    u, v = weight[g, f, c], weight[g, f + 1, c]
                    u0, u1, u2, u3, u4, u5, u6, u7, u8 = u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8]
                    v0, v1, v2, v3, v4, v5, v6, v7, v8 = v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]
                    a, d = acc[g * Fp + f], acc[g * Fp + f + 1]
                    for l in range(L):
                        x0, x1, x2, x3, x4 = t0[l], t1[l], t2[l], t3[l], t4[l]
                        x5, x6, x7, x8 = t5[l], t6[l], t7[l], t8[l]
                        a[l] += u0 * x0 + u1 * x1 + u2 * x2 + u3 * x3 + u4 * x4 + u5 * x5 + u6 * x6 + u7 * x7 + u8 * x8
                        d[l] += v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3 + v4 * x4 + v5 * x5 + v6 * x6 + v7 * x7 + v8 * x8
            else:  # any other kernel: tap by tap, each loaded value serving a pair of filters
                for f in range(0, Fp, 2):
                    u, v = weight[g, f, c], weight[g, f + 1, c]
                    a, d = acc[g * Fp + f], acc[g * Fp + f + 1]
                    for k in range(T):
                        xk, uk, vk = b[taps[k]:], u[k], v[k]
                        for l in range(L):
                            a[l] += uk * xk[l]
                            d[l] += vk * xk[l]


@numba.njit(**_JIT_DIRECT_SUMS)
def _direct_conv2d_dweight(dy, x, taps, PT, PL, SH, SW, WC, G, RB, plane, bands_buffer, dy_buffer, partial):
    """partial[k, g, f, c, t] = the share of chunk k of the tasks in
    sum dy[n, g*Fg + f, i, j] * canvas[n, g*Cg + c, SH*i + DH*p, SW*j + DW*q], t = p*KW + q at ``taps``
    (_DirectGeometry, planes of ``plane`` values); partial (chunks, G, Fp, Cp, KH*KW), Fp and Cp: Fg
    and Cg rounded up to whole blocks (DIRECT_DWEIGHT_BLOCK; the extra sums are 0); bands_buffer
    (T, >= G*Cp*SH*SW*plane) and dy_buffer (T, >= G*Fp*RB*WC): a row of each per thread."""
    F, OH, OW = dy.shape[1:]
    chunks, Fp, Cp = partial.shape[0], partial.shape[2], partial.shape[3]
    Fg = F // G
    bands = (OH + RB - 1) // RB
    tasks = dy.shape[0] * bands
    T = bands_buffer.shape[0]
    for t in prange(T):  # thread t: its share of the chunks; each chunk its own partial sums
        for k in range(_share_start(t, chunks, T), _share_start(t + 1, chunks, T)):
            partial[k] = 0
            # chunk k's share of the tasks: fixed by the sizes, not the threads
            for task in range(_share_start(k, tasks, chunks), _share_start(k + 1, tasks, chunks)):  # in order
                n, i0 = task // bands, (task % bands) * RB
                R = min(RB, OH - i0)
                L = R * WC
                band = bands_buffer[t, :G * Cp * SH * SW * plane].reshape((G * Cp, SH * SW * plane))
                _direct_band(x, n, i0, R + plane // WC - RB, PT, PL, SH, SW, WC, G, band)
                dy_wide = dy_buffer[t, :G * Fp * L].reshape((G * Fp, L))  # dy on the wide pixels
                dy_wide[:] = 0  # 0 in the dropped columns and the padding filters
                for g in range(G):
                    for f in range(Fg):
                        for r in range(R):
                            dy_wide[g * Fp + f, r * WC:r * WC + OW] = dy[n, g * Fg + f, i0 + r]
                _direct_band_sums(band, dy_wide, taps, L, partial[k])


@numba.njit(cache=True, error_model="numpy", fastmath={"contract", "reassoc"})
def _direct_band_sums(band, dy_wide, taps, L, out):
    """out[g, f, c, t] += sum_{l < L} dy_wide[g*Fp + f, l] * band[g*Cp + c, l + taps[t]];
    out (G, Fp, Cp, KH*KW), Fp a multiple of 3 and Cp of 4 (DIRECT_DWEIGHT_BLOCK)."""
    G, Fp, Cp, T = out.shape
    taps = taps.reshape(T)
    zero = dy_wide.dtype.type(0)
    for g in range(G):
        for f in range(0, Fp, 3):
            e0, e1, e2 = dy_wide[g * Fp + f], dy_wide[g * Fp + f + 1], dy_wide[g * Fp + f + 2]
            for c in range(0, Cp, 4):
                for k in range(T):
                    # tap k of 4 channels: the band shifted by taps[k] (views from 0)
                    s = taps[k]
                    x0, x1 = band[g * Cp + c, s:], band[g * Cp + c + 1, s:]
                    x2, x3 = band[g * Cp + c + 2, s:], band[g * Cp + c + 3, s:]
                    a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = a20 = a21 = a22 = a23 = zero
                    for l in range(L):  # 12 sums in registers; 7 loads serve 12 multiply-adds
                        u, v, w = e0[l], e1[l], e2[l]
                        a00 += u * x0[l]
                        a10 += v * x0[l]
                        a20 += w * x0[l]
                        a01 += u * x1[l]
                        a11 += v * x1[l]
                        a21 += w * x1[l]
                        a02 += u * x2[l]
                        a12 += v * x2[l]
                        a22 += w * x2[l]
                        a03 += u * x3[l]
                        a13 += v * x3[l]
                        a23 += w * x3[l]
                    o = out[g, f:f + 3, c:c + 4, k]  # (3 filters, 4 channels)
                    o[0, 0] += a00
                    o[0, 1] += a01
                    o[0, 2] += a02
                    o[0, 3] += a03
                    o[1, 0] += a10
                    o[1, 1] += a11
                    o[1, 2] += a12
                    o[1, 3] += a13
                    o[2, 0] += a20
                    o[2, 1] += a21
                    o[2, 2] += a22
                    o[2, 3] += a23


def _padded_filters(weight, G, multiple=2):
    """weight (F, Cg, KH, KW) -> (G, Fp, Cg, KH*KW), Fp = F/G rounded up to ``multiple``, zero filters added."""
    F, Cg, KH, KW = weight.shape
    Fg = F // G
    Fp = -(-Fg // multiple) * multiple
    if Fp == Fg:  # nothing to add: the weight itself, reshaped (a view when it is contiguous)
        return np.ascontiguousarray(weight).reshape(G, Fg, Cg, KH * KW)
    padded = np.zeros((G, Fp, Cg, KH * KW), dtype=weight.dtype)
    padded[:, :Fg] = weight.reshape(G, Fg, Cg, KH * KW)
    return padded


def _packed_filters(weight, G, FB):
    """weight (F, Cg, KH, KW) -> (G, Fp/FB, Cg, KH*KW*FB) for the vector kernels: filters padded to
    whole blocks of FB (_padded_filters), and each block's FB filters side by side per tap, so
    that packed[g, b, c, FB*t + k] = weight[g*F/G + FB*b + k, c, t] (zero for the padding filters):
    the FB weights a tap broadcasts are neighbours, one row per (block, channel), where FB rows
    cost the kernel FB pointers (docs/performance.md). A copy of the weight per call."""
    padded = _padded_filters(weight, G, FB)  # (G, Fp, Cg, T)
    Gs, Fp, Cg, T = padded.shape
    blocks = padded.reshape(Gs, Fp // FB, FB, Cg, T).transpose(0, 1, 3, 4, 2)  # (G, Fp/FB, Cg, T, FB)
    return np.ascontiguousarray(blocks).reshape(Gs, Fp // FB, Cg, T * FB)


def _direct_buffers(N, C, F, G, OH, geometry, dtype, vectors=False, filters=2, channels=1):
    """(RB, plane, a band buffer, an output-rows buffer): one row of each per thread, allocated once
    per call rather than per task inside the parallel loop; ``plane`` the values of a band's phase
    plane; each group's filters rounded up to a multiple of ``filters`` and its channels to one of
    ``channels``; with ``vectors``, sized for _direct_conv2d_vectors (pixels in whole vectors)."""
    WC, P = geometry.WC, geometry.phases
    Cb = G * -(-(C // G) // channels) * channels  # the band's rows
    RB = _direct_band_rows(Cb, WC, OH, np.dtype(dtype).itemsize, P)
    T = max(1, min(numba.get_num_threads(), N * -(-OH // RB)))
    Fp = -(-(F // G) // filters) * filters
    L = _direct_vector_pixels(RB, WC) if vectors else RB * WC
    plane = geometry.rows(L) * WC
    return RB, plane, np.empty((T, Cb * P * plane), dtype), np.empty((T, G * Fp * L), dtype)


def direct_conv2d(x, weight, PT, PL, DH, DW, G, OH, OW, out=None, stride=(1, 1)):
    """See ``reference.direct_conv2d``: x (N,C,H,W) -> y (N, F, OH, OW)."""
    x = np.ascontiguousarray(x)
    N, C = x.shape[:2]
    F, _, KH, KW = weight.shape
    geometry = _direct_geometry(KH, KW, *stride, DH, DW, OW)
    y = np.empty((N, F, OH, OW), dtype=x.dtype) if out is None else out
    vectors = DIRECT_VECTORS and x.dtype == np.float32 and weight.dtype == np.float32
    FB = DIRECT_VECTOR_FILTERS if vectors else 2  # filters a block
    RB, plane, bands, acc = _direct_buffers(N, C, F, G, OH, geometry, x.dtype, vectors, filters=FB)
    taps = geometry.taps(plane)
    flops = 2 * KH * KW * N * OH * OW * (C // G) * F  # KH*KW multiply-adds per output value and input channel
    if vectors:
        _by_flops(_direct_conv2d_vectors, flops)(x, _packed_filters(weight, G, FB), taps, PT, PL, *stride,
                                                 geometry.WC, F // G, FB, RB, plane, bands, acc, y)
    else:
        _by_flops(_direct_conv2d_loops, flops)(x, _padded_filters(weight, G), taps, PT, PL, *stride, geometry.WC,
                                               F // G, RB, plane, bands, acc, y)
    return y


def direct_conv2d_dweight(dy, x, KH, KW, PT, PL, DH, DW, G, stride=(1, 1)):
    """See ``reference.direct_conv2d_dweight``: dy (N,F,OH,OW), x -> (F, C/G, KH, KW)."""
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    (N, C), (F, OH, OW) = x.shape[:2], dy.shape[1:]
    Fg, Cg = F // G, C // G
    BF, BC = DIRECT_DWEIGHT_BLOCK
    geometry = _direct_geometry(KH, KW, *stride, DH, DW, OW)
    RB, plane, bands, dy_wide = _direct_buffers(N, C, F, G, OH, geometry, dy.dtype, filters=BF, channels=BC)
    chunks = min(N * -(-OH // RB), DIRECT_DWEIGHT_CHUNKS)
    Fp, Cp = -(-Fg // BF) * BF, -(-Cg // BC) * BC
    partial = np.empty((chunks, G, Fp, Cp, KH * KW), dtype=dy.dtype)
    flops = 2 * KH * KW * N * OH * OW * Cg * F  # KH*KW multiply-adds per output value and input channel
    _by_flops(_direct_conv2d_dweight, flops)(dy, x.astype(dy.dtype, copy=False), geometry.taps(plane), PT, PL,
                                             *stride, geometry.WC, G, RB, plane, bands, dy_wide, partial)
    return partial[:, :, :Fg, :Cg].sum(axis=0).reshape(F, Cg, KH, KW)


# ---- convolution: Winograd F(4x4, 3x3) tiles -------------------------------------------------
#
# One thread per channel (input channel c for the input transforms, filter f for the output
# ones), which walks the block's ROWS of tiles (n, ti): it writes only its channel's rows of
# V / M or its channel's plane of y / dx, so threads never meet. The 6x6 and 4x4 transforms
# of reference.py are separable (BT @ d @ BT.T: BT down the columns of the patch, combining its
# rows, then along its rows), so a row of tiles is done with whole image rows at a time.
# Input tiles (the adjoint runs the same steps backwards):
#   1. the 6 image rows under the row of tiles, zero padded, into a buffer `rows`;
#   2. BT down the columns, for every padded column s at once: R[a, s] = (BT @ rows)[a, s],
#      one unit-stride loop along the whole row;
#   3. BT along the rows, tile by tile: tile tj covers columns 4tj .. 4tj+5 of R, and its 36
#      values go to V[6a + b, c, tile] (the adjoint adds them back; neighbouring tiles share
#      two columns).
# Output tiles:
#   1. AT down the columns, one loop per output row a over the tiles tj, reading unit-stride
#      rows of M;
#   2. AT along the rows, the four column phases 4u + b (b = 0..3) apart: out[a, b::4].
# Their adjoint, dM = AT.T @ dy_tile @ AT from the 4 rows g of dy under a row of tiles, takes
# the same two steps with AT.T: step 1 phase by phase (g[:, b::4]), step 2 writing unit-stride
# rows of dM.
# Where each does its stride-4 access (step 3 of the input tiles, the phases of the output tiles)
# was measured both ways (batch 4, 2 threads, blocks as conv2d makes them). The input tiles'
# adjoint as above against the output tiles' way (its phases in step 2): 1.7 against 3.0-3.5
# ms at 256@32, 1.0 against 2.5-2.8 at 512@16, 3.6 against 6.3-7.5 at 512@32, as fast at 128
# channels; 61 against 83 ms per U-Net step at base 32. The input tiles themselves ran about as fast either way (133 against 137 ms per
# step) and take the same shape as their adjoint; the output tiles and their adjoint ran as
# fast or faster the way they are. The formulas below are the rows of the matrices in
# reference.py, grouped to share terms:
#   BT @ e = (4e0 - 5e2 + e4,  (e3 + e4) - 4(e1 + e2),  (e4 - e3) + 4(e1 - e2),
#             (e4 - e2) + 2(e3 - e1),  (e4 - e2) - 2(e3 - e1),  4e1 - 5e3 + e5)
#   AT @ m = (m0 + m1 + m2 + m3 + m4,  (m1 - m2) + 2(m3 - m4),  (m1 + m2) + 4(m3 + m4),
#             (m1 - m2) + 8(m3 - m4) + m5)
# and their transposes for the adjoints.

WINOGRAD_POINTS = winograd_matrices.POINTS  # rows of V / M: the 6x6 patch of F(4x4, 3x3)


@numba.njit(cache=True)
def _tile_rows(t0, t1, TW):
    """The rows of tiles r = n*TH + ti that tiles [t0, t1) touch: range(first, last + 1)."""
    return range(t0 // TW, (t1 - 1) // TW + 1)


@numba.njit(cache=True)
def _row_span(r, t0, t1, TW):
    """(j0, count, first): tiles tj = j0 .. j0 + count - 1 of tile row r lie in [t0, t1), and
    tile (r, j0) is column ``first`` of V / M. The inner loops run over range(count) from these
    non-negative offsets: with indices Numba cannot prove non-negative (it wraps negative ones
    around, as Python does) the same loops ran 2-3 times slower."""
    j0, j1 = max(0, t0 - r * TW), min(TW, t1 - r * TW)
    return j0, j1 - j0, r * TW + j0 - t0


@numba.njit(**_JIT)
def _winograd_input_tiles(x, PT, PL, TH, TW, t0, V):
    N, C, H, W = x.shape
    t1 = t0 + V.shape[2]
    S = 4 * TW + 2  # the padded columns that the row of tiles covers
    w = max(0, min(W, S - PL))  # the columns of x that some tile reads
    for c in prange(C):
        rows = np.zeros((6, S), dtype=x.dtype)  # rows[i, s] = xpad[n, c, 4ti + i, s]
        R = np.empty((6, S), dtype=x.dtype)  # R[a, s] = (BT @ rows)[a, s]
        for r in _tile_rows(t0, t1, TW):
            n, ti = r // TH, r % TH
            for i in range(6):
                h = 4 * ti - PT + i
                if 0 <= h < H:
                    rows[i, PL:PL + w] = x[n, c, h, :w]
                else:
                    rows[i, PL:PL + w] = 0
            for s in range(S):  # BT down the columns: every padded column of the six rows
                d0, d1, d2 = rows[0, s], rows[1, s], rows[2, s]
                d3, d4, d5 = rows[3, s], rows[4, s], rows[5, s]
                R[0, s] = 4 * d0 - 5 * d2 + d4
                R[1, s] = (d3 + d4) - 4 * (d1 + d2)
                R[2, s] = (d4 - d3) + 4 * (d1 - d2)
                R[3, s] = (d4 - d2) + 2 * (d3 - d1)
                R[4, s] = (d4 - d2) - 2 * (d3 - d1)
                R[5, s] = 4 * d1 - 5 * d3 + d5
            j0, count, first = _row_span(r, t0, t1, TW)
            for a in range(6):  # BT along the rows, tile by tile: V[6a + b, c, first + q]
                for q in range(count):
                    s, k = 4 * (j0 + q), first + q  # the tile's columns s .. s + 5; its column of V
                    e0, e1, e2 = R[a, s], R[a, s + 1], R[a, s + 2]
                    e3, e4, e5 = R[a, s + 3], R[a, s + 4], R[a, s + 5]
                    V[6 * a, c, k] = 4 * e0 - 5 * e2 + e4
                    V[6 * a + 1, c, k] = (e3 + e4) - 4 * (e1 + e2)
                    V[6 * a + 2, c, k] = (e4 - e3) + 4 * (e1 - e2)
                    V[6 * a + 3, c, k] = (e4 - e2) + 2 * (e3 - e1)
                    V[6 * a + 4, c, k] = (e4 - e2) - 2 * (e3 - e1)
                    V[6 * a + 5, c, k] = 4 * e1 - 5 * e3 + e5


@numba.njit(**_JIT)
def _winograd_input_tiles_adjoint(dV, PT, PL, TH, TW, t0, dx):
    N, C, H, W = dx.shape
    t1 = t0 + dV.shape[2]
    S = 4 * TW + 2
    w = max(0, min(W, S - PL))
    for c in prange(C):
        dR = np.empty((6, S), dtype=dV.dtype)  # gradient of R (input_tiles)
        drows = np.empty((6, S), dtype=dV.dtype)  # gradient of rows
        for r in _tile_rows(t0, t1, TW):
            n, ti = r // TH, r % TH
            j0, count, first = _row_span(r, t0, t1, TW)
            dR[:] = 0
            for a in range(6):  # adjoint of step 3: the tile's columns s .. s + 5 get BT.T @ v
                for q in range(count):  # (neighbouring tiles share two columns: their terms add)
                    s, k = 4 * (j0 + q), first + q
                    v0, v1, v2 = dV[6 * a, c, k], dV[6 * a + 1, c, k], dV[6 * a + 2, c, k]
                    v3, v4, v5 = dV[6 * a + 3, c, k], dV[6 * a + 4, c, k], dV[6 * a + 5, c, k]
                    dR[a, s] += 4 * v0
                    dR[a, s + 1] += 4 * (v2 - v1) + 2 * (v4 - v3) + 4 * v5
                    dR[a, s + 2] += -5 * v0 - 4 * (v1 + v2) - (v3 + v4)
                    dR[a, s + 3] += (v1 - v2) + 2 * (v3 - v4) - 5 * v5
                    dR[a, s + 4] += v0 + v1 + v2 + v3 + v4
                    dR[a, s + 5] += v5
            for s in range(S):  # adjoint of BT down the columns: drows = BT.T @ dR
                g0, g1, g2, g3, g4, g5 = dR[0, s], dR[1, s], dR[2, s], dR[3, s], dR[4, s], dR[5, s]
                drows[0, s] = 4 * g0
                drows[1, s] = 4 * (g2 - g1) + 2 * (g4 - g3) + 4 * g5
                drows[2, s] = -5 * g0 - 4 * (g1 + g2) - (g3 + g4)
                drows[3, s] = (g1 - g2) + 2 * (g3 - g4) - 5 * g5
                drows[4, s] = g0 + g1 + g2 + g3 + g4
                drows[5, s] = g5
            for i in range(6):  # into dx; rows in the padding are dropped
                h = 4 * ti - PT + i
                if 0 <= h < H:
                    dx[n, c, h, :w] += drows[i, PL:PL + w]


@numba.njit(**_JIT)
def _winograd_output_tiles(M, TH, TW, t0, y):
    N, F, OH, OW = y.shape
    t1 = t0 + M.shape[2]
    for f in prange(F):
        Mf = M[:, f]  # (36, tiles)
        P = np.empty((4, 6, TW), dtype=M.dtype)  # P[a, j, u] = (AT @ m_tile)[a, j] of tile (r, u)
        out = np.empty((4, 4 * TW), dtype=M.dtype)  # the four output rows of the tile row
        for r in _tile_rows(t0, t1, TW):
            n, ti = r // TH, r % TH
            j0, count, first = _row_span(r, t0, t1, TW)
            for j in range(6):  # step 1, AT down the columns: m_tile[i, j] = M[6i + j, f, t]
                m0, m1, m2 = Mf[j, first:], Mf[6 + j, first:], Mf[12 + j, first:]
                m3, m4, m5 = Mf[18 + j, first:], Mf[24 + j, first:], Mf[30 + j, first:]
                p0, p1, p2, p3 = P[0, j, j0:], P[1, j, j0:], P[2, j, j0:], P[3, j, j0:]
                for q in range(count):
                    p0[q] = m0[q] + m1[q] + m2[q] + m3[q] + m4[q]
                for q in range(count):
                    p1[q] = (m1[q] - m2[q]) + 2 * (m3[q] - m4[q])
                for q in range(count):
                    p2[q] = (m1[q] + m2[q]) + 4 * (m3[q] + m4[q])
                for q in range(count):
                    p3[q] = (m1[q] - m2[q]) + 8 * (m3[q] - m4[q]) + m5[q]
            for a in range(4):  # step 2, AT along the rows: the tile's columns 4u + b
                m0, m1, m2, m3, m4, m5 = P[a, 0], P[a, 1], P[a, 2], P[a, 3], P[a, 4], P[a, 5]
                o0, o1, o2, o3 = out[a, 0::4], out[a, 1::4], out[a, 2::4], out[a, 3::4]  # (TW,)
                for u in range(j0, j0 + count):
                    o0[u] = m0[u] + m1[u] + m2[u] + m3[u] + m4[u]
                    o1[u] = (m1[u] - m2[u]) + 2 * (m3[u] - m4[u])
                    o2[u] = (m1[u] + m2[u]) + 4 * (m3[u] + m4[u])
                    o3[u] = (m1[u] - m2[u]) + 8 * (m3[u] - m4[u]) + m5[u]
                h, w0, w1 = 4 * ti + a, 4 * j0, min(4 * (j0 + count), OW)
                if h < OH:
                    y[n, f, h, w0:w1] = out[a, w0:w1]


@numba.njit(**_JIT)
def _winograd_output_tiles_adjoint(dy, TH, TW, t0, dM):
    N, F, OH, OW = dy.shape
    t1 = t0 + dM.shape[2]
    w = min(OW, 4 * TW)
    for f in prange(F):
        dMf = dM[:, f]  # (36, tiles)
        g = np.zeros((4, 4 * TW), dtype=dy.dtype)  # the four dy rows of the tile row, zero padded
        R = np.empty((4, 6, TW), dtype=dy.dtype)  # R[b, i, u] = (AT.T @ g)[i, 4u + b]
        for r in _tile_rows(t0, t1, TW):
            n, ti = r // TH, r % TH
            j0, count, first = _row_span(r, t0, t1, TW)
            for a in range(4):
                if 4 * ti + a < OH:
                    g[a, :w] = dy[n, f, 4 * ti + a, :w]
                else:
                    g[a, :w] = 0
            for b in range(4):  # step 1 with AT.T: down the columns of g, phase by phase
                d, Rb = g[:, b::4], R[b]  # (4, TW), (6, TW)
                for u in range(j0, j0 + count):
                    Rb[0, u] = d[0, u]
                    Rb[1, u] = (d[0, u] + d[2, u]) + (d[1, u] + d[3, u])
                    Rb[2, u] = (d[0, u] + d[2, u]) - (d[1, u] + d[3, u])
                    Rb[3, u] = (d[0, u] + 4 * d[2, u]) + 2 * (d[1, u] + 4 * d[3, u])
                    Rb[4, u] = (d[0, u] + 4 * d[2, u]) - 2 * (d[1, u] + 4 * d[3, u])
                    Rb[5, u] = d[3, u]
            for i in range(6):  # step 2 with AT.T, along the rows: dM[6i + j, f, first + q]
                g0, g1, g2, g3 = R[0, i, j0:], R[1, i, j0:], R[2, i, j0:], R[3, i, j0:]
                dm = dMf[6 * i:6 * i + 6, first:first + count]  # (6, count)
                for q in range(count):
                    dm[0, q] = g0[q]
                for q in range(count):
                    dm[1, q] = (g0[q] + g2[q]) + (g1[q] + g3[q])
                for q in range(count):
                    dm[2, q] = (g0[q] + g2[q]) - (g1[q] + g3[q])
                for q in range(count):
                    dm[3, q] = (g0[q] + 4 * g2[q]) + 2 * (g1[q] + 4 * g3[q])
                for q in range(count):
                    dm[4, q] = (g0[q] + 4 * g2[q]) - 2 * (g1[q] + 4 * g3[q])
                for q in range(count):
                    dm[5, q] = g3[q]


def winograd_input_tiles(x, PT, PL, TH, TW, t0, t1):
    """See ``reference.winograd_input_tiles``: x (N,C,H,W) -> V (36, C, t1 - t0)."""
    V = np.empty((WINOGRAD_POINTS, x.shape[1], t1 - t0), dtype=x.dtype)
    _by_values(_winograd_input_tiles, V)(np.ascontiguousarray(x), PT, PL, TH, TW, t0, V)
    return V


def winograd_input_tiles_adjoint(dV, PT, PL, TH, TW, t0, dx):
    """See ``reference.winograd_input_tiles_adjoint``: dx += adjoint(dV), in place."""
    _by_values(_winograd_input_tiles_adjoint, dV)(np.ascontiguousarray(dV), PT, PL, TH, TW, t0, dx)


def winograd_output_tiles(M, TH, TW, t0, y):
    """See ``reference.winograd_output_tiles``: writes the tiles of M (36, F, tiles) into y."""
    _by_values(_winograd_output_tiles, M)(np.ascontiguousarray(M), TH, TW, t0, y)


def winograd_output_tiles_adjoint(dy, TH, TW, t0, t1):
    """See ``reference.winograd_output_tiles_adjoint``: dy (N,F,OH,OW) -> dM (36, F, t1 - t0)."""
    dM = np.empty((WINOGRAD_POINTS, dy.shape[1], t1 - t0), dtype=dy.dtype)
    _by_values(_winograd_output_tiles_adjoint, dM)(np.ascontiguousarray(dy), TH, TW, t0, dM)
    return dM


# ---- pooling --------------------------------------------------------------------------------
#
# One thread per (n, c) plane. Cells outside the input (padding, or past it with ceil_mode)
# are skipped: for max they are -inf, which never wins; for avg they are 0, which adds nothing.

@numba.njit(**_JIT)
def _maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, argmax):
    """y[n,c,i,j] = max over the window, argmax = h*W + w of the winner (PyTorch's scan)."""
    N, C, H, W = x.shape
    _, _, OH, OW = y.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for i in range(OH):
            for j in range(OW):
                best, index = x[n, c, 0, 0], -1  # index -1: no cell of the window seen yet
                for p in range(KH):
                    h = SH * i - PH + DH * p
                    if h < 0 or h >= H:
                        continue
                    for q in range(KW):
                        w = SW * j - PW + DW * q
                        if w < 0 or w >= W:
                            continue
                        value = x[n, c, h, w]
                        # the first cell starts the scan; later: strictly greater, or NaN
                        if index == -1 or value > best or np.isnan(value):
                            best, index = value, h * W + w
                y[n, c, i, j] = best
                argmax[n, c, i, j] = index


@numba.njit(**_JIT)
def _maxpool2d_backward(dy, argmax, dx):
    """dx[n,c].flat[argmax[n,c,i,j]] += dy[n,c,i,j], (i, j) in order; dx (N*C, H*W) starts at 0."""
    planes, cells = dy.shape  # dy and argmax as (N*C, OH*OW)
    for nc in prange(planes):
        for k in range(cells):
            dx[nc, argmax[nc, k]] += dy[nc, k]


@numba.njit(**_JIT)
def _avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, divisor, y):
    """y[n,c,i,j] = (sum of the window's input cells, p then q) / divisor[i,j]."""
    N, C, H, W = x.shape
    _, _, OH, OW = y.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for i in range(OH):
            for j in range(OW):
                total = y.dtype.type(0)
                for p in range(KH):
                    h = SH * i - PH + p
                    if h < 0 or h >= H:
                        continue
                    for q in range(KW):
                        w = SW * j - PW + q
                        if 0 <= w < W:
                            total += x[n, c, h, w]
                y[n, c, i, j] = total / divisor[i, j]


@numba.njit(**_JIT)
def _avgpool2d_backward(dy, KH, KW, SH, SW, PH, PW, divisor, dx):
    """dx[n,c,h,w] += dy[n,c,i,j] / divisor[i,j] over the windows holding (h, w); dx starts at 0.

    Position (p, q) by position, as the reference, so every cell adds its terms in its order.
    """
    N, C, H, W = dx.shape
    _, _, OH, OW = dy.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for p in range(KH):
            for q in range(KW):
                for i in range(OH):
                    h = SH * i - PH + p
                    if h < 0 or h >= H:
                        continue
                    for j in range(OW):
                        w = SW * j - PW + q
                        if 0 <= w < W:
                            dx[n, c, h, w] += dy[n, c, i, j] / divisor[i, j]


def maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """See ``reference.maxpool2d_forward``: x (N,C,H,W) -> y, argmax (N,C,OH,OW) int64."""
    N, C = x.shape[:2]
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int64)
    _by_window_cells(_maxpool2d_forward, y.size * KH * KW)(np.ascontiguousarray(x), KH, KW, SH, SW, PH, PW,
                                                          DH, DW, y, argmax)
    return y, argmax


def maxpool2d_backward(dy, argmax, x_shape):
    """See ``reference.maxpool2d_backward``: scatter-ADD dy to the winners (argmax from forward)."""
    N, C, H, W = x_shape
    OH, OW = argmax.shape[2:]
    dx = np.zeros((N * C, H * W), dtype=dy.dtype)
    _by_values(_maxpool2d_backward, dx)(np.ascontiguousarray(dy).reshape(N * C, OH * OW),
                                        np.ascontiguousarray(argmax, dtype=np.int64).reshape(N * C, OH * OW), dx)
    return dx.reshape(x_shape)


def avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad, divisor_override):
    """See ``reference.avgpool2d_forward``: x (N,C,H,W) -> y (N,C,OH,OW)."""
    N, C, H, W = x.shape
    divisor = _avgpool2d_divisor(H, W, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad,
                                 divisor_override, x.dtype)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    _by_window_cells(_avgpool2d_forward, y.size * KH * KW)(np.ascontiguousarray(x), KH, KW, SH, SW, PH, PW,
                                                          divisor, y)
    return y


def avgpool2d_backward(dy, x_shape, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad,
                       divisor_override):
    """See ``reference.avgpool2d_backward``: dy (N,C,OH,OW) -> dx x_shape."""
    H, W = x_shape[2:]
    divisor = _avgpool2d_divisor(H, W, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad,
                                 divisor_override, dy.dtype)
    dx = np.zeros(x_shape, dtype=dy.dtype)
    _by_window_cells(_avgpool2d_backward, dy.size * KH * KW)(np.ascontiguousarray(dy), KH, KW, SH, SW, PH, PW,
                                                            divisor, dx)
    return dx


# ---- batch normalisation (training) ---------------------------------------------------------
#
# The exception to "the reference's namesake": these two fuse the array code of BatchNorm in
# minidl/ops/norm.py (its specification; every other backend runs that code), which makes about
# seven passes over the activations forward and twelve backward, each through a temporary,
# into three passes forward and two backward, one thread per channel. A channel's sums are taken
# in float64 by one thread (in an order fixed by the sizes: the same result on any number of
# threads); ``reassoc`` lets LLVM split them into vector lanes.
_JIT_NORM = dict(parallel=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


@numba.njit(**_JIT_NORM)
def _batch_norm_train(x, weight, bias, eps, y, x_hat, stats):
    """Per channel c of x (N, C, S): mean, biased var, inv_std = 1/sqrt(var + eps) into
    stats[0..2, c]; x_hat = (x - mean) * inv_std and y = weight * x_hat + bias (N, C, S)."""
    N, C, S = x.shape
    m = N * S
    for c in prange(C):
        total = 0.0
        for n in range(N):
            for s in range(S):
                total += x[n, c, s]
        mean = total / m
        squares = 0.0
        for n in range(N):
            for s in range(S):
                d = x[n, c, s] - mean
                squares += d * d
        var = squares / m
        inv_std = 1.0 / np.sqrt(var + eps)
        stats[0, c], stats[1, c], stats[2, c] = mean, var, inv_std
        mean_c, inv_c = x.dtype.type(mean), x.dtype.type(inv_std)
        w, b = weight[c], bias[c]
        for n in range(N):
            for s in range(S):
                h = (x[n, c, s] - mean_c) * inv_c
                x_hat[n, c, s] = h
                y[n, c, s] = h * w + b


@numba.njit(**_JIT_NORM)
def _batch_norm_backward(dy, x_hat, weight, inv_std, needs_x, dx, sums):
    """Per channel c: sums[0, c] = sum dy (dbias), sums[1, c] = sum dy * x_hat (dweight); with
    needs_x, dx = weight * inv_std * (dy - sums[0]/m - x_hat * sums[1]/m), all (N, C, S)."""
    N, C, S = dy.shape
    m = N * S
    for c in prange(C):
        sum_dy = 0.0
        sum_dy_x_hat = 0.0
        for n in range(N):
            for s in range(S):
                sum_dy += dy[n, c, s]
                sum_dy_x_hat += dy[n, c, s] * x_hat[n, c, s]
        sums[0, c], sums[1, c] = sum_dy, sum_dy_x_hat
        if needs_x:
            scale = dy.dtype.type(weight[c] * inv_std[c])
            mean_dy, mean_dy_x_hat = dy.dtype.type(sum_dy / m), dy.dtype.type(sum_dy_x_hat / m)
            for n in range(N):
                for s in range(S):
                    dx[n, c, s] = scale * (dy[n, c, s] - mean_dy - x_hat[n, c, s] * mean_dy_x_hat)


def _channels_3d(a):
    """(N, C, *) -> a C-contiguous (N, C, S) view (or copy), S = prod(*) (1 for a 2-D input)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)  # (N, C, S)


def batch_norm_train(x, weight, bias, eps):
    """BatchNorm's training forward (minidl/ops/norm.py), fused: x (N, C, *), weight and bias
    (C,) or None -> y, x_hat (like x), mean, var, inv_std (C,), in x's dtype."""
    C = x.shape[1]
    weight = np.ones(C, dtype=x.dtype) if weight is None else weight.astype(x.dtype, copy=False)
    bias = np.zeros(C, dtype=x.dtype) if bias is None else bias.astype(x.dtype, copy=False)
    y, x_hat = allocator.empty(x.shape, x.dtype), allocator.empty(x.shape, x.dtype)  # cached: fresh memory is slow
    stats = np.empty((3, C), dtype=np.float64)  # mean, var, inv_std
    _by_values(_batch_norm_train, x)(_channels_3d(x), weight, bias, float(eps), _channels_3d(y), _channels_3d(x_hat), stats)
    mean, var, inv_std = stats.astype(x.dtype)
    return y, x_hat, mean, var, inv_std


def batch_norm_backward(dy, x_hat, weight, inv_std, needs_x):
    """BatchNorm's training backward (minidl/ops/norm.py), fused: dy, x_hat (N, C, *), weight
    (C,) or None, inv_std (C,) -> dx (like dy, or None without needs_x), dweight, dbias (C,)."""
    C = dy.shape[1]
    weight = np.ones(C, dtype=dy.dtype) if weight is None else weight
    dx = allocator.empty(dy.shape, dy.dtype) if needs_x else np.empty((0, C, 0), dtype=dy.dtype)
    sums = np.empty((2, C), dtype=np.float64)  # dbias, dweight
    _by_values(_batch_norm_backward, dy)(_channels_3d(dy), _channels_3d(x_hat), weight, inv_std, needs_x,
                                         _channels_3d(dx) if needs_x else dx, sums)
    dbias, dweight = sums.astype(dy.dtype)
    return (dx if needs_x else None), dweight, dbias


# ---- ReLU ------------------------------------------------------------------------------------
#
# Like batch norm, an extra route beside the array code of Relu in minidl/ops/activation.py (its
# specification, bit for bit): NumPy's ``where`` takes one core and a temporary mask; these are
# one pass on every core.


@numba.njit(parallel=True, cache=True)
def _relu(x, y):
    """y[i] = 0 if x[i] < 0 else x[i] (flat arrays): NaN and -0.0 stay as they are."""
    zero = x.dtype.type(0)
    for i in prange(x.size):
        y[i] = zero if x[i] < zero else x[i]


@numba.njit(parallel=True, cache=True)
def _relu_backward(dy, y, dx):
    """dx[i] = 0 if y[i] <= 0 else dy[i] (flat arrays)."""
    zero = dy.dtype.type(0)
    for i in prange(dy.size):
        dx[i] = zero if y[i] <= zero else dy[i]


def _flat_views(*arrays):
    """1-D views of C-contiguous arrays of one float dtype (float32 or float64), or None if any is not."""
    dtype = arrays[0].dtype
    if dtype not in (np.float32, np.float64) or any(
            a.dtype != dtype or not a.flags.c_contiguous or a.shape != arrays[0].shape for a in arrays):
        return None
    return [a.reshape(-1) for a in arrays]  # (size,) views: no copies


def _run_elementwise(kernel, *arrays):
    """Run an elementwise ``kernel`` on flat views of ``arrays``: all at once, or sample by sample
    where only each sample is contiguous (a channel slice of a larger array: the gradient that
    Cat's backward hands each input). False, writing nothing, if neither suits the kernel."""
    flat = _flat_views(*arrays)
    if flat is not None:
        _by_values(kernel, arrays[0])(*flat)
        return True
    if arrays[0].ndim < 2 or any(a.shape != arrays[0].shape for a in arrays):
        return False
    samples = [_flat_views(*(a[n] for a in arrays)) for n in range(arrays[0].shape[0])]
    if any(views is None for views in samples):
        return False
    for views in samples:
        _by_values(kernel, views[0])(*views)
    return True


def relu(x, out):
    """ReLU's forward into ``out`` (like x); False if the arrays do not suit the kernel (then
    nothing is written and the caller runs the array code)."""
    return _run_elementwise(_relu, x, out)


def relu_backward(dy, y, out):
    """ReLU's backward (0 where y <= 0, else dy) into ``out`` (like dy); False, writing nothing,
    if the arrays do not suit the kernel."""
    return _run_elementwise(_relu_backward, dy, y, out)
