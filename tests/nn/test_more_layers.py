"""The nn layers added with the wt-nnlayers branch (activations, padding, pixel shuffle,
LayerNorm/GroupNorm/InstanceNorm2d) against PyTorch's modules: repr, parameters, state_dict,
forward and gradients."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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


def test_hardtanh_takes_the_deprecated_spellings(torch):
    with pytest.warns(FutureWarning, match="is deprecated and renamed to") as caught:
        ours = nn.Hardtanh(min_value=-0.5, max_value=2.0)
    assert [str(w.message).split()[3] for w in caught] == ["min_value", "max_value"]
    with pytest.warns(FutureWarning):
        theirs = torch.nn.Hardtanh(min_value=-0.5, max_value=2.0)
    assert repr(ours) == repr(theirs) == "Hardtanh(min_val=-0.5, max_val=2.0)"


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


# ----------------------------------------------------------------------------- layer, group, instance norm
NORMS = [
    ("LayerNorm", (5,), {}, (2, 3, 5)), ("LayerNorm", ((3, 5),), {"eps": 1e-3}, (2, 3, 5)),
    ("LayerNorm", ([3, 5],), {"bias": False}, (4, 3, 5)), ("LayerNorm", (5,), {"elementwise_affine": False}, (3, 5)),
    ("GroupNorm", (3, 6), {}, (2, 6, 4, 3)), ("GroupNorm", (2, 4), {"affine": False, "eps": 1e-3}, (3, 4, 5)),
    ("GroupNorm", (1, 4), {"bias": False}, (2, 4)),
    ("InstanceNorm2d", (3,), {}, (2, 3, 4, 5)), ("InstanceNorm2d", (3,), {"affine": True}, (2, 3, 4, 5)),
    ("InstanceNorm2d", (3,), {"affine": True, "bias": False}, (3, 4, 5)),
    ("InstanceNorm2d", (3,), {"affine": True, "track_running_stats": True, "momentum": 0.3}, (2, 3, 4, 5)),
]


@pytest.mark.parametrize("name,args,kwargs", [c[:3] for c in NORMS])
def test_norm_layers_match_torch(torch, name, args, kwargs):
    shape = next(c[3] for c in NORMS if c[:3] == (name, args, kwargs))
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    _check_module(torch, ours, theirs, shape)
    for k, v in ours.state_dict().items():  # running statistics after a training step
        assert_close(v, theirs.state_dict()[k].detach().numpy(), what=k)


def test_norm_layer_parameters(torch):
    m = nn.LayerNorm((2, 3), dtype=minidl.float64)
    assert m.normalized_shape == (2, 3) and m.weight.shape == (2, 3) and m.weight.dtype == minidl.float64
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(m.bias.detach().numpy(), np.zeros((2, 3)))
    g = nn.GroupNorm(2, 4)
    assert g.weight.shape == (4,) and g.bias.shape == (4,)
    assert nn.LayerNorm(4, elementwise_affine=False).weight is None
    i = nn.InstanceNorm2d(3)
    assert i.weight is None and i.running_mean is None and list(i.state_dict()) == []
    assert list(nn.InstanceNorm2d(3, track_running_stats=True).state_dict()) == \
        list(torch.nn.InstanceNorm2d(3, track_running_stats=True).state_dict())


def test_instance_norm2d_running_stats_over_steps_and_eval_match_torch(torch):
    ours = nn.InstanceNorm2d(2, affine=True, track_running_stats=True).double()
    theirs = torch.nn.InstanceNorm2d(2, affine=True, track_running_stats=True).double()
    for step in range(3):
        a = _randn((3, 2, 4, 5), step) + step
        ours(minidl.tensor(a))
        theirs(torch.tensor(a))
    for k, v in theirs.state_dict().items():
        assert_close(ours.state_dict()[k], v.numpy(), what=k)  # num_batches_tracked stays 0 in both
    ours.eval()
    theirs.eval()
    compare_with_torch(torch, ours, theirs, [_randn((2, 2, 3, 3), 9)])


def test_norm_layer_errors(torch):
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels \(6\) must be divisible by num_groups \(4\)"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"):
        torch.nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected 3D or 4D input \(got 2D input"):
        nn.InstanceNorm2d(3)(minidl.zeros(2, 3))
    with pytest.raises(ValueError, match=r"expected input's size at dim=1 to match num_features \(4\), but got: 3."):
        nn.InstanceNorm2d(4, affine=True)(minidl.zeros(2, 3, 4, 4))
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm2d(4)(minidl.zeros(2, 3, 4, 4))
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[4\]"):
        nn.LayerNorm(4)(minidl.zeros(2, 3))


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(["ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d"]),
       h=st.integers(1, 5), w=st.integers(1, 5), data=st.data())
def test_padding_modules_shape_rule_matches_torch(torch, name, h, w, data):
    low = -1 if name in ("ZeroPad2d", "ConstantPad2d") else 0
    left, right = (data.draw(st.integers(low, w - 1 if name == "ReflectionPad2d" else 4)) for _ in range(2))
    top, bottom = (data.draw(st.integers(low, h - 1 if name == "ReflectionPad2d" else 4)) for _ in range(2))
    assume(w + left + right >= 1 and h + top + bottom >= 1)
    assume(name != "ReplicationPad2d" or (w + min(left, 0) + min(right, 0) >= 1))
    padding = (left, right, top, bottom)
    args = (padding, 1.5) if name == "ConstantPad2d" else (padding,)
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    y = compare_with_torch(torch, ours, theirs, [_randn((2, 3, h, w), h * 10 + w)])
    assert y.shape == (2, 3, h + top + bottom, w + left + right)


def test_nn_functional_has_the_new_functions():
    import minidl.functional
    names = ["hardtanh", "hardtanh_", "relu6", "elu", "elu_", "gelu", "silu", "softplus", "prelu", "pixel_shuffle",
             "pixel_unshuffle", "layer_norm", "group_norm", "instance_norm", "one_hot"]
    for name in names:
        assert getattr(minidl.nn.functional, name) is getattr(minidl.functional, name)
    constructor_args = {"ELU": (), "GELU": (), "Hardtanh": (), "PReLU": (), "ReLU6": (), "SiLU": (), "Softplus": (),
                        "ConstantPad2d": (1, 0.0), "ReflectionPad2d": (1,), "ReplicationPad2d": (1,),
                        "ZeroPad2d": (1,), "PixelShuffle": (2,), "PixelUnshuffle": (2,), "GroupNorm": (2, 4),
                        "InstanceNorm2d": (3,), "LayerNorm": (4,)}
    for name, args in constructor_args.items():
        assert name in nn.__all__ and isinstance(getattr(nn, name)(*args), nn.Module)
