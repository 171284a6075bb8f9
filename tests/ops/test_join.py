"""cat, stack, split, chunk (minidl/ops/join.py) against PyTorch: forward and every gradient."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from helpers import assert_close, compare_with_torch, gradcheck_with_random_dy
from minidl.functional.shape import cat, chunk, split, stack
from minidl.ops.join import promote_types

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def compare_pieces_with_torch(torch, fn_minidl, fn_torch, array, seed=0, rtol=1e-10):
    """Like compare_with_torch for a function returning a TUPLE of tensors: each piece gets its
    own random upstream gradient, and the input's gradient (their sum) is compared."""
    rng = np.random.default_rng(seed)
    ours = minidl.tensor(array, dtype=minidl.float64, requires_grad=True)
    theirs = torch.tensor(array, dtype=torch.float64, requires_grad=True)
    pieces, pieces_ref = fn_minidl(ours), fn_torch(theirs)
    assert isinstance(pieces, tuple) and len(pieces) == len(pieces_ref)
    loss, loss_ref = minidl.tensor(0.0, dtype=minidl.float64), 0.0
    for p, q in zip(pieces, pieces_ref):
        assert_close(p, q.detach().numpy(), rtol, 1e-12, "piece")
        dy = rng.standard_normal(q.shape)
        loss = loss + (p * minidl.tensor(dy)).sum()
        loss_ref = loss_ref + (q * torch.tensor(dy)).sum()
    loss.backward()
    loss_ref.backward()
    assert_close(ours.grad, theirs.grad.numpy(), rtol, 1e-12, "gradient")
    return pieces


# ----------------------------------------------------------------------------- cat, stack
@SETTINGS
@given(ndim=st.integers(1, 4), count=st.integers(1, 4), data=st.data())
def test_cat_matches_torch(torch, backend, ndim, count, data):
    base = data.draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))
    dim = data.draw(st.integers(-ndim, ndim - 1))
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=count, max_size=count))
    shapes = [tuple(s if i != dim % ndim else n for i, s in enumerate(base)) for n in sizes]
    arrays = [_randn(shape, seed=t) for t, shape in enumerate(shapes)]
    compare_with_torch(torch, lambda *xs: cat(list(xs), dim), lambda *xs: torch.cat(xs, dim), arrays)


@SETTINGS
@given(ndim=st.integers(0, 3), count=st.integers(1, 4), data=st.data())
def test_stack_matches_torch(torch, backend, ndim, count, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    dim = data.draw(st.integers(-ndim - 1, ndim))
    arrays = [_randn(shape, seed=t) for t in range(count)]
    compare_with_torch(torch, lambda *xs: stack(xs, dim=dim), lambda *xs: torch.stack(xs, dim=dim), arrays)


def test_cat_and_stack_gradcheck(backend):
    a, b, c = _randn((2, 3, 1)), _randn((2, 1, 1), 1), _randn((2, 4, 1), 2)
    assert gradcheck_with_random_dy(lambda *xs: cat(xs, 1), [a, b, c])
    assert gradcheck_with_random_dy(lambda *xs: cat(xs, -1), [a, a.copy()])
    assert gradcheck_with_random_dy(lambda *xs: stack(xs, 2), [a, _randn((2, 3, 1), 3)])


def test_cat_gradient_is_a_slice_of_dy_per_input(backend):
    a = minidl.tensor(_randn((2, 3)), requires_grad=True)
    b = minidl.tensor(_randn((2, 2), 1), requires_grad=True)
    dy = _randn((2, 5), 2)
    cat([a, b], dim=1).backward(minidl.tensor(dy))
    np.testing.assert_array_equal(a.grad.numpy(), dy[:, :3])
    np.testing.assert_array_equal(b.grad.numpy(), dy[:, 3:])


def test_cat_of_a_tensor_with_itself_and_a_constant(backend):
    x = minidl.tensor(_randn((2, 3)), requires_grad=True)
    const = minidl.tensor(_randn((1, 3), 1))
    dy = _randn((5, 3), 2)
    y = cat((x, const, x), dim=0)
    assert y.requires_grad and const.grad is None
    y.backward(minidl.tensor(dy))
    np.testing.assert_allclose(x.grad.numpy(), dy[:2] + dy[3:], rtol=1e-15)  # used twice: the slices add
    assert const.grad is None


@pytest.mark.parametrize("dtypes", [("int64", "float32"), ("float32", "float64"), ("bool", "int64"),
                                    ("int64", "int64"), ("bool", "float64")])
def test_cat_and_stack_promote_dtypes_like_torch(torch, backend, dtypes):
    arrays = [np.ones((2, 2), dtype=d) for d in dtypes]
    expected = torch.cat([torch.from_numpy(a) for a in arrays]).dtype
    got = cat([minidl.tensor(a) for a in arrays])
    assert str(got.dtype) == str(expected).replace("torch.", "")
    assert stack([minidl.tensor(a) for a in arrays]).dtype == got.dtype
    assert promote_types([np.dtype(d) for d in dtypes]) == got.dtype


def test_cat_promoted_gradient_has_each_input_dtype(backend):
    a = minidl.tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    b = minidl.tensor(np.ones((1, 2)), requires_grad=True)
    y = cat([a, b])
    assert y.dtype == minidl.float64
    y.sum().backward()
    assert a.grad.dtype == minidl.float32 and b.grad.dtype == minidl.float64


def test_cat_skips_legacy_empty_1d_tensors_like_torch(torch, backend):
    x = _randn((2, 3))
    got = cat([minidl.tensor(x), minidl.zeros(0, dtype=minidl.float64)], dim=1)
    expected = torch.cat([torch.tensor(x), torch.zeros(0, dtype=torch.float64)], dim=1)
    assert_close(got, expected.numpy())


def test_cat_and_stack_errors(backend):
    a, b = minidl.zeros(2, 3), minidl.zeros(2, 4)
    with pytest.raises(ValueError, match=r"cat: expected a non-empty list"):
        cat([])
    with pytest.raises(TypeError, match=r"cat: expected a list or tuple of Tensors, got Tensor"):
        cat(a)
    with pytest.raises(TypeError, match=r"cat: expected a list of Tensors, got ndarray at position 1"):
        cat([a, np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"cat: tensors must have the same shape except in dimension 0, "
                                         r"but tensor 0 has shape \(2, 3\) and tensor 1 has shape \(2, 4\)"):
        cat([a, b])
    with pytest.raises(ValueError, match=r"tensor 0 has shape \(2, 3\) and tensor 2 has shape \(3,\)"):
        cat([a, a, minidl.zeros(3)], dim=1)
    with pytest.raises(IndexError, match=r"cat: dim 2 is out of range for a tensor with 2 dimensions"):
        cat([a, b], dim=2)
    with pytest.raises(ValueError, match=r"cat: zero-dimensional tensor \(at position 1\)"):
        cat([a, minidl.tensor(1.0)])
    with pytest.raises(ValueError, match=r"stack: expects each tensor to be equal size, but tensor 0 has "
                                         r"shape \(2, 3\) and tensor 1 has shape \(2, 4\)"):
        stack([a, b])
    with pytest.raises(ValueError, match=r"stack: expected a non-empty list"):
        stack(())
    with pytest.raises(IndexError, match=r"stack: dim 3 is out of range"):
        stack([a, a], dim=3)


# ----------------------------------------------------------------------------- split, chunk
@SETTINGS
@given(ndim=st.integers(1, 3), data=st.data())
def test_split_matches_torch(torch, backend, ndim, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    dim = data.draw(st.integers(-ndim, ndim - 1))
    n = shape[dim]
    if data.draw(st.booleans()):
        arg = data.draw(st.integers(1, n + 1))  # one size; the last piece may be smaller
    else:
        cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
        arg = [b - a for a, b in zip([0] + cuts, cuts + [n])]  # sections adding up to n (zeros allowed)
    compare_pieces_with_torch(torch, lambda x: split(x, arg, dim), lambda x: torch.split(x, arg, dim), _randn(shape))


@SETTINGS
@given(n=st.integers(1, 9), chunks=st.integers(1, 6), dim=st.sampled_from([0, 1, -1]))
def test_chunk_matches_torch(torch, backend, n, chunks, dim):
    shape = (n, 2) if dim == 0 else (2, n)
    compare_pieces_with_torch(torch, lambda x: chunk(x, chunks, dim), lambda x: torch.chunk(x, chunks, dim),
                              _randn(shape))


def test_split_gradcheck(backend):
    x = _randn((5, 3))
    assert gradcheck_with_random_dy(lambda t: cat([p * (i + 1) for i, p in enumerate(split(t, 2))]), [x])
    assert gradcheck_with_random_dy(lambda t: split(t, [1, 0, 2], dim=1)[2], [x])
    assert gradcheck_with_random_dy(lambda t: chunk(t, 3, dim=-1)[1], [x])


def test_unused_pieces_get_zero_gradient_and_used_ones_add_up(backend):
    x = minidl.tensor(_randn((6, 2)), requires_grad=True)
    first, second, third = split(x, 2)
    (first.sum() + 3 * third.sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.repeat([[1.0], [1.0], [0.0], [0.0], [3.0], [3.0]], 2, 1))
    x.grad = None
    a, b = chunk(x, 2, dim=1)  # pieces recombined: the gradient passes through unchanged
    dy = _randn((6, 2), 1)
    cat([a, b], dim=1).backward(minidl.tensor(dy))
    np.testing.assert_array_equal(x.grad.numpy(), dy)


def test_split_and_chunk_edge_cases_like_torch(torch, backend):
    empty = np.zeros((0, 3))
    for ours, theirs in [(split(minidl.tensor(empty), 2), torch.split(torch.tensor(empty), 2)),
                         (split(minidl.tensor(empty), 0), torch.split(torch.tensor(empty), 0)),
                         (chunk(minidl.tensor(empty), 3), torch.chunk(torch.tensor(empty), 3)),
                         (chunk(minidl.zeros(6, 1), 4), torch.chunk(torch.zeros(6, 1), 4)),
                         (split(minidl.zeros(5, 1), 10), torch.split(torch.zeros(5, 1), 10))]:
        assert [p.shape for p in ours] == [tuple(q.shape) for q in theirs]


def test_split_and_chunk_errors(backend):
    x = minidl.zeros(5, 3)
    with pytest.raises(ValueError, match=r"split: sections \(2, 2\) add up to 4 but dimension 0 of the tensor "
                                         r"of shape \(5, 3\) has size 5"):
        split(x, [2, 2])
    with pytest.raises(ValueError, match=r"split: sections must be non-negative, got \(6, -1\)"):
        split(x, [6, -1])
    with pytest.raises(ValueError, match=r"split: split_size must be non-negative, got -1"):
        split(x, -1)
    with pytest.raises(ValueError, match=r"split: split_size can only be 0 if the size of dimension 0 is 0"):
        split(x, 0)
    with pytest.raises(TypeError, match=r"split: split_size_or_sections must be an int or a list of ints"):
        split(x, 2.5)
    with pytest.raises(IndexError, match=r"split: dim 2 is out of range"):
        split(x, 1, dim=2)
    with pytest.raises(ValueError, match=r"split: expects at least a 1-dimensional tensor"):
        split(minidl.tensor(1.0), 1)
    with pytest.raises(ValueError, match=r"chunk: chunks must be a positive int, got 0"):
        chunk(x, 0)
    with pytest.raises(IndexError, match=r"chunk: dim -3 is out of range"):
        chunk(x, 2, dim=-3)
