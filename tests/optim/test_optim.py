"""minidl.optim: SGD, Adam, AdamW, RMSprop and Adadelta against torch.optim, checkpoints, and bad input.

Every comparison runs both libraries from identical float64 parameters with
identical random gradients (a fresh one per step), over two param groups with
different learning rates; one parameter gets no gradient on some steps, so the
"skip params whose grad is None" rule is exercised too.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn import Parameter
from minidl.optim import SGD, Adam, AdamW, Optimizer

SHAPES = [(4, 3), (5,), (2, 3, 2), ()]
GROUP_LRS = (0.05, 0.01)
STEPS = 20
RTOL = 1e-12

# (name, class name in both libraries, constructor kwargs)
CONFIGS = [
    ("sgd", "SGD", {}),
    ("sgd-momentum", "SGD", dict(momentum=0.9)),
    ("sgd-dampening", "SGD", dict(momentum=0.9, dampening=0.3)),
    ("sgd-nesterov", "SGD", dict(momentum=0.9, nesterov=True)),
    ("sgd-weight-decay", "SGD", dict(weight_decay=0.1)),
    ("sgd-momentum-weight-decay", "SGD", dict(momentum=0.5, weight_decay=0.1)),
    ("sgd-maximize", "SGD", dict(maximize=True)),
    ("sgd-nesterov-wd-maximize", "SGD", dict(momentum=0.8, nesterov=True, weight_decay=0.05,
                                             maximize=True)),
    ("adam", "Adam", {}),
    ("adam-weight-decay", "Adam", dict(weight_decay=0.1)),
    ("adam-amsgrad", "Adam", dict(amsgrad=True)),
    ("adam-amsgrad-wd-maximize", "Adam", dict(amsgrad=True, weight_decay=0.05, maximize=True)),
    ("adam-small-betas", "Adam", dict(betas=(0.3, 0.6), eps=1e-6)),
    ("adamw", "AdamW", {}),
    ("adamw-weight-decay-amsgrad", "AdamW", dict(weight_decay=0.1, amsgrad=True)),
    ("adamw-maximize", "AdamW", dict(maximize=True)),
    ("rmsprop", "RMSprop", {}),
    ("rmsprop-momentum", "RMSprop", dict(momentum=0.9)),
    ("rmsprop-centered", "RMSprop", dict(centered=True, alpha=0.9)),
    ("rmsprop-centered-momentum-wd-maximize", "RMSprop",
     dict(centered=True, momentum=0.5, weight_decay=0.1, maximize=True, eps=1e-6)),
    ("adadelta", "Adadelta", {}),
    ("adadelta-rho-wd", "Adadelta", dict(rho=0.5, weight_decay=0.1, eps=1e-4)),
    ("adadelta-maximize", "Adadelta", dict(maximize=True, lr=0.5)),
    ("adagrad", "Adagrad", {}),
    ("adagrad-decay-init", "Adagrad", dict(lr_decay=0.1, initial_accumulator_value=0.5)),
    ("adagrad-wd-maximize", "Adagrad", dict(weight_decay=0.1, maximize=True, eps=1e-6)),
    ("adamax", "Adamax", {}),
    ("adamax-wd-betas", "Adamax", dict(weight_decay=0.1, betas=(0.5, 0.8), eps=1e-4)),
    ("adamax-maximize", "Adamax", dict(maximize=True)),
    ("nadam", "NAdam", {}),
    ("nadam-wd-momentum-decay", "NAdam", dict(weight_decay=0.1, momentum_decay=0.1)),
    ("nadam-decoupled-maximize", "NAdam",
     dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True, betas=(0.8, 0.9))),
    ("radam", "RAdam", {}),
    ("radam-short-warmup", "RAdam", dict(betas=(0.9, 0.75))),  # rho_inf = 7: rho_t > 5 from step 9 on
    ("radam-wd", "RAdam", dict(weight_decay=0.1)),
    ("radam-decoupled-maximize", "RAdam",
     dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True, betas=(0.8, 0.7))),
    ("rmsprop-momentum-wd", "RMSprop", dict(momentum=0.8, weight_decay=0.1)),
    ("rmsprop-centered-momentum-maximize", "RMSprop", dict(centered=True, momentum=0.5, eps=1e-4,
                                                          maximize=True)),
    ("adadelta-rho-eps-wd", "Adadelta", dict(rho=0.5, eps=1e-3, weight_decay=0.1)),
]
CONFIG_IDS = [c[0] for c in CONFIGS]


# ------------------------------------------------------------------ helpers

def initial_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in SHAPES]


def gradient_sequence(steps, seed=1):
    """One list of gradients per step; ``None`` marks "no gradient this step"."""
    rng = np.random.default_rng(seed)
    sequence = []
    for t in range(steps):
        grads = [rng.standard_normal(shape) for shape in SHAPES]
        if t % 3 == 2:
            grads[1] = None          # parameter 1 is skipped on steps 2, 5, 8, ...
        sequence.append(grads)
    return sequence


def groups_of(params, lrs=GROUP_LRS):
    return [{"params": params[:2], "lr": lrs[0]}, {"params": params[2:], "lr": lrs[1]}]


def make_minidl(cls_name, kwargs, arrays, lrs=GROUP_LRS):
    params = [Parameter(a.copy()) for a in arrays]
    opt = getattr(minidl.optim, cls_name)(groups_of(params, lrs), **kwargs)
    return params, opt


def make_torch(torch, cls_name, kwargs, arrays):
    params = [torch.nn.Parameter(torch.tensor(a.copy(), dtype=torch.float64)) for a in arrays]
    opt = getattr(torch.optim, cls_name)(groups_of(params), **kwargs)
    return params, opt


def run_minidl(params, opt, grads_sequence):
    for grads in grads_sequence:
        for p, g in zip(params, grads):
            p.grad = None if g is None else minidl.tensor(g.copy())
        opt.step()
        opt.zero_grad()


def run_torch(torch, params, opt, grads_sequence):
    for grads in grads_sequence:
        for p, g in zip(params, grads):
            p.grad = None if g is None else torch.tensor(g.copy())
        opt.step()
        opt.zero_grad()


def assert_params_close(ours, theirs, rtol=RTOL):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        b = b.detach().numpy() if hasattr(b, "detach") else b
        a = a.detach().numpy() if isinstance(a, minidl.Tensor) else a
        # errors relative to the parameter's scale: an entry that cancels to near 0 keeps the
        # rounding of its large terms (seen: NAdam, 7.7e-4 off by 1.7e-13 in a tensor of size ~3)
        scale = float(np.max(np.abs(b))) if np.size(b) else 0.0
        np.testing.assert_allclose(a, b, rtol=rtol, atol=max(1e-15, rtol * scale), err_msg=f"parameter {i}")


def assert_state_dicts_equal(a, b):
    """Exact equality of two minidl state dicts (arrays compared elementwise)."""
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for index in a["state"]:
        assert a["state"][index].keys() == b["state"][index].keys()
        for key, value in a["state"][index].items():
            np.testing.assert_array_equal(value, b["state"][index][key])


# ------------------------------------------------------ comparison with torch

@pytest.mark.parametrize("name,cls_name,kwargs", CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_over_20_steps(name, cls_name, kwargs):
    torch = pytest.importorskip("torch")
    arrays, grads = initial_arrays(), gradient_sequence(STEPS)
    params, opt = make_minidl(cls_name, kwargs, arrays)
    tparams, topt = make_torch(torch, cls_name, kwargs, arrays)
    run_minidl(params, opt, grads)
    run_torch(torch, tparams, topt, grads)

    assert_params_close(params, tparams)
    for p, a in zip(params, arrays):          # the parameters did move
        assert not np.allclose(p.data, a)

    # same state names and values as torch's, in torch's state_dict layout
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert ours["state"].keys() == theirs["state"].keys()
    for index, entries in ours["state"].items():
        assert entries.keys() == theirs["state"][index].keys()
        for key, value in entries.items():
            expected = theirs["state"][index][key]
            if key == "step":
                assert isinstance(value, float) and value == float(expected)
            else:
                np.testing.assert_allclose(value, expected.numpy(), rtol=RTOL, atol=1e-15)
    for group, tgroup in zip(ours["param_groups"], theirs["param_groups"]):
        assert group["params"] == tgroup["params"]
        for key, value in group.items():
            assert tgroup[key] == value, key


@pytest.mark.parametrize("name,cls_name,kwargs", CONFIGS, ids=CONFIG_IDS)
def test_resume_from_state_dict_is_exact(name, cls_name, kwargs):
    """Save at step 10, load into a NEW optimizer over fresh copies, continue 10 steps."""
    arrays, grads = initial_arrays(), gradient_sequence(STEPS)
    full_params, full_opt = make_minidl(cls_name, kwargs, arrays)
    run_minidl(full_params, full_opt, grads)

    params, opt = make_minidl(cls_name, kwargs, arrays)
    run_minidl(params, opt, grads[:10])
    saved = opt.state_dict()
    saved_copy = copy.deepcopy(saved)
    checkpoint = [p.detach().numpy().copy() for p in params]
    run_minidl(params, opt, grads[10:])          # keep training: must not alter `saved`
    assert_state_dicts_equal(saved, saved_copy)

    # a new optimizer built with other learning rates: loading restores them too
    resumed, new_opt = make_minidl(cls_name, kwargs, checkpoint, lrs=(0.7, 0.9))
    new_opt.load_state_dict(saved)
    assert [g["lr"] for g in new_opt.param_groups] == list(GROUP_LRS)
    run_minidl(resumed, new_opt, grads[10:])
    for a, b in zip(resumed, full_params):
        np.testing.assert_array_equal(a.data, b.data)
    assert_state_dicts_equal(new_opt.state_dict(), full_opt.state_dict())

    torch = pytest.importorskip("torch")
    tparams, topt = make_torch(torch, cls_name, kwargs, arrays)
    run_torch(torch, tparams, topt, grads)
    assert_params_close(resumed, tparams)


TORCH_LOAD_CONFIGS = ["sgd-nesterov", "adam-amsgrad", "adamw", "rmsprop-centered-momentum-wd-maximize",
                      "adadelta-rho-wd", "adagrad-decay-init", "adamax-wd-betas",
                      "nadam-decoupled-maximize", "radam-wd"]


@pytest.mark.parametrize("name,cls_name,kwargs",
                         [c for c in CONFIGS if c[0] in TORCH_LOAD_CONFIGS],
                         ids=TORCH_LOAD_CONFIGS)
def test_load_torch_state_dict_and_continue(name, cls_name, kwargs):
    """A state dict written by torch.optim (tensors, 0-d step) loads and resumes."""
    torch = pytest.importorskip("torch")
    arrays, grads = initial_arrays(), gradient_sequence(STEPS)
    tparams, topt = make_torch(torch, cls_name, kwargs, arrays)
    run_torch(torch, tparams, topt, grads[:10])
    params, opt = make_minidl(cls_name, kwargs, [p.detach().numpy().copy() for p in tparams])
    opt.load_state_dict(topt.state_dict())
    run_torch(torch, tparams, topt, grads[10:])
    run_minidl(params, opt, grads[10:])
    assert_params_close(params, tparams)


@pytest.mark.parametrize("name", TORCH_LOAD_CONFIGS)
def test_torch_loads_our_state_dict_and_continues(name, torch):
    """The other direction: minidl's state dict, arrays made tensors, loads into torch.optim."""
    _, cls_name, kwargs = next(c for c in CONFIGS if c[0] == name)
    arrays, grads = initial_arrays(), gradient_sequence(STEPS)
    params, opt = make_minidl(cls_name, kwargs, arrays)
    run_minidl(params, opt, grads[:10])
    tparams, topt = make_torch(torch, cls_name, kwargs, [p.detach().numpy().copy() for p in params])
    saved = opt.state_dict()
    converted = {"param_groups": saved["param_groups"],
                 "state": {i: {k: torch.tensor(v) if isinstance(v, np.ndarray)
                               else torch.tensor(v, dtype=torch.float32)   # torch's 0-d scalars
                               for k, v in entries.items()}
                           for i, entries in saved["state"].items()}}
    topt.load_state_dict(converted)
    run_minidl(params, opt, grads[10:])
    run_torch(torch, tparams, topt, grads[10:])
    # torch.optim.load_state_dict casts NAdam's float32 'mu_product' to the parameter dtype
    # (float64), so torch itself continues differently from an uninterrupted torch run
    assert_params_close(params, tparams, rtol=1e-10 if cls_name == "NAdam" else RTOL)


def test_adagrad_state_exists_from_construction_as_in_torch(torch):
    arrays = initial_arrays()
    _, opt = make_minidl("Adagrad", dict(initial_accumulator_value=0.25), arrays)
    _, topt = make_torch(torch, "Adagrad", dict(initial_accumulator_value=0.25), arrays)
    ours, theirs = opt.state_dict()["state"], topt.state_dict()["state"]
    assert ours.keys() == theirs.keys() == set(range(len(SHAPES)))
    for i in ours:
        assert ours[i]["step"] == 0.0
        np.testing.assert_array_equal(ours[i]["sum"], theirs[i]["sum"].numpy())


def test_nadam_mu_product_is_a_float_in_the_state():
    params, opt = make_minidl("NAdam", {}, initial_arrays())
    run_minidl(params, opt, gradient_sequence(2))
    mu = [0.9 * (1 - 0.5 * 0.96 ** (t * 0.004)) for t in (1, 2)]
    value = opt.state_dict()["state"][0]["mu_product"]
    assert isinstance(value, float)
    assert value == pytest.approx(mu[0] * mu[1], rel=1e-7)     # float32 rounding, as torch


@pytest.mark.parametrize("cls_name,kwargs,match", [
    ("RMSprop", dict(lr=-0.1), r"RMSprop: Invalid learning rate: -0\.1"),
    ("RMSprop", dict(alpha=-0.5), r"RMSprop: Invalid alpha value: -0\.5"),
    ("RMSprop", dict(eps=-1.0), r"RMSprop: Invalid epsilon value: -1\.0"),
    ("RMSprop", dict(momentum=-0.1), r"RMSprop: Invalid momentum value: -0\.1"),
    ("RMSprop", dict(weight_decay=-0.1), r"RMSprop: Invalid weight_decay value: -0\.1"),
    ("Adadelta", dict(rho=1.5), r"Adadelta: Invalid rho value: 1\.5"),
    ("Adadelta", dict(rho=-0.1), r"Adadelta: Invalid rho value: -0\.1"),
    ("Adadelta", dict(lr=-1.0), r"Adadelta: Invalid learning rate: -1\.0"),
    ("Adadelta", dict(eps=-1.0), r"Adadelta: Invalid epsilon value"),
    ("Adadelta", dict(weight_decay=-1.0), r"Adadelta: Invalid weight_decay value"),
    ("Adagrad", dict(lr_decay=-0.1), r"Adagrad: Invalid lr_decay value: -0\.1"),
    ("Adagrad", dict(initial_accumulator_value=-1.0),
     r"Adagrad: Invalid initial_accumulator_value value: -1\.0"),
    ("Adagrad", dict(eps=-1.0), r"Adagrad: Invalid epsilon value"),
    ("Adagrad", dict(weight_decay=-1.0), r"Adagrad: Invalid weight_decay value"),
    ("Adamax", dict(betas=(1.0, 0.9)), r"Adamax: Invalid beta parameter at index 0: 1\.0"),
    ("Adamax", dict(eps=-1.0), r"Adamax: Invalid epsilon value"),
    ("NAdam", dict(momentum_decay=-0.1), r"NAdam: Invalid momentum_decay value: -0\.1"),
    ("NAdam", dict(betas=(0.9, 1.0)), r"NAdam: Invalid beta parameter at index 1: 1\.0"),
    ("NAdam", dict(weight_decay=-0.1), r"NAdam: Invalid weight_decay value"),
    ("RAdam", dict(betas=(-0.1, 0.9)), r"RAdam: Invalid beta parameter at index 0: -0\.1"),
    ("RAdam", dict(lr=-0.1), r"RAdam: Invalid learning rate: -0\.1"),
])
def test_new_optimizers_bad_hyperparameters_raise_torchs_value_error(cls_name, kwargs, match, torch):
    """minidl's message is torch's, prefixed by the class name."""
    with pytest.raises(ValueError, match=match):
        getattr(minidl.optim, cls_name)([Parameter(np.ones(2))], **kwargs)
    # torch raises the same ValueError, with our message minus the class-name prefix
    with pytest.raises(ValueError, match=match.split(": ", 1)[1].split(" \\(")[0]):
        getattr(torch.optim, cls_name)([torch.nn.Parameter(torch.ones(2))], **kwargs)


@pytest.mark.parametrize("cls_name", ["RMSprop", "Adadelta", "Adagrad", "Adamax", "NAdam", "RAdam"])
def test_new_optimizers_have_torchs_defaults(cls_name, torch):
    ours = getattr(minidl.optim, cls_name)([Parameter(np.ones(2))]).defaults
    theirs = getattr(torch.optim, cls_name)([torch.nn.Parameter(torch.ones(2))]).defaults
    assert ours and all(theirs[k] == v for k, v in ours.items()), (ours, theirs)


def test_state_dict_round_trips_through_save_and_load(tmp_path):
    if not hasattr(minidl, "save"):
        pytest.skip("minidl.save / minidl.load are not available")
    arrays, grads = initial_arrays(), gradient_sequence(STEPS)
    full_params, full_opt = make_minidl("Adam", dict(amsgrad=True), arrays)
    run_minidl(full_params, full_opt, grads)

    params, opt = make_minidl("Adam", dict(amsgrad=True), arrays)
    run_minidl(params, opt, grads[:10])
    minidl.save(opt.state_dict(), tmp_path / "optim.pt")
    loaded = minidl.load(tmp_path / "optim.pt")

    resumed, new_opt = make_minidl("Adam", dict(amsgrad=True), [p.detach().numpy().copy() for p in params])
    new_opt.load_state_dict(loaded)
    assert_state_dicts_equal(new_opt.state_dict(), opt.state_dict())
    run_minidl(resumed, new_opt, grads[10:])
    for a, b in zip(resumed, full_params):
        np.testing.assert_array_equal(a.data, b.data)


def test_load_state_dict_casts_arrays_to_the_parameter_dtype():
    arrays, grads = initial_arrays(), gradient_sequence(3)
    params, opt = make_minidl("Adam", {}, arrays)
    run_minidl(params, opt, grads)
    params32, opt32 = make_minidl("Adam", {}, [a.astype(np.float32) for a in arrays])
    saved = opt.state_dict()
    opt32.load_state_dict(saved)
    for i, p in enumerate(params32):
        state = opt32.state[p]
        assert state["exp_avg"].dtype == np.float32
        assert state["exp_avg_sq"].dtype == np.float32
        assert state["exp_avg"] is not saved["state"][i]["exp_avg"]
        assert isinstance(state["step"], float)
        assert state["step"] == (2.0 if i == 1 else 3.0)       # param 1 has no grad at step 2


def test_state_dict_layout():
    params = [Parameter(np.zeros(2)), Parameter(np.zeros(3)), Parameter(np.zeros(1))]
    opt = SGD([{"params": params[:1]}, {"params": params[1:], "momentum": 0.5}], lr=0.1)
    for p in params[1:]:
        p.grad = minidl.tensor(np.ones(p.shape))
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sd["param_groups"] == [
        dict(lr=0.1, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False,
             params=[0]),
        dict(lr=0.1, momentum=0.5, dampening=0, weight_decay=0, nesterov=False, maximize=False,
             params=[1, 2]),
    ]
    assert list(sd["state"]) == [1, 2]
    np.testing.assert_array_equal(sd["state"][1]["momentum_buffer"], np.ones(3))
    assert sd["state"][1]["momentum_buffer"] is not opt.state[params[1]]["momentum_buffer"]


# --------------------------------------------------------- behaviour details

def test_step_does_not_modify_gradients_or_record_a_graph():
    arrays, grads = initial_arrays(), gradient_sequence(3)[2]     # grads[1] is None
    params, opt = make_minidl("Adam", dict(weight_decay=0.1, maximize=True), arrays)
    for p, g in zip(params, grads):
        p.grad = None if g is None else minidl.tensor(g.copy())
    opt.step()
    for p, g in zip(params, grads):
        if g is not None:
            np.testing.assert_array_equal(p.grad.data, g)
        assert p.is_leaf and p.grad_fn is None and p.requires_grad
    np.testing.assert_array_equal(params[1].data, arrays[1])     # no gradient: untouched
    assert params[1] not in opt.state


def test_sgd_single_step_by_hand():
    p = Parameter(np.array([1.0, -2.0]))
    opt = SGD([p], lr=0.5, momentum=0.9)
    p.grad = minidl.tensor([0.2, 0.4], dtype=minidl.float64)
    opt.step()                                       # b = g;       p = p - lr b
    np.testing.assert_allclose(p.data, [0.9, -2.2], rtol=1e-15)
    opt.step()                                       # b = 0.9 b + g = 1.9 g
    np.testing.assert_allclose(p.data, [0.9 - 0.19, -2.2 - 0.38], rtol=1e-15)


def test_adam_first_step_moves_each_coordinate_by_lr():
    """At t=1, m/sqrt(v) after bias correction is sign(g) (up to eps)."""
    p = Parameter(np.array([1.0, 1.0, 1.0]))
    opt = Adam([p], lr=0.01, eps=0.0)
    p.grad = minidl.tensor([3.0, -1e-3, 50.0], dtype=minidl.float64)
    opt.step()
    np.testing.assert_allclose(p.data, [0.99, 1.01, 0.99], rtol=1e-14)


def test_zero_grad():
    p, q = Parameter(np.ones(3)), Parameter(np.ones(2))
    opt = SGD([p, q], lr=0.1)
    p.grad = minidl.tensor(np.full(3, 5.0))
    array = p.grad._data
    opt.zero_grad(set_to_none=False)
    assert p.grad._data is array and not p.grad.numpy().any()
    assert q.grad is None
    opt.zero_grad()
    assert p.grad is None


def test_closure_is_called_and_its_loss_returned():
    p = Parameter(np.array([2.0]))
    opt = SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 4.0
    np.testing.assert_allclose(p.data, [1.0])          # p - lr * 2p


def test_trains_a_linear_model_from_module_parameters():
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((64, 3)))
    y = minidl.tensor(x.data @ np.array([[1.0], [-2.0], [0.5]]) + 0.3)
    model = minidl.nn.Linear(3, 1, dtype=minidl.float64)
    opt = AdamW(model.parameters(), lr=0.05, weight_decay=0.0)
    losses = []
    for _ in range(300):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-3 * losses[0]


def test_add_param_group_uses_defaults_and_own_options():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = Adam([p], lr=0.1, betas=(0.8, 0.9))
    opt.add_param_group({"params": q, "lr": 0.5})
    assert opt.param_groups[1]["params"][0] is q
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["betas"] == (0.8, 0.9)


def test_repr_lists_group_options():
    opt = SGD([Parameter(np.ones(1))], lr=0.1, momentum=0.9)
    assert "SGD" in repr(opt) and "momentum: 0.9" in repr(opt) and "lr: 0.1" in repr(opt)


def test_is_an_optimizer():
    assert issubclass(SGD, Optimizer) and issubclass(AdamW, Adam)
    assert AdamW([Parameter(np.ones(1))]).defaults["weight_decay"] == 1e-2


# --------------------------------------------------------------- bad input

@pytest.mark.parametrize("make,match", [
    (lambda p: SGD([p], lr=-0.1), r"SGD: Invalid learning rate: -0\.1"),
    (lambda p: SGD([p], lr=0.1, momentum=-0.5), r"SGD: Invalid momentum value: -0\.5"),
    (lambda p: SGD([p], lr=0.1, weight_decay=-1), r"SGD: Invalid weight_decay value: -1"),
    (lambda p: SGD([p], lr=0.1, nesterov=True), r"SGD: Nesterov momentum requires a momentum"),
    (lambda p: SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     r"zero dampening.*dampening=0\.1"),
    (lambda p: SGD([{"params": [p], "lr": -1.0}], lr=0.1), r"SGD \(param group 0\): Invalid learning rate"),
    (lambda p: Adam([p], lr=-1e-3), r"Adam: Invalid learning rate: -0\.001"),
    (lambda p: Adam([p], betas=(1.0, 0.999)), r"Adam: Invalid beta parameter at index 0: 1\.0"),
    (lambda p: Adam([p], betas=(0.9, -0.1)), r"Adam: Invalid beta parameter at index 1: -0\.1"),
    (lambda p: Adam([p], betas=(0.9,)), r"Adam: betas must be a pair"),
    (lambda p: Adam([p], eps=-1.0), r"Adam: Invalid epsilon value: -1\.0"),
    (lambda p: Adam([p], weight_decay=-0.1), r"Adam: Invalid weight_decay value"),
    (lambda p: AdamW([p], betas=(0.9, 1.5)), r"AdamW: Invalid beta parameter at index 1: 1\.5"),
    (lambda p: AdamW([p], lr=float("nan")), r"AdamW: Invalid learning rate: nan"),
    (lambda p: minidl.optim.RMSprop([p], alpha=-0.5), r"RMSprop: Invalid alpha value: -0\.5"),
    (lambda p: minidl.optim.RMSprop([p], momentum=-1), r"RMSprop: Invalid momentum value: -1"),
    (lambda p: minidl.optim.RMSprop([p], eps=-1e-8), r"RMSprop: Invalid epsilon value"),
    (lambda p: minidl.optim.Adadelta([p], rho=1.5), r"Adadelta: Invalid rho value: 1\.5"),
    (lambda p: minidl.optim.Adadelta([p], lr=-1.0), r"Adadelta: Invalid learning rate: -1\.0"),
    (lambda p: SGD([], lr=0.1), r"SGD got an empty parameter list"),
    (lambda p: SGD([p, p], lr=0.1), r"same parameter more than once"),
    (lambda p: SGD([{"params": [p]}, {"params": [p]}], lr=0.1), r"more than one parameter group"),
    (lambda p: SGD([{"lr": 0.1}], lr=0.1), r"no 'params' entry"),
])
def test_bad_hyperparameters_and_params_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make(Parameter(np.ones(2)))


@pytest.mark.parametrize("make,match", [
    (lambda p: SGD(p, lr=0.1), r"got a single Tensor of shape \(2,\)"),
    (lambda p: SGD({p}, lr=0.1), r"ordered collections"),
    (lambda p: SGD([p, np.ones(2)], lr=0.1),
     r"SGD can only optimize Tensors.*parameter 1 of group 0 is a ndarray"),
    (lambda p: SGD([p], lr="0.1"), r"SGD: lr must be a real number, got str"),
    (lambda p: Adam([p], betas=(0.9, None)), r"betas\[1\] must be a real number"),
])
def test_bad_argument_types_raise_type_error(make, match):
    with pytest.raises(TypeError, match=match):
        make(Parameter(np.ones(2)))


def test_non_leaf_tensor_is_rejected():
    p = Parameter(np.ones(2))
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([p * 2], lr=0.1)


def test_bad_param_group_leaves_optimizer_unchanged():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = SGD([p], lr=0.1)
    with pytest.raises(ValueError, match=r"param group 1.*Invalid momentum"):
        opt.add_param_group({"params": [q], "momentum": -1})
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [q, p]})
    assert len(opt.param_groups) == 1
    assert len(opt.param_groups[0]["params"]) == 1 and opt.param_groups[0]["params"][0] is p


def test_wrong_gradient_shape_raises_before_any_update():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(3))
    opt = Adam([p, q], lr=0.1)
    p.grad = minidl.tensor(np.ones(2))
    with pytest.raises(RuntimeError, match=r"assigned grad has data of a different size: \(4,\)"):
        q.grad = minidl.tensor(np.ones(4))  # refused as in PyTorch ...
    q.grad = minidl.tensor(np.ones(3))
    q.grad.data = minidl.tensor(np.ones(4))  # ... but .data can still swap in another shape
    with pytest.raises(ValueError, match=r"Adam\.step: parameter 1 of group 0 has shape \(3,\) "
                                         r"but its gradient has shape \(4,\)"):
        opt.step()
    np.testing.assert_array_equal(p.data, np.ones(2))
    assert opt.state == {}


def trained_sgd():
    arrays, grads = initial_arrays(), gradient_sequence(4)
    params, opt = make_minidl("SGD", dict(momentum=0.9), arrays)
    run_minidl(params, opt, grads)
    return params, opt


def _edit(sd, how):
    sd = copy.deepcopy(sd)
    how(sd)
    return sd


@pytest.mark.parametrize("corrupt,match", [
    (lambda sd: sd["param_groups"].pop(),
     r"different number of parameter groups \(1\) than the optimizer \(2\)"),
    (lambda sd: sd["param_groups"][1]["params"].pop(),
     r"saved group 1 has 1 parameters, the optimizer's group 1 has 2"),
    (lambda sd: sd["state"][0].update(momentum_buffer=np.zeros((3, 4))),
     r"'momentum_buffer' of parameter 0 has shape \(3, 4\) but the parameter has shape \(4, 3\)"),
    (lambda sd: sd["state"].update({7: {"momentum_buffer": np.zeros(1)}}), r"parameter index 7"),
    (lambda sd: sd["param_groups"][0].pop("momentum"), r"group 0 lacks the option\(s\) \['momentum'\]"),
    (lambda sd: sd["param_groups"][1].update(lr=-5.0), r"loaded param group 1\): Invalid learning rate"),
    (lambda sd: sd.pop("state"), r"expected a dict with keys 'state' and 'param_groups'"),
])
def test_failed_load_state_dict_leaves_optimizer_unchanged(corrupt, match):
    params, opt = trained_sgd()
    before = opt.state_dict()
    state_objects = {id(p): opt.state[p]["momentum_buffer"] for p in params}
    good = opt.state_dict()
    good["param_groups"][0]["lr"] = 123.0
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(_edit(good, corrupt))
    assert_state_dicts_equal(opt.state_dict(), before)
    for p in params:
        assert opt.state[p]["momentum_buffer"] is state_objects[id(p)]


def test_loading_an_adam_state_into_sgd_is_refused():
    arrays = initial_arrays()
    _, adam = make_minidl("Adam", {}, arrays)
    _, sgd = make_minidl("SGD", {}, arrays)
    with pytest.raises(ValueError, match=r"SGD\.load_state_dict.*lacks the option\(s\) "
                                         r"\['momentum', 'dampening', 'nesterov'\]"):
        sgd.load_state_dict(adam.state_dict())


@pytest.mark.parametrize("kwargs, slots", [({}, {"work"}), (dict(weight_decay=0.1), {"work", "grad"}),
                                           (dict(maximize=True), {"work", "grad"})])
def test_adam_keeps_a_gradient_sized_scratch_only_when_it_changes_the_gradient(kwargs, slots):
    p = Parameter(minidl.tensor(np.ones((3, 2))))
    opt = Adam([p], lr=0.1, foreach=False, **kwargs)      # (the per-parameter route's scratch)
    p.grad = minidl.tensor(np.full((3, 2), 0.5))
    opt.step()
    assert {key[0] for key in opt._scratch} == slots  # no idle copy of the gradient
    np.testing.assert_array_equal(p.grad.numpy(), np.full((3, 2), 0.5))  # grad untouched


@pytest.mark.parametrize("cls_name, kwargs, drop", [("Adam", {}, "exp_avg"), ("Adam", {}, "step"),
                                                    ("Adam", {"amsgrad": True}, "max_exp_avg_sq")])
def test_load_state_dict_refuses_a_state_that_lacks_an_entry(cls_name, kwargs, drop):
    """A partial state (an empty one means 'no step yet', which is fine) fails at load, not in step()."""
    p = Parameter(np.ones(3))
    opt = getattr(minidl.optim, cls_name)([p], lr=0.1, **kwargs)
    p.grad = minidl.ones_like(p)
    opt.step()
    state = opt.state_dict()
    before = {k: np.array(v, copy=True) for k, v in state["state"][0].items()}
    del state["state"][0][drop]
    with pytest.raises(ValueError, match=f"the state of parameter 0 lacks \\['{drop}'\\]"):
        opt.load_state_dict(state)
    for key, value in opt.state_dict()["state"][0].items():  # unchanged, and step() still works
        np.testing.assert_array_equal(value, before[key])
    opt.step()


@pytest.mark.parametrize("cls_name,kwargs", [("RMSprop", dict(alpha=-0.5)), ("RMSprop", dict(momentum=-1)),
                                             ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(eps=-1.0))])
def test_torch_refuses_the_same_hyperparameters(torch, cls_name, kwargs):
    """The bad values refused above are the ones PyTorch refuses, with the same exception type."""
    with pytest.raises(ValueError, match="Invalid"):
        getattr(torch.optim, cls_name)([torch.nn.Parameter(torch.ones(2))], **kwargs)
    with pytest.raises(ValueError, match="Invalid"):
        getattr(minidl.optim, cls_name)([Parameter(np.ones(2))], **kwargs)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), cls_name=st.sampled_from(["RMSprop", "Adadelta", "Adagrad", "Adamax", "NAdam",
                                                  "RAdam"]))
def test_random_hyperparameters_match_torch(torch, data, cls_name):
    """Random hyperparameters of the newer optimizers, 12 steps, against torch.optim."""
    unit = st.floats(0.0, 0.99)
    kwargs = dict(weight_decay=data.draw(st.sampled_from([0.0, 0.01, 0.3])),
                  maximize=data.draw(st.booleans()))
    kwargs.update({
        # alpha >= 0.1: at alpha = 0 the centered v - gbar**2 is a rounding error whose sign
        # follows torch's fused multiply-add (NaN there, 0 here)
        "RMSprop": lambda: dict(alpha=data.draw(st.floats(0.1, 0.99)), momentum=data.draw(unit),
                                centered=data.draw(st.booleans()), eps=data.draw(st.floats(1e-8, 1e-2))),
        "Adadelta": lambda: dict(rho=data.draw(unit), eps=data.draw(st.floats(1e-8, 1e-2))),
        "Adagrad": lambda: dict(lr_decay=data.draw(st.floats(0.0, 1.0)),
                                initial_accumulator_value=data.draw(st.floats(0.0, 2.0))),
        "Adamax": lambda: dict(betas=(data.draw(unit), data.draw(unit))),
        "NAdam": lambda: dict(betas=(data.draw(unit), data.draw(unit)),
                              momentum_decay=data.draw(st.floats(0.0, 0.1)),
                              decoupled_weight_decay=data.draw(st.booleans())),
        "RAdam": lambda: dict(betas=(data.draw(unit), data.draw(st.floats(0.5, 0.999))),
                              decoupled_weight_decay=data.draw(st.booleans())),
    }[cls_name]())
    arrays, grads = initial_arrays(), gradient_sequence(12)
    params, opt = make_minidl(cls_name, kwargs, arrays)
    tparams, topt = make_torch(torch, cls_name, kwargs, arrays)
    run_minidl(params, opt, grads)
    run_torch(torch, tparams, topt, grads)
    assert_params_close(params, tparams, rtol=1e-10)   # random eps can be ill-conditioned
