"""layer_norm, group_norm, instance_norm (one op, minidl/ops/norm.py Normalize;
minidl/functional/norm.py) against PyTorch, by the docstring's formula and by finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from helpers import assert_close, compare_with_torch, gradcheck_with_random_dy
from minidl.ops.norm import Normalize

SETTINGS = settings(max_examples=20, deadline=None)


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape) * 2 + 0.5


# ----------------------------------------------------------------------------- layer_norm
@pytest.mark.parametrize("shape,normalized", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((2, 3, 4), (2, 3, 4)),
                                              ((7,), (7,)), ((2, 1, 3, 5), (5,)), ((0, 4), (4,))])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_matches_torch(torch, shape, normalized, affine):
    rng = np.random.default_rng(3)
    arrays = [_randn(shape)] + [rng.standard_normal(normalized) for _ in range({"both": 2, "weight": 1}.get(affine, 0))]
    compare_with_torch(torch, lambda x, *wb: F.layer_norm(x, normalized, *wb, eps=1e-3),
                       lambda x, *wb: torch.nn.functional.layer_norm(x, normalized, *wb, eps=1e-3), arrays)


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data(), seed=st.integers(0, 999))
def test_layer_norm_sweep_matches_torch(torch, shape, data, seed):
    k = data.draw(st.integers(1, len(shape)))
    normalized = tuple(shape[len(shape) - k:])
    rng = np.random.default_rng(seed)
    compare_with_torch(torch, lambda x, w, b: F.layer_norm(x, normalized, w, b),
                       lambda x, w, b: torch.nn.functional.layer_norm(x, normalized, w, b),
                       [_randn(shape, seed), rng.standard_normal(normalized), rng.standard_normal(normalized)],
                       rtol=1e-9, atol=1e-10, seed=seed)


def test_layer_norm_gradcheck():
    assert gradcheck_with_random_dy(lambda x, w, b: F.layer_norm(x, (3, 5), w, b),
                                    [_randn((3, 3, 5), 1), _randn((3, 5), 2), _randn((3, 5), 3)])


# ----------------------------------------------------------------------------- group_norm
@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 5), 3), ((2, 6, 3, 5), 1), ((2, 6, 3, 5), 6),
                                          ((3, 4), 2), ((2, 4, 7), 4), ((1, 6, 2, 2, 3), 2), ((0, 4, 3), 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(torch, shape, groups, affine):
    rng = np.random.default_rng(4)
    arrays = [_randn(shape)] + ([rng.standard_normal(shape[1]), rng.standard_normal(shape[1])] if affine else [])
    compare_with_torch(torch, lambda x, *wb: F.group_norm(x, groups, *wb, eps=1e-4),
                       lambda x, *wb: torch.nn.functional.group_norm(x, groups, *wb, eps=1e-4), arrays)


def test_group_norm_gradcheck():
    assert gradcheck_with_random_dy(lambda x, w, b: F.group_norm(x, 3, w, b),
                                    [_randn((3, 9, 5, 3), 1), _randn(9, 2), _randn(9, 3)])


# ----------------------------------------------------------------------------- instance_norm
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 7), (1, 4, 3, 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm_matches_torch(torch, shape, affine):
    rng = np.random.default_rng(5)
    arrays = [_randn(shape)] + ([rng.standard_normal(shape[1]), rng.standard_normal(shape[1])] if affine else [])
    compare_with_torch(torch, lambda x, *wb: F.instance_norm(x, None, None, *wb),
                       lambda x, *wb: torch.nn.functional.instance_norm(x, None, None, *wb), arrays)


@pytest.mark.parametrize("use_input_stats", [True, False])
def test_instance_norm_running_stats_match_torch(torch, use_input_stats):
    C = 3
    rm, rv = _randn(C, 7), np.abs(_randn(C, 8)) + 0.5
    ours_rm, ours_rv = minidl.tensor(rm), minidl.tensor(rv)
    theirs_rm, theirs_rv = torch.tensor(rm), torch.tensor(rv)
    compare_with_torch(torch, lambda x, w, b: F.instance_norm(x, ours_rm, ours_rv, w, b, use_input_stats, 0.3),
                       lambda x, w, b: torch.nn.functional.instance_norm(x, theirs_rm, theirs_rv, w, b,
                                                                         use_input_stats, 0.3),
                       [_randn((4, C, 3, 5)), _randn(C, 1), _randn(C, 2)])
    assert_close(ours_rm, theirs_rm.numpy(), what="running_mean")
    assert_close(ours_rv, theirs_rv.numpy(), what="running_var")


def test_instance_norm_gradcheck():
    assert gradcheck_with_random_dy(lambda x, w, b: F.instance_norm(x, None, None, w, b),
                                    [_randn((3, 3, 5, 3), 1), _randn(3, 2), _randn(3, 3)])


# ----------------------------------------------------------------------------- the op itself
@pytest.mark.parametrize("axes", [(1,), (0, 2), (2,), (0, 1, 2)])
def test_normalize_matches_the_docstring_formula_and_its_gradient_properties(axes):
    a = _randn((3, 5, 7), 9)
    x = minidl.tensor(a, requires_grad=True)
    y = Normalize.apply(x, axes, 1e-5)
    mean = a.mean(axis=axes, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=axes, keepdims=True)
    x_hat = (a - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(y.detach().numpy(), x_hat, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(1).standard_normal(a.shape)
    y.backward(minidl.tensor(dy))
    dx = x.grad.numpy()
    np.testing.assert_allclose(dx.sum(axis=axes), 0, atol=1e-11)  # shifting a group changes no x_hat
    # with eps = 0 scaling a group changes no x_hat either: dx is orthogonal to x_hat per group
    x.grad = None
    y = Normalize.apply(x, axes, 0.0)
    x_hat = y.detach().numpy()
    y.backward(minidl.tensor(dy))
    dx = x.grad.numpy()
    np.testing.assert_allclose(dx.sum(axis=axes), 0, atol=1e-11)
    np.testing.assert_allclose((dx * x_hat).sum(axis=axes), 0, atol=1e-11)
    assert gradcheck_with_random_dy(lambda t: Normalize.apply(t, axes, 1e-5), [a])


def test_float32_stays_float32():
    x = minidl.randn(2, 4, 3, 3)
    assert F.layer_norm(x, (3, 3)).dtype == minidl.float32
    assert F.group_norm(x, 2, minidl.ones(4), minidl.zeros(4)).dtype == minidl.float32
    assert F.instance_norm(x).dtype == minidl.float32


# ----------------------------------------------------------------------------- errors
def test_errors(torch):
    x = minidl.zeros(2, 6, 3)
    t = torch.zeros(2, 6, 3)
    TF = torch.nn.functional
    cases = [
        (lambda: F.layer_norm(x, (4,)), lambda: TF.layer_norm(t, (4,)), RuntimeError,
         r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\], but got input of size\[2, 6, 3\]"),
        (lambda: F.layer_norm(x, ()), lambda: TF.layer_norm(t, ()), RuntimeError,
         "Expected normalized_shape to be at least 1-dimensional"),
        (lambda: F.layer_norm(x, (3,), minidl.ones(2)), lambda: TF.layer_norm(t, (3,), torch.ones(2)), RuntimeError,
         r"Expected weight to be of same shape as normalized_shape, but got weight of shape \[2\] and "
         r"normalized_shape = \[3\]"),
        (lambda: F.layer_norm(x, (3,), None, minidl.ones(2)), lambda: TF.layer_norm(t, (3,), None, torch.ones(2)),
         RuntimeError, r"Expected bias to be of same shape as normalized_shape"),
        (lambda: F.layer_norm(x, 3), lambda: TF.layer_norm(t, 3), TypeError,
         "argument 'normalized_shape'.* must be (a )?tuple of ints"),
        (lambda: F.group_norm(x, 4), lambda: TF.group_norm(t, 4), RuntimeError,
         r"Expected number of channels in input to be divisible by num_groups, but got input of shape \[2, 6, 3\] "
         r"and num_groups=4"),
        (lambda: F.group_norm(minidl.zeros(6), 2), lambda: TF.group_norm(torch.zeros(6), 2), RuntimeError,
         "Expected at least 2 dimensions for input tensor but received 1"),
        (lambda: F.group_norm(x, 3, minidl.ones(3)), lambda: TF.group_norm(t, 3, torch.ones(3)), RuntimeError,
         r"Expected weight to be a vector of size equal to the number of channels in input, but got weight of "
         r"shape \[3\] and input of shape \[2, 6, 3\]"),
        (lambda: F.instance_norm(minidl.zeros(2, 3, 1)), lambda: TF.instance_norm(torch.zeros(2, 3, 1)), ValueError,
         r"Expected more than 1 spatial element when training, got input size"),
        (lambda: F.instance_norm(x, weight=minidl.ones(2)), lambda: TF.instance_norm(t, weight=torch.ones(2)),
         RuntimeError, r"weight should contain \d+ elements not \d+"),  # (PyTorch counts N * C)
    ]
    for ours, theirs, error, message in cases:
        with pytest.raises(error, match=message):
            ours()
        with pytest.raises(error, match=message):
            theirs()
    with pytest.raises(TypeError, match="group_norm: input must be a minidl Tensor"):
        F.group_norm(np.zeros((2, 4)), 2)
    with pytest.raises(ValueError, match="instance_norm: running_mean and running_var must be given"):
        F.instance_norm(x, use_input_stats=False)
