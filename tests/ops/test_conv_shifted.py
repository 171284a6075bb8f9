"""conv2d by shifted rows (minidl/ops/conv_shifted.py): gradients, PyTorch, the im2col path.

The route is forced with ``minidl.backend.conv_algorithm("shifted_rows")`` (every kernel module
offers it; the Numba one also takes it by itself from 16 channels), and each test checks that
the output's ``grad_fn`` is the route's, so that it ran; ``stacked_rows`` calls count blocks.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from helpers import compare_with_torch, gradcheck_with_random_dy, record_calls
from minidl.backend import conv_algorithm, kernel_module, kernels_for
from minidl.functional.conv import conv2d
from minidl.ops import conv as conv_ops
from minidl.ops import conv_algorithms, conv_shifted
from minidl.ops.conv_shifted import Conv2dShiftedRows

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


@pytest.fixture
def stacked_calls(monkeypatch):
    """Counts the calls of conv_shifted.stacked_rows (one per block)."""
    return record_calls(monkeypatch, conv_shifted, "stacked_rows")


@pytest.fixture
def shifted_rows(monkeypatch):
    monkeypatch.setattr(conv_algorithms, "_warned", set())  # each test sees its warning once
    with conv_algorithm("shifted_rows"):
        yield


def _route(*tensors, **kw):
    """conv2d of the tensors, asserting that the shifted-rows route computed it (when recorded)."""
    y = conv2d(*tensors, **kw)
    assert not y.requires_grad or type(y.grad_fn) is Conv2dShiftedRows, f"computed by {y.grad_fn}"
    return y


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
def test_gradcheck(backend, shifted_rows, x_shape, w_shape, kw, with_bias):
    arrays = [_randn(x_shape, 1), _randn(w_shape, 2)] + ([_randn(w_shape[0], 3)] if with_bias else [])
    assert gradcheck_with_random_dy(lambda *a: _route(*a, **kw), arrays, seed=4)


@pytest.mark.parametrize("x_shape, w_shape, kw", CASES)
def test_matches_torch(torch, backend, shifted_rows, x_shape, w_shape, kw):
    x, w, b = _randn(x_shape, 1), _randn(w_shape, 2), _randn(w_shape[0], 3)
    compare_with_torch(torch, lambda *a: _route(*a, **kw),
                       lambda *a: torch.nn.functional.conv2d(*a, **kw), [x, w, b], rtol=1e-10, seed=5)


def _forward_backward(x, w, b, dy, route, **kw):
    ours = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
    with conv_algorithm(route):
        y = conv2d(*ours, **kw)
    assert route == "im2col" or type(y.grad_fn) is Conv2dShiftedRows
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
def test_equals_the_im2col_path(backend, stacked_calls, case, rows_per_block):
    """Output and gradients equal the im2col path's, in one block or in bands of 1 or 2 rows."""
    x_shape, w_shape, kw = case
    (KH, KW), (DH, DW), padding = w_shape[2:], kw["dilation"], kw["padding"]
    if isinstance(padding, tuple) and (padding[0] > DH * (KH - 1) or padding[1] > DW * (KW - 1)):
        return  # the route does not take it (its dx needs padding <= D*(K-1)): tested below
    x, w, b = _randn(x_shape, 1), _randn(w_shape, 2), _randn(w_shape[0], 3)
    stacked_calls.clear()  # hypothesis runs many examples in one test
    y_shape = conv2d(minidl.tensor(x), minidl.tensor(w), **kw).shape
    dy = _randn(y_shape, 4)
    im2col = _forward_backward(x, w, b, dy, "im2col", **kw)
    assert not stacked_calls
    previous = conv_ops.get_column_buffer_limit()
    if rows_per_block is not None:  # conv_blocks counts KH*C values per output pixel, OW pixels per row
        conv_ops.set_column_buffer_limit(rows_per_block * w_shape[2] * x_shape[1] * 8 * y_shape[3])
    try:
        shifted = _forward_backward(x, w, b, dy, "shifted_rows", **kw)
    finally:
        conv_ops.set_column_buffer_limit(previous)
    forward_lowering = stacked_calls[0][1]  # forward's; backward's (dy's rows) is another one
    forward_calls = [call for call in stacked_calls if call[1] is forward_lowering]
    OH = y_shape[2]
    if rows_per_block is not None and OH > rows_per_block:  # bands of rows, else whole samples
        assert len(forward_calls) == x_shape[0] * -(-OH // rows_per_block)
    assert len(forward_calls) < len(stacked_calls)  # backward took the route too (dy's rows)
    for ours, theirs in zip(shifted, im2col):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_only_the_needed_gradients_are_computed(backend, shifted_rows, stacked_calls):
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


def test_float32_agrees_with_the_im2col_path(backend):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 16, 11, 13), (8, 16, 3, 3), (8,)))
    w *= 1 / np.sqrt(9 * 16)
    dy = rng.standard_normal((2, 8, 11, 13)).astype(np.float32)
    shifted = _forward_backward(x, w, b, dy, "shifted_rows", padding=1)
    im2col = _forward_backward(x, w, b, dy, "im2col", padding=1)
    for ours, theirs in zip(shifted, im2col):
        assert ours.dtype == np.float32
        assert np.max(np.abs(ours - theirs)) <= 1e-5 * np.max(np.abs(theirs))


def test_each_kernel_module_says_from_how_many_channels_it_takes_the_route(backend):
    """Numba: from 16 channels per group, in and out (3x3 kernels from 16 to 127 channels go to the
    direct route: a 3x2 kernel here); the reference (kept readable): only when forced. 'auto'
    follows the table."""
    expected = {"numba": 16, "reference": None}[backend]
    assert kernel_module(backend).CONV_ALGORITHMS["shifted_rows"] == expected
    x, w = _randn((1, 32, 9, 8)), _randn((16, 16, 3, 2))  # 81 positions: >= WEIGHT_BOUND per filter
    route = conv2d(minidl.tensor(x[:, :16]), minidl.tensor(w, requires_grad=True), padding=1).grad_fn
    assert (type(route) is Conv2dShiftedRows) == (expected is not None and minidl.get_default_device() == "cpu")
    below = conv2d(minidl.tensor(x[:, :15]), minidl.tensor(w[:, :15], requires_grad=True), padding=1).grad_fn
    assert type(below) is not Conv2dShiftedRows
    assert kernels_for(minidl.tensor(x)._data).CONV_ALGORITHMS.get("shifted_rows") == (
        expected if minidl.get_default_device() == "cpu" else None)


@pytest.mark.parametrize("kw", [dict(stride=2), dict(stride=(1, 2)), dict(kernel=(1, 1), padding=0),
                                dict(padding=(3, 1))])
def test_other_convolutions_run_on_im2col_and_say_so(backend, shifted_rows, stacked_calls, kw):
    kw = dict(kw)  # the parameter dict is shared between backends
    kernel = kw.pop("kernel", (3, 3))
    kw.setdefault("padding", 1)
    with pytest.warns(RuntimeWarning, match="conv_algorithm\\('shifted_rows'\\) cannot take a conv2d"):
        y = conv2d(minidl.tensor(_randn((1, 4, 6, 6))), minidl.tensor(_randn((2, 4) + kernel), requires_grad=True), **kw)
    assert type(y.grad_fn) is conv_ops.Conv2d and not stacked_calls
