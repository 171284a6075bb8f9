"""conv2d by Winograd F(4x4, 3x3) (minidl/ops/conv_winograd.py): gradients, PyTorch, the im2col path.

The path is taken for 3x3 stride-1 convolutions with many channels; the tests lower the
channel threshold (``winograd_everywhere``) so that small float64 cases take it.
"""
import numpy as np
import pytest

import minidl
from helpers import compare_with_torch, gradcheck_with_random_dy, record_calls
from minidl.backend import kernel_module, kernels_for
from minidl.functional.conv import conv2d
from minidl.ops import conv as conv_ops
from minidl.ops import conv_winograd


@pytest.fixture
def winograd_everywhere():
    previous = conv_winograd.set_winograd_min_channels(1)
    yield
    conv_winograd.set_winograd_min_channels(previous)


@pytest.fixture
def tile_calls(backend, monkeypatch):
    """Counts the calls of the backend's Winograd input-tile kernel."""
    return record_calls(monkeypatch, kernel_module(backend), "winograd_input_tiles")


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
def test_gradcheck(backend, winograd_everywhere, tile_calls, x_shape, filters, padding, with_bias):
    x, w = _randn(x_shape, 1), _randn((filters, x_shape[1], 3, 3), 2)
    arrays = [x, w] + ([_randn(filters, 3)] if with_bias else [])
    assert gradcheck_with_random_dy(lambda *a: conv2d(*a, padding=padding), arrays, seed=4)
    assert tile_calls, "the Winograd path was not taken"


@pytest.mark.parametrize("x_shape, filters, padding", CASES)
def test_matches_torch(torch, backend, winograd_everywhere, tile_calls, x_shape, filters, padding):
    x, w, b = _randn(x_shape, 1), _randn((filters, x_shape[1], 3, 3), 2), _randn(filters, 3)
    compare_with_torch(torch, lambda *a: conv2d(*a, padding=padding),
                       lambda *a: torch.nn.functional.conv2d(*a, padding=padding), [x, w, b], rtol=1e-10, seed=5)
    assert tile_calls


def _forward_backward(x, w, b, dy, padding=1):
    ours = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv2d(*ours, padding=padding)
    y.backward(minidl.tensor(dy))
    return [y.detach().numpy()] + [t.grad.numpy() for t in ours]


def test_float32_agrees_with_the_im2col_path(backend, tile_calls):
    """float32 results of the two paths agree, at the Numba backend's default threshold."""
    rng = np.random.default_rng(0)
    C = 128
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((1, C, 9, 6), (C, C, 3, 3), (C,)))
    w *= 1 / np.sqrt(9 * C)
    dy = rng.standard_normal((1, C, 9, 6)).astype(np.float32)
    previous = conv_winograd.set_winograd_min_channels(C)
    try:
        winograd = _forward_backward(x, w, b, dy)
        assert len(tile_calls) == 2  # forward and backward
        conv_winograd.set_winograd_min_channels(10**9)
        im2col = _forward_backward(x, w, b, dy)
    finally:
        conv_winograd.set_winograd_min_channels(previous)
    assert len(tile_calls) == 2  # none in the second run
    for ours, theirs in zip(winograd, im2col):
        assert ours.dtype == np.float32
        assert np.max(np.abs(ours - theirs)) <= 1e-5 * np.max(np.abs(theirs))


def test_each_backend_has_its_default_threshold(backend, tile_calls):
    """Numba: Winograd from 128 channels; the reference (slow, readable transforms): never."""
    expected = {"numba": 128, "reference": None}[backend]
    kern = kernel_module(backend)
    assert getattr(kern, "WINOGRAD_MIN_CHANNELS", None) == expected
    assert conv_winograd.WINOGRAD_MIN_CHANNELS is None  # the default: each backend decides
    x, w = _randn((1, 128, 5, 4)), _randn((128, 128, 3, 3))
    conv2d(minidl.tensor(x), minidl.tensor(w), padding=1)
    assert bool(tile_calls) == (expected is not None)
    conv2d(minidl.tensor(x[:, :127]), minidl.tensor(w[:, :127]), padding=1)  # 127 channels: below
    assert len(tile_calls) == (1 if expected is not None else 0)


def test_blocks_of_tiles_give_the_same_results(backend, winograd_everywhere, tile_calls):
    """A small buffer limit cuts the tiles into many blocks (across samples and tile rows)."""
    rng = np.random.default_rng(1)
    x, w, b, dy = (rng.standard_normal(s) for s in ((3, 4, 13, 11), (5, 4, 3, 3), (5,), (3, 5, 13, 11)))
    whole = _forward_backward(x, w, b, dy)
    assert len(tile_calls) == 2
    # 5 tiles per block (36 points x (4 + 5) channels x 8 bytes each); the tile grid is 4 x 3
    # per sample, 36 tiles in all, so blocks start mid-row and mid-sample
    previous = conv_ops.set_column_buffer_limit(conv_winograd.POINTS * 9 * 8 * 5)
    try:
        blocked = _forward_backward(x, w, b, dy)
    finally:
        conv_ops.set_column_buffer_limit(previous)
    assert len(tile_calls) == 2 + 2 * 8  # 8 blocks, forward and backward
    for ours, theirs in zip(blocked, whole):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_only_the_needed_gradients_are_computed(backend, winograd_everywhere):
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
def test_other_convolutions_keep_the_im2col_path(backend, winograd_everywhere, tile_calls, kw):
    kw = dict(kw)  # the parameter dict is shared between backends
    kernel = kw.pop("kernel", (3, 3))
    groups = kw.get("groups", 1)
    x, w = _randn((1, 4, 7, 7)), _randn((4, 4 // groups) + kernel)
    conv2d(minidl.tensor(x), minidl.tensor(w), padding=1, **kw)
    assert not tile_calls


def test_winograd_applies_needs_the_backend_kernels(winograd_everywhere):
    class NoTileKernels:  # a backend without the tile kernels (CuPy, for now)
        pass

    assert conv_winograd.winograd_applies(kernels_for(np.zeros(1)), (1, 2, 5, 5), (2, 2, 3, 3), (1, 1), (1, 1), 1)
    assert not conv_winograd.winograd_applies(NoTileKernels, (1, 2, 5, 5), (2, 2, 3, 3), (1, 1), (1, 1), 1)


def test_weight_transform_and_its_adjoint():
    """U[6a + b, f, c] = (G w[f, c] G.T)[a, b]; <U(w), dU> = <w, adjoint(dU)>."""
    from minidl.backend.reference import WINOGRAD_G as G

    rng = np.random.default_rng(0)
    w, dU = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((36, 3, 2))
    U = conv_winograd.transform_weight(w)
    np.testing.assert_allclose(U[:, 1, 0].reshape(6, 6), G @ w[1, 0] @ G.T, rtol=1e-12)
    np.testing.assert_allclose(np.sum(U * dU), np.sum(w * conv_winograd.transform_weight_adjoint(dU)), rtol=1e-12)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "many"])
def test_set_winograd_min_channels_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="set_winograd_min_channels: channels must be an int >= 1 or None"):
        conv_winograd.set_winograd_min_channels(bad)


def test_set_winograd_min_channels_returns_the_previous_value_and_none_restores():
    previous = conv_winograd.set_winograd_min_channels(7)
    try:
        assert conv_winograd.set_winograd_min_channels(None) == 7
        assert conv_winograd.WINOGRAD_MIN_CHANNELS is None
    finally:
        conv_winograd.set_winograd_min_channels(previous)
