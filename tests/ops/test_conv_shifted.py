"""conv2d forward by shifted rows (minidl/ops/conv_shifted.py): gradients, PyTorch, the im2col path.

The path is taken for stride-1 convolutions from a backend's ``SHIFTED_ROWS_MIN_CHANNELS``
input channels per group on; the tests lower it to 1 on the backend under test
(``shifted_everywhere``) so that small float64 cases take it, and count the calls of
``stacked_rows`` to make sure they did.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from helpers import compare_with_torch, gradcheck_with_random_dy, record_calls
from minidl.backend import kernel_module
from minidl.functional.conv import conv2d
from minidl.ops import conv as conv_ops
from minidl.ops import conv_shifted

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


@pytest.fixture
def stacked_calls(monkeypatch):
    """Counts the calls of conv_shifted.stacked_rows (one per block)."""
    return record_calls(monkeypatch, conv_shifted, "stacked_rows")


@pytest.fixture
def shifted_threshold(backend, monkeypatch):
    """Sets the backend's SHIFTED_ROWS_MIN_CHANNELS for this test (None: never)."""
    module = kernel_module(backend)
    return lambda value: monkeypatch.setattr(module, "SHIFTED_ROWS_MIN_CHANNELS", value, raising=False)


@pytest.fixture
def shifted_everywhere(shifted_threshold):
    shifted_threshold(1)


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# (x shape, weight shape, keyword arguments): odd sizes, non-square and even kernels, every
# kind of padding (none, symmetric, per axis, 'same' with its extra bottom/right row), dilation,
# groups, a kernel as wide as the padded input, a 1x1 output
CASES = [
    ((2, 3, 7, 9), (4, 3, 3, 3), dict(padding=1)),
    ((1, 2, 6, 5), (3, 2, 2, 3), dict(padding=0)),
    ((2, 4, 5, 8), (2, 4, 3, 1), dict(padding=(1, 0))),
    ((1, 2, 8, 7), (5, 2, 2, 4), dict(padding="same")),
    ((1, 3, 9, 8), (2, 3, 3, 2), dict(padding=2, dilation=(2, 3))),
    ((2, 4, 6, 7), (6, 2, 3, 3), dict(padding=1, groups=2)),
    ((1, 2, 4, 3), (2, 2, 4, 3), dict(padding=0)),
    ((1, 1, 5, 6), (3, 1, 1, 3), dict(padding=(0, 1))),
]


@pytest.mark.parametrize("x_shape, w_shape, kw", CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradcheck(backend, shifted_everywhere, stacked_calls, x_shape, w_shape, kw, with_bias):
    arrays = [_randn(x_shape, 1), _randn(w_shape, 2)] + ([_randn(w_shape[0], 3)] if with_bias else [])
    assert gradcheck_with_random_dy(lambda *a: conv2d(*a, **kw), arrays, seed=4)
    assert stacked_calls, "the shifted-rows path was not taken"


@pytest.mark.parametrize("x_shape, w_shape, kw", CASES)
def test_matches_torch(torch, backend, shifted_everywhere, stacked_calls, x_shape, w_shape, kw):
    x, w, b = _randn(x_shape, 1), _randn(w_shape, 2), _randn(w_shape[0], 3)
    compare_with_torch(torch, lambda *a: conv2d(*a, **kw),
                       lambda *a: torch.nn.functional.conv2d(*a, **kw), [x, w, b], rtol=1e-10, seed=5)
    assert stacked_calls


def _forward_backward(x, w, b, dy, **kw):
    ours = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv2d(*ours, **kw)
    y.backward(minidl.tensor(dy))
    return [y.detach().numpy()] + [t.grad.numpy() for t in ours]


@st.composite
def stride_one_convs(draw):
    """A stride-1 conv2d: (x shape, weight shape, keyword arguments)."""
    G = draw(st.integers(1, 3))
    C, F = G * draw(st.integers(1, 2)), G * draw(st.integers(1, 2))
    KH, DH, DW = (draw(st.integers(1, 3)) for _ in range(3))
    KW = draw(st.integers(2 if KH == 1 else 1, 3))  # a 1x1 conv reshapes instead (Lowering.tiles)
    padding = draw(st.sampled_from(["same", "valid", "pair"]))
    if padding == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    pad_h, pad_w = (0, 0) if padding == "valid" else (DH * (KH - 1), DW * (KW - 1)) if padding == "same" \
        else (2 * padding[0], 2 * padding[1])
    H = draw(st.integers(max(1, DH * (KH - 1) + 1 - pad_h), 9))  # at least one output row
    W = draw(st.integers(max(1, DW * (KW - 1) + 1 - pad_w), 9))
    return (draw(st.integers(1, 2)), C, H, W), (F, C // G, KH, KW), dict(padding=padding, dilation=(DH, DW), groups=G)


@given(case=stride_one_convs(), rows_per_block=st.sampled_from([None, 1, 2]))
def test_equals_the_im2col_path(backend, shifted_threshold, stacked_calls, case, rows_per_block):
    """Output and gradients equal the im2col path's, in one block or in bands of 1 or 2 rows."""
    x_shape, w_shape, kw = case
    x, w, b = _randn(x_shape, 1), _randn(w_shape, 2), _randn(w_shape[0], 3)
    shifted_threshold(None)  # hypothesis runs many examples in one test: start from the im2col path
    stacked_calls.clear()
    y_shape = conv2d(minidl.tensor(x), minidl.tensor(w), **kw).shape
    dy = _randn(y_shape, 4)
    im2col = _forward_backward(x, w, b, dy, **kw)
    assert not stacked_calls
    shifted_threshold(1)
    previous = conv_ops.get_column_buffer_limit()
    if rows_per_block is not None:  # conv_blocks counts KH*C values per output pixel, OW pixels per row
        conv_ops.set_column_buffer_limit(rows_per_block * w_shape[2] * x_shape[1] * 8 * y_shape[3])
    try:
        shifted = _forward_backward(x, w, b, dy, **kw)
    finally:
        conv_ops.set_column_buffer_limit(previous)
    forward_lowering = stacked_calls[0][1]  # forward's; backward's (dy's rows) is another one
    forward_calls = [call for call in stacked_calls if call[1] is forward_lowering]
    OH = y_shape[2]
    if rows_per_block is not None and OH > rows_per_block:  # bands of rows, else whole samples
        assert len(forward_calls) == x_shape[0] * -(-OH // rows_per_block)
    (KH, KW), (DH, DW), padding = w_shape[2:], kw["dilation"], kw["padding"]
    if not isinstance(padding, tuple) or (padding[0] <= DH * (KH - 1) and padding[1] <= DW * (KW - 1)):
        assert len(forward_calls) < len(stacked_calls)  # backward took the path too (dy's rows)
    else:  # more padding than D*(K-1): dx by col2im (conv.Conv2d._flipped_lowering)
        assert len(forward_calls) == len(stacked_calls)
    for ours, theirs in zip(shifted, im2col):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_only_the_needed_gradients_are_computed(backend, shifted_everywhere, stacked_calls):
    x, w = _randn((2, 3, 6, 5), 1), _randn((4, 3, 3, 2), 2)
    dy = minidl.tensor(_randn((2, 4, 6, 5), 3))
    xt, wt = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    conv2d(xt, minidl.tensor(w), padding="same").backward(dy)
    conv2d(minidl.tensor(x), wt, padding="same").backward(dy)
    both_x, both_w = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    conv2d(both_x, both_w, padding="same").backward(dy)
    np.testing.assert_allclose(xt.grad.numpy(), both_x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), both_w.grad.numpy(), rtol=1e-12)
    assert len(stacked_calls) == 3 + 2  # three forwards; dy's rows when dx is wanted


def test_float32_agrees_with_the_im2col_path(backend, shifted_everywhere, stacked_calls, shifted_threshold):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 16, 11, 13), (8, 16, 3, 3), (8,)))
    w *= 1 / np.sqrt(9 * 16)
    dy = rng.standard_normal((2, 8, 11, 13)).astype(np.float32)
    shifted = _forward_backward(x, w, b, dy, padding=1)
    assert stacked_calls
    shifted_threshold(None)
    im2col = _forward_backward(x, w, b, dy, padding=1)
    for ours, theirs in zip(shifted, im2col):
        assert ours.dtype == np.float32
        assert np.max(np.abs(ours - theirs)) <= 1e-5 * np.max(np.abs(theirs))


def test_each_backend_has_its_default_threshold(backend, stacked_calls):
    """Numba: shifted rows from 16 input channels per group; the reference (im2col, the
    textbook lowering, kept readable): never."""
    expected = {"numba": 16, "reference": None}[backend]
    assert getattr(kernel_module(backend), "SHIFTED_ROWS_MIN_CHANNELS", None) == expected
    x, w = _randn((1, 32, 5, 4)), _randn((3, 16, 3, 3))
    conv2d(minidl.tensor(x[:, :16]), minidl.tensor(w), padding=1)
    assert len(stacked_calls) == (1 if expected else 0)
    conv2d(minidl.tensor(x[:, :15]), minidl.tensor(w[:, :15]), padding=1)  # 15 channels: below
    assert len(stacked_calls) == (1 if expected else 0)
    conv2d(minidl.tensor(x), minidl.tensor(_randn((4, 16, 3, 3))), padding=1, groups=2)  # 16 per group
    assert len(stacked_calls) == (2 if expected else 0)


@pytest.mark.parametrize("kw", [dict(stride=2), dict(stride=(1, 2)), dict(kernel=(1, 1), padding=0)])
def test_other_convolutions_keep_their_path(backend, shifted_everywhere, stacked_calls, kw):
    kw = dict(kw)  # the parameter dict is shared between backends
    kernel = kw.pop("kernel", (3, 3))
    kw.setdefault("padding", 1)
    conv2d(minidl.tensor(_randn((1, 4, 6, 6))), minidl.tensor(_randn((2, 4) + kernel)), **kw)
    assert not stacked_calls
