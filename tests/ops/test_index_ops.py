"""gather, scatter, scatter_add, index_select, sort, topk, repeat, norm, contiguous
(minidl/ops/index.py, minidl/functional/indexing.py) against PyTorch and central differences."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from helpers import assert_close, compare_with_torch, gradcheck_with_random_dy

SETTINGS = settings(max_examples=20, deadline=None)


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _index(rng, shape, high):
    return rng.integers(0, high, size=shape)


def _both(torch, array):
    """An int64 index as a minidl tensor (on the test's device) and a torch tensor."""
    return minidl.tensor(array), torch.tensor(array)


# ----------------------------------------------------------------------------- gather
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 5)])
def test_gather_every_dim_matches_torch(torch, shape):
    rng = np.random.default_rng(len(shape))
    x = _randn(shape)
    for dim in range(-len(shape), len(shape)):
        axis = dim % len(shape)
        # index may be larger than x along dim (repeats) and smaller on the other axes
        ishape = tuple(n + 2 if a == axis else max(1, n - 1) for a, n in enumerate(shape))
        idx = _index(rng, ishape, shape[axis])
        ours, theirs = _both(torch, idx)
        compare_with_torch(torch, lambda a: a.gather(dim, ours), lambda a: a.gather(dim, theirs), [x])
        gradcheck_with_random_dy(lambda a: a.gather(dim, ours), [x])


def test_gather_repeated_indices_add_their_gradients(torch):
    x = _randn((2, 3))
    idx = np.array([[0, 0, 0, 2], [1, 1, 2, 2]])
    ours, theirs = _both(torch, idx)
    compare_with_torch(torch, lambda a: a.gather(1, ours), lambda a: a.gather(1, theirs), [x])
    g = minidl.tensor(x, requires_grad=True)
    g.gather(1, ours).sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), [[3, 0, 1], [0, 2, 2]])


def test_int32_index_and_0d(torch):
    x = _randn((3, 4))
    idx = np.array([[1], [3], [0]], dtype=np.int32)
    ours, theirs = _both(torch, idx)
    compare_with_torch(torch, lambda a: a.gather(1, ours), lambda a: a.gather(1, theirs), [x])
    ours0, theirs0 = _both(torch, np.array(0))
    compare_with_torch(torch, lambda a: a.gather(0, ours0), lambda a: a.gather(0, theirs0), [np.array(1.5)])
    src = _randn((3, 1), 1)
    compare_with_torch(torch, lambda a, s: a.scatter(1, ours, s), lambda a, s: a.scatter(1, theirs, s), [x, src])
    compare_with_torch(torch, lambda a, s: a.scatter_add(1, ours, s), lambda a, s: a.scatter_add(1, theirs, s),
                       [x, src])


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_gather_shape_rule(shape, data):
    """The result has index's shape, for any index no larger than x apart from dim."""
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    axis = dim % len(shape)
    ishape = [data.draw(st.integers(0, 5)) if a == axis else data.draw(st.integers(0, n))
              for a, n in enumerate(shape)]
    idx = np.random.default_rng(0).integers(0, shape[axis], size=ishape)
    x = minidl.tensor(_randn(shape))
    y = x.gather(dim, minidl.tensor(idx))
    assert y.shape == tuple(ishape)
    expected = np.take_along_axis(_randn(shape)[tuple(slice(0, n) if a != axis else slice(None)
                                                      for a, n in enumerate(ishape))], idx, axis)
    assert_close(y, expected)


# ----------------------------------------------------------------------------- scatter
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 5)])
def test_scatter_and_scatter_add_every_dim_match_torch(torch, shape):
    rng = np.random.default_rng(10 + len(shape))
    x = _randn(shape, 1)
    for dim in range(-len(shape), len(shape)):
        axis = dim % len(shape)
        ishape = tuple(max(1, n - 1) for n in shape)
        src = _randn(ishape, 2)
        big = _randn(tuple(n + 1 for n in ishape), 3)  # src may be larger than index
        # scatter: distinct indices along dim (duplicates leave the winner unspecified)
        perm = np.argsort(rng.random(tuple(n if a == axis else m for a, (n, m) in enumerate(zip(shape, ishape)))),
                          axis=axis)
        distinct = np.take(perm, np.arange(ishape[axis]), axis=axis)
        ours, theirs = _both(torch, distinct)
        compare_with_torch(torch, lambda a, s: a.scatter(dim, ours, s),
                           lambda a, s: a.scatter(dim, theirs, s), [x, src])
        gradcheck_with_random_dy(lambda a, s: a.scatter(dim, ours, s), [x, src])
        # PyTorch cannot differentiate w.r.t. a src larger than index (its gradient has index's
        # shape): compare the forward only, and check our gradient (0 outside) numerically
        assert_close(minidl.tensor(x).scatter(dim, ours, minidl.tensor(big)),
                     torch.tensor(x).scatter(dim, theirs, torch.tensor(big)).numpy())
        gradcheck_with_random_dy(lambda a, s: a.scatter(dim, ours, s), [x, big])
        compare_with_torch(torch, lambda a: a.scatter(dim, ours, 2.5),
                           lambda a: a.scatter(dim, theirs, 2.5), [x])
        # scatter_add: repeated indices add up
        repeated = _index(rng, ishape, shape[axis])
        ours, theirs = _both(torch, repeated)
        compare_with_torch(torch, lambda a, s: a.scatter_add(dim, ours, s),
                           lambda a, s: a.scatter_add(dim, theirs, s), [x, src])
        gradcheck_with_random_dy(lambda a, s: a.scatter_add(dim, ours, s), [x, src])
        assert_close(minidl.tensor(x).scatter_add(dim, ours, minidl.tensor(big)),
                     torch.tensor(x).scatter_add(dim, theirs, torch.tensor(big)).numpy())
        gradcheck_with_random_dy(lambda a, s: a.scatter_add(dim, ours, s), [x, big])


def test_scatter_gradient_masks_overwritten_places_and_gathers_for_src(torch):
    x, src = _randn((2, 4)), _randn((2, 2), 1)
    idx = np.array([[3, 0], [1, 1]])  # row 1 writes entry 1 twice: both src entries get dy there
    ours, theirs = _both(torch, idx)
    compare_with_torch(torch, lambda a, s: a.scatter(1, ours, s), lambda a, s: a.scatter(1, theirs, s),
                       [x, src], atol=1e-12)
    a, s = minidl.tensor(x, requires_grad=True), minidl.tensor(src, requires_grad=True)
    dy = np.arange(8.0).reshape(2, 4) + 1
    a.scatter(1, ours, s).backward(minidl.tensor(dy))
    np.testing.assert_array_equal(a.grad.numpy(), [[0, 2, 3, 0], [5, 0, 7, 8]])
    np.testing.assert_array_equal(s.grad.numpy(), [[4, 1], [6, 6]])


def test_scatter_in_place_forms(torch):
    x, src = _randn((3, 4)), _randn((3, 2), 1)
    idx = np.array([[0, 1], [2, 0], [3, 3]])
    ours, theirs = _both(torch, idx)

    def ours_fn(a, s):
        b = a * 1.0
        b.scatter_add_(1, ours, s)
        return b.scatter_(1, ours[:, :1], 7.0)

    def theirs_fn(a, s):
        b = a * 1.0
        b.scatter_add_(1, theirs, s)
        return b.scatter_(1, theirs[:, :1], 7.0)

    compare_with_torch(torch, ours_fn, theirs_fn, [x, src])
    t = minidl.tensor(x)
    version = t._version
    assert t.scatter_(1, ours, minidl.tensor(src)) is t and t._version == version + 1
    with pytest.raises(RuntimeError, match="leaf Variable"):
        minidl.tensor(x, requires_grad=True).scatter_(1, ours, 1.0)


# ----------------------------------------------------------------------------- index_select
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 5)])
def test_index_select_every_dim_matches_torch(torch, shape):
    rng = np.random.default_rng(20 + len(shape))
    x = _randn(shape, 3)
    for dim in range(-len(shape), len(shape)):
        idx = _index(rng, (shape[dim] + 3,), shape[dim])  # longer than the dim: repeats add up
        ours, theirs = _both(torch, idx)
        compare_with_torch(torch, lambda a: a.index_select(dim, ours), lambda a: a.index_select(dim, theirs), [x])
        gradcheck_with_random_dy(lambda a: a.index_select(dim, ours), [x])
    ours, theirs = _both(torch, np.array(1, dtype=np.int32))  # a 0-d int32 index
    compare_with_torch(torch, lambda a: a.index_select(0, ours), lambda a: a.index_select(0, theirs), [x])


# ----------------------------------------------------------------------------- sort, topk
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 5)])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_every_dim_matches_torch(torch, shape, descending):
    x = _randn(shape, 4)
    for dim in range(-len(shape), len(shape)):
        compare_with_torch(torch, lambda a: a.sort(dim, descending).values,
                           lambda a: a.sort(dim, descending).values, [x])
        gradcheck_with_random_dy(lambda a: a.sort(dim, descending)[0], [x])
        ours = minidl.tensor(x).sort(dim=dim, descending=descending)
        theirs = torch.tensor(x).sort(dim=dim, descending=descending)
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
        assert ours.indices.dtype == minidl.int64


def test_stable_sort_keeps_the_order_of_ties_like_torch(torch):
    x = np.array([[3, 1, 2, 1, 3, 2, 1, np.nan, 2], [0, 0, 0, 0, 0, 0, 0, 0, 0]])
    for descending in (False, True):
        ours = minidl.tensor(x).sort(dim=1, descending=descending, stable=True)
        theirs = torch.tensor(x).sort(dim=1, descending=descending, stable=True)
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
    ints = np.random.default_rng(0).integers(0, 3, size=(3, 64))  # long rows: many ties
    for descending in (False, True):
        ours = minidl.tensor(ints).sort(descending=descending, stable=True)
        theirs = torch.tensor(ints).sort(descending=descending, stable=True)
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())


@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_torch(torch, largest):
    x = _randn((3, 4, 6), 5)
    for dim in range(-3, 3):
        for k in (0, 1, x.shape[dim] - 1, x.shape[dim]):
            compare_with_torch(torch, lambda a: a.topk(k, dim, largest).values,
                               lambda a: a.topk(k, dim, largest).values, [x])
            ours = minidl.tensor(x).topk(k, dim=dim, largest=largest)
            theirs = torch.tensor(x).topk(k, dim=dim, largest=largest)
            np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
        gradcheck_with_random_dy(lambda a: a.topk(2, dim, largest).values, [x])


def test_sort_and_topk_return_named_tuples_and_handle_0d(torch):
    result = minidl.tensor([3.0, 1.0, 2.0]).topk(2)
    values, indices = result
    assert type(result).__name__ == "topk" and result.values is values and result.indices is indices
    assert type(minidl.tensor([1.0]).sort()).__name__ == "sort"
    for name in ("sort", "topk"):
        args = (1,) if name == "topk" else ()
        ours = getattr(minidl.tensor(2.5), name)(*args)
        theirs = getattr(torch.tensor(2.5), name)(*args)
        assert ours.values.item() == theirs.values.item() and ours.indices.item() == theirs.indices.item()
        assert ours.values.shape == () and ours.indices.shape == ()


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data())
def test_sort_and_topk_shape_rules(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    k = data.draw(st.integers(0, shape[dim]))
    x = minidl.tensor(_randn(shape))
    values, indices = x.topk(k, dim)
    expected = list(shape)
    expected[dim] = k
    assert values.shape == indices.shape == tuple(expected)
    s = x.sort(dim)
    assert s.values.shape == s.indices.shape == tuple(shape)
    assert np.all(np.diff(s.values.numpy(), axis=dim) >= 0)


# ----------------------------------------------------------------------------- repeat
@pytest.mark.parametrize("shape,sizes", [((3,), (2,)), ((3,), (2, 1, 3)), ((2, 3), (3, 2)),
                                         ((2, 1, 3), (1, 4, 1, 2)), ((), (3, 2)), ((2, 3), (0, 2))])
def test_repeat_matches_torch(torch, shape, sizes):
    x = _randn(shape, 6)
    compare_with_torch(torch, lambda a: a.repeat(*sizes), lambda a: a.repeat(*sizes), [x])
    compare_with_torch(torch, lambda a: a.repeat(sizes), lambda a: a.repeat(sizes), [x])
    gradcheck_with_random_dy(lambda a: a.repeat(*sizes), [x])


@SETTINGS
@given(shape=st.lists(st.integers(1, 3), max_size=3), extra=st.lists(st.integers(0, 3), max_size=2),
       data=st.data())
def test_repeat_shape_rule(shape, extra, data):
    """y.shape[a] = sizes[a] * x's shape padded with leading 1s."""
    own = [data.draw(st.integers(0, 3)) for _ in shape]
    sizes = tuple(extra) + tuple(own)
    y = minidl.tensor(_randn(shape)).repeat(*sizes)
    padded = [1] * len(extra) + list(shape)
    assert y.shape == tuple(r * n for r, n in zip(sizes, padded))
    assert_close(y, np.tile(_randn(shape).reshape(padded), sizes) if sizes else _randn(shape))


# ----------------------------------------------------------------------------- norm
@pytest.mark.parametrize("p", ["fro", 2, 1, math.inf, -math.inf, 3, 0.5, 0])
def test_norm_matches_torch(torch, p):
    x = _randn((3, 4, 5), 7)
    for dim, keepdim in [(None, False), (1, False), (-1, True), ((0, 2), False), ((0, 1, 2), True)]:
        if p == "fro" and isinstance(dim, tuple) and len(dim) == 3:
            continue  # PyTorch: 'fro' over 3 dims raises; minidl gives the 2-norm
        compare_with_torch(torch, lambda a: a.norm(p, dim, keepdim), lambda a: a.norm(p, dim, keepdim), [x])
        gradcheck_with_random_dy(lambda a: a.norm(p, dim, keepdim), [x])


@pytest.mark.parametrize("p", ["fro", 2, 1, math.inf, 3])
def test_norm_gradient_at_zero_is_zero_like_torch(torch, p):
    x = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.0]])  # row 0 has norm 0
    compare_with_torch(torch, lambda a: a.norm(p, 1), lambda a: a.norm(p, 1), [x])
    a = minidl.tensor(np.zeros(4), requires_grad=True)
    a.norm(p).backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(4))


def test_norm_inf_shares_the_gradient_among_ties(torch):
    x = np.array([[2.0, -2.0, 1.0], [0.5, 3.0, -3.0]])
    compare_with_torch(torch, lambda a: a.norm(math.inf, 1), lambda a: a.norm(math.inf, 1), [x])
    a = minidl.tensor(x, requires_grad=True)
    a.norm(math.inf, dim=1).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[0.5, -0.5, 0], [0, 0.5, -0.5]])


def test_norm_dtype_and_0d(torch):
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    ours = minidl.tensor(x).norm(dtype=minidl.float64)
    assert ours.dtype == minidl.float64
    assert ours.item() == pytest.approx(torch.tensor(x).norm(dtype=torch.float64).item())
    compare_with_torch(torch, lambda a: a.norm(), lambda a: a.norm(), [np.array(-1.5)])


# ----------------------------------------------------------------------------- contiguous
def test_contiguous_returns_self_or_a_differentiable_copy(torch):
    x = minidl.tensor(_randn((3, 4)))
    assert x.is_contiguous() and x.contiguous() is x
    t = x.t()
    assert not t.is_contiguous() and t.contiguous().is_contiguous()
    assert not x[:, ::2].is_contiguous() and not x[:1].expand(3, 4).is_contiguous()
    compare_with_torch(torch, lambda a: a.t().contiguous() * 2, lambda a: a.t().contiguous() * 2, [_randn((3, 4))])
    gradcheck_with_random_dy(lambda a: a.permute(1, 0).contiguous(), [_randn((3, 5))])
    c = t.contiguous()
    c[0, 0] = 100.0  # a copy: x is unchanged
    assert x[0, 0].item() != 100.0
    for view in (lambda a: a.t(), lambda a: a[:, 1:3], lambda a: a[:1].expand(3, 4), lambda a: a):
        assert view(x).is_contiguous() == view(torch.tensor(_randn((3, 4)))).is_contiguous()


# ----------------------------------------------------------------------------- errors
def test_bad_arguments_name_the_method():
    x = minidl.tensor(_randn((3, 4)))
    idx = minidl.tensor([[0, 1], [1, 2], [2, 3]])
    cases = [
        (RuntimeError, "gather.*index 4 is out of bounds for dimension 1 with size 4",
         lambda: x.gather(1, minidl.tensor([[4], [0], [0]]))),
        (RuntimeError, "gather.*index -1 is out of bounds", lambda: x.gather(1, minidl.tensor([[-1], [0], [0]]))),
        (RuntimeError, "gather.*Expected dtype int64 or int32 for index", lambda: x.gather(1, idx.float())),
        (RuntimeError, "gather.*same number of dimensions", lambda: x.gather(1, minidl.tensor([0, 1]))),
        (RuntimeError, "gather.*no larger than self", lambda: x.gather(1, minidl.zeros(4, 1, dtype=minidl.int64))),
        (IndexError, "gather.*dim 2 is out of range", lambda: x.gather(2, idx)),
        (TypeError, "gather.*'index' must be Tensor", lambda: x.gather(1, [[0]])),
        (RuntimeError, "scatter.*self.dtype to be equal to src.dtype",
         lambda: x.scatter(1, idx, minidl.ones(3, 2, dtype=minidl.float32))),
        (RuntimeError, "scatter.*no larger size than src", lambda: x.scatter(1, idx, minidl.ones(3, 1, dtype=minidl.float64))),
        (RuntimeError, "scatter.*Expected dtype int64 or int32 for index", lambda: x.scatter(1, idx.float(), 1.0)),
        (RuntimeError, "scatter_add.*index 5 is out of bounds",
         lambda: x.scatter_add(1, minidl.tensor([[5]]), minidl.ones(1, 1, dtype=minidl.float64))),
        (TypeError, "scatter_add.*'src'.*must be Tensor", lambda: x.scatter_add(1, idx, 7)),
        (IndexError, "index_select.*vector", lambda: x.index_select(0, idx)),
        (IndexError, "index_select.*index 3 is out of bounds", lambda: x.index_select(0, minidl.tensor([3]))),
        (RuntimeError, "index_select.*int64 or int32", lambda: x.index_select(0, minidl.tensor([1.0]))),
        (IndexError, "index_select.*dim -3 is out of range", lambda: x.index_select(-3, minidl.tensor([0]))),
        (RuntimeError, "topk.*selected index k out of range", lambda: x.topk(5)),
        (RuntimeError, "topk.*selected index k out of range", lambda: x.topk(-1)),
        (IndexError, "sort.*dim 2 is out of range", lambda: x.sort(2)),
        (TypeError, "sort", lambda: x.sort(0, False, True)),  # stable is keyword-only, as in PyTorch
        (RuntimeError, "repeat.*can not be smaller", lambda: x.repeat(2)),
        (RuntimeError, "repeat.*non-negative", lambda: x.repeat(2, -1)),
        (RuntimeError, "norm.*floating point.*Got Long", lambda: x.long().norm()),
        (NotImplementedError, "norm.*'nuc'", lambda: x.norm(p="nuc")),
    ]
    for error, pattern, call in cases:
        with pytest.raises(error, match=pattern):
            call()


def test_errors_come_before_any_work():
    x = minidl.tensor(_randn((3, 4)))
    before = x.numpy().copy(), x._version
    with pytest.raises(RuntimeError):
        x.scatter_(1, minidl.tensor([[9]]), 1.0)
    np.testing.assert_array_equal(x.numpy(), before[0])
    assert x._version == before[1]
