"""im2col / col2im kernels (minidl/backend/*.py): the index formula and the adjoint identity.

    cols[n, (c*KH + p)*KW + q, i*OW + j] = xpad[n, c, SH*i + DH*p, SW*j + DW*q]
    <im2col(x), cols> == <x, col2im(cols)>        for every x, cols
Every test runs on every kernel backend (the ``backend`` fixture).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minidl.backend import kernels_for

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def geometries(draw):
    """x shape and (KH, KW, SH, SW, PH, PW, DH, DW) with at least one output pixel."""
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    DH, DW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H = draw(st.integers(max(1, DH * (KH - 1) + 1 - 2 * PH), DH * (KH - 1) + 8))
    W = draw(st.integers(max(1, DW * (KW - 1) + 1 - 2 * PW), DW * (KW - 1) + 8))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W)
    return shape, (KH, KW, SH, SW, PH, PW, DH, DW)


def _out_size(shape, args):
    N, C, H, W = shape
    KH, KW, SH, SW, PH, PW, DH, DW = args
    return (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1, (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1


def naive_im2col(x, KH, KW, SH, SW, PH, PW, DH, DW):
    """Written from the docstring's index formula, one entry at a time."""
    N, C, H, W = x.shape
    OH, OW = _out_size(x.shape, (KH, KW, SH, SW, PH, PW, DH, DW))
    cols = np.zeros((N, C * KH * KW, OH * OW))
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                for c in range(C):
                    for p in range(KH):
                        for q in range(KW):
                            h, w = SH * i + DH * p - PH, SW * j + DW * q - PW  # unpadded coords
                            if 0 <= h < H and 0 <= w < W:
                                cols[n, (c * KH + p) * KW + q, i * OW + j] = x[n, c, h, w]
    return cols


def naive_col2im(cols, x_shape, KH, KW, SH, SW, PH, PW, DH, DW):
    """Every column entry added to the pixel it was copied from (padding entries dropped)."""
    N, C, H, W = x_shape
    OH, OW = _out_size(x_shape, (KH, KW, SH, SW, PH, PW, DH, DW))
    dx = np.zeros(x_shape)
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                for c in range(C):
                    for p in range(KH):
                        for q in range(KW):
                            h, w = SH * i + DH * p - PH, SW * j + DW * q - PW
                            if 0 <= h < H and 0 <= w < W:
                                dx[n, c, h, w] += cols[n, (c * KH + p) * KW + q, i * OW + j]
    return dx


@SETTINGS
@given(geometry=geometries(), seed=st.integers(0, 2**16))
def test_im2col_and_col2im_equal_the_index_formula(backend, geometry, seed):
    shape, args = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    kern = kernels_for(x)
    cols = kern.im2col(x, *args)
    np.testing.assert_array_equal(cols, naive_im2col(x, *args))  # a copy: exact
    c = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(kern.col2im(c, shape, *args), naive_col2im(c, shape, *args),
                               rtol=1e-12, atol=1e-12)


@SETTINGS
@given(geometry=geometries(), seed=st.integers(0, 2**16))
def test_col2im_is_the_adjoint_of_im2col(backend, geometry, seed):
    """<im2col(x), c> == <x, col2im(c)> for random x and c: col2im is im2col transposed."""
    shape, args = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    kern = kernels_for(x)
    cols = kern.im2col(x, *args)
    c = rng.standard_normal(cols.shape)
    lhs = np.vdot(cols, c)
    rhs = np.vdot(x, kern.col2im(c, shape, *args))
    assert abs(lhs - rhs) <= 1e-12 * (np.abs(cols).sum() * np.abs(c).max() + 1)


def test_im2col_layout_on_a_tiny_example(backend):
    """1 image, 1 channel, 3x3 input, 2x2 kernel: four windows, each one column (row-major)."""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    cols = kernels_for(x).im2col(x, 2, 2, 1, 1, 0, 0, 1, 1)
    # rows: kernel taps (p, q) = (0,0) (0,1) (1,0) (1,1); columns: windows (0,0) (0,1) (1,0) (1,1)
    np.testing.assert_array_equal(cols, [[[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]])
    # col2im of all-ones counts how many windows hold each pixel
    counts = kernels_for(x).col2im(np.ones((1, 4, 4)), x.shape, 2, 2, 1, 1, 0, 0, 1, 1)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_im2col_matches_torch_unfold(backend):
    """The layout is PyTorch's F.unfold: (N, C*KH*KW, OH*OW), padding, stride, dilation alike."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 6))
    cols = kernels_for(x).im2col(x, 3, 2, 2, 1, 1, 2, 1, 2)
    expected = torch.nn.functional.unfold(torch.tensor(x), (3, 2), dilation=(1, 2), padding=(1, 2),
                                          stride=(2, 1)).numpy()
    np.testing.assert_array_equal(cols, expected)


def test_column_order_matches_the_weight_layout(backend):
    """weight.reshape(F, -1) @ cols[n] is the convolution: rows are ordered (c, p, q)."""
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((4, 3, 2, 3))
    cols = kernels_for(x).im2col(x, 2, 3, 1, 1, 0, 0, 1, 1)  # (2, 18, 4*2)
    y = (weight.reshape(4, -1) @ cols).reshape(2, 4, 4, 2)  # (N, F, OH, OW), no transpose
    expected = np.zeros((2, 4, 4, 2))
    for i in range(4):
        for j in range(2):
            expected[:, :, i, j] = np.einsum("ncpq,fcpq->nf", x[:, :, i:i + 2, j:j + 3], weight)
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_kernels_keep_the_dtype(backend):
    x = np.ones((1, 2, 4, 4), dtype=np.float32)
    kern = kernels_for(x)
    cols = kern.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1)
    assert cols.dtype == np.float32 and cols.shape == (1, 18, 16)
    assert kern.col2im(cols, x.shape, 3, 3, 1, 1, 1, 1, 1, 1).dtype == np.float32


def test_col2im_rejects_cols_of_the_wrong_shape(backend):
    kern = kernels_for(np.empty(0))
    with pytest.raises(ValueError, match=r"col2im: cols has shape \(1, 9, 5\) but x_shape \(1, 1, 4, 4\) "
                                         r".* needs \(1, 9, 4\)"):
        kern.col2im(np.zeros((1, 9, 5)), (1, 1, 4, 4), 3, 3, 1, 1, 0, 0, 1, 1)
