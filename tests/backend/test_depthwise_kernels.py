"""The depthwise kernels (depthwise_conv2d and its dx, dweight): the index formulas, the adjoint,
and the Numba kernels against the reference (forward and dx bit for bit, dweight to rounding).

Random geometries: odd sizes, strides 1-3, non-square kernels, dilation, top/left padding up to
beyond the kernel, any output size the windows allow (so 'same' with its extra bottom/right row),
channel multipliers 1-3.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.backend import available_backends, kernel_module, reference
from minidl.backend.geometry import conv_output_size

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def geometries(draw):
    """(x shape, weight shape (C, M, KH, KW), (SH, SW, PH, PW, DH, DW), (OH, OW))."""
    N, C, M = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW, SH, SW, DH, DW = (draw(st.integers(1, 3)) for _ in range(6))
    PH, PW = draw(st.integers(0, KH + 1)), draw(st.integers(0, KW + 1))
    H = draw(st.integers(max(1, DH * (KH - 1) + 1 - 2 * PH), 9))
    W = draw(st.integers(max(1, DW * (KW - 1) + 1 - 2 * PW), 9))
    OH, OW = conv_output_size(H, KH, SH, PH, DH), conv_output_size(W, KW, SW, PW, DW)
    if draw(st.booleans()):  # one more bottom/right padding row: the output of 'same' with an even kernel
        OH += (H + 2 * PH + 1 - DH * (KH - 1) - 1) // SH + 1 - OH
    return (N, C, H, W), (C, M, KH, KW), (SH, SW, PH, PW, DH, DW), (OH, OW)


def naive(x, w, geometry, out_size):
    """y[n, c*M + m, i, j] = sum_{p,q} w[c, m, p, q] * x[n, c, SH*i - PH + DH*p, SW*j - PW + DW*q] (0 outside x)."""
    (N, C, H, W), (_, M, KH, KW), (SH, SW, PH, PW, DH, DW), (OH, OW) = x.shape, w.shape, geometry, out_size
    y = np.zeros((N, C * M, OH, OW))
    for n, c, m, i, j, p, q in np.ndindex(N, C, M, OH, OW, KH, KW):
        h, v = SH * i - PH + DH * p, SW * j - PW + DW * q
        if 0 <= h < H and 0 <= v < W:
            y[n, c * M + m, i, j] += w[c, m, p, q] * x[n, c, h, v]
    return y


@pytest.mark.parametrize("name", available_backends())
@SETTINGS
@given(case=geometries(), seed=st.integers(0, 2**16))
def test_forward_follows_the_formula_and_the_gradients_are_its_adjoints(name, case, seed):
    """y as the formula; <y(x), dy> = <x, dx(dy)> and = <w, dweight(dy, x)> (y is bilinear)."""
    kern = kernel_module(name)
    x_shape, w_shape, geometry, (OH, OW) = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y = kern.depthwise_conv2d(x, w, *geometry, OH, OW)
    np.testing.assert_allclose(y, naive(x, w, geometry, (OH, OW)), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = kern.depthwise_conv2d_dx(dy, w, x_shape, *geometry)
    dweight = kern.depthwise_conv2d_dweight(dy, x, *w_shape[2:], *geometry)
    assert dx.shape == x_shape and dweight.shape == w_shape
    np.testing.assert_allclose(np.sum(x * dx), np.sum(y * dy), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.sum(w * dweight), np.sum(y * dy), rtol=1e-10, atol=1e-10)
    # and each entry, not just the sum: dx and dweight of a random dy against the formula's own
    for k in range(3):  # dx[e] = <y(x = unit e), dy>; dweight[e] = <y(w = unit e), dy>
        e = tuple(rng.integers(0, s) for s in x_shape)
        unit = np.zeros(x_shape)
        unit[e] = 1
        np.testing.assert_allclose(dx[e], np.sum(naive(unit, w, geometry, (OH, OW)) * dy), rtol=1e-10, atol=1e-12)
        e = tuple(rng.integers(0, s) for s in w_shape)
        unit = np.zeros(w_shape)
        unit[e] = 1
        np.testing.assert_allclose(dweight[e], np.sum(naive(x, unit, geometry, (OH, OW)) * dy), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("M, stride, dilation, padding", [(1, 1, 1, 1), (1, 1, 2, 2), (2, 1, 1, 1), (1, 2, 1, 1),
                                                        (1, 1, 1, 0)])
def test_numba_3x3_kernels_equal_the_reference_bit_for_bit(M, stride, dilation, padding):
    """MobileNet's case, 3x3 with one filter per channel, sums its nine taps per pixel in one pass
    (numba_cpu._depthwise_taps_3x3): in the reference's order, so bit for bit."""
    numba_cpu = kernel_module("numba") if "numba" in available_backends() else pytest.skip("no numba")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 13, 10)).astype(np.float32)
    w = rng.standard_normal((3, M, 3, 3)).astype(np.float32)
    geometry = (stride, stride, padding, padding, dilation, dilation)
    OH, OW = (conv_output_size(s, 3, stride, padding, dilation) for s in (13, 10))
    y = numba_cpu.depthwise_conv2d(x, w, *geometry, OH, OW)
    np.testing.assert_array_equal(y, reference.depthwise_conv2d(x, w, *geometry, OH, OW))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(numba_cpu.depthwise_conv2d_dx(dy, w, x.shape, *geometry),
                                  reference.depthwise_conv2d_dx(dy, w, x.shape, *geometry))


@pytest.mark.parametrize("name", available_backends())
@pytest.mark.parametrize("M, stride, kernel", [(1, 1, (3, 3)), (2, 1, (3, 2)), (1, 2, (3, 3)), (2, 3, (2, 3))])
def test_the_bias_and_its_gradient_ride_along(name, M, stride, kernel):
    """forward(bias) = forward() + bias, bit for bit (added last, as y + bias would be); dweight's
    pass over dy also gives dbias = dy summed over (n, i, j), and dweight unchanged."""
    kern = kernel_module(name)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    w = rng.standard_normal((3, M) + kernel).astype(np.float32)
    bias = rng.standard_normal(3 * M).astype(np.float32)
    geometry = (stride, stride, 1, 0, 1, 1)
    OH, OW = conv_output_size(9, kernel[0], stride, 1, 1), conv_output_size(7, kernel[1], stride, 0, 1)
    y = kern.depthwise_conv2d(x, w, *geometry, OH, OW, bias=bias)
    np.testing.assert_array_equal(y, kern.depthwise_conv2d(x, w, *geometry, OH, OW) + bias.reshape(-1, 1, 1))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dbias = np.full(3 * M, np.nan, dtype=np.float32)
    dweight = kern.depthwise_conv2d_dweight(dy, x, *kernel, *geometry, dbias=dbias)
    np.testing.assert_array_equal(dweight, kern.depthwise_conv2d_dweight(dy, x, *kernel, *geometry))
    np.testing.assert_allclose(dbias, dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("M, stride, kernel", [(1, 1, (3, 3)), (2, 1, (3, 2)), (1, 2, (3, 3))])
def test_numba_kernels_share_buffers_across_the_planes_of_a_chunk(M, stride, kernel):
    """More planes (and filters) than DEPTHWISE_CHUNKS: each chunk makes its buffers once and
    reuses them plane after plane (filter after filter), and every plane still equals the reference."""
    numba_cpu = kernel_module("numba") if "numba" in available_backends() else pytest.skip("no numba")
    C = 3 * numba_cpu.DEPTHWISE_CHUNKS // 2 + 1  # chunks of one and of two planes (filters)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, C, 7, 6)).astype(np.float32)
    w = rng.standard_normal((C, M) + kernel).astype(np.float32)
    geometry = (stride, stride, 1, 1, 1, 1)
    OH, OW = conv_output_size(7, kernel[0], stride, 1, 1), conv_output_size(6, kernel[1], stride, 1, 1)
    y = numba_cpu.depthwise_conv2d(x, w, *geometry, OH, OW)
    np.testing.assert_array_equal(y, reference.depthwise_conv2d(x, w, *geometry, OH, OW))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(numba_cpu.depthwise_conv2d_dx(dy, w, x.shape, *geometry),
                                  reference.depthwise_conv2d_dx(dy, w, x.shape, *geometry))
    np.testing.assert_allclose(numba_cpu.depthwise_conv2d_dweight(dy, x, *kernel, *geometry),
                               reference.depthwise_conv2d_dweight(dy, x, *kernel, *geometry), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(case=geometries(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_numba_equals_the_reference(case, dtype, seed):
    numba_cpu = kernel_module("numba") if "numba" in available_backends() else pytest.skip("no numba")
    x_shape, w_shape, geometry, (OH, OW) = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    y = numba_cpu.depthwise_conv2d(x, w, *geometry, OH, OW)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, reference.depthwise_conv2d(x, w, *geometry, OH, OW))  # same order of sums
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = numba_cpu.depthwise_conv2d_dx(dy, w, x_shape, *geometry)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, reference.depthwise_conv2d_dx(dy, w, x_shape, *geometry))
    dweight = numba_cpu.depthwise_conv2d_dweight(dy, x, *w_shape[2:], *geometry)
    assert dweight.dtype == dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12  # sums over (n, i, j) in another order
    np.testing.assert_allclose(dweight, reference.depthwise_conv2d_dweight(dy, x, *w_shape[2:], *geometry),
                               rtol=tolerance, atol=tolerance * np.sqrt(dy.size))


@pytest.mark.parametrize("name", available_backends())
def test_kernels_accept_non_contiguous_arrays(name):
    kern = kernel_module(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8)).transpose(0, 1, 3, 2)  # (2, 3, 8, 9), not contiguous
    w = rng.standard_normal((3, 2, 3, 3))[:, :, ::-1]
    geometry = (2, 1, 1, 1, 1, 1)
    y = kern.depthwise_conv2d(x, w, *geometry, 4, 9)
    np.testing.assert_allclose(y, naive(x, w, geometry, (4, 9)), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal((2, 6, 9, 4)).transpose(0, 1, 3, 2)
    np.testing.assert_allclose(kern.depthwise_conv2d_dx(dy, w, x.shape, *geometry),
                               reference.depthwise_conv2d_dx(np.ascontiguousarray(dy), np.ascontiguousarray(w),
                                                             x.shape, *geometry), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kern.depthwise_conv2d_dweight(dy, x, 3, 3, *geometry),
                               reference.depthwise_conv2d_dweight(np.ascontiguousarray(dy), np.ascontiguousarray(x),
                                                                  3, 3, *geometry), rtol=1e-12, atol=1e-12)
