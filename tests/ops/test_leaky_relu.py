"""leaky_relu (minidl/ops/activation.py, minidl/functional/activation.py) and the nn activation
layers LeakyReLU, Softmax, LogSoftmax against PyTorch."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from helpers import assert_close, compare_with_torch, gradcheck_with_random_dy
from minidl.functional.activation import leaky_relu
from minidl.nn.activation import LeakyReLU, LogSoftmax, Softmax

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _randn(shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(a) < 0.05, 0.5, a)  # away from the kink at 0 (for gradcheck)


@pytest.mark.parametrize("slope", [None, 0.01, 0.2, 0.0, -0.5, 1.5])
@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (2, 3, 4, 5)])
def test_leaky_relu_matches_torch(torch, backend, slope, shape):
    kwargs = {} if slope is None else {"negative_slope": slope}
    compare_with_torch(torch, lambda x: leaky_relu(x, **kwargs), lambda x: torch.nn.functional.leaky_relu(x, **kwargs),
                       [_randn(shape, seed=len(shape))])


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), slope=st.floats(-2, 2),
       seed=st.integers(0, 2**16))
def test_leaky_relu_sweep_matches_torch(torch, backend, shape, slope, seed):
    compare_with_torch(torch, lambda x: leaky_relu(x, slope), lambda x: torch.nn.functional.leaky_relu(x, slope),
                       [_randn(shape, seed)], seed=seed)


def test_leaky_relu_at_zero_uses_the_slope_like_torch(torch, backend):
    a = np.array([-2.0, -0.0, 0.0, 3.0])
    compare_with_torch(torch, lambda x: leaky_relu(x, 0.3), lambda x: torch.nn.functional.leaky_relu(x, 0.3), [a])
    x = minidl.tensor(a, requires_grad=True)
    leaky_relu(x, 0.3).sum().backward()
    assert_close(x.grad, [0.3, 0.3, 0.3, 1.0])


@pytest.mark.parametrize("slope", [0.01, 0.25, -0.7])
def test_leaky_relu_gradcheck(backend, slope):
    assert gradcheck_with_random_dy(lambda x: leaky_relu(x, slope), [_randn((3, 4, 2), seed=5)])


def test_leaky_relu_keeps_float32(backend):
    assert leaky_relu(minidl.randn(3, 4), 0.2).dtype == minidl.float32


def test_leaky_relu_errors(backend):
    with pytest.raises(TypeError, match="leaky_relu: input must be a minidl Tensor, got ndarray"):
        leaky_relu(np.ones(3))
    with pytest.raises(TypeError, match="leaky_relu: negative_slope must be a number, got '0.1'"):
        leaky_relu(minidl.ones(3), "0.1")


# --- nn layers ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), (0.2,), (0.1, True)])
def test_leaky_relu_module_matches_torch(torch, backend, args):
    ours, theirs = LeakyReLU(*args), torch.nn.LeakyReLU(*args)
    assert repr(ours) == repr(theirs)
    # inplace=True needs a non-leaf input in both libraries
    compare_with_torch(torch, lambda x: ours(x.clone()), lambda x: theirs(x.clone()), [_randn((2, 3, 4, 4), seed=2)])


# torch is optional, so its classes are named here and looked up in the test
@pytest.mark.parametrize("ours_cls,theirs_name", [(Softmax, "Softmax"), (LogSoftmax, "LogSoftmax")])
@pytest.mark.parametrize("shape,dim", [((4, 5), 1), ((4, 5), -1), ((4, 5), 0), ((2, 3, 4, 5), 1), ((2, 3, 4), 2)])
def test_softmax_modules_match_torch(torch, backend, ours_cls, theirs_name, shape, dim):
    ours, theirs = ours_cls(dim), getattr(torch.nn, theirs_name)(dim)
    assert repr(ours) == repr(theirs)
    compare_with_torch(torch, ours, theirs, [np.random.default_rng(3).standard_normal(shape) * 3])


@pytest.mark.parametrize("ours_cls,theirs_name", [(Softmax, "Softmax"), (LogSoftmax, "LogSoftmax")])
def test_softmax_modules_without_dim_guess_as_pytorch(torch, backend, ours_cls, theirs_name):
    theirs_cls = getattr(torch.nn, theirs_name)
    ours = ours_cls()
    assert repr(ours) == repr(theirs_cls()) == f"{theirs_cls.__name__}(dim=None)"
    x = np.arange(6.0).reshape(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        y = ours(minidl.tensor(x))
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        y_ref = theirs_cls()(torch.tensor(x))
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-12)


def test_activation_modules_have_no_state():
    for layer in (LeakyReLU(), Softmax(1), LogSoftmax(1)):
        assert list(layer.state_dict()) == [] and list(layer.parameters()) == []
