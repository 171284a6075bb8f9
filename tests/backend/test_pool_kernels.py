"""Pooling kernels of every backend against naive loops written from the docstring formulas.

    window of output (i, j):  h = SH*i - PH + DH*p,  w = SW*j - PW + DW*q
    max:  first in-bounds cell, then replace when strictly greater or NaN (PyTorch's scan)
    avg:  window sum / divisor (count_include_pad, divisor_override, ceil_mode cut)
Plus adjoint identities for the backwards, and the same signatures in every backend.
"""
import inspect

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minidl.backend import available_backends, kernel_module, kernels_for
from minidl.backend import reference
from minidl.ops.pool import pool_output_size

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

POOL_KERNELS = ("maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward",
                "avgpool2d_backward")


# ---- naive loops ------------------------------------------------------------------------------

def naive_maxpool(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    N, C, H, W = x.shape
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    cells = [(SH * i - PH + DH * p, SW * j - PW + DW * q)
                             for p in range(KH) for q in range(KW)]  # scan order: p, then q
                    inside = [(h, w) for h, w in cells if 0 <= h < H and 0 <= w < W]
                    best, index = -np.inf, inside[0][0] * W + inside[0][1]
                    for h, w in inside:
                        v = x[n, c, h, w]
                        if v > best or np.isnan(v):
                            best, index = v, h * W + w
                    y[n, c, i, j], argmax[n, c, i, j] = best, index
    return y, argmax


def naive_avgpool(x, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad, divisor_override):
    N, C, H, W = x.shape
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            cells = [(SH * i - PH + p, SW * j - PW + q) for p in range(KH) for q in range(KW)]
            # cells inside the padded input [-P, size + P) count as padding; beyond: never
            padded = [(h, w) for h, w in cells if -PH <= h < H + PH and -PW <= w < W + PW]
            inside = [(h, w) for h, w in cells if 0 <= h < H and 0 <= w < W]
            if divisor_override is not None:
                divisor = divisor_override
            else:
                divisor = len(padded) if count_include_pad else len(inside)
            for h, w in inside:
                y[:, :, i, j] += x[:, :, h, w]
            y[:, :, i, j] /= divisor
    return y


# ---- configurations ---------------------------------------------------------------------------

@st.composite
def windows(draw, dilation=True):
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2))
    DH, DW = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    H, W = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    ceil_mode = draw(st.booleans())
    OH = pool_output_size(H, KH, SH, PH, DH, ceil_mode)
    OW = pool_output_size(W, KW, SW, PW, DW, ceil_mode)
    if OH < 1 or OW < 1:
        OH, OW, KH, KW, PH, PW, DH, DW = 1, 1, 1, 1, 0, 0, 1, 1  # smallest valid window
        SH, SW = H, W
    # every max window must hold an input cell (the functional rejects the others)
    for O, S, P, D, K, n in ((OH, SH, PH, DH, KH, H), (OW, SW, PW, DW, KW, W)):
        for i in range(O):
            if not any(0 <= S * i - P + D * p < n for p in range(K)):
                return draw(windows(dilation=False)) if dilation else None
    return (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW), (draw(st.integers(1, 2)),
                                                      draw(st.integers(1, 3)), H, W)


# ---- max pool ---------------------------------------------------------------------------------

@SETTINGS
@given(cfg=windows(), seed=st.integers(0, 2**16))
def test_maxpool2d_forward_equals_naive_loops(backend, cfg, seed):
    geometry, shape = cfg
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 3, shape).astype(np.float64)  # many ties on purpose
    x[rng.random(shape) < 0.1] = -np.inf
    y, argmax = kernels_for(x).maxpool2d_forward(x, *geometry)
    y_ref, argmax_ref = naive_maxpool(x, *geometry)
    assert argmax.dtype == np.int64 and argmax.shape == y.shape == y_ref.shape
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)


def test_maxpool2d_forward_ties_nan_and_dtype(backend):
    nan = np.nan
    x = np.array([[[[2.0, 2.0, 1.0], [2.0, nan, nan], [0.0, 5.0, 5.0]]]], dtype=np.float32)
    geometry = (2, 2, 1, 1, 0, 0, 1, 1, 2, 2)
    y, argmax = kernels_for(x).maxpool2d_forward(x, *geometry)
    assert y.dtype == np.float32
    # window (0,0) = [[2,2],[2,nan]]: the NaN wins; (0,1) = [[2,1],[nan,nan]]: the LAST NaN (5)
    # window (1,0) = [[2,nan],[0,5]]: NaN (4); (1,1) = [[nan,nan],[5,5]]: last NaN (5)
    assert argmax.tolist() == [[[[4, 5], [4, 5]]]]
    x = np.full((1, 1, 3, 3), 4.0)
    _, argmax = kernels_for(x).maxpool2d_forward(x, *geometry)
    assert argmax.tolist() == [[[[0, 1], [3, 4]]]]  # all equal: the first cell of each window


@SETTINGS
@given(cfg=windows(), seed=st.integers(0, 2**16))
def test_maxpool2d_backward_scatters_adds_and_is_the_adjoint_of_the_gather(backend, cfg, seed):
    geometry, shape = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    kern = kernels_for(x)
    y, argmax = kern.maxpool2d_forward(x, *geometry)
    dy = rng.standard_normal(y.shape)
    dx = kern.maxpool2d_backward(dy, argmax, x.shape)
    expected = np.zeros(x.shape)
    N, C, H, W = x.shape
    for n, c, i, j in np.ndindex(*y.shape):  # dx[n,c].flat[argmax[n,c,i,j]] += dy[n,c,i,j]
        h, w = divmod(int(argmax[n, c, i, j]), W)
        expected[n, c, h, w] += dy[n, c, i, j]
    np.testing.assert_allclose(dx, expected, rtol=1e-13, atol=1e-13)
    # <gather(x), dy> == <x, scatter(dy)>: y is x gathered at argmax
    assert np.isclose(np.sum(y * dy), np.sum(x * dx), rtol=1e-12)


# ---- avg pool ---------------------------------------------------------------------------------

@SETTINGS
@given(cfg=windows(dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.integers(1, 5)), seed=st.integers(0, 2**16))
def test_avgpool2d_forward_equals_naive_loops_and_backward_is_its_adjoint(
        backend, cfg, count_include_pad, divisor_override, seed):
    (KH, KW, SH, SW, PH, PW, _, _, OH, OW), shape = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    args = (KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad, divisor_override)
    kern = kernels_for(x)
    y = kern.avgpool2d_forward(x, *args)
    np.testing.assert_allclose(y, naive_avgpool(x, *args), rtol=1e-12, atol=1e-14)
    # avg-pool is linear, so its backward is its transpose: <A x, dy> == <x, A^T dy>
    dy = rng.standard_normal(y.shape)
    dx = kern.avgpool2d_backward(dy, x.shape, *args)
    assert dx.shape == x.shape
    assert np.isclose(np.sum(y * dy), np.sum(x * dx), rtol=1e-12)
    # and column by column: dx for a one-hot dy is the window / divisor
    n, c, i, j = (int(rng.integers(0, s)) for s in y.shape)
    one_hot = np.zeros(y.shape)
    one_hot[n, c, i, j] = 1.0
    column = kern.avgpool2d_backward(one_hot, x.shape, *args)
    basis = np.zeros(x.shape)
    for h, w in np.ndindex(*x.shape[2:]):
        basis[:] = 0
        basis[n, c, h, w] = 1.0
        assert np.isclose(column[n, c, h, w], naive_avgpool(basis, *args)[n, c, i, j])


def test_avgpool2d_dtype_is_kept(backend):
    x = np.ones((1, 2, 5, 5), dtype=np.float32)
    kern = kernels_for(x)
    y = kern.avgpool2d_forward(x, 2, 2, 2, 2, 1, 1, 3, 3, False, None)
    assert y.dtype == np.float32 and np.all(y == 1.0)
    dx = kern.avgpool2d_backward(np.ones_like(y), x.shape, 2, 2, 2, 2, 1, 1, 3, 3, True, None)
    assert dx.dtype == np.float32


# ---- the backend seam -------------------------------------------------------------------------

def test_every_backend_has_the_pool_kernels_with_the_reference_signatures(backend):
    module = kernel_module(backend)
    for name in POOL_KERNELS:
        assert inspect.signature(getattr(module, name)) == inspect.signature(getattr(reference, name))


@pytest.mark.parametrize("name", available_backends())
def test_every_backend_equals_the_reference(backend, name):
    module = kernel_module(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    geometry = (3, 2, 2, 1, 1, 1, 1, 2, 4, 6)
    y, argmax = module.maxpool2d_forward(x, *geometry)
    y_ref, argmax_ref = reference.maxpool2d_forward(x, *geometry)
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-15)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(module.maxpool2d_backward(dy, argmax, x.shape),
                               reference.maxpool2d_backward(dy, argmax, x.shape), rtol=1e-13)
    args = (3, 3, 2, 2, 1, 1, 4, 3, False, None)
    np.testing.assert_allclose(module.avgpool2d_forward(x, *args),
                               reference.avgpool2d_forward(x, *args), rtol=1e-13)
    dy = rng.standard_normal((2, 3, 4, 3))
    np.testing.assert_allclose(module.avgpool2d_backward(dy, x.shape, *args),
                               reference.avgpool2d_backward(dy, x.shape, *args), rtol=1e-13)
