"""conv2d by the depthwise route (minidl/ops/conv_depthwise.py): gradients, PyTorch, the switch.

The route is forced with ``minidl.backend.conv_algorithm("depthwise")`` (every CPU kernel module
offers it; the Numba one also takes it by itself from 2 channels); each test checks that the output's
``grad_fn`` is the route's, so that it ran.
"""
import numpy as np
import pytest

import minidl
from helpers import compare_with_torch, gradcheck_with_random_dy
from minidl.backend import conv_algorithm, kernel_module, kernels_for
from minidl.functional.conv import conv2d
from minidl.ops import conv as conv_ops
from minidl.ops import conv_algorithms
from minidl.ops.conv_depthwise import Conv2dDepthwise

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


def _skip_unless_offered():
    """The CuPy kernels do not offer the route (a forced one runs on im2col there)."""
    if "depthwise" not in kernels_for(minidl.zeros(1)._data).CONV_ALGORITHMS:
        pytest.skip(f"the kernels of device {minidl.get_default_device()} do not offer the depthwise route")


@pytest.fixture
def depthwise(monkeypatch, device):
    _skip_unless_offered()
    monkeypatch.setattr(conv_algorithms, "_warned", set())  # each test sees its warning once
    with conv_algorithm("depthwise"):
        yield


def _route(*tensors, **kw):
    """conv2d of the tensors, asserting that the depthwise route computed it (when recorded)."""
    y = conv2d(*tensors, **kw)
    assert not y.requires_grad or type(y.grad_fn) is Conv2dDepthwise, f"computed by {y.grad_fn}"
    return y


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# (x shape, weight shape, keyword arguments): odd sizes, stride 2 (and per axis), non-square and
# even kernels, channel multipliers 2 and 3, dilation, padding beyond the kernel, 'same' with
# its extra bottom/right row, no padding, a one-pixel output
CASES = [
    ((2, 3, 7, 9), (3, 1, 3, 3), dict(padding=1, groups=3)),
    ((2, 4, 9, 7), (4, 1, 3, 3), dict(padding=1, stride=2, groups=4)),
    ((1, 3, 8, 11), (6, 1, 3, 2), dict(padding=(1, 0), stride=(2, 1), groups=3)),
    ((2, 2, 6, 5), (6, 1, 2, 4), dict(padding="same", groups=2)),
    ((1, 3, 9, 8), (3, 1, 3, 3), dict(padding=2, dilation=(2, 1), stride=(1, 2), groups=3)),
    ((1, 2, 5, 5), (4, 1, 1, 3), dict(padding=(3, 2), stride=3, groups=2)),
    ((2, 5, 3, 4), (5, 1, 3, 4), dict(padding=0, groups=5)),
]


@pytest.mark.parametrize("x_shape, w_shape, kw", CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradcheck(backend, depthwise, x_shape, w_shape, kw, with_bias):
    arrays = [_randn(x_shape, 1), _randn(w_shape, 2)] + ([_randn(w_shape[0], 3)] if with_bias else [])
    assert gradcheck_with_random_dy(lambda *a: _route(*a, **kw), arrays, seed=4)


@pytest.mark.parametrize("x_shape, w_shape, kw", CASES)
def test_matches_torch(torch, backend, depthwise, x_shape, w_shape, kw):
    x, w, b = _randn(x_shape, 1), _randn(w_shape, 2), _randn(w_shape[0], 3)
    compare_with_torch(torch, lambda *a: _route(*a, **kw),
                       lambda *a: torch.nn.functional.conv2d(*a, **kw), [x, w, b], rtol=1e-10, seed=5)


def _forward_backward(x, w, b, dy, route, **kw):
    ours = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
    with conv_algorithm(route):
        y = conv2d(*ours, **kw)
    assert (type(y.grad_fn) is Conv2dDepthwise) == (route == "depthwise")
    y.backward(minidl.tensor(dy))
    return [y.detach().numpy()] + [t.grad.numpy() for t in ours]


@pytest.mark.parametrize("x_shape, w_shape, kw", CASES)
def test_equals_the_im2col_route(backend, x_shape, w_shape, kw):
    _skip_unless_offered()
    x, w, b = _randn(x_shape, 1), _randn(w_shape, 2), _randn(w_shape[0], 3)
    y_shape = conv2d(minidl.tensor(x), minidl.tensor(w), **kw).shape
    dy = _randn(y_shape, 4)
    for ours, theirs in zip(_forward_backward(x, w, b, dy, "depthwise", **kw),
                            _forward_backward(x, w, b, dy, "im2col", **kw)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_only_the_needed_gradients_are_computed(backend, depthwise):
    x, w = _randn((2, 3, 6, 5), 1), _randn((3, 1, 3, 3), 2)
    dy = minidl.tensor(_randn((2, 3, 6, 5), 3))
    xt, wt = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    _route(xt, minidl.tensor(w), padding=1, groups=3).backward(dy)
    _route(minidl.tensor(x), wt, padding=1, groups=3).backward(dy)
    both_x, both_w = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    _route(both_x, both_w, padding=1, groups=3).backward(dy)
    assert wt.grad is not None and xt.grad is not None
    np.testing.assert_allclose(xt.grad.numpy(), both_x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), both_w.grad.numpy(), rtol=1e-12)
    # the bias's gradient with the weight's (summed by the dweight kernel) and without it
    b = _randn(3, 4)
    bt, both_b = minidl.tensor(b, requires_grad=True), minidl.tensor(b, requires_grad=True)
    _route(minidl.tensor(x), minidl.tensor(w), bt, padding=1, groups=3).backward(dy)
    _route(minidl.tensor(x), minidl.tensor(w, requires_grad=True), both_b, padding=1, groups=3).backward(dy)
    np.testing.assert_allclose(bt.grad.numpy(), dy.numpy().sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(both_b.grad.numpy(), bt.grad.numpy(), rtol=1e-12)


def test_float32_error_against_float64_is_no_worse_than_im2col(backend):
    """float32 stays float32, and its rounding is as small as the textbook route's."""
    _skip_unless_offered()
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 8, 15, 13)), rng.standard_normal((8, 1, 3, 3)) / 3, rng.standard_normal(8)
    dy = rng.standard_normal((2, 8, 8, 7))
    kw = dict(padding=1, stride=2, groups=8)
    exact = _forward_backward(x, w, b, dy, "depthwise", **kw)  # float64
    single = [a.astype(np.float32) for a in (x, w, b, dy)]
    for route in ("depthwise", "im2col"):
        for ours, truth in zip(_forward_backward(*single, route, **kw), exact):
            assert ours.dtype == np.float32
            assert np.max(np.abs(ours - truth)) <= 2e-6 * np.max(np.abs(truth)), route


def test_each_kernel_module_says_from_how_many_channels_it_takes_the_route(backend):
    """Numba: from 2 channels, by itself; the reference (kept readable): only when forced.
    'auto' follows the table."""
    expected = {"numba": 2, "reference": None}[backend]
    assert kernel_module(backend).CONV_ALGORITHMS["depthwise"] == expected
    offered = kernels_for(minidl.zeros(1)._data).CONV_ALGORITHMS.get("depthwise") is not None
    assert offered == (expected is not None and minidl.get_default_device() == "cpu")
    x, w = _randn((1, 4, 5, 6)), _randn((8, 1, 3, 3))
    y = conv2d(minidl.tensor(x), minidl.tensor(w, requires_grad=True), padding=1, groups=4)
    assert (type(y.grad_fn) is Conv2dDepthwise) == offered
    one = conv2d(minidl.tensor(x[:, :1]), minidl.tensor(w[:2], requires_grad=True), padding=1)
    assert type(one.grad_fn) is not Conv2dDepthwise  # one channel: below the threshold
    grouped = conv2d(minidl.tensor(x), minidl.tensor(_randn((4, 2, 3, 3)), requires_grad=True), padding=1, groups=2)
    assert type(grouped.grad_fn) is not Conv2dDepthwise  # two channels per group: not depthwise


@pytest.mark.parametrize("w_shape, groups", [((4, 4, 3, 3), 1), ((4, 2, 3, 3), 2)])
def test_other_convolutions_run_on_im2col_and_say_so(backend, depthwise, w_shape, groups):
    with pytest.warns(RuntimeWarning, match="conv_algorithm\\('depthwise'\\) cannot take a conv2d.*groups == in_channels"):
        y = conv2d(minidl.tensor(_randn((1, 4, 6, 6))), minidl.tensor(_randn(w_shape), requires_grad=True),
                   padding=1, groups=groups)
    assert type(y.grad_fn) is conv_ops.Conv2d
