"""The schedulers added after StepLR/CosineAnnealingLR/ReduceLROnPlateau, against torch.

Each spec builds the same schedule from either library's ``lr_scheduler`` module, so that
one function describes both sides; every learning rate and (where cycled) every
momentum / beta1 is compared after every step, over enough steps to cover every phase.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn import Parameter
from minidl.optim import lr_scheduler

LRS = (0.1, 0.03)
RTOL = 1e-12


def make_optimizer(lib, kind, lrs=LRS):
    """Two param groups, SGD with momentum or Adam, in minidl (lib=None) or torch."""
    if lib is None:
        groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
        optim = minidl.optim
    else:
        groups = [{"params": [lib.nn.Parameter(lib.zeros(2, dtype=lib.float64))], "lr": lr}
                  for lr in lrs]
        optim = lib.optim
    if kind == "adam":
        return optim.Adam(groups, lr=1.0)
    return optim.SGD(groups, lr=1.0, momentum=0.9)


def snapshot(opt):
    """Every scheduled value of every group: lr, momentum, beta1."""
    out = []
    for g in opt.param_groups:
        out.append((g["lr"], g.get("momentum", 0.0), g["betas"][0] if "betas" in g else 0.0))
    return np.array(out, dtype=np.float64)


class Lambda:
    """A callable object: its attributes are saved by state_dict (a plain lambda is not)."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, epoch):
        return self.rate ** epoch


# (id, optimizer kind, steps, build(ls, opt)); ls is minidl's or torch's lr_scheduler module
SPECS = [
    ("LambdaLR", "sgd", 12, lambda ls, o: ls.LambdaLR(o, lambda e: 1 / (1 + e))),
    ("LambdaLR-per-group", "sgd", 12,
     lambda ls, o: ls.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1 + 0.1 * e])),
    ("MultiplicativeLR", "sgd", 12, lambda ls, o: ls.MultiplicativeLR(o, lambda e: 0.95)),
    ("MultiplicativeLR-epoch", "sgd", 12,
     lambda ls, o: ls.MultiplicativeLR(o, lambda e: 1 - 0.01 * e)),
    ("MultiStepLR", "sgd", 15, lambda ls, o: ls.MultiStepLR(o, [2, 5, 5, 9], gamma=0.5)),
    ("ExponentialLR", "sgd", 15, lambda ls, o: ls.ExponentialLR(o, gamma=0.8)),
    ("LinearLR", "sgd", 10, lambda ls, o: ls.LinearLR(o, start_factor=0.25, total_iters=6)),
    ("LinearLR-down", "sgd", 10,
     lambda ls, o: ls.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=4)),
    ("ConstantLR", "sgd", 8, lambda ls, o: ls.ConstantLR(o, factor=0.5, total_iters=3)),
    ("PolynomialLR", "sgd", 9, lambda ls, o: ls.PolynomialLR(o, total_iters=6, power=2.0)),
    ("PolynomialLR-linear", "sgd", 9, lambda ls, o: ls.PolynomialLR(o, total_iters=4)),
    ("CosineAnnealingWarmRestarts", "sgd", 30,
     lambda ls, o: ls.CosineAnnealingWarmRestarts(o, T_0=5, eta_min=0.001)),
    ("CosineAnnealingWarmRestarts-Tmult", "sgd", 40,
     lambda ls, o: ls.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2)),
    ("CyclicLR-triangular", "sgd", 25,
     lambda ls, o: ls.CyclicLR(o, base_lr=0.01, max_lr=[0.1, 0.2], step_size_up=4, step_size_down=3)),
    ("CyclicLR-triangular2", "sgd", 30,
     lambda ls, o: ls.CyclicLR(o, 0.01, 0.1, step_size_up=3, mode="triangular2",
                               base_momentum=0.7, max_momentum=0.95)),
    ("CyclicLR-exp_range-adam", "adam", 30,
     lambda ls, o: ls.CyclicLR(o, 0.001, 0.01, step_size_up=5, mode="exp_range", gamma=0.97)),
    ("CyclicLR-scale_fn-iterations", "sgd", 20,
     lambda ls, o: ls.CyclicLR(o, 0.01, 0.1, step_size_up=2, scale_fn=lambda x: 1 / (1 + x),
                               scale_mode="iterations", cycle_momentum=False)),
    ("CyclicLR-scale_fn-cycle", "sgd", 20,
     lambda ls, o: ls.CyclicLR(o, 0.01, 0.1, step_size_up=2, scale_fn=Lambda(0.5))),
    ("OneCycleLR-cos", "sgd", 20, lambda ls, o: ls.OneCycleLR(o, max_lr=0.5, total_steps=20)),
    ("OneCycleLR-linear-adam", "adam", 24,
     lambda ls, o: ls.OneCycleLR(o, max_lr=[0.1, 0.2], epochs=4, steps_per_epoch=6, pct_start=0.25,
                                 anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)),
    ("OneCycleLR-three-phase", "sgd", 30,
     lambda ls, o: ls.OneCycleLR(o, max_lr=1.0, total_steps=30, three_phase=True,
                                 base_momentum=0.8, max_momentum=0.9)),
    ("OneCycleLR-no-momentum", "adam", 15,
     lambda ls, o: ls.OneCycleLR(o, max_lr=0.3, total_steps=15, cycle_momentum=False)),
    ("SequentialLR-warmup-cosine", "sgd", 25,
     lambda ls, o: ls.SequentialLR(o, [ls.LinearLR(o, start_factor=0.1, total_iters=4),
                                       ls.CosineAnnealingLR(o, T_max=8)], milestones=[5])),
    ("SequentialLR-three", "sgd", 25,
     lambda ls, o: ls.SequentialLR(o, [ls.ConstantLR(o, factor=0.5, total_iters=2),
                                       ls.ExponentialLR(o, gamma=0.9),
                                       ls.MultiplicativeLR(o, lambda e: 0.97)], milestones=[3, 10])),
    ("ChainedScheduler", "sgd", 15,
     lambda ls, o: ls.ChainedScheduler([ls.ConstantLR(o, factor=0.1, total_iters=2),
                                        ls.ExponentialLR(o, gamma=0.9)])),
    ("ChainedScheduler-step-cosine", "sgd", 25,
     lambda ls, o: ls.ChainedScheduler([ls.StepLR(o, step_size=5, gamma=0.5),
                                        ls.CosineAnnealingLR(o, T_max=6, eta_min=0.001)], optimizer=o)),
    ("ChainedScheduler-of-SequentialLR", "sgd", 20,
     lambda ls, o: ls.ChainedScheduler([
         ls.SequentialLR(o, [ls.LinearLR(o, start_factor=0.5, total_iters=3),
                             ls.ExponentialLR(o, gamma=0.9)], milestones=[4]),
         ls.MultiStepLR(o, [6, 12], gamma=0.5)])),
]
SPEC_IDS = [s[0] for s in SPECS]


def run(opt, sched, steps):
    """optimizer.step() then scheduler.step(), ``steps`` times; the values after each step."""
    values = [snapshot(opt)]
    for _ in range(steps):
        opt.step()
        sched.step()
        values.append(snapshot(opt))
    return values


@pytest.mark.parametrize("name,kind,steps,build", SPECS, ids=SPEC_IDS)
def test_matches_torch_every_step(name, kind, steps, build, torch):
    opt, topt = make_optimizer(None, kind), make_optimizer(torch, kind)
    sched, tsched = build(lr_scheduler, opt), build(torch.optim.lr_scheduler, topt)
    np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=RTOL)
    np.testing.assert_allclose(snapshot(opt), snapshot(topt), rtol=RTOL)
    values = {tuple(snapshot(opt)[:, 0])}
    for t in range(steps):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        np.testing.assert_allclose(snapshot(opt), snapshot(topt), rtol=RTOL, atol=1e-15,
                                   err_msg=f"after step {t + 1}")
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=RTOL, atol=1e-15)
        assert getattr(sched, "last_epoch", None) == getattr(tsched, "last_epoch", None)
        values.add(tuple(snapshot(opt)[:, 0]))
    assert len(values) >= 2                    # the schedule did change the rate


@pytest.mark.parametrize("name,kind,steps,build", SPECS, ids=SPEC_IDS)
def test_resume_from_state_dicts_is_exact(name, kind, steps, build):
    """Save optimizer + scheduler mid-run, load into fresh ones, continue: same values."""
    opt = make_optimizer(None, kind)
    expected = run(opt, build(lr_scheduler, opt), steps)

    opt = make_optimizer(None, kind)
    sched = build(lr_scheduler, opt)
    half = steps // 2 + 1
    run(opt, sched, half)
    opt_sd, sched_sd = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in sched_sd

    new_opt = make_optimizer(None, kind, lrs=(0.7, 0.9))
    new_sched = build(lr_scheduler, new_opt)
    new_opt.load_state_dict(opt_sd)
    new_sched.load_state_dict(sched_sd)
    resumed = run(new_opt, new_sched, steps - half)
    for t, (a, b) in enumerate(zip(resumed, expected[half:])):
        np.testing.assert_array_equal(a, b, err_msg=f"step {half + t}")


def test_lambdas_are_not_saved_but_callable_objects_are(torch):
    opt = make_optimizer(None, "sgd")
    fn = Lambda(0.5)
    sched = lr_scheduler.LambdaLR(opt, [lambda e: 1.0, fn])
    sd = sched.state_dict()
    topt = make_optimizer(torch, "sgd")
    tsd = torch.optim.lr_scheduler.LambdaLR(topt, [lambda e: 1.0, Lambda(0.5)]).state_dict()
    assert sd["lr_lambdas"] == tsd["lr_lambdas"] == [None, {"rate": 0.5}]
    fn.rate = 0.9
    sched.load_state_dict(sd)                  # restores the object's attributes
    assert fn.rate == 0.5
    sched.load_state_dict(sd)                  # load_state_dict does not consume its argument
    assert "lr_lambdas" in sd

    cyc = lr_scheduler.CyclicLR(opt, 0.01, 0.1, scale_fn=lambda x: 1.0)
    assert cyc.state_dict()["_scale_fn_custom"] is None


def test_cosine_annealing_follows_an_external_lr_change_like_torch(torch):
    """The recursive form scales whatever lr the group holds; the closed form would ignore it."""
    opt, topt = make_optimizer(None, "sgd"), make_optimizer(torch, "sgd")
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=10, eta_min=0.001)
    history = []
    for t in range(25):
        if t == 4:
            for o in (opt, topt):
                o.param_groups[0]["lr"] *= 3
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        np.testing.assert_allclose(snapshot(opt), snapshot(topt), rtol=RTOL)
        history.append(opt.param_groups[0]["lr"])
    def closed(t):
        return 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 10)) / 2
    # lr_4 was tripled; from there lr_t - eta_min follows the cosine ratio (1 + cos t) / (1 + cos 4)
    recursive = 0.001 + (3 * closed(4) - 0.001) * (1 + math.cos(math.pi * 7 / 10)) / (1 + math.cos(math.pi * 4 / 10))
    assert history[6] == pytest.approx(recursive, rel=1e-12)                   # epoch 7


@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_warm_restarts_with_fractional_epochs_match_torch(T_mult, torch):
    epochs = [0, 0.25, 0.5, 1.3, 2.9, 3.0, 3.5, 7.25, 8.0, 12.75, 15.5, 20.0, 31.0, 39.99, 2.5]
    opt, topt = make_optimizer(None, "sgd"), make_optimizer(torch, "sgd")
    sched = lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=T_mult, eta_min=0.002)
    tsched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=3, T_mult=T_mult,
                                                                  eta_min=0.002)
    for epoch in epochs:
        opt.step()
        topt.step()
        sched.step(epoch)
        tsched.step(epoch)
        np.testing.assert_allclose(snapshot(opt), snapshot(topt), rtol=RTOL, err_msg=str(epoch))
        assert (sched.T_cur, sched.T_i, sched.last_epoch) == pytest.approx(
            (tsched.T_cur, tsched.T_i, tsched.last_epoch), rel=1e-12)
    with pytest.raises(ValueError, match="Expected non-negative epoch, but got -1"):
        sched.step(-1)


@pytest.mark.parametrize("build", [
    lambda ls, o: ls.StepLR(o, step_size=3, gamma=0.5),
    lambda ls, o: ls.MultiStepLR(o, [2, 5, 5], gamma=0.5),
    lambda ls, o: ls.ExponentialLR(o, gamma=0.9),
    lambda ls, o: ls.LinearLR(o, start_factor=0.2, total_iters=5),
    lambda ls, o: ls.ConstantLR(o, factor=0.3, total_iters=4),
    lambda ls, o: ls.PolynomialLR(o, total_iters=6, power=1.5),
    lambda ls, o: ls.CosineAnnealingLR(o, T_max=7),
    lambda ls, o: ls.LambdaLR(o, lambda e: 0.9 ** e),
], ids=["StepLR", "MultiStepLR", "ExponentialLR", "LinearLR", "ConstantLR", "PolynomialLR",
        "CosineAnnealingLR", "LambdaLR"])
def test_step_with_an_epoch_uses_the_closed_form_and_warns_like_torch(build, torch):
    opt, topt = make_optimizer(None, "sgd"), make_optimizer(torch, "sgd")
    sched, tsched = build(lr_scheduler, opt), build(torch.optim.lr_scheduler, topt)
    for epoch in [3, 1, 7, 5, 12, 0, 4]:
        opt.step()
        topt.step()
        with pytest.warns(UserWarning, match="The epoch parameter in `scheduler.step\\(\\)`"):
            sched.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tsched.step(epoch)
        np.testing.assert_allclose(snapshot(opt), snapshot(topt), rtol=RTOL, err_msg=str(epoch))


def test_one_cycle_raises_when_stepped_too_many_times(torch):
    opt = make_optimizer(None, "sgd")
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=5)
    run(opt, sched, 4)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 25 / 1e4, rel=1e-12)   # min_lr
    opt.step()
    sched.step()                               # step 5 = total_steps is still allowed
    with pytest.raises(ValueError, match="Tried to step 6 times. The specified number of total "
                                         "steps is 5"):
        sched.step()
    topt = make_optimizer(torch, "sgd")
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.1, total_steps=5)
    run(topt, tsched, 5)
    with pytest.raises(ValueError, match="Tried to step 6 times"):
        tsched.step()


def test_scheduler_step_before_optimizer_step_warns():
    opt = make_optimizer(None, "sgd")
    sched = lr_scheduler.ExponentialLR(opt, gamma=0.5)
    with pytest.warns(UserWarning, match=r"Detected call of `lr_scheduler.step\(\)` before "
                                         r"`optimizer.step\(\)`"):
        sched.step()
    opt = make_optimizer(None, "sgd")
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()                           # the right order: no warning
        sched.step()


def test_wrapped_optimizer_step_still_steps_and_returns_the_loss():
    p = Parameter(np.ones(2))
    opt = minidl.optim.SGD([p], lr=0.5)
    lr_scheduler.ExponentialLR(opt, gamma=0.5)
    p.grad = minidl.tensor(np.ones(2))
    assert opt.step(lambda: 3.0) == 3.0
    np.testing.assert_array_equal(p.data, [0.5, 0.5])


@settings(max_examples=25, deadline=None)
@given(base=st.floats(1e-4, 0.05), span=st.floats(1e-3, 1.0), up=st.integers(1, 6),
       down=st.one_of(st.none(), st.integers(1, 6)),
       mode=st.sampled_from(["triangular", "triangular2", "exp_range"]), gamma=st.floats(0.5, 1.0))
def test_cyclic_lr_random_hyperparameters_match_torch(torch, base, span, up, down, mode, gamma):
    def build(ls, o):
        return ls.CyclicLR(o, base, base + span, step_size_up=up, step_size_down=down, mode=mode,
                           gamma=gamma)
    compare_sequences(torch, "sgd", build, 3 * (up + (down or up)))


@settings(max_examples=25, deadline=None)
@given(max_lr=st.floats(1e-3, 1.0), total=st.integers(2, 40), pct=st.floats(0.05, 0.95),
       strategy=st.sampled_from(["cos", "linear"]), three_phase=st.booleans(),
       div=st.floats(1.5, 100.0), final_div=st.floats(1.5, 1e5), kind=st.sampled_from(["sgd", "adam"]))
def test_one_cycle_random_hyperparameters_match_torch(torch, max_lr, total, pct, strategy,
                                                       three_phase, div, final_div, kind):
    def build(ls, o):
        return ls.OneCycleLR(o, max_lr=max_lr, total_steps=total, pct_start=pct,
                             anneal_strategy=strategy, three_phase=three_phase, div_factor=div,
                             final_div_factor=final_div)
    compare_sequences(torch, kind, build, total)


def compare_sequences(torch, kind, build, steps):
    """Run both libraries, compare every value; a torch ZeroDivisionError must be ours too."""
    opt, topt = make_optimizer(None, kind), make_optimizer(torch, kind)
    try:
        tsched = build(torch.optim.lr_scheduler, topt)
        theirs = run(topt, tsched, steps)
    except ZeroDivisionError:
        with pytest.raises(ZeroDivisionError):
            run(opt, build(lr_scheduler, opt), steps)
        return
    ours = run(opt, build(lr_scheduler, opt), steps)
    for t, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f"step {t}")


BAD = [
    (lambda ls, o: ls.ConstantLR(o, factor=1.5), "Constant multiplicative factor expected to be between 0 and 1"),
    (lambda ls, o: ls.LinearLR(o, start_factor=0), "Starting multiplicative factor expected to be greater than 0"),
    (lambda ls, o: ls.LinearLR(o, end_factor=1.5), "Ending multiplicative factor expected to be between 0 and 1"),
    (lambda ls, o: ls.LambdaLR(o, [lambda e: 1.0]), "Expected 2 lr_lambdas, but got 1"),
    (lambda ls, o: ls.CosineAnnealingWarmRestarts(o, T_0=0), "Expected positive integer T_0, but got 0"),
    (lambda ls, o: ls.CosineAnnealingWarmRestarts(o, T_0=2.5), "Expected positive integer T_0"),
    (lambda ls, o: ls.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), "Expected integer T_mult >= 1, but got 0"),
    (lambda ls, o: ls.CosineAnnealingWarmRestarts(o, T_0=2, eta_min="0"), "Expected float or int eta_min"),
    (lambda ls, o: ls.CyclicLR(o, 0.01, 0.1, mode="sawtooth"), "mode is invalid and scale_fn is None"),
    (lambda ls, o: ls.CyclicLR(o, [0.01], 0.1), "base_lr must have the same length as optimizer.param_groups"),
    (lambda ls, o: ls.OneCycleLR(o, 0.1), r"You must define either total_steps OR \(epochs AND steps_per_epoch\)"),
    (lambda ls, o: ls.OneCycleLR(o, 0.1, total_steps=0), "Expected positive integer total_steps, but got 0"),
    (lambda ls, o: ls.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=3), "Expected positive integer epochs"),
    (lambda ls, o: ls.OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=-1), "Expected positive integer steps_per_epoch"),
    (lambda ls, o: ls.OneCycleLR(o, 0.1, total_steps=5, pct_start=1.5), "Expected float between 0 and 1 pct_start"),
    (lambda ls, o: ls.OneCycleLR(o, 0.1, total_steps=5, anneal_strategy="exp"),
     "anneal_strategy must be one of 'cos' or 'linear', instead got exp"),
    (lambda ls, o: ls.SequentialLR(o, [], milestones=[]), "SequentialLR expects at least one scheduler"),
    (lambda ls, o: ls.SequentialLR(o, [ls.ExponentialLR(o, 0.9)], milestones=[3]),
     "expects number of schedulers provided to be one more than the number of milestone points"),
    (lambda ls, o: ls.SequentialLR(o, [ls.ReduceLROnPlateau(o)], milestones=[]),
     "SequentialLR does not support `ReduceLROnPlateau`"),
    (lambda ls, o: ls.ChainedScheduler([]), "ChainedScheduler expects at least one scheduler to be chained"),
]


@pytest.mark.parametrize("build,match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments_raise_torchs_value_error(build, match, torch):
    with pytest.raises(ValueError, match=match):
        build(lr_scheduler, make_optimizer(None, "sgd"))
    with pytest.raises(ValueError, match=match):
        build(torch.optim.lr_scheduler, make_optimizer(torch, "sgd"))


def test_cycle_momentum_needs_momentum_or_betas(torch):
    for ls, opt in [(lr_scheduler, minidl.optim.Adagrad([Parameter(np.zeros(2))])),
                    (torch.optim.lr_scheduler, torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(2))]))]:
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
            ls.OneCycleLR(opt, 0.1, total_steps=5)
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
            ls.CyclicLR(opt, 0.01, 0.1)


def test_schedulers_of_different_optimizers_are_refused():
    a, b = make_optimizer(None, "sgd"), make_optimizer(None, "sgd")
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same optimizer"):
        lr_scheduler.ChainedScheduler([lr_scheduler.ExponentialLR(a, 0.9),
                                       lr_scheduler.ExponentialLR(b, 0.9)])
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same optimizer"):
        lr_scheduler.SequentialLR(a, [lr_scheduler.ExponentialLR(b, 0.9)], milestones=[])
