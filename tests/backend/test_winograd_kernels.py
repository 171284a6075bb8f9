"""Winograd F(4x4, 3x3) tile kernels (minidl/backend/*.py): the index formulas and the adjoints.

    V[6a + b, c, t] = (BT @ d @ BT.T)[a, b],   d = xpad[n, c, 4ti : 4ti + 6, 4tj : 4tj + 6]
    y[n, f, 4ti + a, 4tj + b] = (AT @ mt @ AT.T)[a, b],   mt[i, j] = M[6i + j, f, t]
    <input_tiles(x), dV> == <x, input_tiles_adjoint(dV)>, and likewise for the output tiles
Every test runs on every kernel backend (the ``backend`` fixture), on random geometries
and random blocks of tiles [t0, t1).
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minidl.backend import kernels_for
from minidl.backend.winograd_matrices import AT as WINOGRAD_AT
from minidl.backend.winograd_matrices import BT as WINOGRAD_BT
from minidl.backend.winograd_matrices import G as WINOGRAD_G
from minidl.backend.winograd_matrices import TILE as WINOGRAD_TILE

TILE = WINOGRAD_TILE  # m: output tile side
PATCH = len(WINOGRAD_BT)  # m + 2: input patch side
POINTS = PATCH * PATCH  # Winograd points per tile

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def tile_geometries(draw):
    """x shape, top/left padding, output size (OH, OW) >= 1, the tile grid and a block [t0, t1)."""
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 14)), draw(st.integers(1, 14))
    PT, PL, PB, PR = (draw(st.integers(0, 3)) for _ in range(4))
    OH, OW = H + PT + PB - 2, W + PL + PR - 2
    if OH < 1 or OW < 1:
        PB, PR = PB + max(0, 1 - OH), PR + max(0, 1 - OW)
        OH, OW = H + PT + PB - 2, W + PL + PR - 2
    TH, TW = -(-OH // TILE), -(-OW // TILE)
    T = N * TH * TW
    t0 = draw(st.integers(0, T - 1))
    t1 = draw(st.integers(t0 + 1, T))
    return (N, C, H, W), (PT, PL), (OH, OW), (TH, TW), (t0, t1)


def _tile(t, TH, TW):
    return t // (TH * TW), (t % (TH * TW)) // TW, t % TW


def naive_input_tiles(x, PT, PL, TH, TW, t0, t1):
    """V from the docstring formula, one tile and channel at a time."""
    N, C, H, W = x.shape
    V = np.zeros((POINTS, C, t1 - t0))
    for t in range(t0, t1):
        n, ti, tj = _tile(t, TH, TW)
        for c in range(C):
            d = np.zeros((PATCH, PATCH))
            for i in range(PATCH):
                for j in range(PATCH):
                    h, w = TILE * ti + i - PT, TILE * tj + j - PL
                    if 0 <= h < H and 0 <= w < W:
                        d[i, j] = x[n, c, h, w]
            V[:, c, t - t0] = (WINOGRAD_BT @ d @ WINOGRAD_BT.T).ravel()
    return V


def naive_output_tiles(M, TH, TW, t0, y_shape):
    y = np.full(y_shape, np.nan)  # cells no tile of the block writes stay NaN
    N, F, OH, OW = y_shape
    for t in range(t0, t0 + M.shape[2]):
        n, ti, tj = _tile(t, TH, TW)
        for f in range(F):
            tile = WINOGRAD_AT @ M[:, f, t - t0].reshape(PATCH, PATCH) @ WINOGRAD_AT.T
            for a in range(TILE):
                for b in range(TILE):
                    if TILE * ti + a < OH and TILE * tj + b < OW:
                        y[n, f, TILE * ti + a, TILE * tj + b] = tile[a, b]
    return y


@SETTINGS
@given(geometry=tile_geometries(), seed=st.integers(0, 2**16))
def test_input_tiles_follow_the_formula(backend, geometry, seed):
    shape, (PT, PL), _, (TH, TW), (t0, t1) = geometry
    x = np.random.default_rng(seed).standard_normal(shape)
    V = kernels_for(x).winograd_input_tiles(x, PT, PL, TH, TW, t0, t1)
    np.testing.assert_allclose(V, naive_input_tiles(x, PT, PL, TH, TW, t0, t1), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(geometry=tile_geometries(), seed=st.integers(0, 2**16))
def test_output_tiles_follow_the_formula(backend, geometry, seed):
    (N, _, _, _), _, (OH, OW), (TH, TW), (t0, t1) = geometry
    F = 2
    M = np.random.default_rng(seed).standard_normal((POINTS, F, t1 - t0))
    y = np.full((N, F, OH, OW), np.nan)
    kernels_for(M).winograd_output_tiles(M, TH, TW, t0, y)
    np.testing.assert_allclose(y, naive_output_tiles(M, TH, TW, t0, y.shape), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(geometry=tile_geometries(), seed=st.integers(0, 2**16))
def test_input_tiles_adjoint_is_the_adjoint(backend, geometry, seed):
    """<V(x), dV> = <x, adj(dV)>, and the adjoint ADDS into dx (what is there stays)."""
    shape, (PT, PL), _, (TH, TW), (t0, t1) = geometry
    rng = np.random.default_rng(seed)
    x, dV, before = rng.standard_normal(shape), rng.standard_normal((POINTS, shape[1], t1 - t0)), rng.standard_normal(shape)
    kern = kernels_for(x)
    dx = before.copy()
    kern.winograd_input_tiles_adjoint(dV, PT, PL, TH, TW, t0, dx)
    lhs = np.sum(kern.winograd_input_tiles(x, PT, PL, TH, TW, t0, t1) * dV)
    np.testing.assert_allclose(np.sum(x * (dx - before)), lhs, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(geometry=tile_geometries(), seed=st.integers(0, 2**16))
def test_output_tiles_adjoint_is_the_adjoint(backend, geometry, seed):
    """<y(M), dy> = <M, adj(dy)> over the cells the block's tiles write."""
    (N, _, _, _), _, (OH, OW), (TH, TW), (t0, t1) = geometry
    rng = np.random.default_rng(seed)
    F = 3
    M, dy = rng.standard_normal((POINTS, F, t1 - t0)), rng.standard_normal((N, F, OH, OW))
    kern = kernels_for(M)
    y = np.zeros((N, F, OH, OW))  # cells outside the block stay 0 and weigh nothing
    kern.winograd_output_tiles(M, TH, TW, t0, y)
    dM = kern.winograd_output_tiles_adjoint(dy, TH, TW, t0, t1)
    assert dM.shape == M.shape
    np.testing.assert_allclose(np.sum(M * dM), np.sum(y * dy), rtol=1e-10, atol=1e-10)


def test_float32_kernels_stay_float32_and_agree_with_float64(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 11, 10))
    kern = kernels_for(x)
    V32 = kern.winograd_input_tiles(x.astype(np.float32), 1, 1, 6, 5, 3, 50)
    assert V32.dtype == np.float32
    V64 = kern.winograd_input_tiles(x, 1, 1, 6, 5, 3, 50)
    np.testing.assert_allclose(V32, V64, rtol=1e-5, atol=1e-5)


def test_the_matrices_compute_the_one_dimensional_correlation():
    """AT @ [(G @ g) * (BT @ d)] = (d[i] g[0] + d[i+1] g[1] + d[i+2] g[2]) for i < m: the
    identity every kernel above and minidl/ops/conv_winograd.py rest on, checked here on its own."""

    assert WINOGRAD_BT.shape == (PATCH, PATCH) and WINOGRAD_G.shape == (PATCH, 3)
    assert WINOGRAD_AT.shape == (TILE, PATCH)
    rng = np.random.default_rng(0)
    for _ in range(5):
        d, g = rng.standard_normal(PATCH), rng.standard_normal(3)
        direct = np.array([d[i:i + 3] @ g for i in range(TILE)])
        np.testing.assert_allclose(WINOGRAD_AT @ ((WINOGRAD_G @ g) * (WINOGRAD_BT @ d)), direct, rtol=1e-12, atol=1e-12)
