"""conv2d by Winograd F(4x4, 3x3) (minidl/ops/conv_winograd.py): gradients, PyTorch, the im2col path.

The route is forced with ``minidl.backend.conv_algorithm("winograd")`` (every CPU kernel module
offers it; the Numba one also takes it by itself from 128 channels), and the tests check that the
output's ``grad_fn`` is the route's; the calls of the input-tile kernel count its blocks.
"""
import numpy as np
import pytest

import minidl
from helpers import compare_with_torch, gradcheck_with_random_dy, record_calls, traced_peak_bytes
from minidl.backend import conv_algorithm, kernels_for
from minidl.backend.winograd_matrices import G, POINTS
from minidl.functional.conv import conv2d
from minidl.ops import conv as conv_ops
from minidl.ops import conv_algorithms, conv_winograd
from minidl.ops.conv_winograd import Conv2dWinograd


@pytest.fixture
def winograd(monkeypatch):
    monkeypatch.setattr(conv_algorithms, "_warned", set())  # each test sees its warning once
    with conv_algorithm("winograd"):
        yield


@pytest.fixture
def tile_calls(device, monkeypatch):
    """Counts the calls of the Winograd input-tile kernel of this device's arrays."""
    return record_calls(monkeypatch, kernels_for(minidl.zeros(1)._data), "winograd_input_tiles")


def _route(*tensors, **kw):
    """conv2d of the tensors, asserting that the Winograd route computed it (when recorded)."""
    y = conv2d(*tensors, **kw)
    assert not y.requires_grad or type(y.grad_fn) is Conv2dWinograd, f"computed by {y.grad_fn}"
    return y


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# (x shape, filters, padding): odd and even sizes, every padding the tiles must handle,
# a 1x1 output, images smaller than a tile
CASES = [
    ((2, 3, 7, 9), 4, 1),
    ((1, 2, 6, 5), 3, 0),
    ((2, 4, 5, 5), 2, 2),
    ((1, 2, 4, 7), 3, (1, 0)),
    ((1, 3, 3, 3), 2, 0),
    ((2, 1, 1, 2), 2, 1),
    ((1, 2, 8, 3), 5, "same"),
    ((1, 2, 10, 11), 2, (0, 2)),
]


@pytest.mark.parametrize("x_shape, filters, padding", CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradcheck(backend, winograd, tile_calls, x_shape, filters, padding, with_bias):
    x, w = _randn(x_shape, 1), _randn((filters, x_shape[1], 3, 3), 2)
    arrays = [x, w] + ([_randn(filters, 3)] if with_bias else [])
    assert gradcheck_with_random_dy(lambda *a: _route(*a, padding=padding), arrays, seed=4)
    assert tile_calls


@pytest.mark.parametrize("x_shape, filters, padding", CASES)
def test_matches_torch(torch, backend, winograd, x_shape, filters, padding):
    x, w, b = _randn(x_shape, 1), _randn((filters, x_shape[1], 3, 3), 2), _randn(filters, 3)
    compare_with_torch(torch, lambda *a: _route(*a, padding=padding),
                       lambda *a: torch.nn.functional.conv2d(*a, padding=padding), [x, w, b], rtol=1e-10, seed=5)


def _forward_backward(x, w, b, dy, route="winograd", padding=1):
    ours = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
    with conv_algorithm(route):
        y = conv2d(*ours, padding=padding)
    assert route == "im2col" or type(y.grad_fn) is Conv2dWinograd
    y.backward(minidl.tensor(dy))
    return [y.detach().numpy()] + [t.grad.numpy() for t in ours]


def test_float32_agrees_with_the_im2col_path(backend, tile_calls):
    """float32 results of the two routes agree, at the Numba backend's threshold (128 channels)."""
    rng = np.random.default_rng(0)
    C = 128
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((1, C, 9, 6), (C, C, 3, 3), (C,)))
    w *= 1 / np.sqrt(9 * C)
    dy = rng.standard_normal((1, C, 9, 6)).astype(np.float32)
    winograd = _forward_backward(x, w, b, dy)
    assert len(tile_calls) == 2  # forward and backward
    im2col = _forward_backward(x, w, b, dy, "im2col")
    assert len(tile_calls) == 2  # none in the second run
    for ours, theirs in zip(winograd, im2col):
        assert ours.dtype == np.float32
        assert np.max(np.abs(ours - theirs)) <= 1e-5 * np.max(np.abs(theirs))


def test_each_kernel_module_says_from_how_many_channels_it_takes_the_route(backend, tile_calls):
    """Numba: from a geometric mean of 90 input and output channels, both 64 or more; the reference
    (slow, readable transforms): only when forced. 'auto' follows the table."""
    expected = {"numba": 90, "reference": None}[backend] if minidl.get_default_device() == "cpu" else None
    assert kernels_for(minidl.zeros(1)._data).CONV_ALGORITHMS["winograd"] == expected
    x, w = _randn((1, 512, 23, 23)), _randn((512, 512, 3, 3))  # 529 positions: >= WEIGHT_BOUND per filter
    y = conv2d(minidl.tensor(x[:, :128]), minidl.tensor(w[:128, :128], requires_grad=True), padding=1)
    assert (type(y.grad_fn) is Conv2dWinograd) == (expected is not None) == bool(tile_calls)

    def winograd(C, F):
        y = conv2d(minidl.tensor(x[:, :C]), minidl.tensor(w[:F, :C], requires_grad=True), padding=1)
        return type(y.grad_fn) is Conv2dWinograd

    taken = expected is not None
    assert winograd(128, 64) == winograd(64, 128) == winograd(90, 90) == taken  # geometric mean >= 90
    assert not winograd(89, 90) and not winograd(64, 64) and not winograd(127, 63)  # 89, 64; 63 < 64
    assert not winograd(512, 16) and not winograd(16, 512)  # a mean of 90, but one side narrow


def test_blocks_of_tiles_give_the_same_results(backend, winograd, tile_calls):
    """A small buffer limit cuts the tiles into many blocks (across samples and tile rows)."""
    rng = np.random.default_rng(1)
    x, w, b, dy = (rng.standard_normal(s) for s in ((3, 4, 13, 11), (5, 4, 3, 3), (5,), (3, 5, 13, 11)))
    whole = _forward_backward(x, w, b, dy)
    assert len(tile_calls) == 2
    # 5 tiles per block (36 points x (4 + 5) channels x 8 bytes each); the tile grid is 4 x 3
    # per sample, 36 tiles in all, so blocks start mid-row and mid-sample
    previous = conv_ops.set_column_buffer_limit(POINTS * 9 * 8 * 5)
    try:
        blocked = _forward_backward(x, w, b, dy)
    finally:
        conv_ops.set_column_buffer_limit(previous)
    assert len(tile_calls) == 2 + 2 * 8  # 8 blocks, forward and backward
    for ours, theirs in zip(blocked, whole):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_only_the_needed_gradients_are_computed(backend, winograd):
    x, w = _randn((1, 2, 5, 6), 1), _randn((3, 2, 3, 3), 2)
    dy = minidl.tensor(_randn((1, 3, 5, 6), 3))
    xt, wt = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    conv2d(xt, minidl.tensor(w), padding=1).backward(dy)
    conv2d(minidl.tensor(x), wt, padding=1).backward(dy)
    both_x, both_w = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    conv2d(both_x, both_w, padding=1).backward(dy)
    np.testing.assert_allclose(xt.grad.numpy(), both_x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), both_w.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("kw", [dict(stride=2), dict(dilation=2), dict(groups=2), dict(kernel=(3, 2))])
def test_other_convolutions_run_on_im2col_and_say_so(backend, winograd, tile_calls, kw):
    kw = dict(kw)  # the parameter dict is shared between backends
    kernel = kw.pop("kernel", (3, 3))
    groups = kw.get("groups", 1)
    x, w = _randn((1, 4, 7, 7)), _randn((4, 4 // groups) + kernel)
    with pytest.warns(RuntimeWarning, match="conv_algorithm\\('winograd'\\) cannot take a conv2d"):
        y = conv2d(minidl.tensor(x), minidl.tensor(w, requires_grad=True), padding=1, **kw)
    assert type(y.grad_fn) is conv_ops.Conv2d and not tile_calls


def test_a_kernel_module_without_the_tile_kernels_does_not_offer_the_route(winograd, monkeypatch):
    class NoTileKernels:  # a backend without the tile kernels (CuPy, for now)
        __name__ = "NoTileKernels"
        CONV_ALGORITHMS = {"rotated_kernel": 1}

    geometry = ((1, 2, 5, 5), (2, 2, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert conv_algorithms.choose_conv2d(kernels_for(np.zeros(1)), *geometry) is Conv2dWinograd
    with pytest.warns(RuntimeWarning, match="the NoTileKernels kernels do not offer it"):
        assert conv_algorithms.choose_conv2d(NoTileKernels, *geometry) is conv_ops.Conv2d


def test_weight_transform_and_its_adjoint():
    """U[6a + b, f, c] = (G w[f, c] G.T)[a, b]; <U(w), dU> = <w, adjoint(dU)>."""
    rng = np.random.default_rng(0)
    w, dU = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((36, 3, 2))
    U = conv_winograd.transform_weight(w)
    np.testing.assert_allclose(U[:, 1, 0].reshape(6, 6), G @ w[1, 0] @ G.T, rtol=1e-12)
    np.testing.assert_allclose(np.sum(U * dU), np.sum(w * conv_winograd.transform_weight_adjoint(dU)), rtol=1e-12)


def test_chunks_of_input_channels_give_the_same_results(backend, winograd, tile_calls):
    """A small buffer limit makes backward transform the weight, and sum its gradient, a few
    input channels at a time (channel_chunks); the numbers are those of one chunk."""
    rng = np.random.default_rng(2)
    x, w, b, dy = (rng.standard_normal(s) for s in ((2, 5, 7, 6), (3, 5, 3, 3), (3,), (2, 3, 7, 6)))
    whole = _forward_backward(x, w, b, dy)
    limit = POINTS * 3 * 8 * 2  # U of 2 input channels for 3 filters in float64
    previous = conv_ops.set_column_buffer_limit(limit)
    try:
        assert conv_winograd.channel_chunks(3, 5, 8) == [slice(0, 2), slice(2, 4), slice(4, 5)]
        chunked = _forward_backward(x, w, b, dy)
    finally:
        conv_ops.set_column_buffer_limit(previous)
    for ours, theirs in zip(chunked, whole):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels, limit, at_most", [(512, 2**20, 1), (128, None, 2)])
def test_backward_never_holds_the_whole_transformed_weight(winograd, channels, limit, at_most):
    """U and dU are 4x the weight (36 points against 9 taps). Backward makes them one chunk of
    input channels at a time, so that its peak stays below U's size (it held U, then dU, whole);
    when they are one chunk, it frees U before it builds dU (below 2x U's size: never both)."""
    F = C = channels
    rng = np.random.default_rng(3)
    x = minidl.tensor(rng.standard_normal((1, C, 8, 8)).astype(np.float32), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((F, C, 3, 3)).astype(np.float32), requires_grad=True)
    y = _route(x, w, padding=1)
    dy = minidl.tensor(rng.standard_normal(y.shape).astype(np.float32))
    u_bytes = POINTS * F * C * 4
    previous = conv_ops.set_column_buffer_limit(limit) if limit else None
    try:
        # dweight and the engine's copy of it into w.grad, 1/4 of U's size each
        held = traced_peak_bytes(lambda: y.backward(dy))
    finally:
        if limit:
            conv_ops.set_column_buffer_limit(previous)
    assert held < at_most * u_bytes, (held / u_bytes)


def test_backward_takes_dx_from_the_cache_and_clears_it():
    """dx comes from the allocator's cache (a freed gradient's memory, not fresh pages) and starts
    at zero even when the buffer it gets held other numbers."""
    from minidl.backend import allocator

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 16, 96, 96)).astype(np.float32)  # dx 1.2 MB: the cache's (MIN_BYTES 1 MiB)
    weight = rng.standard_normal((4, 16, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 96, 96)).astype(np.float32)

    def dx():
        return conv_winograd.winograd_backward(kernels_for(x), dy, x, x.shape, weight, (1, 1), True, False)[0]

    previous = allocator.set_cache_enabled(False)
    try:
        expected = dx()
        allocator.set_cache_enabled(True)
        allocator.empty_cache()
        dirty = allocator.empty(x.shape, np.float32)
        dirty[...] = np.nan  # a free buffer of dx's size, full of other numbers
        del dirty
        got = dx()
        assert allocator.holds(got)
        np.testing.assert_array_equal(got, expected)
    finally:
        allocator.empty_cache()
        allocator.set_cache_enabled(previous)


def test_backward_makes_room_in_the_cache_for_its_temporaries():
    """Backward's temporaries (dweight, a block's tiles, a chunk of U and dU) are not the cache's
    buffers: before it allocates them it asks the cache to release as many bytes of free buffers
    (allocator.make_room), so that the two are not resident at once at the step's peak. Its
    estimate must cover what it really holds besides dx, which comes from the cache (tracemalloc;
    64 KiB of small objects aside), without asking for much more."""
    import gc

    from minidl.backend import allocator

    rng = np.random.default_rng(4)
    N, C, F, H = 2, 128, 32, 40
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    weight = rng.standard_normal((F, C, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((N, F, H, H)).astype(np.float32)
    kern = kernels_for(x)
    chunks = conv_winograd.channel_chunks(F, C, 4)
    tile_grid = conv_winograd.tile_grid((H, H))
    blocks = conv_winograd.tile_blocks(N * tile_grid[0] * tile_grid[1], C, F, 4)
    estimate = conv_winograd._backward_temporary_bytes(weight.shape, blocks, chunks, 4)

    def backward():
        return conv_winograd.winograd_backward(kern, dy, x, x.shape, weight, (1, 1), True, True)

    backward()  # compiled before anything is measured
    gc.collect()
    allocator.empty_cache()
    held = traced_peak_bytes(backward) - x.nbytes  # dx: a new buffer of the (emptied) cache
    assert 0.8 * estimate <= held <= estimate + 2**16, (held / 2**20, estimate / 2**20)

    previous = allocator.set_cache_enabled(True)
    try:
        free = [allocator.empty((2**20,), np.uint8) for _ in range(estimate // 2**20 + 4)]
        mark = allocator.peak_in_use_bytes()
        del free  # all free now: the cache holds its whole mark
        assert allocator.cached_bytes() == mark
        backward()
        assert allocator.cached_bytes() <= mark - estimate
    finally:
        gc.collect()
        allocator.empty_cache()
        allocator.set_cache_enabled(previous)
