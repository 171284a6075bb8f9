"""Layers (Linear, Identity, activations) and containers (Sequential, ModuleList)."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn


def _load_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


# ----------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------
def test_linear_shapes_dtype_and_repr():
    torch = pytest.importorskip("torch")
    layer = nn.Linear(4, 3)
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (3,)
    assert layer.weight.dtype == minidl.float32 and layer.weight.requires_grad
    assert isinstance(layer.weight, nn.Parameter)
    assert repr(layer) == repr(torch.nn.Linear(4, 3)) == "Linear(in_features=4, out_features=3, bias=True)"
    assert repr(nn.Linear(4, 3, bias=False)) == repr(torch.nn.Linear(4, 3, bias=False))
    assert nn.Linear(4, 3, dtype=minidl.float64).weight.dtype == minidl.float64
    assert nn.Linear(4, 3, device="cpu").weight.dtype == minidl.float32
    with pytest.raises(RuntimeError, match="not available"):
        nn.Linear(4, 3, device="cuda")


def test_linear_forward_equals_formula_on_any_leading_shape():
    layer = nn.Linear(4, 3, dtype=minidl.float64)
    x = np.random.default_rng(0).standard_normal((2, 5, 4))
    y = layer(minidl.tensor(x))
    assert y.shape == (2, 5, 3)
    np.testing.assert_allclose(y.data, x @ layer.weight.detach().numpy().T + layer.bias.data, rtol=1e-12)
    no_bias = nn.Linear(4, 3, bias=False, dtype=minidl.float64)
    np.testing.assert_allclose(no_bias(minidl.tensor(x)).data, x @ no_bias.weight.detach().numpy().T, rtol=1e-12)


def test_linear_forward_and_gradients_equal_torch():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Linear(6, 4).double()
    ours = nn.Linear(6, 4, dtype=minidl.float64)
    _load_from_torch(ours, theirs)
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((7, 6)), rng.standard_normal((7, 4))
    xt = torch.tensor(x, requires_grad=True)
    xo = minidl.tensor(x, requires_grad=True)
    yt, yo = theirs(xt), ours(xo)
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=0, atol=1e-12)
    (yt * torch.tensor(dy)).sum().backward()
    (yo * minidl.tensor(dy)).sum().backward()
    np.testing.assert_allclose(xo.grad.data, xt.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.bias.grad.data, theirs.bias.grad.numpy(), rtol=0, atol=1e-12)


def test_linear_default_init_bounds_and_statistics():
    """weight, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)): std = bound / sqrt(3)."""
    layer = nn.Linear(1000, 500)
    bound = 1 / math.sqrt(1000)
    w = layer.weight.detach().numpy().astype(np.float64)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.999 * bound  # the whole interval is used
    assert abs(w.mean()) < 0.01 * bound  # standard error is 0.0008 * bound
    np.testing.assert_allclose(w.std(), 1 / math.sqrt(3 * 1000), rtol=0.01)
    b = layer.bias.detach().numpy()
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    np.testing.assert_allclose(b.std(), bound / math.sqrt(3), rtol=0.1)
    # the bias bound follows fan_in, not fan_out
    small = nn.Linear(4, 1000).bias.detach().numpy()
    assert np.abs(small).max() > 0.9 * 0.5 and np.abs(small).max() <= 0.5


def test_linear_init_is_reproducible_with_manual_seed():
    minidl.manual_seed(7)
    a = nn.Linear(5, 3)
    minidl.manual_seed(7)
    b = nn.Linear(5, 3)
    c = nn.Linear(5, 3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(b.weight.data, c.weight.data)


def test_reset_parameters_redraws():
    layer = nn.Linear(5, 3)
    before = layer.weight.detach().numpy().copy()
    layer.reset_parameters()
    assert not np.array_equal(before, layer.weight.data)


# ----------------------------------------------------------------------
# Identity and activations
# ----------------------------------------------------------------------
def test_identity_returns_its_input_and_ignores_arguments():
    x = minidl.randn(2, 3)
    assert nn.Identity(54, unused="x")(x) is x
    assert repr(nn.Identity()) == "Identity()"


@pytest.mark.parametrize(
    "cls, formula",
    [
        (nn.ReLU, lambda x: np.maximum(x, 0)),
        (nn.Sigmoid, lambda x: 1 / (1 + np.exp(-x))),
        (nn.Tanh, np.tanh),
    ],
)
def test_activation_modules_apply_their_function(cls, formula):
    x = np.random.default_rng(2).standard_normal((3, 4))
    y = cls()(minidl.tensor(x))
    np.testing.assert_allclose(y.data, formula(x), rtol=1e-12, atol=1e-15)
    assert list(cls().parameters()) == []


def test_activation_reprs_match_torch():
    torch = pytest.importorskip("torch")
    for ours, theirs in [
        (nn.ReLU(), torch.nn.ReLU()),
        (nn.ReLU(inplace=True), torch.nn.ReLU(inplace=True)),
        (nn.Sigmoid(), torch.nn.Sigmoid()),
        (nn.Tanh(), torch.nn.Tanh()),
    ]:
        assert repr(ours) == repr(theirs)


# ----------------------------------------------------------------------
# Sequential
# ----------------------------------------------------------------------
def _mlp(lib):
    return lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.ReLU(), lib.nn.Linear(8, 2), lib.nn.Tanh())


def test_sequential_repr_and_state_dict_match_torch():
    torch = pytest.importorskip("torch")
    assert repr(_mlp(minidl)) == repr(_mlp(torch))
    assert repr(_mlp(minidl)) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Linear(in_features=8, out_features=2, bias=True)\n"
        "  (3): Tanh()\n"
        ")"
    )
    nested = lambda lib: lib.nn.Sequential(_mlp(lib), lib.nn.Sequential())  # noqa: E731
    assert repr(nested(minidl)) == repr(nested(torch))
    assert list(_mlp(minidl).state_dict()) == list(_mlp(torch).state_dict())


def test_sequential_forward_equals_torch():
    torch = pytest.importorskip("torch")
    theirs = _mlp(torch).double()
    ours = _mlp(minidl).double()
    _load_from_torch(ours, theirs)
    x = np.random.default_rng(3).standard_normal((5, 4))
    np.testing.assert_allclose(
        ours(minidl.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=0, atol=1e-12
    )


def test_sequential_from_ordered_dict_uses_the_names():
    torch = pytest.importorskip("torch")

    def build(lib):
        return lib.nn.Sequential(OrderedDict([("fc", lib.nn.Linear(2, 3)), ("act", lib.nn.ReLU())]))

    seq = build(minidl)
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"] == list(build(torch).state_dict())
    assert repr(seq) == repr(build(torch))
    assert seq[0] is seq.fc and seq[-1] is seq.act


def test_sequential_indexing_len_iter_and_slices():
    seq = _mlp(minidl)
    layers = list(seq)
    assert len(seq) == 4 and len(layers) == 4
    assert seq[0] is layers[0] and seq[-1] is layers[3] and seq[-4] is layers[0]
    with pytest.raises(IndexError, match="index 4 is out of range"):
        seq[4]
    with pytest.raises(IndexError):
        seq[-5]
    part = seq[1:3]
    assert isinstance(part, nn.Sequential)
    assert list(part) == layers[1:3]  # the same module objects (modules compare by identity)
    assert [k for k in part._modules] == ["1", "2"]  # slices keep names, as in PyTorch
    assert part[0] is layers[1]


def test_sequential_append_insert_extend_delete_setitem():
    a, b, c, d = nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1), nn.Tanh()
    seq = nn.Sequential(a)
    assert seq.append(b) is seq
    assert list(seq) == [a, b]
    seq.insert(1, c)  # a, c, b
    assert [type(m).__name__ for m in seq] == ["Linear", "Linear", "ReLU"] and seq[1] is c
    seq.extend([d])  # a, c, b, d
    assert len(seq) == 4 and seq[3] is d
    del seq[1]  # a, b, d -- renumbered
    assert list(seq._modules) == ["0", "1", "2"] and seq[1] is b
    seq[0] = c
    assert seq[0] is c
    assert seq.pop(2) is d and len(seq) == 2
    both = seq + nn.Sequential(d)
    assert len(both) == 3 and both[2] is d and len(seq) == 2
    seq += nn.Sequential(a)
    assert len(seq) == 3 and seq[2] is a
    with pytest.raises(ValueError, match="Sequential"):
        seq + [a]


def test_sequential_parameters_are_registered():
    seq = _mlp(minidl)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    seq.eval()
    assert not seq[0].training


# ----------------------------------------------------------------------
# ModuleList
# ----------------------------------------------------------------------
def test_module_list_registers_and_indexes():
    layers = [nn.Linear(2, 2) for _ in range(3)]
    ml = nn.ModuleList(layers)
    assert len(ml) == 3 and ml[0] is layers[0] and ml[-1] is layers[2]
    assert list(ml) == layers
    assert [n for n, _ in ml.named_parameters()][:2] == ["0.weight", "0.bias"]
    assert len(list(ml.parameters())) == 6
    assert isinstance(ml[1:], nn.ModuleList) and ml[1:][0] is layers[1]
    with pytest.raises(IndexError):
        ml[3]
    with pytest.raises(NotImplementedError):
        ml(minidl.zeros(2))  # ModuleList has no forward


def test_module_list_append_extend_insert_iadd_add():
    a, b, c, d = (nn.Linear(1, 1) for _ in range(4))
    ml = nn.ModuleList()
    assert ml.append(a) is ml
    assert ml.extend([b]) is ml
    ml.insert(0, c)  # c, a, b
    assert list(ml) == [c, a, b]
    ml += [d]  # c, a, b, d
    assert len(ml) == 4 and ml[3] is d
    combined = ml + nn.ModuleList([a])
    assert len(combined) == 5 and len(ml) == 4
    del ml[0]
    assert list(ml._modules) == ["0", "1", "2"] and ml[0] is a
    ml[0] = b
    assert ml[0] is b
    with pytest.raises(TypeError, match="iterable"):
        ml.extend(5)


def test_module_list_repr_matches_torch():
    torch = pytest.importorskip("torch")

    def build(lib):
        return lib.nn.ModuleList(
            [lib.nn.Linear(2, 2), lib.nn.Linear(2, 2), lib.nn.Linear(2, 2), lib.nn.ReLU(),
             lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.Tanh())]
        )

    assert repr(build(minidl)) == repr(build(torch))
    assert "(0-2): 3 x Linear" in repr(build(minidl))
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList()) == "ModuleList()"


def test_module_list_inside_a_model_state_dict_matches_torch():
    torch = pytest.importorskip("torch")

    def build(lib):
        class Tower(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = lib.nn.ModuleList([lib.nn.Linear(3, 3) for _ in range(2)])
                self.out = lib.nn.Linear(3, 1)

        return Tower()

    assert list(build(minidl).state_dict()) == list(build(torch).state_dict())
    assert repr(build(minidl)) == repr(build(torch))
