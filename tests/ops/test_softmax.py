"""softmax / log_softmax (minidl/ops/softmax.py, minidl/functional/softmax.py) against PyTorch."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from helpers import assert_close, compare_with_torch, gradcheck_with_random_dy
from minidl.functional.softmax import log_softmax, softmax

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OPS = {"softmax": softmax, "log_softmax": log_softmax}  # the torch function of the same name is the reference


def _randn(shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4, 5), (2, 3, 2, 3, 2)])
def test_every_dim_matches_torch(torch, backend, name, shape):
    ours, theirs = OPS[name], getattr(torch, name)
    x = _randn(shape, seed=len(shape))
    for dim in range(-len(shape), len(shape)):
        compare_with_torch(torch, lambda a: ours(a, dim), lambda a: theirs(a, dim), [x])


@pytest.mark.parametrize("name", sorted(OPS))
@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=5, max_side=5), data=st.data(),
       seed=st.integers(0, 2**16))
def test_sweep_shapes_and_dims_like_torch(torch, backend, name, shape, data, seed):
    ours, theirs = OPS[name], getattr(torch, name)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    x = _randn(shape, seed, scale=data.draw(st.sampled_from([0.1, 1.0, 30.0]), label="scale"))
    compare_with_torch(torch, lambda a: ours(a, dim), lambda a: theirs(a, dim), [x], seed=seed)


def test_pixelwise_softmax_sums_to_one_over_channels(backend):
    x = minidl.tensor(_randn((2, 4, 3, 5)))  # (N, C, H, W) segmentation logits
    y = softmax(x, dim=1)
    assert_close(y.sum(dim=1), np.ones((2, 3, 5)))
    assert_close(log_softmax(x, dim=1).exp(), y.detach().numpy())


@pytest.mark.parametrize("name", sorted(OPS))
def test_stable_for_huge_logits(torch, backend, name):
    """Subtracting the max: exp(1e4) would overflow; the result is finite and equal to torch's."""
    ours, theirs = OPS[name], getattr(torch, name)
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4 - 1.0, 3.0], [-1e4, -1e4, -1e4]])
    y = compare_with_torch(torch, lambda a: ours(a, 1), lambda a: theirs(a, 1), [x])
    assert np.isfinite(y.detach().numpy()).all()


@pytest.mark.parametrize("name", sorted(OPS))
def test_0d_empty_and_float32(torch, backend, name):
    ours, theirs = OPS[name], getattr(torch, name)
    compare_with_torch(torch, lambda a: ours(a, 0), lambda a: theirs(a, 0), [np.array(0.7)])
    compare_with_torch(torch, lambda a: ours(a, -1), lambda a: theirs(a, -1), [np.array(0.7)])
    empty = ours(minidl.tensor(np.zeros((3, 0))), dim=1)
    assert empty.shape == (3, 0)
    assert ours(minidl.randn(2, 3), dim=1).dtype == minidl.float32
    x = minidl.randn(2, 3)
    assert ours(x, dim=1, dtype=minidl.float64).dtype == minidl.float64
    assert_close(ours(x, dim=1, dtype=minidl.float64),
                 theirs(torch.tensor(x.numpy()), dim=1, dtype=torch.float64).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("shape,dim", [((4,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), 1), ((2, 3, 2, 2), -1)])
def test_gradcheck(backend, name, shape, dim):
    ours = OPS[name]
    assert gradcheck_with_random_dy(lambda a: ours(a, dim), [_randn(shape, seed=dim + 3)])


def test_softmax_backward_is_the_jacobian_product(backend):
    """dx = J^T dy with J[c,k] = y_c ([c == k] - y_k), built explicitly for one row."""
    x = minidl.tensor(_randn((5,)), requires_grad=True)
    dy = _randn((5,), seed=1)
    y = softmax(x, 0)
    (y * minidl.tensor(dy)).sum().backward()
    s = y.detach().numpy()
    jacobian = np.diag(s) - np.outer(s, s)
    assert_close(x.grad, jacobian.T @ dy)


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 4), (2, 3, 4, 5)])
def test_implicit_dim_is_pytorchs_deprecated_guess(torch, backend, shape):
    x = _randn(shape)
    for ours, theirs in ((softmax, torch.nn.functional.softmax), (log_softmax, torch.nn.functional.log_softmax)):
        with pytest.warns(UserWarning, match="Implicit dimension choice for .*softmax has been deprecated"):
            y = ours(minidl.tensor(x))
        with pytest.warns(UserWarning, match="Implicit dimension choice"):
            y_ref = theirs(torch.tensor(x))
        assert_close(y, y_ref.numpy())


def test_errors(backend):
    x = minidl.randn(2, 3)
    with pytest.raises(IndexError, match=r"softmax: dim 2 is out of range for a tensor with 2 dimensions"):
        softmax(x, 2)
    with pytest.raises(TypeError, match="softmax: input must be a minidl Tensor, got ndarray"):
        softmax(np.ones(3), 0)
    with pytest.raises(TypeError, match=r"log_softmax: input must be a floating-point tensor, got dtype int64"):
        log_softmax(minidl.tensor([1, 2, 3]), 0)
