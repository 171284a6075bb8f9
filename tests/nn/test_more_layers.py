"""The nn layers added with the wt-nnlayers branch (activations, padding, pixel shuffle,
LayerNorm/GroupNorm/InstanceNorm2d) against PyTorch's modules: repr, parameters, state_dict,
forward and gradients."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
from helpers import assert_close, compare_with_torch


def _randn(shape, seed=0, scale=3.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def _check_module(torch, ours, theirs, shape, clone=False, seed=0):
    """Same repr, same state_dict (keys, shapes, values), same forward and gradients (of the input
    and of every parameter) for a float64 random input."""
    assert repr(ours) == repr(theirs)
    sd, sd_ref = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(sd_ref)
    for k in sd:
        assert_close(sd[k], sd_ref[k].detach().numpy(), what=k)
    ours.double()
    theirs.double()
    names = [n for n, _ in theirs.named_parameters()]
    assert names == [n for n, _ in ours.named_parameters()]
    rng = np.random.default_rng(seed + 1)
    values = [rng.standard_normal(tuple(p.shape)) for p in theirs.parameters()]  # not the init values

    def run(lib, module, x, *params):
        with lib.no_grad():
            for p, v in zip(module.parameters(), values):
                p.copy_(lib.tensor(v))
        y = module(x.clone() if clone else x)
        return y

    arrays = [_randn(shape, seed)]

    # the parameters' gradients: run through the modules, compare .grad afterwards
    ys = compare_with_torch(torch, lambda x: run(minidl, ours, x), lambda x: run(torch, theirs, x), arrays, seed=seed)
    for (n, p), p_ref in zip(ours.named_parameters(), theirs.parameters()):
        assert_close(p.grad, p_ref.grad.numpy(), what=f"gradient of {n}")
    return ys


ACTIVATIONS = [
    ("Hardtanh", ()), ("Hardtanh", (-2.0, 0.5)), ("Hardtanh", (-2.0, 0.5, True)), ("ReLU6", ()), ("ReLU6", (True,)),
    ("ELU", ()), ("ELU", (0.5,)), ("ELU", (0.5, True)), ("GELU", ()), ("GELU", ("tanh",)), ("SiLU", ()),
    ("SiLU", (True,)), ("Softplus", ()), ("Softplus", (2.0, 5.0)), ("PReLU", ()), ("PReLU", (3,)),
    ("PReLU", (3, -0.5)), ("PReLU", (1, 0.1)),
]


@pytest.mark.parametrize("name,args", ACTIVATIONS)
def test_activation_modules_match_torch(torch, name, args):
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    _check_module(torch, ours, theirs, (2, 3, 4, 5), clone=True)


def test_prelu_parameter_and_reset(torch):
    m = nn.PReLU(4, init=0.1, dtype=minidl.float64)
    assert m.weight.shape == (4,) and m.weight.dtype == minidl.float64 and m.weight.requires_grad
    np.testing.assert_array_equal(m.weight.detach().numpy(), [0.1] * 4)
    with minidl.no_grad():
        m.weight.fill_(3.0)
    m.reset_parameters()
    np.testing.assert_array_equal(m.weight.detach().numpy(), [0.1] * 4)
    assert list(m.state_dict()) == list(torch.nn.PReLU(4).state_dict()) == ["weight"]


def test_hardtanh_refuses_max_not_above_min():
    with pytest.raises(ValueError, match="Hardtanh: max_val must be greater than min_val"):
        nn.Hardtanh(1.0, 1.0)


def test_inplace_modules_write_into_their_input():
    for m in (nn.ReLU6(True), nn.Hardtanh(inplace=True), nn.ELU(inplace=True), nn.SiLU(True)):
        x = minidl.randn(3, 4)
        assert m(x) is x
