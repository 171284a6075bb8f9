"""batch_norm (minidl/ops/norm.py, minidl/functional/norm.py) and nn.BatchNorm1d/2d against PyTorch."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minidl
from helpers import assert_close, compare_with_torch, gradcheck_with_random_dy
from minidl.functional.norm import batch_norm
from minidl.nn.norm import BatchNorm1d, BatchNorm2d


SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _stats(C, seed):
    """Running statistics to start from: any mean, a positive variance."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(C), rng.random(C) + 0.5


def _check_batch_norm(torch, shape, training, affine="both", momentum=0.1, eps=1e-5, running=True, seed=0):
    """Forward, dx, dweight, dbias (random dy) and the updated running statistics vs torch."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.standard_normal(shape) * 2 + 0.5
    arrays = [x]
    if affine in ("both", "weight"):
        arrays.append(rng.standard_normal(C))
    if affine in ("both", "bias"):
        arrays.append(rng.standard_normal(C))
    mean0, var0 = _stats(C, seed + 1)
    ours_rm = minidl.tensor(mean0) if running else None
    ours_rv = minidl.tensor(var0) if running else None
    theirs_rm = torch.tensor(mean0) if running else None
    theirs_rv = torch.tensor(var0) if running else None

    def split(params):
        weight = params[0] if affine in ("both", "weight") else None
        bias = params[-1] if affine in ("both", "bias") else None
        return weight, bias

    def ours(x, *params):
        return batch_norm(x, ours_rm, ours_rv, *split(params), training=training, momentum=momentum, eps=eps)

    def theirs(x, *params):
        return torch.nn.functional.batch_norm(x, theirs_rm, theirs_rv, *split(params), training=training,
                                              momentum=momentum, eps=eps)

    compare_with_torch(torch, ours, theirs, arrays, seed=seed)
    if running:
        assert_close(ours_rm, theirs_rm.numpy(), what="running_mean")
        assert_close(ours_rv, theirs_rv.numpy(), what="running_var")
        if not training:  # evaluation never changes them
            np.testing.assert_array_equal(ours_rm.numpy(), mean0)
            np.testing.assert_array_equal(ours_rv.numpy(), var0)


SHAPES = [(4, 3), (5, 1), (2, 3, 7), (3, 2, 1), (2, 3, 5, 4), (3, 4, 3, 5), (1, 2, 3, 3), (2, 1, 1, 2)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(torch, backend, shape, training):
    _check_batch_norm(torch, shape, training, momentum=0.3)


@pytest.mark.parametrize("affine", ["none", "weight", "bias"])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_optional_weight_and_bias(torch, backend, affine, training):
    _check_batch_norm(torch, (3, 2, 4, 3), training, affine=affine)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5, 4)])
def test_batch_norm_training_without_running_stats(torch, backend, shape):
    _check_batch_norm(torch, shape, training=True, running=False)


@SETTINGS
@given(n=st.integers(1, 4), c=st.integers(1, 4), spatial=st.lists(st.integers(1, 5), max_size=2),
       training=st.booleans(), momentum=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       eps=st.sampled_from([1e-5, 1e-3, 0.5]), seed=st.integers(0, 2**16))
def test_batch_norm_sweep_matches_torch(torch, backend, n, c, spatial, training, momentum, eps, seed):
    shape = (n, c, *spatial)
    assume(not training or n * int(np.prod(spatial)) > 1)
    _check_batch_norm(torch, shape, training, momentum=momentum, eps=eps, seed=seed)


def test_batch_norm_forward_matches_the_docstring_formula(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 4, 5))
    weight, bias = rng.standard_normal(2), rng.standard_normal(2)
    y = batch_norm(minidl.tensor(x), None, None, minidl.tensor(weight), minidl.tensor(bias), training=True)
    expected = np.empty_like(x)
    for c in range(2):  # one mean and one biased variance per channel, over N, H, W
        values = x[:, c]
        mean = values.sum() / values.size
        var = ((values - mean) ** 2).sum() / values.size
        expected[:, c] = weight[c] * (values - mean) / np.sqrt(var + 1e-5) + bias[c]
    assert_close(y, expected)


def test_batch_norm_input_gradient_is_centred_and_orthogonal_to_x_hat(backend):
    """Without weight: per channel, dx sums to 0 (shift invariance) and is orthogonal to x_hat
    (scale invariance, exact only as eps -> 0, hence the tiny eps)."""
    rng = np.random.default_rng(4)
    x = minidl.tensor(rng.standard_normal((4, 3, 2, 3)), requires_grad=True)
    y = batch_norm(x, None, None, training=True, eps=1e-300)
    (y * minidl.tensor(rng.standard_normal(y.shape))).sum().backward()
    dx, x_hat = x.grad.numpy(), y.detach().numpy()
    np.testing.assert_allclose(dx.sum(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose((dx * x_hat).sum(axis=(0, 2, 3)), 0, atol=1e-12)


@pytest.mark.parametrize("shape,training", [((4, 3), True), ((3, 2, 5), True), ((2, 3, 3, 2), True),
                                            ((3, 2, 1, 3), True), ((2, 3, 2, 2), False)])
def test_batch_norm_gradcheck(backend, shape, training):
    rng = np.random.default_rng(5)
    C = shape[1]
    mean0, var0 = _stats(C, 6)

    def fn(x, weight, bias):
        # fresh running statistics on every call: the function must be deterministic
        return batch_norm(x, minidl.tensor(mean0), minidl.tensor(var0), weight, bias, training=training)

    assert gradcheck_with_random_dy(fn, [rng.standard_normal(shape), rng.standard_normal(C),
                                         rng.standard_normal(C)])


def test_batch_norm_running_stats_are_state_not_graph(backend):
    x = minidl.tensor(np.random.default_rng(7).standard_normal((4, 2)), requires_grad=True)
    running_mean, running_var = minidl.zeros(2, dtype=minidl.float64), minidl.ones(2, dtype=minidl.float64)
    with minidl.no_grad():  # the update happens whether or not a graph is recorded
        batch_norm(x, running_mean, running_var, training=True)
    x_data = x.detach().numpy()
    assert_close(running_mean, 0.1 * x_data.mean(0))
    assert_close(running_var, 0.9 + 0.1 * x_data.var(0, ddof=1))  # the UNBIASED variance
    y = batch_norm(x, running_mean, running_var, training=True)
    y.sum().backward()
    assert running_mean.grad is None and running_var.grad is None
    assert not running_mean.requires_grad


def test_batch_norm_keeps_float32(backend):
    x = minidl.randn(4, 3, 2, 2)
    running_mean, running_var = minidl.zeros(3), minidl.ones(3)
    y = batch_norm(x, running_mean, running_var, minidl.ones(3), minidl.zeros(3), training=True)
    assert y.dtype == minidl.float32 and running_mean.dtype == minidl.float32


# --- errors ------------------------------------------------------------------------------


def _t(*shape):
    return minidl.tensor(np.ones(shape))


@pytest.mark.parametrize("name", ["running_mean", "running_var", "weight", "bias"])
def test_batch_norm_channel_mismatch_names_the_argument_and_shapes(backend, name):
    args = {"running_mean": _t(3), "running_var": _t(3), "weight": _t(3), "bias": _t(3)}
    args[name] = _t(4)
    with pytest.raises(ValueError, match=rf"batch_norm: {name} has shape \(4,\) but input has 3 channels "
                                         rf"\(input shape \(2, 3, 5, 5\)\); expected shape \(3,\)"):
        batch_norm(_t(2, 3, 5, 5), args["running_mean"], args["running_var"], args["weight"], args["bias"])


def test_batch_norm_needs_more_than_one_value_per_channel_when_training(backend):
    with pytest.raises(ValueError, match=r"^batch_norm: expected more than 1 value per channel when training, "
                                         r"got input size \(1, 3\)$"):
        batch_norm(_t(1, 3), _t(3), _t(3), training=True)
    with pytest.raises(ValueError, match=r"got input size \(1, 2, 1, 1\)"):
        batch_norm(_t(1, 2, 1, 1), None, None, training=True)
    batch_norm(_t(1, 3), _t(3), _t(3), training=False)  # evaluation is fine


def test_batch_norm_other_errors(backend):
    with pytest.raises(ValueError, match=r"batch_norm: input must be at least 2-D \(N, C, \*\), got shape \(3,\)"):
        batch_norm(_t(3), _t(3), _t(3))
    with pytest.raises(ValueError, match="batch_norm: running_mean and running_var must either both be None"):
        batch_norm(_t(2, 3), _t(3), None, training=True)
    with pytest.raises(ValueError, match="batch_norm: running_mean and running_var must be given when "
                                         "training=False"):
        batch_norm(_t(2, 3), None, None)
    with pytest.raises(TypeError, match="batch_norm: input must be a minidl Tensor, got ndarray"):
        batch_norm(np.ones((2, 3)), _t(3), _t(3))
    with pytest.raises(TypeError, match="batch_norm: weight must be a minidl Tensor, got list"):
        batch_norm(_t(2, 3), _t(3), _t(3), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="batch_norm: eps must be positive during training, got 0"):
        batch_norm(_t(2, 3), _t(3), _t(3), training=True, eps=0)
    with pytest.raises(ValueError, match="batch_norm: eps must be non-negative, got -1"):
        batch_norm(_t(2, 3), _t(3), _t(3), eps=-1)


# --- nn.BatchNorm1d / BatchNorm2d ------------------------------------------------------------


def _copy_params(torch, ours, theirs):
    with torch.no_grad():
        for name, p in ours.named_parameters():
            dict(theirs.named_parameters())[name].copy_(torch.tensor(p.detach().numpy()))


def _run_steps(torch, ours, theirs, shapes, seed=0):
    """Alternate training steps (with random dy) and an eval step; compare everything each time."""
    rng = np.random.default_rng(seed)
    for step, shape in enumerate(shapes):
        x = rng.standard_normal(shape) * 3 + step
        ours_x = minidl.tensor(x, requires_grad=True)
        theirs_x = torch.tensor(x, requires_grad=True)
        y, y_ref = ours(ours_x), theirs(theirs_x)
        assert_close(y, y_ref.detach().numpy(), what=f"forward step {step}")
        dy = rng.standard_normal(shape)
        (y * minidl.tensor(dy)).sum().backward()
        (y_ref * torch.tensor(dy)).sum().backward()
        assert_close(ours_x.grad, theirs_x.grad.numpy(), what=f"dx step {step}")
        for name, p in ours.named_parameters():
            assert_close(p.grad, dict(theirs.named_parameters())[name].grad.numpy(), what=f"d{name} step {step}")
        theirs_state = theirs.state_dict()
        for name, value in ours.state_dict().items():
            assert_close(value, theirs_state[name].numpy(), what=f"{name} step {step}")
        ours.zero_grad()
        theirs.zero_grad()


@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"momentum": 0.5, "eps": 1e-3},
                                    {"affine": False}, {"bias": False}, {"track_running_stats": False},
                                    {"momentum": None, "track_running_stats": False}])
def test_batchnorm2d_matches_torch_over_several_steps(torch, backend, kwargs):
    ours = BatchNorm2d(3, dtype=minidl.float64, **kwargs)
    theirs = torch.nn.BatchNorm2d(3, dtype=torch.float64, **kwargs)
    rng = np.random.default_rng(1)
    if ours.weight is not None:  # non-trivial parameters
        ours.weight.data[...] = rng.standard_normal(3)
    if ours.bias is not None:
        ours.bias.data[...] = rng.standard_normal(3)
    _copy_params(torch, ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    shapes = [(4, 3, 5, 4), (2, 3, 3, 3), (5, 3, 1, 2), (3, 3, 4, 1)]
    _run_steps(torch, ours, theirs, shapes)
    ours.eval(), theirs.eval()
    _run_steps(torch, ours, theirs, shapes[:2], seed=1)
    ours.train(), theirs.train()
    _run_steps(torch, ours, theirs, shapes[2:], seed=2)
    if ours.track_running_stats:
        assert int(ours.num_batches_tracked.item()) == 6 == int(theirs.num_batches_tracked)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)])
def test_batchnorm1d_matches_torch(torch, backend, shape):
    ours = BatchNorm1d(4, momentum=None, dtype=minidl.float64)
    theirs = torch.nn.BatchNorm1d(4, momentum=None, dtype=torch.float64)
    _run_steps(torch, ours, theirs, [shape, shape])
    ours.eval(), theirs.eval()
    _run_steps(torch, ours, theirs, [shape], seed=3)


def test_batchnorm2d_state_dict_buffers_and_defaults(torch):
    layer = BatchNorm2d(2)
    assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert list(layer.state_dict()) == list(torch.nn.BatchNorm2d(2).state_dict())
    assert [name for name, _ in layer.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.weight.dtype == layer.running_var.dtype == minidl.float32
    assert layer.num_batches_tracked.dtype == minidl.int64 and layer.num_batches_tracked.shape == ()
    np.testing.assert_array_equal(layer.weight.detach().numpy(), [1, 1])
    np.testing.assert_array_equal(layer.bias.detach().numpy(), [0, 0])
    np.testing.assert_array_equal(layer.running_mean.numpy(), [0, 0])
    np.testing.assert_array_equal(layer.running_var.numpy(), [1, 1])
    untracked = BatchNorm2d(2, affine=False, track_running_stats=False)
    assert list(untracked.state_dict()) == [] and untracked.running_mean is None and untracked.weight is None
    assert layer.double().running_mean.dtype == minidl.float64
    assert layer.num_batches_tracked.dtype == minidl.int64  # .double() casts floating state only


def test_batchnorm2d_loads_a_torch_state_dict_and_resets(torch):
    theirs = torch.nn.BatchNorm2d(3)
    theirs(torch.randn(4, 3, 2, 2) * 5 + 2)  # move the running statistics
    ours = BatchNorm2d(3)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert_close(ours.running_mean, theirs.running_mean.numpy(), rtol=0, atol=0)
    assert int(ours.num_batches_tracked.item()) == 1
    ours.reset_running_stats()
    np.testing.assert_array_equal(ours.running_mean.numpy(), 0)
    np.testing.assert_array_equal(ours.running_var.numpy(), 1)
    assert int(ours.num_batches_tracked.item()) == 0
    ours.weight.data[...] = 3
    ours.reset_parameters()
    np.testing.assert_array_equal(ours.weight.detach().numpy(), 1)


def test_batchnorm_layers_check_the_input_dimension():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input \(got 3D input of shape \(2, 3, 4\)\)"):
        BatchNorm2d(3)(minidl.ones(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2D or 3D input \(got 4D input"):
        BatchNorm1d(3)(minidl.ones(2, 3, 4, 4))
    with pytest.raises(TypeError, match="BatchNorm2d: input must be a minidl Tensor, got ndarray"):
        BatchNorm2d(3)(np.ones((2, 3, 4, 4)))
    layer = BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean has shape \(3,\) but input has 4 channels"):
        layer(minidl.ones(2, 4, 2, 2))
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        layer(minidl.ones(1, 3, 1, 1))
    assert int(layer.num_batches_tracked.item()) == 0  # a failed forward changes no state
