"""ModuleDict, ParameterList, ParameterDict, Flatten, Unflatten against PyTorch's."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
from helpers import compare_with_torch, gradcheck_with_random_dy


def test_module_dict_like_torch(torch):
    ours = nn.ModuleDict({"b": nn.Linear(2, 3), "a": nn.ReLU()})
    theirs = torch.nn.ModuleDict({"b": torch.nn.Linear(2, 3), "a": torch.nn.ReLU()})
    for d, lib in ((ours, minidl), (theirs, torch)):
        d["c"] = lib.nn.Linear(3, 1)
        d.update([("d", lib.nn.Identity())])
        del d["a"]
    assert list(ours.keys()) == list(theirs.keys()) == ["b", "c", "d"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert "c" in ours and "a" not in ours and len(ours) == len(theirs) == 3
    assert len(list(ours.parameters())) == len(list(theirs.parameters())) == 4
    assert isinstance(ours.pop("d"), nn.Identity) and list(ours) == ["b", "c"]
    assert repr(ours).replace("minidl", "torch") == repr(theirs.pop("d") and theirs)
    for lib, d in ((nn, ours), (torch.nn, theirs)):
        with pytest.raises(TypeError, match="element #0 should be Iterable; isint"):
            lib.ModuleDict([1])
        with pytest.raises(ValueError, match="element #0 has length 1; 2 is required"):
            lib.ModuleDict([("x",)])
        d.clear()
        assert len(d) == 0


def test_parameter_list_like_torch(torch):
    ours = nn.ParameterList([minidl.ones(2), nn.Parameter(minidl.zeros(3, 2))])
    theirs = torch.nn.ParameterList([torch.ones(2), torch.nn.Parameter(torch.zeros(3, 2))])
    ours.append(minidl.full((1,), 2.0))
    theirs.append(torch.full((1,), 2.0))
    ours.extend([minidl.ones(4)])
    theirs.extend([torch.ones(4)])
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0", "1", "2", "3"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours)
    assert [tuple(p.shape) for p in ours] == [tuple(p.shape) for p in theirs]
    assert len(ours[1:3]) == 2 and ours[-1].shape == (4,)
    assert repr(ours).replace("float32", "torch.float32") == repr(theirs)
    (ours[0] * 3).sum().backward()  # registered: they are the model's parameters
    assert np.array_equal(ours[0].grad.numpy(), [3.0, 3.0])
    with pytest.raises(IndexError):
        ours[4]


def test_parameter_dict_like_torch(torch):
    ours = nn.ParameterDict({"w": minidl.ones(2), "b": nn.Parameter(minidl.zeros(3))})
    theirs = torch.nn.ParameterDict({"w": torch.ones(2), "b": torch.nn.Parameter(torch.zeros(3))})
    for d, lib in ((ours, minidl), (theirs, torch)):
        d["s"] = lib.ones(1)
        d.update({"t": lib.zeros(2)})
        assert d.get("nope") is None
        assert d.setdefault("w").shape == (2,)
        del d["b"]
    assert list(ours.keys()) == list(theirs.keys()) == ["w", "s", "t"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.popitem()[0] == theirs.popitem()[0] == "t"
    assert list(ours.copy().keys()) == ["w", "s"] and "w" in ours
    assert all(isinstance(p, nn.Parameter) for p in ours.values())
    ours.clear()
    with pytest.raises(KeyError):
        ours.popitem()
    with pytest.raises(AttributeError):  # PyTorch reads the attribute
        ours["w"]


@pytest.mark.parametrize("start_dim,end_dim", [(1, -1), (0, 2), (2, 3), (-3, -2)])
def test_flatten_and_unflatten_like_torch(torch, rng, start_dim, end_dim):
    x = rng.standard_normal((3, 2, 5, 7))
    y = compare_with_torch(torch, nn.Flatten(start_dim, end_dim), torch.nn.Flatten(start_dim, end_dim), [x])
    sizes = x.shape[start_dim:(end_dim % 4) + 1]
    dim = start_dim % 4  # the merged dim, counted from the front
    compare_with_torch(torch, lambda t: nn.Unflatten(dim, sizes)(nn.Flatten(start_dim, end_dim)(t)),
                       lambda t: torch.nn.Unflatten(dim, sizes)(torch.nn.Flatten(start_dim, end_dim)(t)), [x])
    assert y.shape == tuple(torch.nn.Flatten(start_dim, end_dim)(torch.tensor(x)).shape)
    assert gradcheck_with_random_dy(lambda t: nn.Unflatten(1, (-1, 2))(t), [rng.standard_normal((3, 4, 5))])
    assert repr(nn.Unflatten(1, (2, 3))) == repr(torch.nn.Unflatten(1, (2, 3)))
    assert repr(nn.Flatten()) == repr(torch.nn.Flatten())
    with pytest.raises(TypeError, match="unflattened_size must be a tuple of ints, but found type int"):
        nn.Unflatten(1, 3)
    with pytest.raises(RuntimeError, match=r"Provided sizes \[4, 2\] don't multiply up to the size of dim 1"):
        minidl.ones(4, 6).unflatten(1, (4, 2))


def test_get_parameter_and_get_buffer_like_torch(torch):
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    for m in (ours, theirs):
        assert tuple(m.get_parameter("0.weight").shape) == (2, 1, 3, 3)
        assert tuple(m.get_buffer("1.running_var").shape) == (2,)
        with pytest.raises(AttributeError, match="is not an nn.Parameter"):
            m.get_parameter("1.running_mean")
        with pytest.raises(AttributeError, match="is not a buffer"):
            m.get_buffer("0.bias")
        with pytest.raises(AttributeError, match="has no attribute `nope`"):
            m.get_parameter("0.nope")
        with pytest.raises(AttributeError, match="`weight` is not an nn.Module"):
            m.get_submodule("0.weight")
        with pytest.raises(AttributeError, match="`weight` is not an nn.Module"):
            m.get_parameter("0.weight.x")
    assert ours.get_parameter("0.weight") is ours[0].weight
    with pytest.raises(RuntimeError, match=r"half\(\): minidl computes in float32 and float64 only"):
        ours.half()
    with pytest.raises(RuntimeError, match=r"bfloat16\(\): minidl computes in float32 and float64 only"):
        ours.bfloat16()


def test_parameter_dict_order_operators_and_errors_like_torch(torch):
    """A plain dict is taken in sorted key order (an OrderedDict in its own), ``|``, ``|=``,
    ``reversed`` and a missing key as PyTorch."""
    from collections import OrderedDict

    def keys(d):
        return list(d.keys())

    for lib in (minidl, torch):
        P = lib.nn.ParameterDict
        plain = P({"b": lib.ones(1), "a": lib.ones(2), "c": lib.ones(3)})
        ordered = P(OrderedDict([("b", lib.ones(1)), ("a", lib.ones(2))]))
        assert keys(plain) == ["a", "b", "c"]
        assert keys(ordered) == ["b", "a"]
        assert list(reversed(ordered)) == ["a", "b"]
        merged = ordered | {"z": lib.ones(1), "y": lib.ones(1)}
        assert isinstance(merged, P) and keys(merged) == ["b", "a", "y", "z"] and keys(ordered) == ["b", "a"]
        right = {"q": lib.ones(1)} | ordered
        assert isinstance(right, dict) and list(right) == ["q", "b", "a"]
        ordered |= OrderedDict([("x", lib.ones(1))])
        assert keys(ordered) == ["b", "a", "x"]
        with pytest.raises(AttributeError, match="'ParameterDict' object has no attribute 'nope'"):
            ordered["nope"]


def test_unflatten_names_the_bad_element_like_torch(torch):
    for lib in (minidl, torch):
        with pytest.raises(TypeError, match="found element of type float at pos 1"):
            lib.nn.Unflatten(1, (2, 3.0))
        with pytest.raises(TypeError, match="but found type int"):
            lib.nn.Unflatten(1, 6)
