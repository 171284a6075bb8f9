"""Pooling (minidl/ops/pool.py, functional/pool.py, nn/pool.py) against PyTorch.

float64 everywhere; forward, indices (exact) and gradients (random upstream gradient) within
1e-10. Inputs for max-pool gradients are drawn TIE-FREE (a random permutation of distinct
values), except in the tests that pin the tie rule to PyTorch's on purpose.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minidl
from helpers import assert_close, compare_with_torch, gradcheck_with_random_dy
from minidl.functional.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d, max_unpool2d
from minidl.nn import pool as nn_pool


SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _distinct(shape, seed=0):
    """Tie-free input: a random permutation of distinct values (max-pool is smooth there)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) / 7.0


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _t(a, requires_grad=False):
    return minidl.tensor(a, dtype=minidl.float64, requires_grad=requires_grad)


# ---- strategies ------------------------------------------------------------------------------

@st.composite
def max_pool_configs(draw):
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return dict(
        shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)),
               draw(st.integers(1, 9))),
        kernel_size=(KH, KW),
        stride=draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3)))),
        padding=(draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2))),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        ceil_mode=draw(st.booleans()),
    )


@st.composite
def avg_pool_configs(draw):
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return dict(
        shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)),
               draw(st.integers(1, 9))),
        kernel_size=(KH, KW),
        stride=draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3)))),
        padding=(draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2))),
        ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
        divisor_override=draw(st.one_of(st.none(), st.integers(1, 5))),
    )


def _torch_accepts(torch, fn, shape):
    """Whether PyTorch accepts the configuration (forward on zeros; never a backward)."""
    try:
        y = fn(torch.zeros(shape, dtype=torch.float64))
    except RuntimeError:
        return False
    y = y[0] if isinstance(y, tuple) else y
    return not bool(torch.isinf(y).any())  # -inf: a window of padding only (we reject those)


def _split(cfg):
    cfg = dict(cfg)
    return cfg.pop("shape"), cfg


# ---- max_pool2d ------------------------------------------------------------------------------

@SETTINGS
@given(cfg=max_pool_configs(), seed=st.integers(0, 2**16))
def test_max_pool2d_forward_indices_and_gradient_match_torch(torch, backend, cfg, seed):
    TF = torch.nn.functional
    shape, kw = _split(cfg)
    assume(_torch_accepts(torch, lambda x: TF.max_pool2d(x, **kw), shape))
    x = _distinct(shape, seed)
    compare_with_torch(torch, lambda a: max_pool2d(a, **kw), lambda a: TF.max_pool2d(a, **kw),
                       [x], seed=seed)
    _, idx = max_pool2d(_t(x), **kw, return_indices=True)
    _, idx_ref = TF.max_pool2d(torch.tensor(x), **kw, return_indices=True)
    assert idx.dtype == minidl.int64 and not idx.requires_grad
    np.testing.assert_array_equal(idx.numpy(), idx_ref.numpy())


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 4), stride=3, padding=(1, 2), dilation=2, ceil_mode=True),
])
def test_max_pool2d_gradcheck(backend, kw):
    x = _distinct((2, 2, 7, 8), seed=3)
    assert gradcheck_with_random_dy(lambda a: max_pool2d(a, **kw), [x])


def test_max_pool2d_overlapping_windows_add_gradients(backend):
    """stride < kernel: a cell that wins several windows receives the SUM of their dy."""
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0  # wins all four 2x2 windows (stride 1)
    t = _t(x, requires_grad=True)
    dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    (max_pool2d(t, 2, stride=1) * minidl.tensor(dy)).sum().backward()
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10.0
    np.testing.assert_array_equal(t.grad.numpy(), expected)


TIE_INPUTS = {
    "all_equal": lambda shape, rng: np.full(shape, 1.5),
    "partial_ties": lambda shape, rng: rng.integers(0, 3, shape).astype(float),
    "ties_with_padding_level": lambda shape, rng: np.where(rng.random(shape) < 0.5, -1.0, 0.0),
}


@pytest.mark.parametrize("kind", sorted(TIE_INPUTS))
@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=1, dilation=(2, 1), ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
])
def test_max_pool2d_tie_rule_is_pytorchs(torch, backend, kind, kw):
    """Pins the tie rule: the FIRST maximum in scan order (rows, then columns) wins, and it
    alone receives the gradient; indices and gradients equal PyTorch's exactly."""
    TF = torch.nn.functional
    rng = np.random.default_rng(5)
    x = TIE_INPUTS[kind]((2, 3, 7, 6), rng)
    compare_with_torch(torch, lambda a: max_pool2d(a, **kw), lambda a: TF.max_pool2d(a, **kw),
                       [x], rtol=0, atol=0)
    _, idx = max_pool2d(_t(x), **kw, return_indices=True)
    _, idx_ref = TF.max_pool2d(torch.tensor(x), **kw, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), idx_ref.numpy())


def test_max_pool2d_tie_rule_worked_example(backend):
    """In the all-equal 2x2 window [[7, 7], [7, 7]] the top-left cell wins."""
    t = _t(np.full((1, 1, 2, 2), 7.0), requires_grad=True)
    y, idx = max_pool2d(t, 2, return_indices=True)
    assert idx.numpy().tolist() == [[[[0]]]]
    y.sum().backward()
    assert t.grad.numpy().tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]


def test_max_pool2d_nan_and_minus_inf_like_torch(torch, backend):
    """NaN propagates (the last NaN of a window wins, as PyTorch); an all -inf window
    reports its first in-bounds cell."""
    TF = torch.nn.functional
    nan, inf = np.nan, np.inf
    x = np.array([[[[1.0, nan, 2.0], [nan, 0.0, 1.0], [3.0, 3.0, -inf]]]])
    for data in (x, np.full((1, 1, 3, 3), -inf)):
        y, idx = max_pool2d(_t(data), 2, stride=1, padding=1, return_indices=True)
        y_ref, idx_ref = TF.max_pool2d(torch.tensor(data), 2, stride=1, padding=1,
                                       return_indices=True)
        np.testing.assert_array_equal(y.numpy(), y_ref.numpy())  # NaN == NaN here
        np.testing.assert_array_equal(idx.numpy(), idx_ref.numpy())


def test_max_pool2d_unbatched_stride_list_and_dtype(torch, backend):
    TF = torch.nn.functional
    x = _distinct((3, 6, 5), seed=1)
    compare_with_torch(torch, lambda a: max_pool2d(a, (3, 2), [], 1),
                       lambda a: TF.max_pool2d(a, (3, 2), [], 1), [x])
    _, idx = max_pool2d(_t(x), 2, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), TF.max_pool2d(torch.tensor(x), 2,
                                                             return_indices=True)[1].numpy())
    y32 = max_pool2d(minidl.tensor(x.astype(np.float32)), 2)
    assert y32.dtype == minidl.float32 and y32.shape == (3, 3, 2)


def test_max_pool2d_empty_batch(backend):
    y = max_pool2d(_t(np.zeros((0, 2, 4, 4))), 2)
    assert y.shape == (0, 2, 2, 2)


# ---- avg_pool2d ------------------------------------------------------------------------------

@SETTINGS
@given(cfg=avg_pool_configs(), seed=st.integers(0, 2**16))
def test_avg_pool2d_matches_torch(torch, backend, cfg, seed):
    TF = torch.nn.functional
    shape, kw = _split(cfg)
    assume(_torch_accepts(torch, lambda x: TF.avg_pool2d(x, **kw), shape))
    compare_with_torch(torch, lambda a: avg_pool2d(a, **kw), lambda a: TF.avg_pool2d(a, **kw),
                       [_randn(shape, seed)], seed=seed)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), divisor_override=4),
    dict(kernel_size=(3, 2), stride=2, padding=(1, 0), ceil_mode=True),
])
def test_avg_pool2d_gradcheck(backend, kw):
    assert gradcheck_with_random_dy(lambda a: avg_pool2d(a, **kw), [_randn((2, 2, 7, 6), 4)])


def test_avg_pool2d_ceil_mode_divisor_excludes_cells_beyond_the_padding(torch, backend):
    """H = 5, K = 2, S = 2, P = 0, ceil_mode: the last window holds one real cell and one
    cell beyond the input that is NOT padding: it divides by 1 even with count_include_pad."""
    TF = torch.nn.functional
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    y = avg_pool2d(_t(x), 2, ceil_mode=True, count_include_pad=True)
    assert y.numpy()[0, 0, 2, 2] == 24.0
    assert_close(y, TF.avg_pool2d(torch.tensor(x), 2, ceil_mode=True).numpy())


def test_avg_pool2d_unbatched_and_dtype(torch, backend):
    TF = torch.nn.functional
    x = _randn((2, 5, 7), seed=2)
    compare_with_torch(torch, lambda a: avg_pool2d(a, 3, 2, 1, count_include_pad=False),
                       lambda a: TF.avg_pool2d(a, 3, 2, 1, count_include_pad=False), [x])
    y32 = avg_pool2d(minidl.tensor(x.astype(np.float32)), 2, divisor_override=3)
    assert y32.dtype == minidl.float32


# ---- adaptive_avg_pool2d ---------------------------------------------------------------------

@SETTINGS
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
       out=st.tuples(st.one_of(st.none(), st.integers(1, 10)),
                     st.one_of(st.none(), st.integers(1, 10))),
       seed=st.integers(0, 2**16))
def test_adaptive_avg_pool2d_matches_torch(torch, backend, shape, out, seed):
    TF = torch.nn.functional
    compare_with_torch(torch, lambda a: adaptive_avg_pool2d(a, out),
                       lambda a: TF.adaptive_avg_pool2d(a, out), [_randn(shape, seed)], seed=seed)


@pytest.mark.parametrize("out", [1, 3, (2, 5), (None, 2), (7, 4)])
def test_adaptive_avg_pool2d_gradcheck_and_unbatched(torch, backend, out):
    TF = torch.nn.functional
    x = _randn((2, 3, 5, 6), seed=6)
    assert gradcheck_with_random_dy(lambda a: adaptive_avg_pool2d(a, out), [x])
    compare_with_torch(torch, lambda a: adaptive_avg_pool2d(a, out),
                       lambda a: TF.adaptive_avg_pool2d(a, out), [x[0]])


def test_adaptive_avg_pool2d_zero_output_and_dtype(torch, backend):
    TF = torch.nn.functional
    x = _t(_randn((1, 2, 4, 4)), requires_grad=True)
    y = adaptive_avg_pool2d(x, 0)
    assert y.shape == TF.adaptive_avg_pool2d(torch.zeros(1, 2, 4, 4), 0).shape == (1, 2, 0, 0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 2, 4, 4)))
    assert adaptive_avg_pool2d(minidl.tensor(np.ones((1, 5, 5), np.float32)), 2).dtype == \
        minidl.float32


# ---- max_unpool2d ----------------------------------------------------------------------------

@pytest.mark.parametrize("pool_kw, unpool_kw, shape", [
    (dict(kernel_size=2), dict(kernel_size=2), (2, 3, 6, 8)),
    (dict(kernel_size=2), dict(kernel_size=2, output_size=(7, 9)), (2, 3, 7, 9)),
    (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=2, padding=1,
                                                      output_size=[2, 3, 7, 6]), (2, 3, 7, 6)),
    (dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=3, stride=1, padding=1),
     (1, 2, 5, 5)),  # overlapping windows: repeated indices, forward values agree
    (dict(kernel_size=(2, 3), stride=(2, 1)), dict(kernel_size=(2, 3), stride=(2, 1)), (3, 5, 4)),
])
def test_max_unpool2d_matches_torch(torch, backend, pool_kw, unpool_kw, shape):
    TF = torch.nn.functional
    x = _distinct(shape, seed=8)
    y_ref, idx_ref = TF.max_pool2d(torch.tensor(x), **pool_kw, return_indices=True)
    _, idx = max_pool2d(_t(x), **pool_kw, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), idx_ref.numpy())
    ours_idx, torch_idx = minidl.tensor(idx_ref.numpy()), idx_ref
    compare_with_torch(torch, lambda a: max_unpool2d(a, ours_idx, **unpool_kw),
                       lambda a: TF.max_unpool2d(a, torch_idx, **unpool_kw),
                       [_randn(tuple(y_ref.shape), seed=9)])


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=(2, 3), stride=(2, 3)),
                                dict(kernel_size=2, padding=1)])
def test_max_unpool2d_gradcheck(backend, kw):
    """Non-overlapping windows: distinct indices, so unpool is a plain scatter. (With repeated
    indices only one value lands, yet backward gives each the gradient there, as PyTorch.)"""
    x = _distinct((2, 2, 6, 7), seed=10)
    _, idx = max_pool2d(_t(x), **kw, return_indices=True)
    pooled = _randn(idx.shape, seed=11)
    assert gradcheck_with_random_dy(lambda a: max_unpool2d(a, idx, **kw, output_size=(6, 7)),
                                    [pooled])


def test_max_pool_then_unpool_round_trip_gradient(torch, backend):
    TF = torch.nn.functional
    x = _distinct((2, 3, 6, 6), seed=12)

    def ours(a):
        y, idx = max_pool2d(a, 2, return_indices=True)
        return max_unpool2d(y, idx, 2)

    def theirs(a):
        y, idx = TF.max_pool2d(a, 2, return_indices=True)
        return TF.max_unpool2d(y, idx, 2)

    compare_with_torch(torch, ours, theirs, [x])


# ---- nn layers -------------------------------------------------------------------------------

LAYERS = [
    ("MaxPool2d", (2,), {}),
    ("MaxPool2d", ((3, 2), 1, 1, (1, 2), False, True), {}),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True)),
    ("AvgPool2d", (2,), {}),
    ("AvgPool2d", (3, 2, 1, True, False), {}),
    ("AvgPool2d", ((2, 3),), dict(stride=1, padding=(1, 1), divisor_override=5)),
    ("AdaptiveAvgPool2d", (3,), {}),
    ("AdaptiveAvgPool2d", ((None, 2),), {}),
]


@pytest.mark.parametrize("name, args, kwargs", LAYERS)
def test_nn_layers_match_torch_nn(torch, backend, name, args, kwargs):
    ours = getattr(nn_pool, name)(*args, **kwargs)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.parameters()) == []
    x = _distinct((2, 3, 7, 6), seed=13)
    compare_with_torch(torch, ours, theirs, [x])
    compare_with_torch(torch, ours, theirs, [x[0]])  # unbatched


def test_nn_max_pool_return_indices_and_unpool_match_torch_nn(torch, backend):
    pool, pool_ref = nn_pool.MaxPool2d(2, return_indices=True), torch.nn.MaxPool2d(2,
                                                                                    return_indices=True)
    unpool, unpool_ref = nn_pool.MaxUnpool2d(2), torch.nn.MaxUnpool2d(2)
    assert repr(unpool) == repr(unpool_ref)
    assert repr(nn_pool.MaxUnpool2d((2, 3), 1, (1, 0))) == repr(torch.nn.MaxUnpool2d((2, 3), 1,
                                                                                       (1, 0)))
    assert (pool.stride, pool.padding, pool.dilation) == (pool_ref.stride, pool_ref.padding,
                                                          pool_ref.dilation)
    x = _distinct((2, 3, 5, 6), seed=14)

    def ours(a):
        y, idx = pool(a)
        return unpool(y, idx, output_size=a.shape)

    def theirs(a):
        y, idx = pool_ref(a)
        return unpool_ref(y, idx, output_size=a.shape)

    compare_with_torch(torch, ours, theirs, [x])


# ---- errors: clear, before any work -----------------------------------------------------------

X = minidl.tensor(np.zeros((1, 2, 5, 5)))


@pytest.mark.parametrize("call, error, match", [
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), 2), TypeError, "max_pool2d: input must be a minidl Tensor"),
    (lambda: max_pool2d(minidl.tensor(np.zeros((5, 5))), 2), ValueError,
     r"max_pool2d: input must be 3-D or 4-D, got shape \(5, 5\)"),
    (lambda: max_pool2d(minidl.tensor(np.zeros((1, 1, 4, 4), np.int64)), 2), TypeError,
     "max_pool2d: input must be a float32 or float64 tensor .* got dtype int64"),
    (lambda: max_pool2d(minidl.tensor(np.zeros((1, 0, 4, 4))), 2), ValueError,
     r"max_pool2d: input must have non-zero channels, height and width .* \(1, 0, 4, 4\)"),
    (lambda: max_pool2d(X, 0), ValueError, r"max_pool2d: kernel_size must be positive, got 0"),
    (lambda: max_pool2d(X, (2, 2, 2)), ValueError, "max_pool2d: kernel_size must be an int or a pair"),
    (lambda: max_pool2d(X, 2.5), ValueError, "max_pool2d: kernel_size must be an int or a pair"),
    (lambda: max_pool2d(X, 2, stride=0), ValueError, "max_pool2d: stride must be positive"),
    (lambda: max_pool2d(X, 2, padding=-1), ValueError, "max_pool2d: padding must be non-negative"),
    (lambda: max_pool2d(X, 2, dilation=(1, 0)), ValueError, "max_pool2d: dilation must be positive"),
    (lambda: max_pool2d(X, 3, padding=2), ValueError,
     r"max_pool2d: padding \(2, 2\) must be at most half of kernel_size \(3, 3\)"),
    (lambda: max_pool2d(X, 2, ceil_mode=1), TypeError, "max_pool2d: ceil_mode must be True or False"),
    (lambda: max_pool2d(X, 2, return_indices="yes"), TypeError,
     "max_pool2d: return_indices must be True or False"),
    (lambda: max_pool2d(minidl.tensor(np.zeros((1, 1, 3, 3))), (4, 4)), ValueError,
     r"max_pool2d: input of spatial size \(3, 3\) is too small for kernel \(4, 4\) with stride "
     r"\(4, 4\), padding \(0, 0\), dilation \(1, 1\), ceil_mode=False: the output would be 0x0"),
    (lambda: max_pool2d(minidl.tensor(np.zeros((1, 1, 3, 3))), 2, dilation=3), ValueError,
     r"max_pool2d: input of spatial size \(3, 3\) is too small for kernel \(2, 2\)"),
    (lambda: max_pool2d(minidl.tensor(np.zeros((1, 1, 2, 2))), 2, 1, 1, 3), ValueError,
     "max_pool2d: the window of output row 0 holds only padding"),
    (lambda: avg_pool2d(X, 2, divisor_override=0), ValueError,
     "avg_pool2d: divisor_override must not be zero"),
    (lambda: avg_pool2d(X, 2, divisor_override=1.5), TypeError,
     "avg_pool2d: divisor_override must be an int or None"),
    (lambda: avg_pool2d(X, 3, padding=(0, 2)), ValueError,
     r"avg_pool2d: padding \(0, 2\) must be at most half of kernel_size \(3, 3\)"),
    (lambda: avg_pool2d(X, 6), ValueError,
     r"avg_pool2d: input of spatial size \(5, 5\) is too small for kernel \(6, 6\) with stride "
     r"\(6, 6\), padding \(0, 0\), ceil_mode=False: the output would be 0x0"),
    (lambda: avg_pool2d(X, 2, count_include_pad=None), TypeError,
     "avg_pool2d: count_include_pad must be True or False"),
    (lambda: adaptive_avg_pool2d(minidl.tensor(np.zeros((5, 5))), 2), ValueError,
     r"adaptive_avg_pool2d: input must be 3-D or 4-D, got shape \(5, 5\)"),
    (lambda: adaptive_avg_pool2d(X, -1), ValueError,
     "adaptive_avg_pool2d: output_size must be non-negative, got -1"),
    (lambda: adaptive_avg_pool2d(X, (2,)), ValueError,
     r"adaptive_avg_pool2d: output_size must be an int or a pair of ints \(or None"),
    (lambda: adaptive_avg_pool2d(X, 2.5), ValueError, "adaptive_avg_pool2d: output_size must be"),
    (lambda: adaptive_avg_pool2d(minidl.tensor(np.zeros((1, 1, 0, 4))), 2), ValueError,
     "adaptive_avg_pool2d: input must have non-zero channels, height and width"),
])
def test_errors_name_the_op_the_argument_and_the_shapes(backend, call, error, match):
    with pytest.raises(error, match=match):
        call()


def _pooled():
    x = minidl.tensor(np.arange(32.0).reshape(1, 2, 4, 4))
    return max_pool2d(x, 2, return_indices=True)  # y, idx (1, 2, 2, 2)


@pytest.mark.parametrize("call, error, match", [
    (lambda y, i: max_unpool2d(y, i.numpy(), 2), TypeError,
     "max_unpool2d: indices must be a minidl Tensor"),
    (lambda y, i: max_unpool2d(y, minidl.tensor(i.numpy().astype(np.float32)), 2), TypeError,
     "max_unpool2d: indices must be an int64 tensor .* got dtype float32"),
    (lambda y, i: max_unpool2d(y, i[:, :1], 2), ValueError,
     r"max_unpool2d: indices must have the shape of input \(1, 2, 2, 2\), got \(1, 1, 2, 2\)"),
    (lambda y, i: max_unpool2d(y, minidl.tensor(i.numpy() + 100), 2), ValueError,
     r"max_unpool2d: found an invalid index 115 in indices: the output planes are 4x4, so "
     r"indices must lie in \[0, 16\)"),
    (lambda y, i: max_unpool2d(y, minidl.tensor(i.numpy() - 100), 2), ValueError,
     "max_unpool2d: found an invalid index -95 "),
    (lambda y, i: max_unpool2d(y, i, 2, output_size=(6, 6)), ValueError,
     r"max_unpool2d: invalid output_size \(6, 6\): dim 0 must be strictly between 2 and 6"),
    (lambda y, i: max_unpool2d(y, i, 2, output_size=(5,)), ValueError,
     r"max_unpool2d: output_size must be a sequence of 2 or 4 ints"),
    (lambda y, i: max_unpool2d(y, i, 2, stride=0), ValueError, "max_unpool2d: stride must be positive"),
    (lambda y, i: max_unpool2d(y[0, 0], i[0, 0], 2), ValueError,
     r"max_unpool2d: input must be 3-D or 4-D, got shape \(2, 2\)"),
    (lambda y, i: max_unpool2d(y, i, 1, padding=1), ValueError,
     r"max_unpool2d: the output size \(0, 0\) .* must be at least 1x1"),
])
def test_max_unpool2d_errors(backend, call, error, match):
    y, idx = _pooled()
    with pytest.raises(error, match=match):
        call(y, idx)


def test_accepts_exactly_what_torch_accepts(torch, backend):
    """Our argument checks agree with PyTorch's over a grid (forward only; PyTorch's -inf
    answer for windows of padding only is the one case we reject on purpose)."""
    TF = torch.nn.functional
    x = np.zeros((1, 1, 4, 5))
    for K in (1, 2, 3, 4, 5):
        for S in (1, 2, 3):
            for P in (0, 1, 2, 3):
                for D in (1, 2, 3):
                    for ceil_mode in (False, True):
                        kw = dict(kernel_size=K, stride=S, padding=P, ceil_mode=ceil_mode)
                        expected = _torch_accepts(torch, lambda a: TF.max_pool2d(a, dilation=D, **kw),
                                                  x.shape)
                        try:
                            max_pool2d(_t(x), dilation=D, **kw)
                            accepted = True
                        except ValueError:
                            accepted = False
                        assert accepted == expected, (kw, D)
                        if D == 1:
                            expected = _torch_accepts(torch, lambda a: TF.avg_pool2d(a, **kw), x.shape)
                            try:
                                avg_pool2d(_t(x), **kw)
                                accepted = True
                            except ValueError:
                                accepted = False
                            assert accepted == expected, kw
