"""Every Tensor op against PyTorch: forward and gradient, float64, random upstream gradients."""
import operator

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functional as F
from helpers import assert_close, compare_with_torch

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)

SETTINGS = settings(max_examples=25, deadline=None)


def _randn(shape, seed=0, positive=False, away_from_zero=False):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    if positive:
        a = np.abs(a) + 0.5
    if away_from_zero:
        a = np.where(np.abs(a) < 0.1, 0.5, a)  # kinks (abs, relu, clamp) are not differentiable
    return a


broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4)

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, False),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, False),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, False),
    "div": (lambda a, b: a / b, lambda a, b: a / b, True),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b, True),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(shapes=broadcast_pairs, seed=st.integers(0, 2**16))
def test_binary_ops_broadcast_like_torch(torch, name, shapes, seed):
    ours, theirs, positive = BINARY[name]
    a_shape, b_shape = shapes.input_shapes
    a = _randn(a_shape, seed, positive=positive)
    b = _randn(b_shape, seed + 1, positive=positive)
    compare_with_torch(torch, ours, theirs, [a, b], seed=seed)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_with_scalars_and_arrays_on_both_sides(torch, name):
    ours, theirs, positive = BINARY[name]
    a = _randn((3, 4), positive=True)
    c = np.abs(_randn((4,), seed=7)) + 0.5
    for other in (2.5, 3, c):
        other_t = torch.tensor(other) if isinstance(other, np.ndarray) else other
        compare_with_torch(torch, lambda x: ours(x, other), lambda x: theirs(x, other_t), [a])
        compare_with_torch(torch, lambda x: ours(other, x), lambda x: theirs(other_t, x), [a])


# A torch function named by a string is looked up in the test: torch is optional.
UNARY = {
    "neg": (lambda x: -x, lambda x: -x, {}),
    "exp": (lambda x: x.exp(), lambda x: x.exp(), {}),
    "log": (lambda x: x.log(), lambda x: x.log(), {"positive": True}),
    "sqrt": (lambda x: x.sqrt(), lambda x: x.sqrt(), {"positive": True}),
    "abs": (lambda x: x.abs(), lambda x: x.abs(), {"away_from_zero": True}),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), {"away_from_zero": True}),
    "clamp_min": (lambda x: x.clamp(min=0.2), lambda x: x.clamp(min=0.2), {}),
    "clamp_max": (lambda x: x.clamp(max=0.2), lambda x: x.clamp(max=0.2), {}),
    "relu": (lambda x: x.relu(), lambda x: x.relu(), {"away_from_zero": True}),
    "F.relu": (F.relu, "nn.functional.relu", {"away_from_zero": True}),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: x.sigmoid(), {}),
    "F.sigmoid": (F.sigmoid, "sigmoid", {}),
    "tanh": (lambda x: x.tanh(), lambda x: x.tanh(), {}),
    "F.tanh": (F.tanh, "tanh", {}),
    "pow_scalar": (lambda x: x ** 3, lambda x: x ** 3, {}),
    "pow_square": (lambda x: x ** 2, lambda x: x ** 2, {}),
    "pow_fraction": (lambda x: x ** -1.5, lambda x: x ** -1.5, {"positive": True}),
    "rpow": (lambda x: 2.0 ** x, lambda x: 2.0 ** x, {}),
    "clone": (lambda x: x.clone(), lambda x: x.clone(), {}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(), (5,), (3, 7), (2, 3, 5)])
def test_unary_ops_match_torch(torch, name, shape):
    ours, theirs, kind = UNARY[name]
    if isinstance(theirs, str):
        theirs = operator.attrgetter(theirs)(torch)
    compare_with_torch(torch, ours, theirs, [_randn(shape, seed=len(name), **kind)])


def test_sigmoid_is_stable_for_huge_inputs(torch):
    x = minidl.tensor([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=minidl.float64)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow
        y = x.sigmoid()
    assert_close(y, torch.tensor(x.numpy()).sigmoid().numpy())


DIMS = [None, 0, -1, 1, (0, 2), (1, -1), (0, 1, 2)]


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("op", ["sum", "mean", "var", "amax", "amin"])
def test_reductions_match_torch(torch, op, dim, keepdim):
    shape = (3, 4, 5)

    def ours(x):
        return getattr(x, op)() if dim is None and not keepdim else getattr(x, op)(dim=dim, keepdim=keepdim)

    def theirs(x):
        if dim is None:
            if not keepdim:
                return getattr(x, op)()
            return getattr(x, op)(dim=tuple(range(x.ndim)), keepdim=True)
        return getattr(x, op)(dim=dim, keepdim=keepdim)

    compare_with_torch(torch, ours, theirs, [_randn(shape, seed=3)])


@pytest.mark.parametrize("unbiased", [True, False])
def test_var_unbiased_and_correction(torch, unbiased):
    a = _randn((4, 6), seed=5)
    compare_with_torch(torch, lambda x: x.var(1, unbiased=unbiased), lambda x: x.var(1, unbiased=unbiased), [a])
    compare_with_torch(torch, lambda x: x.var(0, correction=2), lambda x: x.var(0, correction=2), [a])
    compare_with_torch(torch, lambda x: x.std(0), lambda x: x.std(0), [a])


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_values_and_indices(torch, op, dim, keepdim):
    a = _randn((4, 5, 3), seed=11)
    ours = compare_with_torch(torch, lambda x: getattr(x, op)(dim, keepdim).values,
                              lambda x: getattr(x, op)(dim, keepdim).values, [a])
    ref = getattr(torch.tensor(a), op)(dim, keepdim)
    got = getattr(minidl.tensor(a), op)(dim, keepdim)
    assert got.indices.dtype == minidl.int64
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    values, indices = got  # unpacks like torch.return_types.max
    assert values.shape == ours.shape == indices.shape


def test_full_max_shares_gradient_among_ties_like_torch(torch):
    a = np.array([[1.0, 3.0, 3.0], [0.0, 3.0, -1.0]])
    compare_with_torch(torch, lambda x: x.max(), lambda x: x.max(), [a])
    compare_with_torch(torch, lambda x: x.min(), lambda x: x.min(), [a])
    compare_with_torch(torch, lambda x: x.amax(dim=1), lambda x: x.amax(dim=1), [a])


SHAPE_OPS = {
    "reshape": (lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1)),
    "reshape_tuple": (lambda x: x.reshape((6, 5, 2)), lambda x: x.reshape((6, 5, 2))),
    "view": (lambda x: x.view(-1), lambda x: x.view(-1)),
    "transpose": (lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
    "permute": (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    "T": (lambda x: x[0].T, lambda x: x[0].T),
    "flatten": (lambda x: x.flatten(), lambda x: x.flatten()),
    "flatten_1": (lambda x: x.flatten(1), lambda x: x.flatten(1)),
    "unsqueeze": (lambda x: x.unsqueeze(1), lambda x: x.unsqueeze(1)),
    "unsqueeze_neg": (lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1)),
    "squeeze": (lambda x: x[:, :1].squeeze(), lambda x: x[:, :1].squeeze()),
    "squeeze_dim": (lambda x: x[:, :1].squeeze(1), lambda x: x[:, :1].squeeze(1)),
    "expand": (lambda x: x[:, :1].expand(2, 4, 3, 5), lambda x: x[:, :1].expand(2, 4, 3, 5)),
    "expand_neg": (lambda x: x[:1].expand(3, -1, -1), lambda x: x[:1].expand(3, -1, -1)),
}


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_ops_match_torch(torch, name):
    ours, theirs = SHAPE_OPS[name]
    compare_with_torch(torch, ours, theirs, [_randn((4, 3, 5), seed=2)])


INDEXES = {
    "int": 1,
    "negative_int": -1,
    "slice": slice(1, 3),
    "step_slice": (slice(None), slice(None, None, 2)),
    "negative_step_free": (slice(None, None, 2), 0),
    "ellipsis": (Ellipsis, 1),
    "none": (None, slice(None), 2),
    "int_array_with_repeats": np.array([0, 2, 2, 0]),
    "two_int_arrays": (np.array([0, 3, 3]), np.array([1, 1, 0])),
    "mixed": (slice(1, None), np.array([2, 0, 2])),
    "int_list": [3, 0, 0],
}


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_getitem_matches_torch(torch, name):
    index = INDEXES[name]

    def torch_index(i):
        if isinstance(i, np.ndarray):
            return torch.tensor(i)
        if isinstance(i, tuple):
            return tuple(torch_index(j) for j in i)
        return i

    compare_with_torch(torch, lambda x: x[index], lambda x: x[torch_index(index)], [_randn((4, 3, 5), seed=4)])


def test_getitem_with_boolean_mask_and_tensor_index(torch):
    a = _randn((4, 5), seed=9)
    compare_with_torch(torch, lambda x: x[x > 0], lambda x: x[x > 0], [a])
    mask = a[:, 0] > 0
    compare_with_torch(torch, lambda x: x[minidl.tensor(mask)], lambda x: x[torch.tensor(mask)], [a])
    idx = np.array([1, 1, 3])
    compare_with_torch(torch, lambda x: x[:, minidl.tensor(idx)], lambda x: x[:, torch.tensor(idx)], [a])


MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,))]


@pytest.mark.parametrize("a_shape,b_shape", MATMUL_SHAPES)
def test_matmul_matches_torch(torch, a_shape, b_shape):
    compare_with_torch(torch, lambda a, b: a @ b, lambda a, b: a @ b, [_randn(a_shape, 1), _randn(b_shape, 2)])


@pytest.mark.parametrize("x_shape", [(7, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_torch(torch, x_shape, with_bias):
    arrays = [_randn(x_shape, 1), _randn((5, 4), 2)] + ([_randn((5,), 3)] if with_bias else [])
    compare_with_torch(torch, F.linear, torch.nn.functional.linear, arrays)


def test_comparisons_give_bool_tensors_without_grad():
    a = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in [(a < 2, [True, False, False]), (a <= 2, [True, True, False]),
                             (a > 2, [False, False, True]), (a >= 2, [False, True, True]),
                             (a == 2, [False, True, False]), (a != 2, [True, False, True]),
                             (2 < a, [False, False, True])]:
        assert result.dtype == minidl.bool and not result.requires_grad
        np.testing.assert_array_equal(result.numpy(), expected)


def test_python_scalars_keep_the_tensor_dtype():
    x32 = minidl.tensor([1.0, 2.0])
    assert (x32 * 2.5).dtype == minidl.float32
    assert (2 ** x32).dtype == minidl.float32
    assert (x32 / 3).dtype == minidl.float32
    ints = minidl.tensor([1, 2])
    assert ints.dtype == minidl.int64
    assert (ints * 2).dtype == minidl.int64
    assert (ints * 2.5).dtype == minidl.float32  # as torch: int tensor * float -> default float


@SETTINGS
@given(shapes=broadcast_pairs)
def test_broadcast_result_shape_is_numpys(shapes):
    a_shape, b_shape = shapes.input_shapes
    y = minidl.zeros(a_shape) + minidl.zeros(b_shape)
    assert y.shape == shapes.result_shape
