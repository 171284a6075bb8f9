"""The differentiable top-level functions (minidl/torch_functions.py): ``where``, ``maximum``/``minimum``,
``clamp`` with number and tensor bounds, ``max``/``min`` (all, with dim, elementwise), ``sum``/``mean``
with dim and keepdim, ``softmax``, ``flatten``. Forward and every gradient against PyTorch in float64
with a random upstream gradient (ties included), float64 gradient checks, and the broadcasting rules
by hypothesis. Every test runs on every device (tests/ops/conftest.py)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis.extra import numpy as hnp

import minidl
from helpers import compare_with_torch, gradcheck_with_random_dy


def _ties(rng, shape):
    """Small integers as floats: many ties between entries and between inputs."""
    return rng.integers(-2, 3, shape).astype(np.float64)


# --- where ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shapes", [((3, 5), (3, 5), (3, 5)), ((3, 1), (1, 5), (5,)), ((5,), (2, 3, 1), (3, 5)),
                                    ((), (4, 3), (3,)), ((2, 1, 3), (), (4, 1))])
def test_where_matches_torch_forward_and_gradients(torch, rng, shapes):
    cond_shape, a_shape, b_shape = shapes
    cond = rng.random(cond_shape) > 0.4
    arrays = [rng.standard_normal(a_shape), rng.standard_normal(b_shape)]
    compare_with_torch(torch, lambda a, b: minidl.where(minidl.tensor(cond), a, b),
                       lambda a, b: torch.where(torch.tensor(cond), a, b), arrays)


def test_where_gradcheck(rng):
    cond = minidl.tensor(rng.random((4, 1, 3)) > 0.5)
    assert gradcheck_with_random_dy(lambda a, b: minidl.where(cond, a, b),
                                    [rng.standard_normal((5, 3)), rng.standard_normal((4, 5, 1))])


def test_where_with_numbers_matches_torch(torch, rng):
    cond = rng.random((3, 4)) > 0.5
    compare_with_torch(torch, lambda a: minidl.where(minidl.tensor(cond), a, 0.5),
                       lambda a: torch.where(torch.tensor(cond), a, 0.5), [rng.standard_normal((3, 4))])
    compare_with_torch(torch, lambda b: minidl.where(minidl.tensor(cond), -1, b),
                       lambda b: torch.where(torch.tensor(cond), -1, b), [rng.standard_normal((4,))])


@pytest.mark.parametrize("a, b", [(1.0, 0), (1, 0), (True, False), ("int64", 0.5), ("int32", 2), ("float32", "f64_0d"),
                                  ("bool", 3), ("uint8", "int64")])
def test_where_dtypes_follow_torch_s_promotion(torch, a, b):
    cond = np.array([True, False, True])

    def make(lib, value):
        if value == "f64_0d":
            return lib.tensor(2.5, dtype=lib.float64)
        if isinstance(value, str):
            return lib.tensor(np.array([1, 0, 1]).astype(value))
        return value

    ours = minidl.where(minidl.tensor(cond), make(minidl, a), make(minidl, b))
    theirs = torch.where(torch.tensor(cond), make(torch, a), make(torch, b))
    assert str(theirs.dtype) == f"torch.{ours.dtype}"
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
def test_where_broadcasts_as_numpy(shapes):
    cond_shape, a_shape, b_shape = shapes.input_shapes
    out = minidl.where(minidl.ones(cond_shape, dtype=minidl.bool), minidl.ones(a_shape), minidl.zeros(b_shape))
    assert out.shape == shapes.result_shape
    assert float(out.sum()) == np.prod(shapes.result_shape)  # every entry from input


def test_where_refuses_what_torch_refuses():
    x = minidl.ones(3)
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor, but got a tensor "
                                           "with dtype Float"):
        minidl.where(x, x, x)
    with pytest.raises(RuntimeError, match=r"where: shapes \(3,\), \(2,\), \(3,\) cannot be broadcast"):
        minidl.where(x > 0, minidl.ones(2), x)
    with pytest.raises(TypeError, match="where"):
        minidl.where(x > 0, x)
    with pytest.warns(UserWarning, match="uint8 condition"):
        out = minidl.where(minidl.tensor([1, 0, 1], dtype=minidl.uint8), x, -x)
    np.testing.assert_array_equal(out.numpy(), [1, -1, 1])


def test_where_with_one_argument_gives_the_indices_as_torch(torch, rng):
    for value in [rng.random((3, 4)) > 0.5, rng.integers(0, 2, (2, 3, 2)), np.array(True), np.array(0.0),
                  np.zeros((0, 3))]:
        ours, theirs = minidl.where(minidl.tensor(value)), torch.where(torch.tensor(value))
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            assert o.dtype == minidl.int64
            np.testing.assert_array_equal(o.numpy(), t.numpy())


# --- maximum, minimum, max(a, b) ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["maximum", "minimum", "max", "min"])
@pytest.mark.parametrize("shapes", [((4, 5), (4, 5)), ((3, 1), (1, 5)), ((2, 3, 4), (4,))])
def test_elementwise_extremes_match_torch_including_ties(torch, rng, name, shapes):
    arrays = [_ties(rng, s) for s in shapes]  # many ties: PyTorch splits the gradient in half there
    assert (np.broadcast_to(arrays[0], np.broadcast_shapes(*shapes)) == arrays[1]).any()
    compare_with_torch(torch, getattr(minidl, name), getattr(torch, name), arrays)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_elementwise_extremes_gradcheck(rng, name):
    assert gradcheck_with_random_dy(getattr(minidl, name), [rng.standard_normal((3, 1, 5)), rng.standard_normal((4, 5))])


def test_maximum_promotes_and_refuses_numbers_as_torch(torch):
    for a, b in [("int64", "float32"), ("int32", "int64"), ("bool", "uint8"), ("float32", "float64")]:
        x, y = np.array([1, 0, 2]).astype(a), np.array([0, 1, 2]).astype(b)
        ours, theirs = minidl.maximum(minidl.tensor(x), minidl.tensor(y)), torch.maximum(torch.tensor(x), torch.tensor(y))
        assert str(theirs.dtype) == f"torch.{ours.dtype}"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(TypeError, match=r"maximum\(\): argument 'other' \(position 2\) must be Tensor, not int"):
        minidl.maximum(minidl.ones(2), 2)
    with pytest.raises(RuntimeError, match="minimum: shapes"):
        minidl.minimum(minidl.ones(2), minidl.ones(3))


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3))
def test_maximum_broadcasts_as_numpy_and_its_gradients_keep_the_input_shapes(shapes):
    a = minidl.zeros(shapes.input_shapes[0], requires_grad=True)
    b = minidl.ones(shapes.input_shapes[1], requires_grad=True)
    y = minidl.maximum(a, b)
    assert y.shape == shapes.result_shape
    y.sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    assert float(a.grad.sum()) == 0 and float(b.grad.sum()) == np.prod(shapes.result_shape)


# --- clamp ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bounds", [(-1.0, 1.0), (None, 0.0), (0.0, None), (1, -1), (-2, 2)])
def test_clamp_with_numbers_matches_torch(torch, rng, bounds):
    low, high = bounds
    compare_with_torch(torch, lambda x: minidl.clamp(x, low, high), lambda x: torch.clamp(x, low, high),
                       [_ties(rng, (4, 5))])  # entries equal to a bound: the gradient goes to x


@pytest.mark.parametrize("which", ["both", "min", "max"])
def test_clamp_with_tensor_bounds_matches_torch_including_ties_and_crossed_bounds(torch, rng, which):
    x, low, high = _ties(rng, (4, 5)), _ties(rng, (1, 5)), _ties(rng, (4, 1))  # low > high in places
    assert (low > high).any() and (x == low).any()
    if which == "both":
        compare_with_torch(torch, minidl.clamp, torch.clamp, [x, low, high])
    elif which == "min":
        compare_with_torch(torch, lambda a, b: minidl.clamp(a, min=b), lambda a, b: torch.clamp(a, min=b), [x, low])
    else:
        compare_with_torch(torch, lambda a, b: minidl.clamp(a, max=b), lambda a, b: torch.clamp(a, max=b), [x, high])


def test_clamp_gradcheck(rng):
    x, low, high = rng.standard_normal((3, 4)), rng.standard_normal((4,)) - 0.5, rng.standard_normal((3, 1)) + 0.5
    assert gradcheck_with_random_dy(minidl.clamp, [x, low, high])
    assert gradcheck_with_random_dy(lambda a: minidl.clamp(a, -0.3, 0.4), [x])


def test_clamp_dtypes_follow_torch(torch):
    for x, kwargs in [(np.array([1, 2, 3]), {"min": 1.5}), (np.array([1, 2, 3]), {"max": 2}),
                      (np.array([1, 2, 3], dtype=np.int32), {"min": "f"}), (np.array([1.0, 2.0]), {"min": 0})]:
        def bound(lib, v):
            return lib.tensor([1.5]) if v == "f" else v
        ours = minidl.clamp(minidl.tensor(x), **{k: bound(minidl, v) for k, v in kwargs.items()})
        theirs = torch.clamp(torch.tensor(x), **{k: bound(torch, v) for k, v in kwargs.items()})
        assert str(theirs.dtype) == f"torch.{ours.dtype}", (x.dtype, kwargs)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        minidl.clamp(minidl.ones(2))


# --- reductions --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), (-1, False)])
def test_max_min_with_dim_match_torch(torch, rng, name, dim, keepdim):
    x = rng.standard_normal((4, 5, 3))
    out = getattr(minidl, name)(minidl.tensor(x), dim, keepdim)
    ref = getattr(torch, name)(torch.tensor(x), dim, keepdim)
    assert out._fields == ("values", "indices") and out.indices.dtype == minidl.int64
    np.testing.assert_array_equal(out.indices.numpy(), ref.indices.numpy())
    compare_with_torch(torch, lambda a: getattr(minidl, name)(a, dim=dim, keepdim=keepdim).values,
                       lambda a: getattr(torch, name)(a, dim=dim, keepdim=keepdim).values, [x])
    assert gradcheck_with_random_dy(lambda a: getattr(minidl, name)(a, dim, keepdim)[0], [x])


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_of_everything_share_the_gradient_of_ties_as_torch(torch, rng, name):
    x = _ties(rng, (4, 5))
    compare_with_torch(torch, getattr(minidl, name), getattr(torch, name), [x])
    compare_with_torch(torch, lambda a: getattr(minidl, name)(a, 1)[0], lambda a: getattr(torch, name)(a, 1)[0], [x])


def test_max_refuses_several_dims_as_torch():
    with pytest.raises(TypeError, match="max"):
        minidl.max(minidl.ones(2, 2), (0, 1))


@pytest.mark.parametrize("name", ["sum", "mean"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), ((0, 2), True), (-1, True)])
def test_sum_mean_match_torch(torch, rng, name, dim, keepdim):
    x = rng.standard_normal((3, 4, 5))
    args = () if dim is None else (dim, keepdim)
    compare_with_torch(torch, lambda a: getattr(minidl, name)(a, *args), lambda a: getattr(torch, name)(a, *args), [x])
    assert gradcheck_with_random_dy(lambda a: getattr(minidl, name)(a, *args), [x])


def test_sum_and_mean_dtypes_follow_torch(torch):
    for value, kwargs in [(np.array([200, 100], dtype=np.uint8), {}), (np.array([True, True]), {}),
                          (np.array([1, 2], dtype=np.int32), {}), (np.array([1, 2]), {"dtype": "float64"}),
                          (np.array([[1.0, 2.0]], dtype=np.float32), {"dim": 1, "keepdim": True, "dtype": "float64"})]:
        ours = minidl.sum(minidl.tensor(value), **{k: getattr(minidl, v) if k == "dtype" else v for k, v in kwargs.items()})
        theirs = torch.sum(torch.tensor(value), **{k: getattr(torch, v) if k == "dtype" else v for k, v in kwargs.items()})
        assert str(theirs.dtype) == f"torch.{ours.dtype}"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert minidl.mean(minidl.tensor([1, 2]), dtype=minidl.float32).item() == 1.5
    with pytest.raises(RuntimeError, match="mean: could not infer output dtype. Input dtype must be either a "
                                           "floating point or complex dtype. Got: Long"):
        minidl.mean(minidl.tensor([1, 2]))


# --- softmax, flatten ------------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_matches_torch(torch, rng, dim):
    x = rng.standard_normal((3, 4, 5))
    compare_with_torch(torch, lambda a: minidl.softmax(a, dim), lambda a: torch.softmax(a, dim), [x])
    assert gradcheck_with_random_dy(lambda a: minidl.softmax(a, dim), [x])


def test_softmax_dtype_casts_first_as_torch(torch, rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    ours, theirs = minidl.softmax(minidl.tensor(x), 1, minidl.float64), torch.softmax(torch.tensor(x), 1, torch.float64)
    assert ours.dtype == minidl.float64
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    with pytest.raises(TypeError):
        minidl.softmax(minidl.tensor(x))  # dim is required, as in torch.softmax


@pytest.mark.parametrize("shape, start, end", [((2, 3, 4, 5), 0, -1), ((2, 3, 4, 5), 1, 2), ((2, 3, 4), -2, -1), ((), 0, -1),
                                              ((3,), 0, 0)])
def test_flatten_matches_torch(torch, rng, shape, start, end):
    x = rng.standard_normal(shape)
    y = compare_with_torch(torch, lambda a: minidl.flatten(a, start, end), lambda a: torch.flatten(a, start, end), [x])
    assert y.shape == torch.flatten(torch.tensor(x), start, end).shape
    assert gradcheck_with_random_dy(lambda a: minidl.flatten(a, start_dim=start, end_dim=end), [x])


# --- the functions are the methods ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu"])
def test_elementwise_functions_match_torch(torch, rng, name):
    x = rng.random((3, 4)) + 0.1
    if name in ("abs", "relu", "tanh", "sigmoid"):
        x = x - 0.6
    compare_with_torch(torch, getattr(minidl, name), getattr(torch, name), [x])
    assert gradcheck_with_random_dy(getattr(minidl, name), [x])


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sigmoid", "tanh", "abs", "relu"])
def test_elementwise_functions_of_integers_have_torch_s_dtype(torch, name):
    ours, theirs = getattr(minidl, name)(minidl.tensor([1, 2, 3])), getattr(torch, name)(torch.tensor([1, 2, 3]))
    assert str(theirs.dtype) == f"torch.{ours.dtype}"
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_matmul_argmax_argmin_match_torch(torch, rng):
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
    compare_with_torch(torch, minidl.matmul, torch.matmul, [a, b])
    x = rng.standard_normal((4, 5))
    for name in ("argmax", "argmin"):
        for args in [(), (0,), (1, True)]:
            ours, theirs = getattr(minidl, name)(minidl.tensor(x), *args), getattr(torch, name)(torch.tensor(x), *args)
            assert ours.dtype == minidl.int64 and ours.shape == theirs.shape
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        ours, theirs = getattr(minidl, name)(minidl.tensor(x), keepdim=True), getattr(torch, name)(torch.tensor(x), keepdim=True)
        assert ours.shape == theirs.shape and ours.item() == theirs.item()
