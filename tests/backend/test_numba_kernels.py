"""The Numba kernels (minidl/backend/numba_cpu.py) equal the reference kernels, bit for bit.

Random geometries (shape, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
divisor_override) and dtypes (float32, float64); max-pool inputs full of ties, -inf and NaN.
The Numba loops add in the reference's order, in the input's dtype, without fastmath, so
every comparison is exact (the issue allows rounding; exactness also pins determinism).
Plus the seam: same public functions and signatures, the switch, and no Numba at import.
"""
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minidl
from minidl.backend import available_backends, kernel_module, reference, use_backend
from minidl.ops.pool import pool_output_size

numba = pytest.importorskip("numba")
numba_cpu = kernel_module("numba")

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=60, deadline=None)
DTYPES = st.sampled_from([np.float32, np.float64])


def reference_kernels():
    """{name: function} for every public kernel of the specification."""
    return {name: function for name, function in inspect.getmembers(reference, inspect.isfunction)
            if not name.startswith("_") and function.__module__ == reference.__name__}


# ---- the seam ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", available_backends())
def test_every_cpu_backend_exports_every_reference_kernel_with_its_signature(name):
    module = kernel_module(name)
    for kernel, function in reference_kernels().items():
        assert hasattr(module, kernel), f"{module.__name__} lacks {kernel}"
        assert inspect.signature(getattr(module, kernel)) == inspect.signature(function), kernel


def test_numba_cpu_has_no_public_kernel_the_reference_lacks():
    public = {name for name, function in inspect.getmembers(numba_cpu, inspect.isfunction)
              if not name.startswith("_") and function.__module__ == numba_cpu.__name__}
    # and the set-up of its threads, and the batch-norm, ReLU and tile fusions, whose
    # specifications are the array code of minidl/ops/norm.py, activation.py and conv.py
    # (tests/backend/test_batch_norm_kernels.py, test_relu_kernels.py, test_tile_kernels.py)
    assert public == set(reference_kernels()) | {"start_threads", "batch_norm_train", "batch_norm_backward",
                                                  "relu", "relu_backward", "unfold_tiles", "fold_tiles"}


def test_numba_is_the_default_and_the_switch_forces_either():
    assert available_backends()[-1] == "numba"
    x = np.zeros((1, 1, 2, 2))
    with use_backend("reference"):
        assert minidl.backend.kernels_for(x) is reference
    with use_backend("numba"):
        assert minidl.backend.kernels_for(x) is numba_cpu
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        minidl.backend.set_backend("fortran")


def _run(code, **env):
    environment = {key: value for key, value in os.environ.items() if key != "MINIDL_BACKEND"}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, env={**environment, **env})


def test_importing_minidl_does_not_import_numba():
    result = _run("import sys, minidl, minidl.functional, minidl.nn, minidl.backend; "
                  "assert 'numba' not in sys.modules, 'numba imported'")
    assert result.returncode == 0, result.stderr


def test_environment_variable_forces_a_backend_and_a_missing_numba_is_a_clear_error():
    result = _run("import minidl; print(minidl.backend.get_backend())", MINIDL_BACKEND="reference")
    assert result.returncode == 0 and result.stdout.strip() == "reference", result.stderr
    # a machine without Numba: `import numba` fails
    result = _run("import sys; sys.modules['numba'] = None; import minidl", MINIDL_BACKEND="numba")
    assert result.returncode != 0
    message = "ImportError: MINIDL_BACKEND=numba: the 'numba' backend is not available"
    assert message in result.stderr
    result = _run("import sys; sys.modules['numba'] = None; import minidl.backend as b; "
                  "print(b.available_backends(), b.get_backend())")
    assert result.stdout.strip() == "['reference'] reference", result.stderr


# ---- im2col / col2im --------------------------------------------------------------------------

@st.composite
def conv_geometries(draw):
    """x shape and (KH, KW, SH, SW, PH, PW, DH, DW) with at least one output pixel."""
    KH, KW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    DH, DW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H = draw(st.integers(max(1, DH * (KH - 1) + 1 - 2 * PH), DH * (KH - 1) + 12))
    W = draw(st.integers(max(1, DW * (KW - 1) + 1 - 2 * PW), DW * (KW - 1) + 12))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), H, W)
    return shape, (KH, KW, SH, SW, PH, PW, DH, DW)


@SETTINGS
@given(geometry=conv_geometries(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_im2col_and_col2im_equal_the_reference(geometry, dtype, seed):
    shape, args = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    cols = numba_cpu.im2col(x, *args)
    expected = reference.im2col(x, *args)
    assert cols.dtype == dtype and cols.shape == expected.shape
    np.testing.assert_array_equal(cols, expected)
    dcols = rng.standard_normal(cols.shape).astype(dtype)
    dx = numba_cpu.col2im(dcols, shape, *args)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, reference.col2im(dcols, shape, *args))


@st.composite
def shifted_rows_geometries(draw):
    """A stride-1 conv2d's geometry and a band of its output rows: (x shape, kernel args)."""
    G = draw(st.integers(1, 3))
    KH, KW, DH, DW = (draw(st.integers(1, 3)) for _ in range(4))
    PT, PB, PL, PR = (draw(st.integers(0, 3)) for _ in range(4))
    H = draw(st.integers(max(1, DH * (KH - 1) + 1 - PT - PB), DH * (KH - 1) + 8))
    W = draw(st.integers(max(1, DW * (KW - 1) + 1 - PL - PR), DW * (KW - 1) + 8))
    OH, OW = H + PT + PB - DH * (KH - 1), W + PL + PR - DW * (KW - 1)
    r0 = draw(st.integers(0, OH - 1))
    R = draw(st.integers(1, OH - r0))
    shape = (draw(st.integers(1, 2)), G * draw(st.integers(1, 3)), H, W)
    return shape, (r0, R, KH, KW, DH, DW, PT, PL, OW + DW * (KW - 1), G), (PB, PR)


@SETTINGS
@given(geometry=shifted_rows_geometries(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_stack_shifted_rows_equals_the_reference_and_the_index_formula(geometry, dtype, seed):
    shape, args, (PB, PR) = geometry
    r0, R, KH, KW, DH, DW, PT, PL, WC, G = args
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    S = numba_cpu.stack_shifted_rows(x, *args)
    expected = reference.stack_shifted_rows(x, *args)
    assert S.dtype == dtype and S.shape == expected.shape == (shape[0], G, KH * shape[1] // G, R * WC + DW * (KW - 1))
    np.testing.assert_array_equal(S, expected)
    # what the products read: S[n, g, p*C/G + c, i*WC + j + DW*q] = xpad[n, g*C/G + c, r0 + i + DH*p, j + DW*q]
    xpad = np.pad(x, ((0, 0), (0, 0), (PT, PB), (PL, PR)))
    Cg, OW = shape[1] // G, WC - DW * (KW - 1)
    S = S.reshape(shape[0], G, KH, Cg, -1)
    for p in range(KH):
        for q in range(KW):
            for i in range(R):
                got = S[:, :, p, :, i * WC + DW * q:i * WC + DW * q + OW]  # (N, G, C/G, OW)
                want = xpad[:, :, r0 + i + DH * p, DW * q:DW * q + OW].reshape(shape[0], G, Cg, OW)
                np.testing.assert_array_equal(got, want)


def test_stack_shifted_rows_accepts_non_contiguous_arrays():
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 8)).transpose(0, 1, 3, 2)[:, ::2]  # strided view
    args = (1, 5, 3, 2, 1, 2, 1, 1, 9 + 2, 2)
    np.testing.assert_array_equal(numba_cpu.stack_shifted_rows(x, *args), reference.stack_shifted_rows(x, *args))


def test_im2col_and_col2im_accept_non_contiguous_arrays():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 9, 8)).transpose(0, 1, 3, 2)[:, ::2]  # strided view
    args = (3, 2, 2, 1, 1, 1, 1, 2)
    np.testing.assert_array_equal(numba_cpu.im2col(x, *args), reference.im2col(x, *args))
    dcols = rng.standard_normal(reference.im2col(x, *args).shape[::-1]).T  # Fortran order
    np.testing.assert_array_equal(numba_cpu.col2im(dcols, x.shape, *args),
                                  reference.col2im(dcols, x.shape, *args))


def test_results_do_not_depend_on_the_number_of_threads():
    """Each thread owns its part of the output, so 1 thread and all threads agree exactly."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 21, 19)).astype(np.float32)
    args = (3, 3, 1, 1, 1, 1, 1, 1)
    dcols = rng.standard_normal(reference.im2col(x, *args).shape).astype(np.float32)
    previous = numba.get_num_threads()
    results = []
    for threads in sorted({1, previous}):
        numba.set_num_threads(threads)
        try:
            results.append((numba_cpu.im2col(x, *args), numba_cpu.col2im(dcols, x.shape, *args)))
        finally:
            numba.set_num_threads(previous)
    for cols, dx in results[1:]:
        np.testing.assert_array_equal(cols, results[0][0])
        np.testing.assert_array_equal(dx, results[0][1])


# ---- pooling ----------------------------------------------------------------------------------

@st.composite
def pool_geometries(draw, dilation=True):
    """((KH, KW, SH, SW, PH, PW, DH, DW, OH, OW), x shape, ceil_mode): every window holds an
    input cell (the functional rejects the others)."""
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2))
    DH, DW = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    H, W = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    ceil_mode = draw(st.booleans())
    OH = pool_output_size(H, KH, SH, PH, DH, ceil_mode)
    OW = pool_output_size(W, KW, SW, PW, DW, ceil_mode)
    assume(OH >= 1 and OW >= 1)
    for O, S, P, D, K, size in ((OH, SH, PH, DH, KH, H), (OW, SW, PW, DW, KW, W)):
        for i in range(O):
            assume(any(0 <= S * i - P + D * p < size for p in range(K)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)), H, W)
    return (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW), shape


@SETTINGS
@given(cfg=pool_geometries(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_maxpool2d_forward_and_backward_equal_the_reference_with_ties_inf_and_nan(cfg, dtype, seed):
    geometry, shape = cfg
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 2, shape).astype(dtype)  # few distinct values: ties everywhere
    x[rng.random(shape) < 0.15] = -np.inf
    x[rng.random(shape) < 0.05] = np.nan
    y, argmax = numba_cpu.maxpool2d_forward(x, *geometry)
    y_ref, argmax_ref = reference.maxpool2d_forward(x, *geometry)
    assert y.dtype == dtype and argmax.dtype == np.int64
    np.testing.assert_array_equal(argmax, argmax_ref)  # the same winner of every tie
    np.testing.assert_array_equal(y, y_ref)  # NaN == NaN here
    dy = rng.standard_normal(y.shape).astype(dtype)  # overlapping windows: winners add
    dx = numba_cpu.maxpool2d_backward(dy, argmax, shape)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, reference.maxpool2d_backward(dy, argmax, shape))


@SETTINGS
@given(cfg=pool_geometries(dilation=False), dtype=DTYPES, count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.integers(1, 7)), seed=st.integers(0, 2**16))
def test_avgpool2d_forward_and_backward_equal_the_reference(cfg, dtype, count_include_pad,
                                                            divisor_override, seed):
    (KH, KW, SH, SW, PH, PW, _, _, OH, OW), shape = cfg
    args = (KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad, divisor_override)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    y = numba_cpu.avgpool2d_forward(x, *args)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, reference.avgpool2d_forward(x, *args))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = numba_cpu.avgpool2d_backward(dy, shape, *args)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, reference.avgpool2d_backward(dy, shape, *args))


def test_pool_kernels_accept_non_contiguous_arrays():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 9, 10)).transpose(0, 1, 3, 2)[:, 1::2]
    geometry = (3, 2, 2, 1, 1, 1, 1, 2, 5, 9)
    y, argmax = numba_cpu.maxpool2d_forward(x, *geometry)
    y_ref, argmax_ref = reference.maxpool2d_forward(x, *geometry)
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(y.shape[::-1]).T  # Fortran order
    np.testing.assert_array_equal(numba_cpu.maxpool2d_backward(dy, argmax, x.shape),
                                  reference.maxpool2d_backward(dy, argmax, x.shape))
    args = (3, 3, 2, 2, 1, 1, 5, 5, False, None)
    np.testing.assert_array_equal(numba_cpu.avgpool2d_forward(x, *args),
                                  reference.avgpool2d_forward(x, *args))
    dy = rng.standard_normal((5, 5, 3, 2)).T
    np.testing.assert_array_equal(numba_cpu.avgpool2d_backward(dy, x.shape, *args),
                                  reference.avgpool2d_backward(dy, x.shape, *args))
