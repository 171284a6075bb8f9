"""conv2d by the direct 3x3 route (minidl/ops/conv_direct.py): gradients, PyTorch, the switch.

The route is forced with ``minidl.backend.conv_algorithm("direct")`` (every CPU kernel module
offers it; see the table test for where 'auto' takes it); each test checks that the output's
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
from minidl.ops.conv_direct import Conv2dDirect


def _skip_unless_offered():
    """The CuPy kernels do not offer the route (a forced one runs on im2col there)."""
    if "direct" not in kernels_for(minidl.zeros(1)._data).CONV_ALGORITHMS:
        pytest.skip(f"the kernels of device {minidl.get_default_device()} do not offer the direct route")


@pytest.fixture
def direct(monkeypatch, device):
    _skip_unless_offered()
    monkeypatch.setattr(conv_algorithms, "_warned", set())  # each test sees its warning once
    with conv_algorithm("direct"):
        yield


def _route(*tensors, **kw):
    """conv2d of the tensors, asserting that the direct route computed it (when recorded)."""
    y = conv2d(*tensors, **kw)
    assert not y.requires_grad or type(y.grad_fn) is Conv2dDirect, f"computed by {y.grad_fn}"
    return y


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# (x shape, weight shape, keyword arguments): odd sizes, non-square inputs, odd numbers of filters
# (the Numba kernel pairs filters), padding 0, 1, 2 and per axis, 'same', dilation per axis,
# groups, an output smaller than the input
CASES = [
    ((2, 3, 7, 9), (5, 3, 3, 3), dict(padding=1)),
    ((1, 2, 6, 5), (3, 2, 3, 3), dict(padding=0)),
    ((2, 4, 5, 8), (2, 4, 3, 3), dict(padding=(1, 0))),
    ((1, 3, 9, 8), (2, 3, 3, 3), dict(padding=2, dilation=(2, 1))),
    ((2, 4, 6, 7), (6, 2, 3, 3), dict(padding="same", groups=2)),
    ((1, 6, 7, 6), (3, 2, 3, 3), dict(padding=(2, 1), dilation=(1, 2), groups=3)),
    # stride > 1: dx phase by phase (a kernel smaller than the stride leaves phases without taps;
    # padding beyond K - 1 crops dy)
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(stride=2, padding=1)),
    ((1, 2, 13, 11), (3, 2, 7, 7), dict(stride=2, padding=3)),
    ((2, 4, 8, 7), (6, 2, 3, 2), dict(stride=(2, 3), padding=(1, 0), groups=2)),
    ((1, 3, 7, 9), (2, 3, 1, 1), dict(stride=2)),
    ((1, 2, 10, 8), (3, 2, 3, 3), dict(stride=3, padding=2)),
]


@pytest.mark.parametrize("x_shape, w_shape, kw", CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradcheck(backend, direct, x_shape, w_shape, kw, with_bias):
    arrays = [_randn(x_shape, 1), _randn(w_shape, 2)] + ([_randn(w_shape[0], 3)] if with_bias else [])
    assert gradcheck_with_random_dy(lambda *a: _route(*a, **kw), arrays, seed=4)


@pytest.mark.parametrize("x_shape, w_shape, kw", CASES)
def test_matches_torch(torch, backend, direct, x_shape, w_shape, kw):
    x, w, b = _randn(x_shape, 1), _randn(w_shape, 2), _randn(w_shape[0], 3)
    compare_with_torch(torch, lambda *a: _route(*a, **kw),
                       lambda *a: torch.nn.functional.conv2d(*a, **kw), [x, w, b], rtol=1e-10, seed=5)


def _forward_backward(x, w, b, dy, route, **kw):
    ours = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
    with conv_algorithm(route):
        y = conv2d(*ours, **kw)
    assert (type(y.grad_fn) is Conv2dDirect) == (route == "direct")
    y.backward(minidl.tensor(dy))
    return [y.detach().numpy()] + [t.grad.numpy() for t in ours]


@pytest.mark.parametrize("x_shape, w_shape, kw", CASES)
def test_equals_the_im2col_route(backend, x_shape, w_shape, kw):
    _skip_unless_offered()
    x, w, b = _randn(x_shape, 1), _randn(w_shape, 2), _randn(w_shape[0], 3)
    y_shape = conv2d(minidl.tensor(x), minidl.tensor(w), **kw).shape
    dy = _randn(y_shape, 4)
    for ours, theirs in zip(_forward_backward(x, w, b, dy, "direct", **kw),
                            _forward_backward(x, w, b, dy, "im2col", **kw)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_only_the_needed_gradients_are_computed(backend, direct):
    x, w = _randn((2, 3, 6, 5), 1), _randn((4, 3, 3, 3), 2)
    dy = minidl.tensor(_randn((2, 4, 6, 5), 3))
    xt, wt = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    _route(xt, minidl.tensor(w), padding=1).backward(dy)
    _route(minidl.tensor(x), wt, padding=1).backward(dy)
    both_x, both_w = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    _route(both_x, both_w, padding=1).backward(dy)
    assert wt.grad is not None and xt.grad is not None
    np.testing.assert_allclose(xt.grad.numpy(), both_x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), both_w.grad.numpy(), rtol=1e-12)


def test_float32_error_against_float64_is_no_worse_than_im2col(backend):
    """float32 stays float32, and its rounding is of the textbook route's size (U-Net-like: 16
    channels, 'same' padding)."""
    _skip_unless_offered()
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 16, 19, 23)), rng.standard_normal((16, 16, 3, 3)) / 12, rng.standard_normal(16)
    dy = rng.standard_normal((2, 16, 19, 23))
    exact = _forward_backward(x, w, b, dy, "direct", padding=1)  # float64
    single = [a.astype(np.float32) for a in (x, w, b, dy)]
    for route in ("direct", "im2col"):
        for ours, truth in zip(_forward_backward(*single, route, padding=1), exact):
            assert ours.dtype == np.float32
            assert np.max(np.abs(ours - truth)) <= 2e-6 * np.max(np.abs(truth)), route


def test_each_kernel_module_says_from_how_many_channels_it_takes_the_route(backend):
    """Numba: from 4 channels per group, in and out, up to 127 where Winograd does not come first
    (tests/ops/test_conv_winograd.py), a layer of 1-3 filters by its input channels; the reference
    (kept readable): only when forced. 'auto' follows the table."""
    expected = {"numba": (4, 128), "reference": None}[backend]
    assert kernel_module(backend).CONV_ALGORITHMS["direct"] == expected
    offered = kernels_for(minidl.zeros(1)._data).CONV_ALGORITHMS.get("direct") is not None
    assert offered == (expected is not None and minidl.get_default_device() == "cpu")
    x, w = _randn((1, 128, 24, 25)), _randn((128, 128, 3, 3))  # 600 positions: > WEIGHT_BOUND per filter

    def route(C, F, groups=1):
        weight = minidl.tensor(w[:F, :C // groups], requires_grad=True)
        return type(conv2d(minidl.tensor(x[:, :C]), weight, padding=1, groups=groups).grad_fn)

    assert (route(4, 4) is Conv2dDirect) == offered
    assert (route(16, 16) is Conv2dDirect) == offered
    assert (route(63, 40) is Conv2dDirect) == offered
    assert (route(127, 60) is Conv2dDirect) == offered and (route(64, 64) is Conv2dDirect) == offered
    assert route(127, 100) is not Conv2dDirect  # Winograd's (Numba: a mean of 112) or the rotated kernel's
    assert route(3, 16) is not Conv2dDirect and route(2, 2) is not Conv2dDirect  # below the threshold
    assert (route(16, 3) is Conv2dDirect) == offered and (route(16, 1) is Conv2dDirect) == offered  # 1-3 filters:
    assert route(3, 3) is not Conv2dDirect  # counted by their input channels
    assert (route(8, 8, groups=2) is Conv2dDirect) == offered  # 4 per group
    assert route(6, 6, groups=2) is not Conv2dDirect  # 3 per group
    assert route(128, 128) is not Conv2dDirect  # Winograd's (Numba) or the rotated kernel's


def test_auto_takes_strided_convolutions_of_large_images(backend):
    """Stride > 1 (Numba): the channels counted with the band's SH*SW phase planes (a ResNet stem's
    3 channels: 12), and im2col for images of at most WEIGHT_BOUND_STRIDED positions per filter."""
    kern = kernel_module(backend)
    numba = backend == "numba"

    def choose(x_shape, w_shape, stride, p):
        return conv_algorithms.choose_conv2d(kern, x_shape, w_shape, (stride, stride), ((p, p), (p, p)), (1, 1), 1)

    assert (choose((2, 3, 128, 128), (16, 3, 7, 7), 2, 3) is Conv2dDirect) == numba  # 8192 positions, 16 filters
    assert (choose((2, 16, 128, 128), (16, 16, 3, 3), 2, 1) is Conv2dDirect) == numba
    assert (choose((2, 1, 64, 64), (16, 1, 3, 3), 2, 1) is Conv2dDirect) == numba  # 1 channel, 4 phase planes
    assert choose((2, 1, 64, 64), (16, 1, 3, 3), 1, 1) is not Conv2dDirect  # 1 channel at stride 1
    bound = conv_algorithms.WEIGHT_BOUND_STRIDED["direct"]
    assert 2 * 16 * 16 <= bound * 32 < 2 * 32 * 32  # positions per filter of the next two
    assert choose((2, 16, 32, 32), (32, 16, 3, 3), 2, 1) is conv_ops.Conv2d
    assert (choose((2, 16, 64, 64), (32, 16, 3, 3), 2, 1) is Conv2dDirect) == numba


@pytest.mark.parametrize("kw", [dict(stride=2, dilation=2), dict(kernel=(3, 2)), dict(kernel=(1, 1), padding=0),
                                dict(kernel=(5, 5)), dict(padding=(3, 1))])
def test_other_convolutions_run_on_im2col_and_say_so(backend, direct, kw):
    kw = dict(kw)  # the parameter dict is shared between backends
    kernel = kw.pop("kernel", (3, 3))
    kw.setdefault("padding", 1)
    with pytest.warns(RuntimeWarning, match="conv_algorithm\\('direct'\\) cannot take a conv2d"):
        y = conv2d(minidl.tensor(_randn((1, 4, 6, 6))), minidl.tensor(_randn((2, 4) + kernel), requires_grad=True), **kw)
    assert type(y.grad_fn) is conv_ops.Conv2d
