r"""GPU kernels: the functions of :mod:`minidl.backend.reference` as CUDA kernels, via CuPy.

Every public function here has the reference's name, signature and results (the reference is
the specification; read it first). Arrays in and out are CuPy arrays on the current device.
The CUDA C sources are in ``minidl/backend/cuda/`` (one file per kernel family), compiled by
CuPy (NVRTC) on first use and cached by CuPy on disk. How the kernels map threads to data and
why they are deterministic: the comments at the top of each .cu file and docs/gpu.md.

    im2col               one thread per entry of cols: a copy
    col2im               gather: one thread per input pixel sums the entries that fold onto it
    maxpool2d_forward    one thread per output cell: the reference's scan, ties and NaN rule
    maxpool2d_backward   sort the (pixel, output cell) pairs, then gather per input pixel
    avgpool2d_forward    one thread per output cell
    avgpool2d_backward   gather: one thread per input pixel

plus a fused softmax + cross-entropy with class-index targets (forward and backward), which
the reference does not have (yet): :func:`softmax_cross_entropy_forward` and
:func:`softmax_cross_entropy_backward` give their NumPy specification in their docstrings.

No kernel uses atomics, and each sum is taken in a fixed order, so every result is the same
from run to run, bit for bit. Matrix products are not here: the ops call ``@`` on CuPy
arrays, which is cuBLAS.

This module imports CuPy at import; ``minidl.backend.kernels_for`` imports it only for a
CuPy array, so ``import minidl`` never imports CuPy.
"""
import functools
from pathlib import Path

import numpy as np

try:
    import cupy
except ImportError as error:  # pragma: no cover - only without CuPy
    raise ImportError(
        "minidl's GPU kernels need CuPy and a CUDA GPU: `pip install minidl[gpu]` "
        "(cupy-cuda12x, for a CUDA 12 driver) or `minidl[gpu-cuda13]` (cupy-cuda13x), or use "
        "NumPy arrays on the CPU"
    ) from error

from . import deferred_checks
from .geometry import conv_output_size
from .reference import _col2im_geometry

SOURCE_DIR = Path(__file__).with_name("cuda")

# The convolution routes (minidl/backend/algorithms.py) these kernels support: the rotated
# kernel's dx needs only im2col; Winograd's and shifted rows' kernels are not written for CUDA.
CONV_ALGORITHMS = {"rotated_kernel": 1}

# The kernels each source file must define (extern "C" names), for every dtype suffix where
# the name ends in "_{}". tests/backend/test_cuda_sources.py compiles each file with nvcc and
# checks that its PTX defines exactly these names, reading this table from the source text:
# keep it a plain literal.
KERNEL_NAMES = {
    "im2col.cu": ["im2col_{}", "col2im_{}"],
    "pool.cu": ["maxpool2d_forward_{}", "maxpool2d_backward_gather_{}", "avgpool2d_forward_{}",
                "avgpool2d_backward_{}", "maxpool2d_backward_segments"],
    "softmax_xent.cu": ["softmax_xent_forward_{}", "softmax_xent_backward_{}"],
}
DTYPE_SUFFIXES = {"float32": "f32", "float64": "f64"}

THREADS_PER_BLOCK = 256
MAX_BLOCKS = 65536  # the kernels are grid-stride loops: more work than this just loops


@functools.lru_cache(maxsize=None)
def _module(filename):
    """The compiled CUDA module of one source file (compiled once per process)."""
    code = (SOURCE_DIR / filename).read_text()
    return cupy.RawModule(code=code, options=("-std=c++14",))


def _kernel(filename, name, dtype=None):
    """The kernel ``name`` of ``filename`` for ``dtype`` (float32 or float64)."""
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.name not in DTYPE_SUFFIXES:
            raise TypeError(f"minidl GPU kernels support float32 and float64 arrays, got {dtype}")
        name = name.format(DTYPE_SUFFIXES[dtype.name])
    return _module(filename).get_function(name)


def _launch(kernel, total, *args):
    """Run ``kernel`` over ``total`` work items (its last argument), if there are any."""
    if total == 0:
        return
    blocks = min((total + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, MAX_BLOCKS)
    kernel((blocks,), (THREADS_PER_BLOCK,), args + (np.int64(total),))


def _ints(*values):
    """Python ints as the kernels' ``int`` parameters (np.int32, checked to fit)."""
    for value in values:
        if not -2**31 <= value < 2**31:
            raise ValueError(f"minidl GPU kernels: {value} does not fit a 32-bit int")
    return tuple(np.int32(value) for value in values)


def _contiguous(a):
    return cupy.ascontiguousarray(a)


# ---- convolution: im2col / col2im -------------------------------------------------------------

def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW):
    r"""x (N,C,H,W) -> cols (N, C*KH*KW, OH*OW); see :func:`minidl.backend.reference.im2col`."""
    N, C, H, W = x.shape
    OH = conv_output_size(H, KH, SH, PH, DH)
    OW = conv_output_size(W, KW, SW, PW, DW)
    x = _contiguous(x)
    cols = cupy.empty((N, C * KH * KW, OH * OW), dtype=x.dtype)
    _launch(_kernel("im2col.cu", "im2col_{}", x.dtype), cols.size, x, cols,
            *_ints(C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))
    return cols


def col2im(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW):
    r"""cols (N, C*KH*KW, OH*OW) -> dx x_shape; see :func:`minidl.backend.reference.col2im`.

    Gather form: one thread per input pixel adds up the entries of cols that fold onto it.
    """
    N, C, H, W = x_shape
    OH, OW = _col2im_geometry(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW)
    cols = _contiguous(cols)
    dx = cupy.empty((N, C, H, W), dtype=cols.dtype)
    _launch(_kernel("im2col.cu", "col2im_{}", cols.dtype), dx.size, cols, dx,
            *_ints(C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))
    return dx


# ---- pooling ----------------------------------------------------------------------------------

def maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    r"""x (N,C,H,W) -> y, argmax (N,C,OH,OW); see :func:`minidl.backend.reference.maxpool2d_forward`.

    argmax is int64, ``h*W + w`` in x's plane; ties and NaN as the reference (PyTorch's scan).
    """
    N, C, H, W = x.shape
    x = _contiguous(x)
    y = cupy.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = cupy.empty((N, C, OH, OW), dtype=cupy.int64)
    _launch(_kernel("pool.cu", "maxpool2d_forward_{}", x.dtype), y.size, x, y, argmax,
            *_ints(H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))
    return y, argmax


def maxpool2d_backward(dy, argmax, x_shape):
    r"""dy, argmax (N,C,OH,OW) -> dx x_shape; see :func:`minidl.backend.reference.maxpool2d_backward`.

        dx[n,c].flat[argmax[n,c,i,j]] += dy[n,c,i,j]

    Without atomics: one int64 key per output cell o = i*OW + j of plane (n, c),
        key = ((n*C + c)*H*W + argmax) * OH*OW + o
    sorted, groups the cells that picked the same input pixel, in increasing o; one thread per
    input pixel then sums dy over its group in that order (np.add.at's order in the reference).
    """
    N, C, H, W = x_shape
    OH, OW = argmax.shape[2:]
    planes, HW, OHW = N * C, H * W, OH * OW
    if planes * HW * OHW >= 2**63:
        raise ValueError(f"maxpool2d_backward: x_shape {tuple(x_shape)} with output ({OH}, {OW}) "
                         "is too large for the int64 sort keys")
    dx = cupy.empty((N, C, H, W), dtype=dy.dtype)
    kernel = _kernel("pool.cu", "maxpool2d_backward_gather_{}", dy.dtype)  # checks the dtype
    if dy.size == 0 or dx.size == 0:
        dx[...] = 0
        return dx
    index = argmax.reshape(planes, OHW).astype(cupy.int64, copy=False)
    deferred_checks.check(((index < 0) | (index >= HW)).any(), lambda: IndexError(  # read at the next host copy
        f"maxpool2d_backward: argmax has entries outside [0, {HW}), the H*W plane of x_shape {tuple(x_shape)}"))
    plane_start = cupy.arange(planes, dtype=cupy.int64)[:, None] * HW  # (planes, 1)
    cell = cupy.arange(OHW, dtype=cupy.int64)[None, :]  # (1, OHW)
    keys = cupy.sort(((plane_start + index) * OHW + cell).ravel())  # unique keys
    run_start = cupy.full(planes * HW, -1, dtype=cupy.int64)
    _launch(_kernel("pool.cu", "maxpool2d_backward_segments"), keys.size, keys, run_start,
            np.int64(OHW))
    _launch(kernel, dx.size, _contiguous(dy), keys, run_start, dx, np.int64(HW), np.int64(OHW),
            np.int64(keys.size))
    return dx


def _avgpool_args(dtype, count_include_pad, divisor_override):
    """The kernels' (count_include_pad, has_override, divisor_override) arguments."""
    scalar = np.dtype(dtype).type
    has_override = divisor_override is not None
    return (np.int32(bool(count_include_pad)), np.int32(has_override),
            scalar(divisor_override if has_override else 0))


def avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad, divisor_override):
    r"""x (N,C,H,W) -> y (N,C,OH,OW); see :func:`minidl.backend.reference.avgpool2d_forward`."""
    N, C, H, W = x.shape
    x = _contiguous(x)
    y = cupy.empty((N, C, OH, OW), dtype=x.dtype)
    _launch(_kernel("pool.cu", "avgpool2d_forward_{}", x.dtype), y.size, x, y,
            *_ints(H, W, KH, KW, SH, SW, PH, PW, OH, OW),
            *_avgpool_args(x.dtype, count_include_pad, divisor_override))
    return y


def avgpool2d_backward(dy, x_shape, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad,
                       divisor_override):
    r"""dy (N,C,OH,OW) -> dx x_shape; see :func:`minidl.backend.reference.avgpool2d_backward`.

    Gather form: one thread per input pixel sums dy / divisor over the windows that contain it.
    """
    N, C, H, W = x_shape
    dy = _contiguous(dy)
    dx = cupy.empty((N, C, H, W), dtype=dy.dtype)
    _launch(_kernel("pool.cu", "avgpool2d_backward_{}", dy.dtype), dx.size, dy, dx,
            *_ints(H, W, KH, KW, SH, SW, PH, PW, OH, OW),
            *_avgpool_args(dy.dtype, count_include_pad, divisor_override))
    return dx


# ---- fused softmax + cross-entropy (class-index targets) ----------------------------------------

def _xent_args(logits, target, weight, ignore_index):
    """Shapes checked, arrays made contiguous, and the kernels' common arguments."""
    if logits.ndim < 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (N,C,*d), got shape {logits.shape}")
    N, C = logits.shape[:2]
    if C == 0:
        raise ValueError("softmax_cross_entropy: logits have no classes (C = 0)")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"softmax_cross_entropy: target shape {target.shape} does not match "
                         f"logits shape {logits.shape} (it must be (N,*d))")
    S = int(np.prod(logits.shape[2:], dtype=np.int64))
    if weight is None:
        weight = cupy.ones(C, dtype=logits.dtype)  # the reference's w_t with no weight: 1
    weight = _contiguous(weight.astype(logits.dtype, copy=False))
    target = _contiguous(target.astype(cupy.int64, copy=False))
    has_ignore = ignore_index is not None
    return (_contiguous(logits), target, weight), (
        *_ints(C), np.int64(S), np.int32(has_ignore), np.int64(ignore_index if has_ignore else 0))


def softmax_cross_entropy_forward(logits, target, weight, ignore_index):
    r"""Per-element cross-entropy of class-index targets, softmax fused in.

    logits (N,C,*d) float, target (N,*d) int, weight (C,) or None, ignore_index int or None
    -> loss (N,*d), what ``CrossEntropy`` (minidl/ops/loss.py, label_smoothing = 0) reduces:

        logp    = log_softmax(logits, axis=1)      (max-shifted, as log_softmax_array)
        valid   = target != ignore_index           (all True when ignore_index is None)
        t       = where(valid, target, 0)
        w       = weight[t] * valid                (weight = ones(C) when None)
        loss    = -w * logp[n, t, ...]

    NumPy specification (what the reference would hold)::

        C = logits.shape[1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        valid = (target != ignore_index) if ignore_index is not None else np.ones(target.shape, bool)
        t = np.where(valid, target, 0)
        w = (np.ones(C, logits.dtype) if weight is None else weight.astype(logits.dtype))[t] * valid
        return -w * np.take_along_axis(logp, t[:, None], axis=1)[:, 0]

    One GPU thread per element loops over the C classes (max, sum of exp, loss).
    """
    arrays, scalars = _xent_args(logits, target, weight, ignore_index)
    loss = cupy.empty(target.shape, dtype=logits.dtype)
    _launch(_kernel("softmax_xent.cu", "softmax_xent_forward_{}", logits.dtype), loss.size,
            *arrays, loss, *scalars)
    return loss


def softmax_cross_entropy_backward(dy, logits, target, weight, ignore_index):
    r"""dlogits for :func:`softmax_cross_entropy_forward`, given dy = dL/dloss (N,*d).

        dlogits[n,c,...] = dy * w * (softmax(logits)[n,c,...] - [c == t])   where valid, else 0

    NumPy specification (``C``, ``t``, ``w``, ``valid``, ``logp`` as in the forward)::

        onehot = (t[:, None] == np.arange(C).reshape((1, C) + (1,) * (t.ndim - 1)))
        dx = (dy * w)[:, None] * (np.exp(logp) - onehot)
        return np.where(valid[:, None], dx, 0)

    One GPU thread per element recomputes the max and the sum of exp from the logits (nothing
    of size (N,C,*d) is saved by the forward) and writes its C gradient entries.
    """
    arrays, scalars = _xent_args(logits, target, weight, ignore_index)
    if dy.shape != target.shape:
        raise ValueError(f"softmax_cross_entropy_backward: dy has shape {dy.shape}, "
                         f"expected the target's {target.shape}")
    dx = cupy.empty(logits.shape, dtype=logits.dtype)
    dy = _contiguous(dy.astype(logits.dtype, copy=False))  # a broadcast dy is materialised
    _launch(_kernel("softmax_xent.cu", "softmax_xent_backward_{}", logits.dtype), target.size,
            dy, *arrays, dx, *scalars)
    return dx
