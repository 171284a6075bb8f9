"""Tensor methods against PyTorch: comparisons, bitwise/logical ops, any/all, dtype conversions,
new_*, softmax methods, and their bad-argument errors."""
import math
import warnings

import numpy as np
import pytest

import minidl
from helpers import compare_with_torch

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)


def _same(ours, theirs):
    """Same shape, dtype (by name) and values."""
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), (ours.dtype, theirs.dtype)
    np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


def _pair(torch, array, dtype):
    return minidl.tensor(np.asarray(array, dtype=dtype)), torch.tensor(np.asarray(array, dtype=dtype))


A = [[1.5, -2.0, 3.0], [0.0, 2.0, 3.0]]


@pytest.mark.parametrize("name", ["eq", "ne", "lt", "le", "gt", "ge"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "uint8", "bool"])
def test_comparisons_match_torch(torch, name, dtype):
    ours, theirs = _pair(torch, np.abs(A), dtype)
    others = [(minidl.tensor(np.array([2.0, 0.0, 3.0])), torch.tensor(np.array([2.0, 0.0, 3.0]))),  # broadcast
              (minidl.tensor(np.array(2.0, dtype=np.float32)), torch.tensor(2.0)),  # 0-d float
              (minidl.tensor([[1], [3]]), torch.tensor([[1], [3]])), (2, 2), (2.5, 2.5), (True, True)]
    for other_ours, other_theirs in others:
        _same(getattr(ours, name)(other_ours), getattr(theirs, name)(other_theirs))
    operator = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__"}[name]
    _same(getattr(ours, operator)(1.5), getattr(theirs, operator)(1.5))


def test_comparisons_promote_like_torch(torch):
    """int64 2**24 + 1 vs the float32 2**24: PyTorch compares in float32, where they are equal
    (NumPy would compare in float64, where they differ)."""
    big = 2 ** 24 + 1
    ours = minidl.tensor([big]) == minidl.tensor(np.array([2.0 ** 24], dtype=np.float32))
    theirs = torch.tensor([big]) == torch.tensor([2.0 ** 24], dtype=torch.float32)
    _same(ours, theirs)
    assert ours.item() is True
    _same(minidl.tensor([255], dtype=minidl.int64) > minidl.tensor(np.array([1], dtype=np.uint8)),
          torch.tensor([255]) > torch.tensor([1], dtype=torch.uint8))
    x = minidl.tensor([1.0])
    assert (x == None) is False and (x != None) is True  # noqa: E711  (PyTorch's answer)
    assert (x == "a") is False
    with pytest.raises(TypeError, match="eq.*'other' must be Tensor or Number"):
        x.eq(None)
    with pytest.raises(ValueError, match="lt: shapes \\(2,\\) and \\(3,\\) cannot be broadcast"):
        minidl.tensor([1.0, 2.0]).lt(minidl.tensor([1.0, 2.0, 3.0]))


def test_comparisons_have_no_gradient():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x.gt(1.5)
    assert y.dtype == minidl.bool and not y.requires_grad and y.grad_fn is None


@pytest.mark.parametrize("op", ["&", "|", "^"])
@pytest.mark.parametrize("dtypes_", [("bool", "bool"), ("int64", "int64"), ("int32", "int64"),
                                     ("uint8", "bool"), ("bool", "int32")])
def test_bitwise_ops_match_torch(torch, op, dtypes_):
    a = np.array([[0, 1, 5, 6], [3, 0, 2, 7]])
    b = np.array([1, 0, 3, 6])
    ours_a, theirs_a = _pair(torch, a, dtypes_[0])
    ours_b, theirs_b = _pair(torch, b, dtypes_[1])
    apply = {"&": lambda x, y: x & y, "|": lambda x, y: x | y, "^": lambda x, y: x ^ y}[op]
    _same(apply(ours_a, ours_b), apply(theirs_a, theirs_b))
    _same(apply(ours_a, 3), apply(theirs_a, 3))
    _same(apply(True, ours_a), apply(True, theirs_a))  # reflected
    method = {"&": "bitwise_and", "|": "bitwise_or", "^": "bitwise_xor"}[op]
    _same(getattr(ours_a, method)(ours_b), getattr(theirs_a, method)(theirs_b))


@pytest.mark.parametrize("dtype", ["bool", "int64", "int32", "uint8"])
def test_invert_matches_torch(torch, dtype):
    ours, theirs = _pair(torch, [[0, 1, 5], [3, 0, 2]], dtype)
    _same(~ours, ~theirs)
    _same(ours.bitwise_not(), theirs.bitwise_not())


def test_in_place_bitwise_ops(torch):
    ours, theirs = _pair(torch, [True, False, True], "bool")
    mask = [False, False, True]
    ours &= minidl.tensor(mask)
    theirs &= torch.tensor(mask)
    ours |= minidl.tensor([True, False, False])
    theirs |= torch.tensor([True, False, False])
    ours ^= True
    theirs ^= True
    _same(ours, theirs)
    with pytest.raises(RuntimeError, match="can't be cast"):
        b = minidl.tensor([True])
        b &= 3  # the result is int64, which a bool tensor cannot hold (PyTorch raises too)


def test_bitwise_ops_refuse_floats_like_torch():
    x = minidl.tensor([1.0, 2.0])
    with pytest.raises(NotImplementedError, match="bitwise_and.*not implemented for 'Float'"):
        x & x
    with pytest.raises(NotImplementedError, match="bitwise_or.*not implemented for 'Float'"):
        minidl.tensor([True]) | 2.5
    with pytest.raises(NotImplementedError, match="bitwise_xor"):
        minidl.tensor([1]) ^ x
    with pytest.raises(TypeError, match="bitwise_not.*only implemented on integer and Boolean"):
        ~x


@pytest.mark.parametrize("name", ["any", "all"])
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "uint8"])
def test_any_all_match_torch(torch, name, dtype):
    a = np.array([[[0, 1, 0], [0, 0, 0]], [[2, 3, 1], [1, 0, 4]]])
    ours, theirs = _pair(torch, a, dtype)
    _same(getattr(ours, name)(), getattr(theirs, name)())
    for dim in (0, 1, -1, (0, 2), (0, 1, 2)):
        for keepdim in (False, True):
            _same(getattr(ours, name)(dim, keepdim), getattr(theirs, name)(dim, keepdim))
            _same(getattr(ours, name)(dim=dim, keepdim=keepdim), getattr(theirs, name)(dim=dim, keepdim=keepdim))
    _same(getattr(ours, name)(keepdim=True), getattr(theirs, name)(keepdim=True))
    nan = _pair(torch, [0.0, math.nan], "float64")
    _same(getattr(nan[0], name)(), getattr(nan[1], name)())
    empty = _pair(torch, np.zeros((0, 3)), dtype)
    _same(getattr(empty[0], name)(0), getattr(empty[1], name)(0))
    with pytest.raises(IndexError, match=f"{name}: dim 3 is out of range"):
        getattr(ours, name)(3)


@pytest.mark.parametrize("method", ["float", "double", "long", "int", "bool", "half"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_dtype_conversions_match_torch(torch, method, dtype):
    ours, theirs = _pair(torch, [[1.7, -2.2, 0.0], [3.5, 0.2, -0.7]] if dtype.startswith("float") else
                         [[1, 0, 1], [0, 1, 1]], dtype)
    _same(getattr(ours, method)(), getattr(theirs, method)())


def test_int_is_int32_and_conversions_from_a_graph(torch):
    x = minidl.tensor([1.5, -2.5], requires_grad=True)
    t = torch.tensor([1.5, -2.5], requires_grad=True)
    assert x.int().dtype == np.dtype("int32")
    for method in ("long", "int", "bool"):  # no gradient through a cast to an integer or bool
        assert getattr(x, method)().requires_grad == getattr(t, method)().requires_grad is False
    for method in ("double", "half"):
        assert getattr(x, method)().requires_grad == getattr(t, method)().requires_grad is True
    compare_with_torch(torch, lambda a: a.float().double() * 2, lambda a: a.float().double() * 2,
                       [np.array([1.25, -3.5])])


def test_type_as_matches_torch(torch):
    a, ta = _pair(torch, [1.7, -2.2], "float64")
    for other_dtype in ("float32", "int64", "int32", "bool", "float64"):
        b, tb = _pair(torch, [1], other_dtype)
        _same(a.type_as(b), ta.type_as(tb))
    assert a.type_as(a) is a
    compare_with_torch(torch, lambda x: x.type_as(x.float()) * 3, lambda x: x.type_as(x.float()) * 3,
                       [np.array([0.5, 1.5])])


@pytest.mark.parametrize("dtype", ["float64", "int64", "bool"])
def test_new_functions_match_torch(torch, device, dtype):
    ours, theirs = _pair(torch, [1, 0], dtype)
    _same(ours.new_zeros(2, 3), theirs.new_zeros(2, 3))
    _same(ours.new_zeros((2, 3)), theirs.new_zeros((2, 3)))
    _same(ours.new_ones([3]), theirs.new_ones([3]))
    _same(ours.new_full((2, 2), 7), theirs.new_full((2, 2), 7))
    _same(ours.new_tensor([[1.5, 2.0]]), theirs.new_tensor([[1.5, 2.0]]))
    _same(ours.new_zeros(2, dtype=minidl.float32), theirs.new_zeros(2, dtype=torch.float32))
    _same(ours.new_tensor([1, 2], dtype=minidl.int64), theirs.new_tensor([1, 2], dtype=torch.int64))
    empty = ours.new_empty(4, 1)
    assert empty.shape == (4, 1) and empty.dtype == ours.dtype
    for made in (ours.new_zeros(1), ours.new_ones(1), ours.new_full((1,), 1), ours.new_tensor([1]),
                 ours.new_empty(1)):
        assert made.device == ours.device and made.is_leaf and not made.requires_grad
    assert ours.new_zeros(2, device="cpu").device == "cpu"
    w = minidl.tensor([1.0]).new_ones(3, requires_grad=True)
    assert w.requires_grad and w.is_leaf
    new = minidl.tensor(np.zeros(2))
    data = new.new_tensor(new)
    data[0] = 5.0  # a copy
    assert new[0].item() == 0.0
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients"):
        minidl.tensor([1]).new_zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match="new_zeros: sizes must be ints"):
        ours.new_zeros(2.5)
    with pytest.raises(TypeError, match="new_full: sizes must be ints"):
        ours.new_full((2, "a"), 1)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_methods_match_torch(torch, name):
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    for dim in (0, 1, -1):
        compare_with_torch(torch, lambda a: getattr(a, name)(dim), lambda a: getattr(a, name)(dim), [x])
    compare_with_torch(torch, lambda a: getattr(a, name)(1, dtype=minidl.float64),
                       lambda a: getattr(a, name)(1, dtype=torch.float64), [x])
    with pytest.raises(IndexError, match=f"{name}: dim 3 is out of range"):
        getattr(minidl.tensor(x), name)(3)


def test_existing_methods_behave_like_torch(torch):
    """size(dim), numel, dim, tolist, clone, masked_fill, split, chunk, view_as, expand_as,
    argmax/argmin, is_leaf: already there before these additions; checked here against PyTorch."""
    a = np.arange(24.0).reshape(2, 3, 4) % 5
    ours, theirs = minidl.tensor(a), torch.tensor(a)
    assert ours.size(1) == theirs.size(1) and ours.size(-1) == theirs.size(-1)
    assert tuple(ours.size()) == tuple(theirs.size())
    assert ours.numel() == theirs.numel() and ours.dim() == theirs.dim()
    assert ours.tolist() == theirs.tolist() and ours.sum().tolist() == theirs.sum().tolist()
    _same(ours.permute(2, 0, 1).clone(), theirs.permute(2, 0, 1).clone())
    _same(ours.masked_fill(ours > 2, -1.0), theirs.masked_fill(theirs > 2, -1.0))
    for o, t in zip(ours.split([1, 3], dim=2), theirs.split([1, 3], dim=2)):
        _same(o, t)
    for o, t in zip(ours.chunk(3, dim=2), theirs.chunk(3, dim=2)):
        _same(o, t)
    _same(ours.view_as(ours.reshape(6, 4)), theirs.view_as(theirs.reshape(6, 4)))
    _same(ours[:, :1].expand_as(ours), theirs[:, :1].expand_as(theirs))
    for kwargs in ({}, {"dim": 1}, {"dim": -1, "keepdim": True}, {"keepdim": True}):
        _same(ours.argmax(**kwargs), theirs.argmax(**kwargs))
        _same(ours.argmin(**kwargs), theirs.argmin(**kwargs))
    with pytest.raises(IndexError):
        ours.size(3)
    w = minidl.tensor([1.0], requires_grad=True)
    assert w.is_leaf and not (w * 2).is_leaf and minidl.tensor([1.0]).is_leaf


def test_non_leaf_grad_warns_like_torch():
    w = minidl.tensor([1.0], requires_grad=True)
    y = w * 2
    with pytest.warns(UserWarning, match="not a leaf Tensor is being accessed"):
        assert y.grad is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert w.grad is None  # a leaf: no warning
        y.retain_grad()
        assert y.grad is None  # retain_grad: no warning
