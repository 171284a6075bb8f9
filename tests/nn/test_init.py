"""nn.init: gains and fans equal PyTorch's; sample statistics follow the formulas.

The statistical checks use large tensors and fixed seeds (see conftest), with
tolerances of many standard errors, so they are deterministic and not flaky.
For n samples the relative standard error of a std estimate is about
sqrt((kurtosis - 1) / (4n)): 0.0007 for a uniform, 0.0009 for a normal at
n = 300k.  A 2% tolerance is therefore > 20 standard errors, yet catches a
wrong formula (the nearest wrong factors, e.g. sqrt(2) or fan_in vs fan_out,
are off by 40% or more).
"""
import math
import warnings

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.nn import init


def _param(*shape, dtype=minidl.float64):
    return nn.Parameter(minidl.zeros(*shape, dtype=dtype))


NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_calculate_gain_matches_torch(nonlinearity):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(nonlinearity) == torch.nn.init.calculate_gain(nonlinearity)


def test_calculate_gain_values_and_errors():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / (1 + 0.2**2))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(1 / 3)
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape", [(500, 1000), (16, 8, 3, 3), (4, 2, 5), (3, 7, 2, 2, 2)])
def test_fans_match_torch(shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init._calculate_fan_in_and_fan_out(_param(*shape)) == expected


def test_fans_of_a_conv_weight_use_the_receptive_field():
    # (F, C, KH, KW) = (16, 8, 3, 3): fan_in = C*KH*KW, fan_out = F*KH*KW
    assert init._calculate_fan_in_and_fan_out(_param(16, 8, 3, 3)) == (72, 144)


@pytest.mark.parametrize("fn", [init.xavier_uniform_, init.xavier_normal_,
                                init.kaiming_uniform_, init.kaiming_normal_])
def test_fans_need_two_dimensions(fn):
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions \(got shape \(5,\)\)"):
        fn(_param(5))


def test_basic_fills_are_in_place_and_return_the_tensor():
    p = _param(3, 4)
    array = p._data
    assert init.constant_(p, 2.5) is p and p._data is array
    np.testing.assert_array_equal(p.data, 2.5)
    assert init.ones_(p) is p
    np.testing.assert_array_equal(p.data, 1.0)
    assert init.zeros_(p) is p
    np.testing.assert_array_equal(p.data, 0.0)
    assert init.uniform_(p, -1, 1) is p and p._data is array
    assert init.normal_(p) is p and p._data is array
    assert p.requires_grad and p.grad_fn is None  # still a trainable leaf


def test_dtype_is_preserved():
    p = _param(20, 30, dtype=minidl.float32)
    for fn in (init.uniform_, init.normal_, init.xavier_uniform_, init.kaiming_normal_,
               init.trunc_normal_):
        fn(p)
        assert p.dtype == minidl.float32


def test_uniform_and_normal_statistics():
    p = _param(600, 500)
    init.uniform_(p, -3.0, 5.0)
    assert p.detach().numpy().min() >= -3.0 and p.detach().numpy().max() <= 5.0
    np.testing.assert_allclose(p.detach().numpy().mean(), 1.0, atol=0.02)
    np.testing.assert_allclose(p.detach().numpy().std(), 8 / math.sqrt(12), rtol=0.02)
    init.normal_(p, mean=2.0, std=0.5)
    np.testing.assert_allclose(p.detach().numpy().mean(), 2.0, atol=0.005)
    np.testing.assert_allclose(p.detach().numpy().std(), 0.5, rtol=0.02)


@pytest.mark.parametrize("shape", [(600, 500), (64, 32, 5, 5)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier_std_and_bounds(shape, gain):
    p = _param(*shape)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(p)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    init.xavier_uniform_(p, gain=gain)
    bound = math.sqrt(3) * std
    assert np.abs(p.detach().numpy()).max() <= bound and np.abs(p.detach().numpy()).max() > 0.99 * bound
    np.testing.assert_allclose(p.detach().numpy().std(), std, rtol=0.02)
    init.xavier_normal_(p, gain=gain)
    np.testing.assert_allclose(p.detach().numpy().std(), std, rtol=0.02)
    np.testing.assert_allclose(p.detach().numpy().mean(), 0, atol=0.01 * std)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity, a", [("relu", 0), ("leaky_relu", 0), ("leaky_relu", 0.2),
                                             ("leaky_relu", math.sqrt(5)), ("tanh", 0)])
def test_kaiming_std_and_bounds(mode, nonlinearity, a):
    p = _param(64, 32, 5, 5)  # fan_in = 800, fan_out = 1600
    fan = 800 if mode == "fan_in" else 1600
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    init.kaiming_uniform_(p, a=a, mode=mode, nonlinearity=nonlinearity)
    bound = math.sqrt(3) * std
    assert np.abs(p.detach().numpy()).max() <= bound and np.abs(p.detach().numpy()).max() > 0.99 * bound
    np.testing.assert_allclose(p.detach().numpy().std(), std, rtol=0.02)
    init.kaiming_normal_(p, a=a, mode=mode, nonlinearity=nonlinearity)
    np.testing.assert_allclose(p.detach().numpy().std(), std, rtol=0.02)


def test_kaiming_defaults_are_torchs():
    # defaults: a=0, mode='fan_in', nonlinearity='leaky_relu' -> gain sqrt(2)
    p = _param(500, 600)
    init.kaiming_normal_(p)
    np.testing.assert_allclose(p.detach().numpy().std(), math.sqrt(2) / math.sqrt(600), rtol=0.02)
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(p, mode="fan_avg")


def test_zero_element_tensor_is_a_no_op_with_a_warning():
    p = _param(0, 3)
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_uniform_(p) is p


def _truncated_normal_moments(mean, std, a, b):
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: (1 + math.erf(x / math.sqrt(2))) / 2  # noqa: E731
    z = cdf(beta) - cdf(alpha)
    m = mean + std * (pdf(alpha) - pdf(beta)) / z
    var = std**2 * (1 + (alpha * pdf(alpha) - beta * pdf(beta)) / z
                    - ((pdf(alpha) - pdf(beta)) / z) ** 2)
    return m, math.sqrt(var)


@pytest.mark.parametrize("mean, std, a, b", [
    (0.0, 1.0, -2.0, 2.0),   # the default: most mass inside, normal proposals
    (0.0, 0.02, -0.04, 0.04),  # ViT-style
    (0.0, 1.0, 1.0, 3.0),    # little mass inside (16%): uniform proposals
    (0.0, 1.0, -0.2, 0.1),   # narrow window around the mean
])
def test_trunc_normal_bounds_and_moments(mean, std, a, b):
    p = _param(400, 500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these is > 2 std away
        assert init.trunc_normal_(p, mean, std, a, b) is p
    assert p.detach().numpy().min() >= a and p.detach().numpy().max() <= b
    expected_mean, expected_std = _truncated_normal_moments(mean, std, a, b)
    np.testing.assert_allclose(p.detach().numpy().mean(), expected_mean, atol=0.01 * (b - a))
    np.testing.assert_allclose(p.detach().numpy().std(), expected_std, rtol=0.02)


def test_trunc_normal_warns_when_mean_is_far_outside():
    with pytest.warns(UserWarning, match="more than 2 std"):
        init.trunc_normal_(_param(10, 10), mean=5.0, std=1.0, a=-1.0, b=1.0)


def test_init_is_reproducible_with_manual_seed_and_generator():
    p, q = _param(30, 40), _param(30, 40)
    minidl.manual_seed(3)
    init.kaiming_normal_(p)
    minidl.manual_seed(3)
    init.kaiming_normal_(q)
    np.testing.assert_array_equal(p.data, q.data)
    init.kaiming_normal_(q)  # the global stream moved on
    assert not np.array_equal(p.data, q.data)

    # an explicit generator is used instead of the global one, and leaves it alone
    minidl.manual_seed(5)
    state = minidl.get_rng_state()
    init.xavier_uniform_(p, generator=np.random.default_rng(11))
    assert minidl.get_rng_state() == state
    init.xavier_uniform_(q, generator=np.random.default_rng(11))
    np.testing.assert_array_equal(p.data, q.data)
