"""minidl/backend/simd.py: vectors of WIDTH float32 in Numba kernels, each operation against NumPy
(fma rounded once: against float64 products rounded to float32), and arrays they refuse."""
import numpy as np
import pytest

numba = pytest.importorskip("numba")
simd = pytest.importorskip("minidl.backend.simd")
W = simd.WIDTH


@numba.njit
def _axpy_blocks(a, x, y, out):
    """out[i] = a * x[i] + y[i] for every whole vector of x; the rest untouched."""
    for i0 in range(0, x.size - W + 1, W):
        simd.store(out, i0, simd.fma(simd.splat(a), simd.load(x, i0), simd.load(y, i0)))


@numba.njit
def _zeros_into(out, i0):
    simd.store(out, i0, simd.zeros())


def test_operations_equal_numpy():
    rng = np.random.default_rng(0)
    n = 3 * W + 5  # three whole vectors and a rest
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    out = np.full(n, 7.0, np.float32)
    a = np.float32(1.7)
    _axpy_blocks(a, x, y, out)
    fused = (np.float64(a) * x.astype(np.float64) + y.astype(np.float64)).astype(np.float32)  # one rounding
    np.testing.assert_array_equal(out[:3 * W], fused[:3 * W])
    np.testing.assert_array_equal(out[3 * W:], 7.0)  # past the last whole vector: not written
    _axpy_blocks(2.5, x, y, out)  # a float64 scalar is splat as float32
    np.testing.assert_array_equal(out[:W], (np.float64(2.5) * x[:W] + y[:W]).astype(np.float32))
    _zeros_into(out, 5)  # at any offset, not only multiples of the width
    np.testing.assert_array_equal(out[5:5 + W], 0.0)
    assert out[4] != 0.0 and out[5 + W] != 0.0


def test_loads_from_a_row_of_a_2d_array():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2 * W)).astype(np.float32)
    out = np.zeros((3, 2 * W), np.float32)

    @numba.njit
    def copy_row_1(x, out):
        simd.store(out[1], W, simd.load(x[1], 0))

    copy_row_1(x, out)
    np.testing.assert_array_equal(out[1, W:], x[1, :W])
    assert not out[0].any() and not out[2].any() and not out[1, :W].any()


@pytest.mark.parametrize("array", [np.zeros(W, np.float64), np.zeros((2, W), np.float32),
                                   np.zeros(2 * W, np.float32)[::2]])
def test_refuses_arrays_other_than_contiguous_float32_rows(array):
    @numba.njit
    def load_first(a):
        return simd.store(a, 0, simd.load(a, 0))

    with pytest.raises(numba.core.errors.TypingError):
        load_first(array)


def test_the_avx512_and_avx2_flags_are_the_cpus():
    import llvmlite.binding as llvm
    features = llvm.get_host_cpu_features().flatten().split(",")
    assert simd.AVX512 == ("+avx512f" in features)
    assert simd.AVX2 == ("+avx2" in features and "+fma" in features)
