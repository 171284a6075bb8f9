"""Adam's multi-tensor route (``foreach``) against its per-parameter route and torch.optim.

The multi-tensor route runs the same operations in the same order on blocks of one flat
array per group, so both routes must agree to the last bit; a small block size makes blocks
that cut through parameters and hold pieces of several.
"""
import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl.nn import Parameter
from minidl.optim import Adam, AdamW

SHAPES = [(7, 3), (5,), (2, 3, 4), (), (1,), (11, 2)]
STEPS = 20

CONFIGS = [
    ("adam", Adam, {}),
    ("adam-weight-decay", Adam, dict(weight_decay=0.1)),
    ("adam-amsgrad", Adam, dict(amsgrad=True)),
    ("adam-amsgrad-wd-maximize", Adam, dict(amsgrad=True, weight_decay=0.05, maximize=True)),
    ("adam-maximize-betas", Adam, dict(maximize=True, betas=(0.3, 0.6), eps=1e-6)),
    ("adamw", AdamW, {}),
    ("adamw-amsgrad-maximize", AdamW, dict(amsgrad=True, maximize=True, weight_decay=0.1)),
]
IDS = [c[0] for c in CONFIGS]


def arrays_and_grads(dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return arrays, grads


def make(cls, kwargs, arrays, foreach):
    params = [Parameter(minidl.tensor(a.copy())) for a in arrays]
    groups = [{"params": params[:4]}, {"params": params[4:], "lr": 0.01}]
    return params, cls(groups, lr=0.05, foreach=foreach, **kwargs)


def run(params, opt, grads):
    for step in grads:
        for p, g in zip(params, step):
            p.grad = minidl.tensor(g.copy())
        opt.step()
        opt.zero_grad()


def took_multi_tensor_route(opt, params):
    """Every parameter's exp_avg is a view of its group's flat array."""
    owner = minidl.backend.memory_owner
    owners = {id(owner(flat.exp_avg)) for flat in opt._flat.values()}
    return len(opt._flat) == len(opt.param_groups) and all(
        id(owner(opt.state[p]["exp_avg"])) in owners for p in params)


@pytest.mark.parametrize("block", [None, 5, 2 ** 15])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_both_routes_give_bitwise_the_same_parameters_and_state(name, cls, kwargs, dtype, block, monkeypatch):
    monkeypatch.setattr(Adam, "_foreach_block", block)
    arrays, grads = arrays_and_grads(dtype)
    slow_params, slow = make(cls, kwargs, arrays, foreach=False)
    fast_params, fast = make(cls, kwargs, arrays, foreach=None)
    versions = [p._version for p in fast_params]
    run(slow_params, slow, grads)
    run(fast_params, fast, grads)

    assert not slow._flat and took_multi_tensor_route(fast, fast_params)
    on_cpu = type(fast_params[0]._data) is np.ndarray   # (other devices: one block per group)
    assert [len(f.blocks) for f in fast._flat.values()] == ([11, 5] if on_cpu and block == 5 else [1, 1])
    for a, b, start in zip(fast_params, slow_params, arrays):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
        assert not np.array_equal(a.detach().numpy(), start)               # they did move
    ours, theirs = fast.state_dict(), slow.state_dict()
    for index, entries in theirs["state"].items():
        assert ours["state"][index].keys() == entries.keys()
        for key, value in entries.items():
            np.testing.assert_array_equal(ours["state"][index][key], value, err_msg=key)
    # one version bump per step, as the per-parameter route
    assert [p._version for p in fast_params] == [v + STEPS for v in versions]
    assert [p._version for p in slow_params] == [v + STEPS for v in versions]


@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_multi_tensor_route_matches_torch(name, cls, kwargs, torch):
    arrays, grads = arrays_and_grads(np.float64)
    params, opt = make(cls, kwargs, arrays, foreach=None)
    tparams = [torch.nn.Parameter(torch.tensor(a.copy())) for a in arrays]
    topt = getattr(torch.optim, cls.__name__)([{"params": tparams[:4]}, {"params": tparams[4:], "lr": 0.01}],
                                              lr=0.05, **kwargs)
    run(params, opt, grads)
    for step in grads:
        for p, g in zip(tparams, step):
            p.grad = torch.tensor(g.copy())
        topt.step()
        topt.zero_grad()
    assert took_multi_tensor_route(opt, params)
    for i, (a, b) in enumerate(zip(params, tparams)):
        b = b.detach().numpy()
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-12, atol=1e-12 * np.abs(b).max(), err_msg=f"param {i}")
    ours, theirs = opt.state_dict(), topt.state_dict()
    for index, entries in ours["state"].items():
        assert entries.keys() == theirs["state"][index].keys()
        assert entries["step"] == float(theirs["state"][index]["step"])
        np.testing.assert_allclose(entries["exp_avg_sq"], theirs["state"][index]["exp_avg_sq"].numpy(),
                                   rtol=1e-12, atol=1e-15)
    assert [g["foreach"] for g in ours["param_groups"]] == [g["foreach"] for g in theirs["param_groups"]]


@pytest.mark.parametrize("first, second", [(None, False), (False, None), (None, None)])
@pytest.mark.parametrize("name,cls,kwargs", [CONFIGS[3], CONFIGS[6]], ids=[IDS[3], IDS[6]])
def test_state_dict_moves_between_routes_exactly(name, cls, kwargs, first, second, monkeypatch):
    """Save after 10 steps of one route, load into the other, continue: as 20 uninterrupted steps."""
    monkeypatch.setattr(Adam, "_foreach_block", 6)
    arrays, grads = arrays_and_grads(np.float32)
    full_params, full = make(cls, kwargs, arrays, foreach=first)
    run(full_params, full, grads)

    params, opt = make(cls, kwargs, arrays, foreach=first)
    run(params, opt, grads[:10])
    saved = opt.state_dict()
    assert all(g["foreach"] == first for g in saved["param_groups"])
    checkpoint = [p.detach().numpy().copy() for p in params]
    frozen = copy.deepcopy(saved)
    run(params, opt, grads[10:11])                      # later steps leave `saved` alone
    for index, entries in frozen["state"].items():
        for key, value in entries.items():
            np.testing.assert_array_equal(saved["state"][index][key], value)

    resumed, new = make(cls, kwargs, checkpoint, foreach=second)
    for group in saved["param_groups"]:
        group["foreach"] = second                        # (loading restores the saved options)
    new.load_state_dict(saved)
    run(resumed, new, grads[10:])
    for a, b in zip(resumed, full_params):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert bool(new._flat) == (second is not False)


def test_a_state_dict_saved_without_foreach_loads_with_the_default():
    arrays, grads = arrays_and_grads(np.float64)
    params, opt = make(Adam, {}, arrays, foreach=None)
    run(params, opt, grads[:3])
    saved = opt.state_dict()
    for group in saved["param_groups"]:
        del group["foreach"]
    for foreach in (False, True):                       # the new optimizer's own choice
        other = make(Adam, {}, arrays, foreach=foreach)[1]
        other.load_state_dict(saved)
        assert [g["foreach"] for g in other.param_groups] == [foreach, foreach]


def test_groups_it_does_not_fit_take_the_per_parameter_route():
    """Mixed dtypes in a group, a parameter skipped on some steps: same numbers, per parameter."""
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((3, 2)), rng.standard_normal(4).astype(np.float32), rng.standard_normal(5),
              rng.standard_normal((2, 2))]
    runs = []
    for foreach in (None, False):
        params = [Parameter(minidl.tensor(a.copy())) for a in arrays]
        opt = Adam([{"params": params[:2]}, {"params": params[2:]}], lr=0.1, foreach=foreach)
        g = np.random.default_rng(4)
        for t in range(6):
            for i, p in enumerate(params):
                skip = i == 3 and t % 3 == 1          # parameter 3 has no gradient on steps 1 and 4
                p.grad = None if skip else minidl.tensor(g.standard_normal(p.shape).astype(arrays[i].dtype))
            opt.step()
        runs.append((params, opt))
    (fast_params, fast), (slow_params, _) = runs
    assert 0 not in fast._flat                          # float64 and float32 in group 0
    assert fast.state[fast_params[2]]["step"] == 6.0 and fast.state[fast_params[3]]["step"] == 4.0
    for a, b in zip(fast_params, slow_params):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_a_loaded_or_replaced_state_is_taken_into_the_flat_layout():
    arrays, grads = arrays_and_grads(np.float64)
    params, opt = make(Adam, {}, arrays, foreach=None)
    run(params, opt, grads[:2])
    first = opt.state[params[0]]["exp_avg"]
    opt.state[params[0]]["exp_avg"] = first.copy() + 1.0     # replaced by hand: the next step uses it
    ref_params, ref = make(Adam, {}, arrays, foreach=False)
    run(ref_params, ref, grads[:2])
    ref.state[ref_params[0]]["exp_avg"] = ref.state[ref_params[0]]["exp_avg"] + 1.0
    run(params, opt, grads[2:4])
    run(ref_params, ref, grads[2:4])
    for a, b in zip(params, ref_params):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert took_multi_tensor_route(opt, params)


@pytest.mark.parametrize("bad", [1, "yes", 0.0])
def test_foreach_must_be_none_or_a_bool(bad):
    with pytest.raises(TypeError, match=r"Adam: foreach must be None, True or False, got"):
        Adam([Parameter(np.ones(2))], foreach=bad)


def test_the_exercise_override_turns_the_multi_tensor_route_off():
    """With the exercise's swaps in, a default Adam runs the (student's) per-parameter update."""
    path = Path(minidl.__file__).parent / "exercises" / "catalog" / "14_adam" / "spec.py"
    spec = importlib.util.spec_from_file_location("adam_spec", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []

    class Student:
        @staticmethod
        def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
            calls.append(t)
            return param - lr * np.sign(grad), m, v

    swaps = module.overrides(Student)
    saved = [(target, name, getattr(target, name)) for target, name, _ in swaps]
    try:
        for target, name, value in swaps:
            setattr(target, name, value)
        p = Parameter(np.ones(3))
        opt = Adam([p], lr=0.5)
        p.grad = minidl.tensor(np.array([1.0, -1.0, 2.0]))
        opt.step()
    finally:
        for target, name, value in saved:
            setattr(target, name, value)
    if type(p._data) is np.ndarray:                     # (elsewhere the exercise keeps the library's)
        assert calls == [1]
        np.testing.assert_array_equal(p.detach().numpy(), [0.5, 1.5, 0.5])
    assert Adam._foreach_default is True and not opt._flat


def test_options_changed_between_steps_act_as_in_the_per_parameter_route():
    """lr (a scheduler), amsgrad turned on, weight decay changed mid-run: read at every step."""
    arrays, grads = arrays_and_grads(np.float32)
    runs = []
    for foreach in (None, False):
        params, opt = make(Adam, {}, arrays, foreach=foreach)
        for t, step in enumerate(grads):
            if t == 5:
                opt.param_groups[0]["amsgrad"] = True
                opt.param_groups[1]["weight_decay"] = 0.2
            if t == 12:
                opt.param_groups[0]["amsgrad"] = False
            for group in opt.param_groups:
                group["lr"] *= 0.9
            run(params, opt, [step])
        runs.append((params, opt))
    (fast_params, fast), (slow_params, slow) = runs
    assert took_multi_tensor_route(fast, fast_params)
    for a, b in zip(fast_params, slow_params):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    ours, theirs = fast.state_dict()["state"], slow.state_dict()["state"]
    for index in range(4):                              # (kept from steps 5 to 11)
        np.testing.assert_array_equal(ours[index]["max_exp_avg_sq"], theirs[index]["max_exp_avg_sq"])
