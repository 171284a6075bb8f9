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


# ----------------------------------------------------------------------------- padding, pixel shuffle
PADS = [("ZeroPad2d", (1,)), ("ZeroPad2d", ((1, 2, 0, 3),)), ("ZeroPad2d", ((-1, 2, 1, -2),)),
        ("ConstantPad2d", (2, 3.5)), ("ConstantPad2d", ((0, 1, 2, 1), -1)), ("ReflectionPad2d", (2,)),
        ("ReflectionPad2d", ((3, 0, 1, 4),)), ("ReplicationPad2d", (3,)), ("ReplicationPad2d", ((0, 5, 2, 1),))]


@pytest.mark.parametrize("name,args", PADS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (3, 5, 7)])
def test_padding_modules_match_torch(torch, name, args, shape):
    _check_module(torch, getattr(nn, name)(*args), getattr(torch.nn, name)(*args), shape)


def test_padding_modules_take_a_list_and_store_a_tuple(torch):
    assert nn.ZeroPad2d([1, 2, 3, 4]).padding == torch.nn.ZeroPad2d([1, 2, 3, 4]).padding == (1, 2, 3, 4)
    assert nn.ZeroPad2d(1).value == torch.nn.ZeroPad2d(1).value == 0.0


def test_padding_module_errors(torch):
    with pytest.raises(ValueError, match=r"ZeroPad2d: padding must be an int or a tuple of 4 ints .*got \(1, 2, 3\)"):
        nn.ZeroPad2d((1, 2, 3))
    with pytest.raises(ValueError, match="ReflectionPad2d: padding must be an int or a tuple of 4 ints"):
        nn.ReflectionPad2d(1.5)
    x = minidl.zeros(1, 1, 3, 3)
    with pytest.raises(RuntimeError, match="Padding size should be less than the corresponding input dimension"):
        nn.ReflectionPad2d(3)(x)
    with pytest.raises(RuntimeError, match="Padding size should be less than the corresponding input dimension"):
        torch.nn.ReflectionPad2d(3)(torch.zeros(1, 1, 3, 3))
    with pytest.raises(NotImplementedError, match="not supported for 2-D input"):
        nn.ReplicationPad2d(1)(minidl.zeros(3, 3))
    with pytest.raises(NotImplementedError, match="not supported for 2D input"):
        torch.nn.ReplicationPad2d(1)(torch.zeros(3, 3))


@pytest.mark.parametrize("name,r,shape", [("PixelShuffle", 2, (2, 8, 3, 5)), ("PixelShuffle", 3, (9, 2, 2)),
                                          ("PixelUnshuffle", 2, (2, 3, 4, 6)), ("PixelUnshuffle", 3, (1, 2, 3, 9))])
def test_pixel_shuffle_modules_match_torch(torch, name, r, shape):
    _check_module(torch, getattr(nn, name)(r), getattr(torch.nn, name)(r), shape)
