r"""The GPU kernels (minidl/backend/cupy_gpu.py, minidl/backend/cuda/*.cu) against the reference.

Every kernel test runs twice, once per value of the ``gpu`` fixture:

    cuda   real CuPy on a CUDA GPU; skipped where CuPy or a GPU is missing.
    host   the SAME cupy_gpu.py and the SAME .cu sources, on the CPU: the sources are built by
           the C++ compiler with a small shim (CUDA's thread indices become globals, set before
           each emulated thread runs) and launched through ctypes, one emulated thread at a time
           over a grid of 2 blocks x 3 threads; ``cupy`` is NumPy. It checks the index math, the
           tie/NaN and divisor rules, the gather sums, the grid-stride loops and the Python glue
           (argument order and types, shapes, dtypes) without a GPU. It cannot check
           concurrency, NVRTC, the GPU's exp/log or CuPy itself: only `cuda` does.

Tolerances (CPU vs GPU): float32 1e-5 and float64 1e-12, relative to the largest magnitude of
the expected array; copies (im2col), max values and argmax exactly. Determinism: every kernel
run twice on the same input gives bitwise-equal results.

The fused softmax + cross-entropy kernels have no reference counterpart yet: their NumPy
specification is written out below (``numpy_softmax_cross_entropy_*``) and checked against
minidl's CPU ``cross_entropy`` (runs everywhere), and the kernels are checked against both.
"""
import ctypes
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functional as F
from minidl.backend import kernels_for, reference, to_device, to_host
from minidl.backend.devices import module_of_device as array_module_of_device
from minidl.ops.pool import pool_output_size

GPU_MODULE = Path(reference.__file__).with_name("cupy_gpu.py")
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
SETTINGS = settings(max_examples=40, deadline=None)


# ---- the two ways to run the kernels --------------------------------------------------------

class Device:
    """The kernels module and how to move arrays to and from where it runs."""

    def __init__(self, name, kernels, xp, to_device, to_host):
        self.name, self.kernels, self.xp = name, kernels, xp
        self.to_device, self.to_host = to_device, to_host


def _cuda_device():
    """The cuda device, reached through minidl's seam: its array module and the kernels that
    ``kernels_for`` gives a CuPy array."""
    if not minidl.cuda.is_available():
        pytest.skip(f"the cuda device is not available here: {minidl.cuda.why_unavailable()}")
    cupy = array_module_of_device("cuda")
    kernels = kernels_for(cupy.zeros(1))
    assert kernels.__name__ == "minidl.backend.cupy_gpu"
    return Device("cuda", kernels, cupy, lambda a: to_device(np.asarray(a), "cuda"), to_host)


# The shim that lets the C++ compiler build a .cu file for the CPU: CUDA's keywords vanish,
# threadIdx & co. become globals that the harness sets before running each emulated thread.
HOST_SHIM = r"""
#include <cmath>
#include <cstring>
struct minidl_dim3 { unsigned int x, y, z; };
static minidl_dim3 threadIdx, blockIdx, blockDim, gridDim;
extern "C" void minidl_set_thread(unsigned int block, unsigned int thread,
                                  unsigned int block_dim, unsigned int grid_dim)
{
    blockIdx.x = block; threadIdx.x = thread; blockDim.x = block_dim; gridDim.x = grid_dim;
}
#define __global__
#define __device__
static inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, sizeof f); return f; }
static inline double __longlong_as_double(long long v)
{
    double d; std::memcpy(&d, &v, sizeof d); return d;
}
"""
HOST_GRID, HOST_BLOCK = 2, 3  # emulated threads: few, but more than one, in more than one block


class HostKernel:
    """A kernel of a host-built module, called like a CuPy RawKernel: kernel(grid, block, args)."""

    def __init__(self, library, name):
        self.function = getattr(library, name)
        self.set_thread = library.minidl_set_thread

    @staticmethod
    def _c_argument(value):
        if isinstance(value, np.ndarray):
            assert value.flags.c_contiguous, "kernels take C-contiguous arrays"
            return ctypes.c_void_p(value.ctypes.data)
        kinds = {np.int32: ctypes.c_int, np.int64: ctypes.c_longlong, np.float32: ctypes.c_float,
                 np.float64: ctypes.c_double}
        if type(value) not in kinds:  # CuPy would guess a C type for a Python scalar: never pass one
            raise TypeError(f"kernel argument {value!r} of type {type(value).__name__}: pass NumPy "
                            "scalars of the kernel's parameter types")
        return kinds[type(value)](value)

    def __call__(self, grid, block, args):
        assert len(grid) == 1 and grid[0] >= 1 and block == (256,)
        c_args = [self._c_argument(value) for value in args]
        for b in range(HOST_GRID):
            for t in range(HOST_BLOCK):
                self.set_thread(b, t, HOST_BLOCK, HOST_GRID)
                self.function(*c_args)


class HostRawModule:
    """Stands in for cupy.RawModule: builds the source for the CPU with the shim."""

    build_dir = None  # set by the fixture: a pytest temporary directory

    def __init__(self, code, options=()):
        assert "-std=c++14" in options
        compiler = shutil.which("c++") or shutil.which("g++")
        digest = hashlib.sha256(code.encode()).hexdigest()[:16]
        source = HostRawModule.build_dir / f"{digest}.cpp"
        library = HostRawModule.build_dir / f"{digest}.so"
        if not library.exists():
            source.write_text(HOST_SHIM + "\n#line 1 \"kernel.cu\"\n" + code)
            result = subprocess.run([compiler, "-std=c++14", "-O1", "-ffp-contract=off", "-shared",
                                     "-fPIC", "-Wall", "-o", str(library), str(source)],
                                    capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
        self.library = ctypes.CDLL(str(library))

    def get_function(self, name):
        return HostKernel(self.library, name)


def _host_device(build_dir):
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler for the host build of the CUDA sources")
    HostRawModule.build_dir = build_dir
    fake_cupy = types.ModuleType("cupy")  # CuPy's array functions are NumPy's
    fake_cupy.__getattr__ = lambda name: getattr(np, name)
    fake_cupy.RawModule = HostRawModule
    spec = importlib.util.spec_from_file_location("minidl.backend._cupy_gpu_on_host", GPU_MODULE)
    kernels = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = fake_cupy
    try:
        spec.loader.exec_module(kernels)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    return Device("host", kernels, np, np.array, np.asarray)


@pytest.fixture(scope="module", params=["cuda", "host"])
def gpu(request, tmp_path_factory):
    if request.param == "cuda":
        return _cuda_device()
    return _host_device(tmp_path_factory.mktemp("host_cuda"))


# ---- comparisons ----------------------------------------------------------------------------

def assert_close(actual, expected):
    """float32 1e-5 / float64 1e-12, relative to the largest magnitude of ``expected``."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    rtol = RTOL[expected.dtype]
    finite = np.abs(expected[np.isfinite(expected)])
    scale = finite.max() if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, equal_nan=True)


def assert_bitwise_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def run_twice(gpu, function, *args):
    """Host copies of two runs of ``function``, checked bitwise equal (determinism)."""
    first, second = function(*args), function(*args)
    if isinstance(first, tuple):
        first, second = [gpu.to_host(a) for a in first], [gpu.to_host(a) for a in second]
        for a, b in zip(first, second):
            assert_bitwise_equal(a, b)
        return first
    first, second = gpu.to_host(first), gpu.to_host(second)
    assert_bitwise_equal(first, second)
    return first


DTYPES = [np.float32, np.float64]


# ---- im2col / col2im ------------------------------------------------------------------------

@st.composite
def conv_geometries(draw):
    """x shape and (KH, KW, SH, SW, PH, PW, DH, DW) with at least one output pixel."""
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    DH, DW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H = draw(st.integers(max(1, DH * (KH - 1) + 1 - 2 * PH), DH * (KH - 1) + 8))
    W = draw(st.integers(max(1, DW * (KW - 1) + 1 - 2 * PW), DW * (KW - 1) + 8))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W)
    return shape, (KH, KW, SH, SW, PH, PW, DH, DW)


@SETTINGS
@given(geometry=conv_geometries(), seed=st.integers(0, 2**16), dtype=st.sampled_from(DTYPES))
def test_im2col_and_col2im_equal_the_reference(gpu, geometry, seed, dtype):
    shape, args = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    cols = run_twice(gpu, gpu.kernels.im2col, gpu.to_device(x), *args)
    assert_bitwise_equal(cols, reference.im2col(x, *args))  # a copy: exact
    c = rng.standard_normal(cols.shape).astype(dtype)
    dx = run_twice(gpu, gpu.kernels.col2im, gpu.to_device(c), shape, *args)
    assert_close(dx, reference.col2im(c, shape, *args))


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_and_col2im_on_a_unet_sized_layer(gpu, dtype):
    """3x3 'same' conv, 16 channels, 64x64: many overlapping windows per pixel."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 64, 64)).astype(dtype)
    args = (3, 3, 1, 1, 1, 1, 1, 1)
    cols = run_twice(gpu, gpu.kernels.im2col, gpu.to_device(x), *args)
    assert_bitwise_equal(cols, reference.im2col(x, *args))
    c = rng.standard_normal(cols.shape).astype(dtype)
    dx = run_twice(gpu, gpu.kernels.col2im, gpu.to_device(c), x.shape, *args)
    assert_close(dx, reference.col2im(c, x.shape, *args))


def test_col2im_rejects_cols_of_the_wrong_shape(gpu):
    with pytest.raises(ValueError, match=r"col2im: cols has shape \(5, 9\) but x_shape \(1, 1, 4, 4\)"):
        gpu.kernels.col2im(gpu.to_device(np.zeros((5, 9))), (1, 1, 4, 4), 3, 3, 1, 1, 0, 0, 1, 1)


def test_unsupported_dtypes_are_refused(gpu):
    with pytest.raises(TypeError, match="float32 and float64"):
        gpu.kernels.im2col(gpu.to_device(np.zeros((1, 1, 3, 3), np.float16)), 2, 2, 1, 1, 0, 0, 1, 1)


# ---- pooling --------------------------------------------------------------------------------

@st.composite
def pool_windows(draw, dilation=True):
    """(KH, KW, SH, SW, PH, PW, DH, DW, OH, OW) and an x shape; every window holds an input cell."""
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2))
    DH, DW = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ceil_mode = draw(st.booleans())
    OH = pool_output_size(H, KH, SH, PH, DH, ceil_mode)
    OW = pool_output_size(W, KW, SW, PW, DW, ceil_mode)
    for O, S, P, D, K, n in ((OH, SH, PH, DH, KH, H), (OW, SW, PW, DW, KW, W)):
        if O < 1 or not all(any(0 <= S * i - P + D * p < n for p in range(K)) for i in range(O)):
            OH, OW, KH, KW, SH, SW, PH, PW, DH, DW = 1, 1, 1, 1, H, W, 0, 0, 1, 1
            break
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W)
    return (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW), shape


@SETTINGS
@given(cfg=pool_windows(), seed=st.integers(0, 2**16), dtype=st.sampled_from(DTYPES))
def test_maxpool2d_equals_the_reference_with_ties_inf_and_nan(gpu, cfg, seed, dtype):
    geometry, shape = cfg
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 3, shape).astype(dtype)  # many ties on purpose
    x[rng.random(shape) < 0.1] = -np.inf
    x[rng.random(shape) < 0.05] = np.nan
    y, argmax = run_twice(gpu, gpu.kernels.maxpool2d_forward, gpu.to_device(x), *geometry)
    y_ref, argmax_ref = reference.maxpool2d_forward(x, *geometry)
    assert argmax.dtype == np.int64
    np.testing.assert_array_equal(argmax, argmax_ref)  # the same winner: ties, NaN, -inf
    assert_bitwise_equal(y, y_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = run_twice(gpu, gpu.kernels.maxpool2d_backward, gpu.to_device(dy), gpu.to_device(argmax),
                   shape)
    assert_close(dx, reference.maxpool2d_backward(dy, argmax_ref, shape))


def test_maxpool2d_tie_and_nan_rule_on_a_tiny_example(gpu):
    nan = np.nan
    x = np.array([[[[2.0, 2.0, 1.0], [2.0, nan, nan], [0.0, 5.0, 5.0]]]], dtype=np.float32)
    geometry = (2, 2, 1, 1, 0, 0, 1, 1, 2, 2)
    _, argmax = gpu.kernels.maxpool2d_forward(gpu.to_device(x), *geometry)
    assert gpu.to_host(argmax).tolist() == [[[[4, 5], [4, 5]]]]  # a NaN wins; the last NaN
    x = np.full((1, 1, 3, 3), 4.0)
    _, argmax = gpu.kernels.maxpool2d_forward(gpu.to_device(x), *geometry)
    assert gpu.to_host(argmax).tolist() == [[[[0, 1], [3, 4]]]]  # all equal: the first cell


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool2d_backward_adds_where_one_cell_wins_overlapping_windows(gpu, dtype):
    """3x3 windows, stride 1, on a plane with one large value: it wins 9 windows."""
    x = np.zeros((1, 2, 5, 5), dtype=dtype)
    x[:, :, 2, 2] = 10.0
    geometry = (3, 3, 1, 1, 0, 0, 1, 1, 3, 3)
    y, argmax = gpu.kernels.maxpool2d_forward(gpu.to_device(x), *geometry)
    assert np.all(gpu.to_host(argmax) == 2 * 5 + 2)
    dy = np.arange(18, dtype=dtype).reshape(1, 2, 3, 3) / 7
    dx = run_twice(gpu, gpu.kernels.maxpool2d_backward, gpu.to_device(dy), argmax, x.shape)
    expected = reference.maxpool2d_backward(dy, gpu.to_host(argmax), x.shape)
    assert_close(dx, expected)
    assert np.count_nonzero(dx) == 2  # all of each plane's gradient lands on its one winner


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool2d_on_a_unet_sized_layer(gpu, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 16, 64, 64)).astype(dtype)
    geometry = (2, 2, 2, 2, 0, 0, 1, 1, 32, 32)
    y, argmax = run_twice(gpu, gpu.kernels.maxpool2d_forward, gpu.to_device(x), *geometry)
    y_ref, argmax_ref = reference.maxpool2d_forward(x, *geometry)
    np.testing.assert_array_equal(argmax, argmax_ref)
    assert_bitwise_equal(y, y_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = run_twice(gpu, gpu.kernels.maxpool2d_backward, gpu.to_device(dy), gpu.to_device(argmax),
                   x.shape)
    assert_close(dx, reference.maxpool2d_backward(dy, argmax_ref, x.shape))


def test_maxpool2d_backward_rejects_an_argmax_outside_the_plane(gpu):
    dy = gpu.to_device(np.ones((1, 1, 1, 2)))
    with pytest.raises(IndexError, match=r"outside \[0, 4\)"):
        gpu.kernels.maxpool2d_backward(dy, gpu.to_device(np.array([[[[0, 4]]]])), (1, 1, 2, 2))


@SETTINGS
@given(cfg=pool_windows(dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.integers(1, 5)), seed=st.integers(0, 2**16),
       dtype=st.sampled_from(DTYPES))
def test_avgpool2d_equals_the_reference(gpu, cfg, count_include_pad, divisor_override, seed, dtype):
    (KH, KW, SH, SW, PH, PW, _, _, OH, OW), shape = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    args = (KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad, divisor_override)
    y = run_twice(gpu, gpu.kernels.avgpool2d_forward, gpu.to_device(x), *args)
    assert_close(y, reference.avgpool2d_forward(x, *args))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = run_twice(gpu, gpu.kernels.avgpool2d_backward, gpu.to_device(dy), shape, *args)
    assert_close(dx, reference.avgpool2d_backward(dy, shape, *args))


def test_kernels_handle_an_empty_batch(gpu):
    x = gpu.to_device(np.zeros((0, 2, 4, 4), np.float32))
    assert gpu.kernels.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1).shape == (0, 18, 16)  # (N, C*KH*KW, OH*OW)
    y, argmax = gpu.kernels.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, 2, 2)
    assert y.shape == argmax.shape == (0, 2, 2, 2)
    assert gpu.kernels.maxpool2d_backward(y, argmax, (0, 2, 4, 4)).shape == (0, 2, 4, 4)
    assert gpu.kernels.avgpool2d_backward(y, (0, 2, 4, 4), 2, 2, 2, 2, 0, 0, 2, 2, True,
                                          None).shape == (0, 2, 4, 4)


# ---- fused softmax + cross-entropy ----------------------------------------------------------

def numpy_softmax_cross_entropy_forward(logits, target, weight, ignore_index):
    """The NumPy specification of the fused forward (see cupy_gpu.softmax_cross_entropy_forward)."""
    C = logits.shape[1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    valid = (target != ignore_index) if ignore_index is not None else np.ones(target.shape, bool)
    t = np.where(valid, target, 0)
    w = (np.ones(C, logits.dtype) if weight is None else weight.astype(logits.dtype))[t] * valid
    return -w * np.take_along_axis(logp, t[:, None], axis=1)[:, 0]


def numpy_softmax_cross_entropy_backward(dy, logits, target, weight, ignore_index):
    """The NumPy specification of the fused backward: dy * w * (softmax - onehot), 0 if ignored."""
    C = logits.shape[1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    valid = (target != ignore_index) if ignore_index is not None else np.ones(target.shape, bool)
    t = np.where(valid, target, 0)
    w = (np.ones(C, logits.dtype) if weight is None else weight.astype(logits.dtype))[t] * valid
    onehot = t[:, None] == np.arange(C).reshape((1, C) + (1,) * (t.ndim - 1))
    dx = (dy * w)[:, None] * (np.exp(logp) - onehot)
    return np.where(valid[:, None], dx, 0)


XENT_CASES = [  # logits shape, weighted, ignore_index
    ((6, 5), False, -100),
    ((3, 4, 5, 6), True, -100),  # segmentation logits (N,C,H,W)
    ((2, 3, 7), True, 1),  # ignore a real class
    ((2, 5, 4, 3), False, None),  # nothing ignored
    ((1, 1, 2, 2), True, -100),  # one class
]


def _xent_inputs(shape, weighted, ignore_index, dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    N, C = shape[:2]
    logits = (scale * rng.standard_normal(shape)).astype(dtype)
    target = rng.integers(0, C, (N,) + shape[2:])
    if ignore_index is not None:
        target[rng.random(target.shape) < 0.25] = ignore_index
    weight = rng.uniform(0.5, 2.0, C).astype(dtype) if weighted else None
    dy = rng.standard_normal(target.shape).astype(dtype)
    return logits, target, weight, dy


def _minidl_cross_entropy(logits, target, weight, ignore_index, dy):
    """Per-element loss and dlogits from minidl's CPU cross_entropy (reduction='none')."""
    x = minidl.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, minidl.tensor(target), None if weight is None else minidl.tensor(weight),
                           ignore_index=ignore_index, reduction="none")
    loss.backward(minidl.tensor(dy))
    return loss.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, weighted, ignore_index", XENT_CASES)
def test_the_numpy_specification_is_minidls_cross_entropy(shape, weighted, ignore_index, dtype):
    """Runs everywhere: the spec of the fused kernels is the CPU op with label_smoothing = 0."""
    logits, target, weight, dy = _xent_inputs(shape, weighted, ignore_index, dtype)
    loss, dlogits = _minidl_cross_entropy(logits, target, weight, ignore_index, dy)
    assert_close(numpy_softmax_cross_entropy_forward(logits, target, weight, ignore_index), loss)
    assert_close(numpy_softmax_cross_entropy_backward(dy, logits, target, weight, ignore_index),
                 dlogits)


@pytest.mark.parametrize("scale", [3.0, 1e3])  # 1e3: exp would overflow without the max shift
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, weighted, ignore_index", XENT_CASES)
def test_softmax_cross_entropy_kernels_equal_the_cpu_cross_entropy(gpu, shape, weighted,
                                                                   ignore_index, dtype, scale):
    logits, target, weight, dy = _xent_inputs(shape, weighted, ignore_index, dtype, scale=scale)
    loss_cpu, dlogits_cpu = _minidl_cross_entropy(logits, target, weight, ignore_index, dy)
    device_weight = None if weight is None else gpu.to_device(weight)
    args = (gpu.to_device(logits), gpu.to_device(target), device_weight, ignore_index)
    loss = run_twice(gpu, gpu.kernels.softmax_cross_entropy_forward, *args)
    assert_close(loss, loss_cpu)
    assert_close(loss, numpy_softmax_cross_entropy_forward(logits, target, weight, ignore_index))
    dlogits = run_twice(gpu, gpu.kernels.softmax_cross_entropy_backward, gpu.to_device(dy), *args)
    assert_close(dlogits, dlogits_cpu)
    if ignore_index is not None:  # ignored elements: no gradient at all
        assert np.all(np.moveaxis(dlogits, 1, -1)[target == ignore_index] == 0)


def test_softmax_cross_entropy_backward_takes_a_broadcast_dy(gpu):
    """'mean'/'sum' hand the kernel a broadcast (stride 0) dy: it must be read as a full array."""
    logits, target, weight, _ = _xent_inputs((2, 3, 4, 4), True, -100, np.float32)
    args = (gpu.to_device(logits), gpu.to_device(target), gpu.to_device(weight), -100)
    full = gpu.kernels.softmax_cross_entropy_backward(
        gpu.to_device(np.full(target.shape, 0.5, np.float32)), *args)
    broadcast = gpu.kernels.softmax_cross_entropy_backward(
        gpu.xp.broadcast_to(gpu.to_device(np.array(0.5, np.float32)), target.shape), *args)
    assert_bitwise_equal(gpu.to_host(broadcast), gpu.to_host(full))


def test_softmax_cross_entropy_rejects_mismatched_shapes(gpu):
    logits = gpu.to_device(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="target shape"):
        gpu.kernels.softmax_cross_entropy_forward(logits, gpu.to_device(np.zeros((2, 5), np.int64)),
                                                  None, -100)
