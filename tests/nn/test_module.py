"""Module: registration, tree walks, state dicts, modes, dtype/device moves, repr.

Where PyTorch defines the behaviour, the same model is built in both
libraries by ONE factory (``build_net(lib)``) and the results are compared.
"""
import numpy as np
import pytest

import minidl
from minidl import nn


def build_net(lib):
    """The same model in minidl (lib=minidl) or PyTorch (lib=torch)."""

    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = lib.nn.Parameter(lib.ones(3))
            self.encoder = lib.nn.Sequential(
                lib.nn.Linear(4, 8), lib.nn.ReLU(), lib.nn.Linear(8, 6)
            )
            self.register_buffer("running", lib.zeros(6))
            self.register_buffer("scratch", lib.zeros(2), persistent=False)
            self.heads = lib.nn.ModuleList([lib.nn.Linear(6, 3), lib.nn.Linear(6, 3, bias=False)])
            # Assigned after the submodules, but a module's own parameters
            # come first in named_parameters / state_dict.
            self.offset = lib.nn.Parameter(lib.zeros(3))

        def forward(self, x):
            h = self.encoder(x)
            return self.heads[0](h) + self.heads[1](h) * self.scale + self.offset

    return Net()


def build_tied(lib):
    """Two Linear layers sharing one weight, and one module used twice."""

    class Tied(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = lib.nn.Linear(3, 3)
            self.b = lib.nn.Linear(3, 3)
            self.b.weight = self.a.weight
            self.shared = lib.nn.Linear(3, 2)
            self.seq = lib.nn.Sequential(self.shared, lib.nn.ReLU())

    return Tied()


# ----------------------------------------------------------------------
# registration
# ----------------------------------------------------------------------
def test_attribute_assignment_registers_parameters_buffers_and_modules():
    m = nn.Module()
    w = nn.Parameter(minidl.zeros(2, 2))
    child = nn.Linear(2, 2)
    buf = minidl.ones(3)
    m.w = w
    m.child = child
    m.register_buffer("buf", buf)
    m.plain = minidl.zeros(1)  # a plain Tensor attribute is NOT a buffer

    assert m._parameters["w"] is w and m.w is w
    assert m._modules["child"] is child and m.child is child
    assert m._buffers["buf"] is buf and m.buf is buf
    assert "plain" not in m._buffers and "plain" not in m._parameters
    assert "w" not in m.__dict__ and "child" not in m.__dict__
    assert [n for n, _ in m.named_parameters()] == ["w", "child.weight", "child.bias"]
    assert [n for n, _ in m.named_buffers()] == ["buf"]


def test_reassignment_moves_a_name_between_kinds_and_delattr_removes_it():
    m = nn.Module()
    m.register_buffer("x", minidl.zeros(2))
    m.x = nn.Linear(1, 1)  # now a module, no longer a buffer
    assert "x" not in m._buffers and "x" in m._modules
    m.x = nn.Parameter(minidl.zeros(2))  # now a parameter
    assert "x" in m._parameters and "x" not in m._modules
    with pytest.raises(TypeError, match="cannot assign 'Linear' as parameter 'x'"):
        m.x = nn.Linear(1, 1)  # as in PyTorch: a parameter name only takes Parameter/None
    del m.x
    assert "x" not in m._parameters
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'x'"):
        m.x


def test_register_parameter_none_is_remembered_but_skipped():
    m = nn.Linear(3, 2, bias=False)
    assert m.bias is None
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    assert list(m.state_dict()) == ["weight"]


def test_registration_errors_name_the_problem():
    m = nn.Module()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' object to parameter 'p'"):
        m.register_parameter("p", minidl.zeros(2))
    with pytest.raises(KeyError, match="contain"):
        m.register_parameter("a.b", nn.Parameter(minidl.zeros(2)))
    with pytest.raises(KeyError, match="empty string"):
        m.register_buffer("", minidl.zeros(2))
    m.limit = 3
    with pytest.raises(KeyError, match="attribute 'limit' already exists"):
        m.register_buffer("limit", minidl.zeros(2))
    with pytest.raises(TypeError, match="buffer 'b'"):
        m.register_buffer("b", np.zeros(2))
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("c", 3)
    m.p = nn.Parameter(minidl.zeros(2))
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'p'"):
        m.p = minidl.zeros(2)
    assert isinstance(m.p, nn.Parameter)  # unchanged after the failed assignment


def test_assignment_before_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(minidl.zeros(2))  # forgot super().__init__()

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Bad()


def test_forward_must_be_implemented_and_call_runs_forward():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)

    class Double(nn.Module):
        def forward(self, x, scale=2):
            return x * scale

    assert Double()(3) == 6
    assert Double()(3, scale=5) == 15


# ----------------------------------------------------------------------
# walking the tree: order and names equal PyTorch's
# ----------------------------------------------------------------------
def test_named_parameters_buffers_modules_match_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = build_net(minidl), build_net(torch)
    names = lambda it: [n for n, _ in it]  # noqa: E731
    assert names(ours.named_parameters()) == names(theirs.named_parameters())
    assert names(ours.named_parameters()) == [
        "scale", "offset", "encoder.0.weight", "encoder.0.bias", "encoder.2.weight",
        "encoder.2.bias", "heads.0.weight", "heads.0.bias", "heads.1.weight",
    ]
    assert names(ours.named_parameters(recurse=False)) == names(theirs.named_parameters(recurse=False))
    assert names(ours.named_parameters(prefix="net")) == names(theirs.named_parameters(prefix="net"))
    assert names(ours.named_buffers()) == names(theirs.named_buffers())
    assert names(ours.named_modules()) == names(theirs.named_modules())
    assert names(ours.named_children()) == names(theirs.named_children())
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert len(list(ours.modules())) == len(list(theirs.modules())) == 8


def test_shared_parameters_and_modules_are_listed_once_like_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = build_tied(minidl), build_tied(torch)
    names = lambda it: [n for n, _ in it]  # noqa: E731
    assert names(ours.named_parameters()) == names(theirs.named_parameters())
    assert "b.weight" not in names(ours.named_parameters())  # tied to a.weight
    assert len(list(ours.parameters())) == 5  # a.w, a.b, b.b, shared.w, shared.b
    assert names(ours.named_modules()) == names(theirs.named_modules())
    assert names(ours.named_modules(remove_duplicate=False)) == names(
        theirs.named_modules(remove_duplicate=False)
    )
    # state_dict lists a tied tensor under every name (as PyTorch does)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert "b.weight" in ours.state_dict() and "seq.0.weight" in ours.state_dict()


def test_apply_visits_children_before_parents_like_torch():
    torch = pytest.importorskip("torch")
    seen_ours, seen_theirs = [], []
    build_net(minidl).apply(lambda m: seen_ours.append(type(m).__name__))
    build_net(torch).apply(lambda m: seen_theirs.append(type(m).__name__))
    assert seen_ours == seen_theirs
    assert seen_ours[-1] == "Net"


def test_get_submodule():
    net = build_net(minidl)
    assert net.get_submodule("encoder.2") is net.encoder[2]
    assert net.get_submodule("") is net
    with pytest.raises(AttributeError, match="no attribute `nope`"):
        net.get_submodule("encoder.nope")


# ----------------------------------------------------------------------
# state_dict
# ----------------------------------------------------------------------
def test_state_dict_keys_match_torch_and_values_share_data():
    torch = pytest.importorskip("torch")
    ours, theirs = build_net(minidl), build_net(torch)
    sd = ours.state_dict()
    assert list(sd) == list(theirs.state_dict())
    assert "running" in sd and "scratch" not in sd  # non-persistent buffers are left out
    assert type(sd).__name__ == "OrderedDict"
    w = sd["encoder.0.weight"]
    assert type(w) is minidl.Tensor and not w.requires_grad  # detached, not a Parameter
    assert w._data is ours.encoder[0].weight._data  # shares memory (a view, not a copy)
    kept = ours.state_dict(keep_vars=True)
    assert kept["encoder.0.weight"] is ours.encoder[0].weight


def test_load_state_dict_from_torch_weights_gives_torch_outputs():
    torch = pytest.importorskip("torch")
    theirs = build_net(torch).double()
    with torch.no_grad():  # make every tensor non-trivial
        for p in theirs.parameters():
            p.normal_()
        theirs.running.normal_()
    ours = build_net(minidl).double()
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"

    x = np.random.default_rng(0).standard_normal((5, 4))
    expected = theirs(torch.tensor(x)).detach().numpy()
    got = ours(minidl.tensor(x)).data
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.running.data, theirs.running.numpy())


def test_load_state_dict_copies_in_place_casts_and_accepts_tensors():
    net = build_net(minidl)  # float32
    w = net.encoder[0].weight
    w_array = w._data
    src = {k: minidl.tensor(np.full(v.shape, 0.5), dtype=minidl.float64)
           for k, v in net.state_dict().items()}
    net.load_state_dict(src)
    assert net.encoder[0].weight is w and w._data is w_array  # identity kept
    assert w.dtype == minidl.float32  # cast to the parameter's dtype
    np.testing.assert_array_equal(w.data, np.full((8, 4), 0.5, dtype=np.float32))
    src["encoder.0.weight"].data[...] = 7  # a copy, not an alias
    assert w.data[0, 0] == 0.5


def _snapshot(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def test_load_state_dict_reports_all_problems_at_once_and_changes_nothing():
    net = build_net(minidl)
    before = _snapshot(net)
    sd = {k: np.zeros(v.shape) for k, v in net.state_dict().items()}
    del sd["heads.0.bias"]  # missing
    del sd["running"]  # missing
    sd["encoder.0.weight"] = np.zeros((3, 4))  # wrong shape
    sd["heads.1.bias"] = np.zeros(3)  # unexpected (that Linear has bias=False)
    sd["extra"] = np.zeros(1)  # unexpected
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    message = str(info.value)
    assert message.startswith("Error(s) in loading state_dict for Net:\n\t")
    assert 'Missing key(s) in state_dict: "running", "heads.0.bias". ' in message
    assert 'Unexpected key(s) in state_dict: "extra", "heads.1.bias". ' in message
    assert (
        "size mismatch for encoder.0.weight: copying a param with shape (3, 4) from checkpoint, "
        "the shape in current model is (8, 4)." in message
    )
    after = _snapshot(net)
    for k in before:  # nothing was copied, not even the valid entries
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_size_mismatch_message_exact():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

    m = M()
    sd = m.state_dict()
    sd["fc.weight"] = np.zeros((3, 4))
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(sd)
    assert str(info.value) == (
        "Error(s) in loading state_dict for M:\n\tsize mismatch for fc.weight: copying a param "
        "with shape (3, 4) from checkpoint, the shape in current model is (4, 4)."
    )


def test_load_state_dict_strict_false_matches_torch_key_lists():
    torch = pytest.importorskip("torch")
    ours, theirs = build_net(minidl), build_net(torch)
    names = list(theirs.state_dict())
    keep = [k for k in names if k not in ("offset", "encoder.2.bias")]
    extra = ["encoder.1.weight", "encoder.9.bias", "heads.1.bias", "zzz"]
    theirs_sd = {k: theirs.state_dict()[k] for k in keep}
    theirs_sd.update({k: torch.zeros(1) for k in extra})
    ours_sd = {k: v.numpy() for k, v in theirs_sd.items()}
    before = _snapshot(ours)
    r_theirs = theirs.load_state_dict(theirs_sd, strict=False)
    r_ours = ours.load_state_dict(ours_sd, strict=False)
    assert r_ours.missing_keys == r_theirs.missing_keys == ["offset", "encoder.2.bias"]
    assert r_ours.unexpected_keys == r_theirs.unexpected_keys
    assert set(r_ours.unexpected_keys) == set(extra)
    # the keys that did match were loaded
    np.testing.assert_array_equal(ours.scale.data, theirs.scale.detach().numpy())
    np.testing.assert_array_equal(ours.offset.data, before["offset"])


def test_load_state_dict_strict_false_still_rejects_shape_mismatch():
    m = nn.Linear(2, 2)
    before = m.weight.detach().numpy().copy()
    with pytest.raises(RuntimeError, match="size mismatch for bias"):
        m.load_state_dict({"weight": np.ones((2, 2)), "bias": np.ones(3)}, strict=False)
    np.testing.assert_array_equal(m.weight.data, before)


def test_load_state_dict_rejects_non_arrays_and_non_mappings():
    m = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match='While copying the parameter named "bias"'):
        m.load_state_dict({"weight": np.ones((2, 2)), "bias": [1.0, 2.0]})
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        m.load_state_dict([("weight", np.ones((2, 2)))])


# ----------------------------------------------------------------------
# modes, gradients
# ----------------------------------------------------------------------
def test_train_eval_propagate_and_return_self():
    net = build_net(minidl)
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.encoder.eval()
    assert net.training and not net.encoder.training and not net.encoder[0].training
    assert net.heads[0].training
    with pytest.raises(ValueError, match="boolean"):
        net.train("no")


def _backward_once(net):
    x = minidl.randn(2, 4)
    net(x).sum().backward()


def test_zero_grad():
    net = build_net(minidl)
    _backward_once(net)
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and not g.detach().numpy().any() for g in grads)
    _backward_once(net)
    net.zero_grad()  # default: set_to_none=True
    assert all(p.grad is None for p in net.parameters())


def test_requires_grad_freezes_and_unfreezes():
    net = build_net(minidl)
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())
    net.encoder.requires_grad_()
    assert [n for n, p in net.named_parameters() if p.requires_grad] == [
        "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias"
    ]


# ----------------------------------------------------------------------
# dtype and device: in place, identity kept
# ----------------------------------------------------------------------
def test_double_and_float_cast_in_place_keeping_identity():
    net = build_net(minidl)
    net.register_buffer("count", minidl.tensor(3))  # int64: never cast
    _backward_once(net)
    params = list(net.parameters())
    assert net.double() is net
    assert all(a is b for a, b in zip(net.parameters(), params))
    assert all(p.dtype == minidl.float64 for p in net.parameters())
    assert all(p.grad.dtype == minidl.float64 for p in net.parameters())
    assert net.running.dtype == minidl.float64 and net.scratch.dtype == minidl.float64
    assert net.count.dtype == minidl.int64
    net.float()
    assert all(a is b for a, b in zip(net.parameters(), params))
    assert all(p.dtype == minidl.float32 for p in net.parameters())
    net.to(minidl.float64)
    assert net.offset.dtype == minidl.float64
    with pytest.raises(TypeError, match="floating point"):
        net.to(minidl.int64)


def test_to_cpu_keeps_identity_and_unknown_device_is_an_error():
    net = build_net(minidl)
    params = list(net.parameters())
    assert net.to("cpu") is net
    assert all(a is b for a, b in zip(net.parameters(), params))
    assert net.to("cpu", minidl.float64) is net and net.scale.dtype == minidl.float64
    with pytest.raises((RuntimeError, ValueError)):
        net.to("tpu")


# ----------------------------------------------------------------------
# repr
# ----------------------------------------------------------------------
def test_nested_repr_matches_torch():
    torch = pytest.importorskip("torch")
    assert repr(build_net(minidl)) == repr(build_net(torch))
    assert repr(nn.Module()) == repr(torch.nn.Module()) == "Module()"

    class Multi(nn.Module):
        def extra_repr(self):
            return "a=1\nb=2"

    class TorchMulti(torch.nn.Module):
        def extra_repr(self):
            return "a=1\nb=2"

    outer, touter = nn.Sequential(Multi()), torch.nn.Sequential(TorchMulti())
    assert repr(outer).replace("Multi", "X") == repr(touter).replace("TorchMulti", "X")


@pytest.mark.parametrize("bad, message", [
    (np.array([None, None], dtype=object), "dtype mismatch for 1.bias: expected numbers, got an array of dtype object"),
    (np.array(["a", "b"]), "dtype mismatch for 1.bias: expected numbers"),
])
def test_load_state_dict_checks_every_dtype_before_changing_anything(bad, message):
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    state = {k: v.detach().numpy().copy() + 1 for k, v in net.state_dict().items()}
    state["1.bias"] = bad  # a bad LAST key: the earlier ones must not have been copied
    before = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    with pytest.raises(RuntimeError, match=message):
        net.load_state_dict(state)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.detach().numpy(), before[k])
