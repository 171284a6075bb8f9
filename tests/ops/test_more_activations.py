"""hardtanh, relu6, elu, gelu, silu, softplus, prelu (minidl/ops/activation.py,
minidl/functional/activation.py) against PyTorch and by finite differences."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from helpers import compare_with_torch, gradcheck_with_random_dy
from minidl.ops.activation import erf

SETTINGS = settings(max_examples=15, deadline=None)


def _randn(shape, seed=0, scale=3.0):
    a = np.random.default_rng(seed).standard_normal(shape) * scale
    return np.where(np.abs(a) < 0.05, 0.5, a)  # away from the kinks at 0 (for gradcheck)


# (our function, torch's name, keyword arguments)
CASES = [
    ("hardtanh", {}), ("hardtanh", {"min_val": -0.5, "max_val": 2.0}),
    ("relu6", {}), ("elu", {}), ("elu", {"alpha": 0.3}), ("elu", {"alpha": -1.2}),
    ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("gelu", {"approximate": "none"}),
    ("silu", {}), ("softplus", {}), ("softplus", {"beta": 2.0, "threshold": 3.0}),
    ("softplus", {"beta": 0.5}),
]


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (2, 3, 4, 5)])
def test_activation_matches_torch(torch, name, kwargs, shape):
    compare_with_torch(torch, lambda x: getattr(F, name)(x, **kwargs),
                       lambda x: getattr(torch.nn.functional, name)(x, **kwargs), [_randn(shape, len(shape))])


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), case=st.sampled_from(CASES),
       seed=st.integers(0, 2**16))
def test_activation_sweep_matches_torch(torch, shape, case, seed):
    name, kwargs = case
    compare_with_torch(torch, lambda x: getattr(F, name)(x, **kwargs),
                       lambda x: getattr(torch.nn.functional, name)(x, **kwargs), [_randn(shape, seed)], seed=seed)


@pytest.mark.parametrize("name,kwargs", CASES)
def test_activation_gradcheck(name, kwargs):
    a = _randn((3, 5, 7), 4)
    a = np.where(np.abs(np.abs(a) - 1) < 0.05, 1.5, a)  # away from hardtanh's corners
    a = np.where(np.abs(a - 6) < 0.05, 5.5, a)
    a = np.where(np.abs(a - 1.5) < 0.1, 1.2, a)  # softplus(beta=2, threshold=3) jumps at 1.5
    assert gradcheck_with_random_dy(lambda x: getattr(F, name)(x, **kwargs), [a])


def test_kinks_and_corners_match_torch(torch):
    a = np.array([-7.0, -1.0, -0.0, 0.0, 1.0, 6.0, 7.0, -0.5, 2.0, 25.0, 30.0, -30.0])
    for name, kwargs in CASES:
        compare_with_torch(torch, lambda x: getattr(F, name)(x, **kwargs),
                           lambda x: getattr(torch.nn.functional, name)(x, **kwargs), [a])


def test_hardtanh_gradient_is_zero_at_the_corners():
    x = minidl.tensor([-1.0, -0.5, 1.0, 2.0], requires_grad=True)
    F.hardtanh(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0, 0.0])


def test_softplus_is_linear_above_the_threshold_and_does_not_overflow():
    x = minidl.tensor([1000.0, -1000.0, 0.0], dtype=minidl.float64, requires_grad=True)
    y = F.softplus(x)
    np.testing.assert_allclose(y.detach().numpy(), [1000.0, 0.0, np.log(2)])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 0.0, 0.5])


def test_erf_matches_math_erf_to_float64_precision():
    import math
    points = np.concatenate([np.linspace(-8, 8, 801), [0.0, 1e-300, -1e-12, 2.999999, 3.0, 3.000001, 5.9, 30]])
    got = erf(minidl.tensor(points, dtype=minidl.float64)._data)  # on the current device
    got = minidl.tensor(got).numpy() if not isinstance(got, np.ndarray) else got
    expected = np.array([math.erf(p) for p in points])
    np.testing.assert_allclose(got, expected, rtol=4e-15, atol=1e-300)


def test_float32_stays_float32():
    x = minidl.randn(3, 4)
    for name, kwargs in CASES:
        assert getattr(F, name)(x, **kwargs).dtype == minidl.float32, name
    assert F.prelu(x, minidl.full((1,), 0.25)).dtype == minidl.float32


# ----------------------------------------------------------------------------- in place
@pytest.mark.parametrize("name,kwargs", [("hardtanh", {}), ("relu6", {}), ("elu", {}), ("elu", {"alpha": 0.5}),
                                         ("silu", {})])
def test_inplace_matches_torch(torch, name, kwargs):
    def ours(x):
        y = x * 1.0
        out = getattr(F, name)(y, inplace=True, **kwargs)
        assert out is y
        return y

    def theirs(x):
        y = x * 1.0
        return getattr(torch.nn.functional, name)(y, inplace=True, **kwargs)

    compare_with_torch(torch, ours, theirs, [_randn((3, 4, 5), 7)])


def test_inplace_bumps_the_version_and_refuses_a_leaf():
    x = minidl.randn(3, 4)
    v = x._version
    y = F.elu_(x)
    assert y is x and x._version == v + 1
    F.hardtanh_(x, -0.1, 0.1)
    assert float(x.abs().max().item()) <= 0.1 + 1e-7
    leaf = minidl.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        F.silu(leaf, inplace=True)


def test_inplace_on_a_view_reaches_the_base(torch):
    def ours(x):
        y = x * 1.0
        F.relu6(y[1:], inplace=True)
        return y

    def theirs(x):
        y = x * 1.0
        torch.nn.functional.relu6(y[1:], inplace=True)
        return y

    compare_with_torch(torch, ours, theirs, [_randn((4, 5), 9, scale=5)])


# ----------------------------------------------------------------------------- prelu
@pytest.mark.parametrize("shape,count", [((2, 3, 4, 5), 3), ((2, 3, 4, 5), 1), ((4, 3), 3), ((5,), 1),
                                         ((2, 3, 5), 3), ((), 1), ((2, 1, 3), 1)])
def test_prelu_matches_torch(torch, shape, count):
    w = np.random.default_rng(1).standard_normal(count)
    compare_with_torch(torch, F.prelu, torch.nn.functional.prelu, [_randn(shape, 2), w])


def test_prelu_gradcheck():
    w = np.array([0.1, -0.7, 1.3])
    assert gradcheck_with_random_dy(F.prelu, [_randn((3, 3, 5, 7), 3), w])
    assert gradcheck_with_random_dy(F.prelu, [_randn((5, 3), 3), np.array([0.4])])


# ----------------------------------------------------------------------------- errors
def test_errors():
    x = minidl.randn(2, 3)
    with pytest.raises(TypeError, match="gelu: input must be a minidl Tensor, got ndarray"):
        F.gelu(np.ones(3))
    with pytest.raises(RuntimeError, match="gelu: approximate argument must be either none or tanh, got 'fast'"):
        F.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="hardtanh: min_val cannot be greater than max_val"):
        F.hardtanh(x, 2.0, 1.0)
    with pytest.raises(TypeError, match="elu: alpha must be a number, got '1'"):
        F.elu(x, "1")
    with pytest.raises(TypeError, match="softplus: beta must be a number"):
        F.softplus(x, beta=None)
    for name in ("elu", "gelu", "silu", "softplus"):
        with pytest.raises(RuntimeError, match=f"{name}: expected a floating point input, got dtype Long"):
            getattr(F, name)(minidl.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers and input channel size. Found parameter "
                                           "numbers = 2 and channel size = 3."):
        F.prelu(x, minidl.ones(2))
    with pytest.raises(RuntimeError, match="prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = 2"):
        F.prelu(x, minidl.ones(1, 1))
    with pytest.raises(RuntimeError, match="Not allow zero-dim input tensor"):
        F.prelu(minidl.tensor(1.0), minidl.ones(3))


def test_error_types_match_torch(torch):
    x = torch.randn(2, 3)
    with pytest.raises(RuntimeError):
        torch.nn.functional.gelu(x, approximate="fast")
    with pytest.raises(ValueError):
        torch.nn.functional.hardtanh(x, 2.0, 1.0)
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers and input channel size"):
        torch.nn.functional.prelu(x, torch.ones(2))


def test_nn_functional_reexports_the_new_names():
    import minidl.functional
    for name in ("hardtanh", "hardtanh_", "relu6", "elu", "elu_", "gelu", "silu", "softplus", "prelu"):
        assert getattr(minidl.nn.functional, name) is getattr(minidl.functional, name)
