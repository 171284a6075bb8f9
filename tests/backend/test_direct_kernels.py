"""The direct convolution kernels (direct_conv2d and its dweight): the index formula, the adjoint,
and the Numba kernels against the reference (to rounding: the Numba ones sum in another order).

Random geometries: odd sizes, any kernel size, stride, dilation, top/left padding from 0 to
D*(K-1) and beyond, any output size the windows allow (so 'same' with its extra bottom/right row,
and outputs smaller than the input), groups with odd numbers of filters per group. The Numba
kernels take three ways through their products: a 3x3 kernel at stride 1 (taps at multiples of
two steps), 3x3 at stride > 1 (nine taps from the phase planes) and any other kernel (a loop over
its taps); the strategies draw all three.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.backend import available_backends, kernel_module, reference

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def geometries(draw):
    """(x shape, weight shape (F, C/G, KH, KW), (PT, PL, DH, DW, G), (OH, OW), (SH, SW)) of a conv2d."""
    G = draw(st.integers(1, 3))
    N, Cg, Fg = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.sampled_from([(3, 3), (3, 3), (1, 1), (2, 3), (4, 1), (5, 5), (7, 7)]))
    SH, SW = draw(st.sampled_from([(1, 1), (1, 1), (2, 2), (2, 1), (3, 2)]))
    DH, DW = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    PT, PL = draw(st.integers(0, DH * (KH - 1) + 1)), draw(st.integers(0, DW * (KW - 1) + 1))
    H, W = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    # the windows reach from the canvas's top row down to S*(OH - 1) + D*(KH - 1): at least one
    # output row, and at most one past the input plus the padding on both sides ('same' with an even kernel)
    OH = draw(st.integers(1, max(1, (H + 2 * PT - DH * (KH - 1)) // SH + 1)))
    OW = draw(st.integers(1, max(1, (W + 2 * PL - DW * (KW - 1)) // SW + 1)))
    return (N, G * Cg, H, W), (G * Fg, Cg, KH, KW), (PT, PL, DH, DW, G), (OH, OW), (SH, SW)


def naive(x, w, geometry, out_size, stride=(1, 1)):
    """y[n, g*Fg + f, i, j] = sum_{c,p,q} w[g*Fg + f, c, p, q] * x[n, g*Cg + c, SH*i - PT + DH*p, SW*j - PL + DW*q]
    (0 outside x)."""
    (N, _, H, W), (F, Cg, KH, KW), (PT, PL, DH, DW, G) = x.shape, w.shape, geometry
    (OH, OW), (SH, SW) = out_size, stride
    Fg = F // G
    y = np.zeros((N, F, OH, OW))
    for n, f, i, j, c, p, q in np.ndindex(N, F, OH, OW, Cg, KH, KW):
        h, v = SH * i - PT + DH * p, SW * j - PL + DW * q
        if 0 <= h < H and 0 <= v < W:
            y[n, f, i, j] += w[f, c, p, q] * x[n, (f // Fg) * Cg + c, h, v]
    return y


def _check_formula_and_adjoint(kern, case, seed):
    x_shape, w_shape, geometry, (OH, OW), stride = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y = kern.direct_conv2d(x, w, *geometry, OH, OW, stride=stride)
    np.testing.assert_allclose(y, naive(x, w, geometry, (OH, OW), stride), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dweight = kern.direct_conv2d_dweight(dy, x, *w_shape[2:], *geometry, stride=stride)
    assert dweight.shape == w_shape
    np.testing.assert_allclose(np.sum(w * dweight), np.sum(y * dy), rtol=1e-10, atol=1e-10)  # y is linear in w
    for _ in range(3):  # and entry by entry: dweight[e] = <y(w = unit e), dy>
        e = tuple(rng.integers(0, s) for s in w_shape)
        unit = np.zeros(w_shape)
        unit[e] = 1
        np.testing.assert_allclose(dweight[e], np.sum(naive(x, unit, geometry, (OH, OW), stride) * dy),
                                   rtol=1e-10, atol=1e-12)


@SETTINGS
@given(case=geometries(), seed=st.integers(0, 2**16))
def test_reference_follows_the_formula_and_dweight_is_its_adjoint(case, seed):
    _check_formula_and_adjoint(reference, case, seed)


@pytest.mark.parametrize("name", available_backends())
@SETTINGS
@given(case=geometries(), seed=st.integers(0, 2**16))
def test_every_backend_follows_the_formula_and_dweight_is_its_adjoint(name, case, seed):
    _check_formula_and_adjoint(kernel_module(name), case, seed)


@pytest.fixture(params=[0, 4, 6], ids=["loops", "vectors x 4 filters", "vectors x 6 filters"])
def vectors(request, monkeypatch):
    """The Numba forward's float32 products as loops LLVM vectorises, or in simd's vectors with
    blocks of 4 filters (the AVX-512 kernel) or 6 (the AVX2 one): every machine runs all three,
    the ones not meant for its CPU give the same numbers, only slower."""
    numba_cpu = kernel_module("numba") if "numba" in available_backends() else pytest.skip("no numba")
    monkeypatch.setattr(numba_cpu, "DIRECT_VECTORS", request.param > 0)
    if request.param:
        monkeypatch.setattr(numba_cpu, "DIRECT_VECTOR_FILTERS", request.param)
    return request.param


@SETTINGS
@given(case=geometries(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_numba_equals_the_reference(vectors, case, dtype, seed):
    numba_cpu = kernel_module("numba")
    x_shape, w_shape, geometry, (OH, OW), stride = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    y = numba_cpu.direct_conv2d(x, w, *geometry, OH, OW, stride=stride)
    assert y.dtype == dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12  # the same sums in another order
    np.testing.assert_allclose(y, reference.direct_conv2d(x, w, *geometry, OH, OW, stride=stride), rtol=tolerance,
                               atol=tolerance * np.sqrt(w[0].size))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dweight = numba_cpu.direct_conv2d_dweight(dy, x, *w_shape[2:], *geometry, stride=stride)
    assert dweight.dtype == dtype
    np.testing.assert_allclose(dweight, reference.direct_conv2d_dweight(dy, x, *w_shape[2:], *geometry, stride=stride),
                               rtol=tolerance, atol=tolerance * np.sqrt(dy[:, 0].size))


@pytest.mark.parametrize("F, G, FB", [(7, 1, 6), (12, 2, 4), (6, 3, 4), (16, 1, 6), (5, 5, 4)])
def test_numba_packed_filters_follow_their_layout(F, G, FB):
    """The vector kernels' weight: packed[g, b, c, FB*t + k] = weight[g*F/G + FB*b + k, c, t], and
    zero for the filters that pad each group to whole blocks of FB."""
    numba_cpu = kernel_module("numba") if "numba" in available_backends() else pytest.skip("no numba")
    w = np.random.default_rng(0).standard_normal((F, 3, 2, 3)).astype(np.float32)
    packed = numba_cpu._packed_filters(w, G, FB)
    Fg = F // G
    blocks = -(-Fg // FB)
    assert packed.shape == (G, blocks, 3, 6 * FB) and packed.dtype == np.float32
    for g, b, c, t, k in np.ndindex(G, blocks, 3, 6, FB):
        f = FB * b + k
        expected = w[g * Fg + f, c].reshape(6)[t] if f < Fg else 0.0
        assert packed[g, b, c, FB * t + k] == expected, (g, b, c, t, k)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_bands_cover_every_row(monkeypatch, vectors, dtype):
    """Tasks of one output row each (the smallest band), and a band as tall as the output; in
    float32 with vectors, bands whose pixels end mid-vector (9 + 2 wide pixels a row); at stride
    1 and 2."""
    numba_cpu = kernel_module("numba")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 11, 9)), rng.standard_normal((7, 4, 3, 3))  # 7 filters: a whole
    dy = rng.standard_normal((2, 7, 11, 9))  # block of 4 or 6 and one more: every filter of a block is real once
    expected_y = reference.direct_conv2d(x, w, 1, 1, 1, 1, 1, 11, 9)
    expected_dw = reference.direct_conv2d_dweight(dy, x, 3, 3, 1, 1, 1, 1, 1)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    expected_y2 = reference.direct_conv2d(x, w, 1, 1, 1, 1, 1, 6, 5, stride=(2, 2))  # stride 2: phase planes
    expected_dw2 = reference.direct_conv2d_dweight(dy[:, :, :6, :5], x, 3, 3, 1, 1, 1, 1, 1, stride=(2, 2))
    x, w, dy = x.astype(dtype), w.astype(dtype), dy.astype(dtype)
    for band_bytes in (1, 2**30):
        monkeypatch.setattr(numba_cpu, "DIRECT_BAND_BYTES", band_bytes)
        np.testing.assert_allclose(numba_cpu.direct_conv2d(x, w, 1, 1, 1, 1, 1, 11, 9), expected_y,
                                   rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(numba_cpu.direct_conv2d_dweight(dy, x, 3, 3, 1, 1, 1, 1, 1), expected_dw,
                                   rtol=tolerance, atol=tolerance * 10)
        np.testing.assert_allclose(numba_cpu.direct_conv2d(x, w, 1, 1, 1, 1, 1, 6, 5, stride=(2, 2)), expected_y2,
                                   rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(numba_cpu.direct_conv2d_dweight(np.ascontiguousarray(dy[:, :, :6, :5]), x, 3, 3,
                                                                   1, 1, 1, 1, 1, stride=(2, 2)), expected_dw2,
                                   rtol=tolerance, atol=tolerance * 10)


@pytest.mark.parametrize("x_shape, F, groups, kernel, stride", [
    ((4, 64, 30, 31), 32, 1, 3, 1), ((2, 16, 64, 64), 16, 1, 3, 1), ((2, 24, 17, 19), 30, 2, 3, 1),
    ((2, 32, 64, 63), 32, 1, 3, 2),  # a U-Net's strided 3x3 (BNUNet)
    ((2, 3, 128, 128), 16, 1, 7, 2),  # a ResNet's stem
])
def test_float32_error_against_float64_is_no_worse_than_pytorch(torch, vectors, x_shape, F, groups, kernel, stride):
    """The forward's float32 error against the float64 reference, relative to the largest output:
    at most PyTorch's float32 conv2d's on the same inputs (loops and vectors)."""
    numba_cpu = kernel_module("numba")
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal((F, x_shape[1] // groups, kernel, kernel)) / 8).astype(np.float32)
    pad = kernel // 2
    out_size = [(size + 2 * pad - kernel) // stride + 1 for size in x_shape[2:]]
    exact = reference.direct_conv2d(x.astype(np.float64), w.astype(np.float64), pad, pad, 1, 1, groups, *out_size,
                                    stride=(stride, stride))
    ours = numba_cpu.direct_conv2d(x, w, pad, pad, 1, 1, groups, *out_size, stride=(stride, stride))
    theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=pad, stride=stride,
                                        groups=groups).numpy()
    scale = np.abs(exact).max()
    ours_error, theirs_error = np.abs(ours - exact).max() / scale, np.abs(theirs - exact).max() / scale
    assert ours_error <= 1.5 * theirs_error, (ours_error, theirs_error)


def test_numba_weight_gradient_in_any_number_of_chunks(monkeypatch):
    """The weight gradient's partial sums: one chunk of every task, a few uneven chunks, one per task."""
    numba_cpu = kernel_module("numba") if "numba" in available_backends() else pytest.skip("no numba")
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((3, 4, 10, 7)), rng.standard_normal((3, 6, 10, 7))
    expected = reference.direct_conv2d_dweight(dy, x, 3, 3, 1, 1, 1, 1, 1)
    monkeypatch.setattr(numba_cpu, "DIRECT_BAND_BYTES", 1)  # one row per task: 30 tasks
    for chunks in (1, 4, 7, 64):
        monkeypatch.setattr(numba_cpu, "DIRECT_DWEIGHT_CHUNKS", chunks)
        np.testing.assert_allclose(numba_cpu.direct_conv2d_dweight(dy, x, 3, 3, 1, 1, 1, 1, 1), expected,
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("total, parts", [(88, 64), (30, 7), (5, 5), (64, 2), (63, 2), (3, 1)])
def test_numba_work_shares_are_even_and_cover_every_item_once(total, parts):
    """The weight gradient's tasks over its chunks, and the chunks over the threads: consecutive
    shares, every item once, sizes within one of each other (88 tasks in 64 chunks used to be
    44 chunks of 2 and 20 empty ones, and one of two threads did 64 of the 88 tasks)."""
    numba_cpu = kernel_module("numba") if "numba" in available_backends() else pytest.skip("no numba")
    starts = [numba_cpu._share_start(k, total, parts) for k in range(parts + 1)]
    assert starts[0] == 0 and starts[-1] == total
    sizes = np.diff(starts)
    assert sizes.min() >= total // parts and sizes.max() - sizes.min() <= 1, sizes


def test_numba_weight_gradient_does_not_depend_on_the_thread_count():
    numba_cpu = kernel_module("numba") if "numba" in available_backends() else pytest.skip("no numba")
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba runs one thread here (NUMBA_NUM_THREADS=1)")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 16, 40, 33)).astype(np.float32)
    dy = rng.standard_normal((4, 16, 40, 33)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(numba_cpu.direct_conv2d_dweight(dy, x, 3, 3, 1, 1, 1, 1, 1))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])  # bit for bit


@pytest.mark.parametrize("name", available_backends())
def test_kernels_accept_non_contiguous_arrays(name):
    kern = kernel_module(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 8)).transpose(0, 1, 3, 2)  # (2, 4, 8, 9), not contiguous
    w = rng.standard_normal((6, 2, 3, 3))[:, :, ::-1]
    geometry = (1, 2, 1, 2, 2)  # PT, PL, DH, DW, G
    y = kern.direct_conv2d(x, w, *geometry, 8, 9)
    np.testing.assert_allclose(y, naive(x, w, geometry, (8, 9)), rtol=1e-12, atol=1e-12)
    y32 = kern.direct_conv2d(x.astype(np.float32), w.astype(np.float32), *geometry, 8, 9)
    np.testing.assert_allclose(y32, naive(x, w, geometry, (8, 9)), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal((2, 6, 9, 8)).transpose(0, 1, 3, 2)
    np.testing.assert_allclose(kern.direct_conv2d_dweight(dy, x, 3, 3, *geometry),
                               reference.direct_conv2d_dweight(np.ascontiguousarray(dy), np.ascontiguousarray(x),
                                                               3, 3, *geometry), rtol=1e-12, atol=1e-12)
