"""The learning-rate schedulers against torch.optim.lr_scheduler: the same sequence of rates
(and of momentum / beta1 where they are cycled) over every phase, two param groups, resumed from
state_dict halfway."""
import math

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:The epoch parameter in `scheduler.step\\(\\)`:UserWarning")

import minidl
from minidl.optim import lr_scheduler as ours_sched

STEPS = 40


def _optimizer(lib, kind):
    params = [lib.nn.Parameter(lib.ones(2, dtype=lib.float64)), lib.nn.Parameter(lib.ones(3, dtype=lib.float64))]
    groups = [{"params": params[:1], "lr": 0.1}, {"params": params[1:], "lr": 0.02}]
    if kind == "adam":
        return lib.optim.Adam(groups, lr=0.1)
    return lib.optim.SGD(groups, lr=0.1, momentum=0.9)


def _warmup(step):
    return 0.5 ** (step // 3) + 0.01 * step


class _Lambda:
    """A callable object: its attributes are saved in state_dict (a plain function is not)."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, step):
        return self.rate ** step


# name -> (optimizer kind, factory(lib, sched_module, optimizer))
CASES = {
    "LambdaLR": ("sgd", lambda lib, s, o: s.LambdaLR(o, [_warmup, _Lambda(0.97)])),
    "MultiplicativeLR": ("sgd", lambda lib, s, o: s.MultiplicativeLR(o, lambda e: 0.95 if e % 2 else 1.01)),
    "MultiStepLR": ("sgd", lambda lib, s, o: s.MultiStepLR(o, milestones=[3, 7, 7, 20], gamma=0.5)),
    "ConstantLR": ("sgd", lambda lib, s, o: s.ConstantLR(o, factor=0.25, total_iters=6)),
    "LinearLR": ("sgd", lambda lib, s, o: s.LinearLR(o, start_factor=0.1, end_factor=0.8, total_iters=9)),
    "ExponentialLR": ("sgd", lambda lib, s, o: s.ExponentialLR(o, gamma=0.93)),
    "PolynomialLR": ("sgd", lambda lib, s, o: s.PolynomialLR(o, total_iters=25, power=2.0)),
    "CosineAnnealingWarmRestarts": ("sgd", lambda lib, s, o: s.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-3)),
    "CyclicLR-triangular": ("sgd", lambda lib, s, o: s.CyclicLR(o, base_lr=[0.01, 0.001], max_lr=0.1, step_size_up=4, step_size_down=7)),
    "CyclicLR-triangular2": ("sgd", lambda lib, s, o: s.CyclicLR(o, 0.01, 0.1, step_size_up=5, mode="triangular2")),
    "CyclicLR-exp_range-adam": ("adam", lambda lib, s, o: s.CyclicLR(o, 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.97)),
    "CyclicLR-scale_fn": ("sgd", lambda lib, s, o: s.CyclicLR(o, 0.01, 0.1, step_size_up=3, scale_fn=lambda x: 1 / (1 + x), scale_mode="iterations")),
    "OneCycleLR-cos": ("sgd", lambda lib, s, o: s.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=STEPS)),
    "OneCycleLR-linear-three-phase-adam": ("adam", lambda lib, s, o: s.OneCycleLR(
        o, max_lr=0.3, epochs=4, steps_per_epoch=10, pct_start=0.25, anneal_strategy="linear", three_phase=True,
        div_factor=10.0, final_div_factor=100.0)),
    "OneCycleLR-no-momentum": ("sgd", lambda lib, s, o: s.OneCycleLR(o, 0.4, total_steps=STEPS, cycle_momentum=False)),
    "SequentialLR": ("sgd", lambda lib, s, o: s.SequentialLR(
        o, [s.LinearLR(o, start_factor=0.2, total_iters=5), s.ExponentialLR(o, gamma=0.9), s.StepLR(o, 4, 0.5)],
        milestones=[5, 15])),
    "SequentialLR-constant-cosine": ("sgd", lambda lib, s, o: s.SequentialLR(
        o, [s.ConstantLR(o, factor=0.5, total_iters=3), s.CosineAnnealingLR(o, T_max=10)], milestones=[4])),
    "ChainedScheduler": ("sgd", lambda lib, s, o: s.ChainedScheduler(
        [s.ConstantLR(o, factor=0.3, total_iters=4), s.ExponentialLR(o, gamma=0.95), s.MultiStepLR(o, [10, 30])])),
}


def _momenta(optimizer):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in optimizer.param_groups]


def _run(lib, sched_module, name, steps=STEPS, resume_at=None):
    kind, make = CASES[name]
    optimizer = _optimizer(lib, kind)
    scheduler = make(lib, sched_module, optimizer)
    record = [(list(scheduler.get_last_lr()), _momenta(optimizer))]
    for t in range(steps - 1):
        optimizer.step()
        scheduler.step()
        record.append((list(scheduler.get_last_lr()), _momenta(optimizer)))
        if resume_at is not None and t == resume_at:
            saved_sched, saved_opt = scheduler.state_dict(), optimizer.state_dict()
            optimizer = _optimizer(lib, kind)
            scheduler = make(lib, sched_module, optimizer)
            optimizer.load_state_dict(saved_opt)
            scheduler.load_state_dict(saved_sched)
    return record


@pytest.mark.parametrize("name", list(CASES))
def test_schedule_matches_torch(torch, name):
    ours = _run(minidl, ours_sched, name)
    theirs = _run(torch, torch.optim.lr_scheduler, name)
    for t, ((lrs, moms), (lrs_ref, moms_ref)) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(lrs, lrs_ref, rtol=1e-12, err_msg=f"{name}: lr at step {t}")
        assert (moms is None) == (moms_ref is None)
        np.testing.assert_allclose(moms, moms_ref, rtol=1e-12, err_msg=f"{name}: momentum at step {t}")
    assert len({tuple(r[0]) for r in ours}) >= 2  # the rate really moved


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith(("MultiplicativeLR", "CyclicLR-scale_fn"))])
def test_resumed_from_state_dict_equals_uninterrupted(name):
    """Stop at step 12, rebuild optimizer and scheduler, load both state dicts, go on."""
    straight = _run(minidl, ours_sched, name)
    resumed = _run(minidl, ours_sched, name, resume_at=12)
    for t, (a, b) in enumerate(zip(straight, resumed)):
        assert a == b, f"{name}: step {t}"


def test_state_dict_keeps_callable_objects_but_not_functions():
    opt = _optimizer(minidl, "sgd")
    sched = ours_sched.LambdaLR(opt, [_warmup, _Lambda(0.97)])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [None, {"rate": 0.97}]
    other = ours_sched.LambdaLR(_optimizer(minidl, "sgd"), [_warmup, _Lambda(0.5)])
    other.load_state_dict(state)
    assert other.lr_lambdas[1].rate == 0.97


def test_one_cycle_refuses_one_step_too_many_as_torch(torch):
    for lib, s in ((minidl, ours_sched), (torch, torch.optim.lr_scheduler)):
        opt = _optimizer(lib, "sgd")
        sched = s.OneCycleLR(opt, 0.1, total_steps=3)
        for _ in range(3):
            opt.step()
            sched.step()
        with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
            sched.step()


@pytest.mark.parametrize("make,match", [
    (lambda s, o: s.ConstantLR(o, factor=1.5), "Constant multiplicative factor expected to be between 0 and 1"),
    (lambda s, o: s.LinearLR(o, start_factor=0), "Starting multiplicative factor expected to be greater than 0"),
    (lambda s, o: s.LinearLR(o, end_factor=2), "Ending multiplicative factor expected to be between 0 and 1"),
    (lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=0), "Expected positive integer T_0, but got 0"),
    (lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), "Expected integer T_mult >= 1, but got 0"),
    (lambda s, o: s.OneCycleLR(o, 0.1), r"You must define either total_steps OR \(epochs AND steps_per_epoch\)"),
    (lambda s, o: s.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.5), "Expected float between 0 and 1 pct_start"),
    (lambda s, o: s.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"), "anneal_strategy must be one of"),
    (lambda s, o: s.OneCycleLR(o, [0.1, 0.2, 0.3], total_steps=10), "max_lr must have the same length"),
    (lambda s, o: s.CyclicLR(o, 0.01, 0.1, mode="square"), "mode is invalid and scale_fn is None"),
    (lambda s, o: s.SequentialLR(o, [s.StepLR(o, 2)], milestones=[3]), "expects number of schedulers provided to be one more"),
    (lambda s, o: s.LambdaLR(o, [lambda e: 1.0]), "Expected 2 lr_lambdas, but got 1"),
])
def test_bad_arguments_raise_pytorchs_value_errors(torch, make, match):
    for lib, s in ((minidl, ours_sched), (torch, torch.optim.lr_scheduler)):
        with pytest.raises(ValueError, match=match):
            make(s, _optimizer(lib, "sgd"))


def test_cycling_momentum_needs_an_optimizer_with_one(torch):
    for lib, s in ((minidl, ours_sched), (torch, torch.optim.lr_scheduler)):
        params = [lib.nn.Parameter(lib.ones(2))]
        opt = lib.optim.Adadelta(params)
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
            s.OneCycleLR(opt, 0.1, total_steps=5)


def test_scheduler_before_optimizer_warns_as_torch(torch):
    for lib, s in ((minidl, ours_sched), (torch, torch.optim.lr_scheduler)):
        opt = _optimizer(lib, "sgd")
        sched = s.ExponentialLR(opt, 0.9)
        with pytest.warns(UserWarning, match="Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`"):
            sched.step()


def test_warm_restarts_with_fractional_epochs_match_torch(torch):
    rates = []
    for lib, s in ((minidl, ours_sched), (torch, torch.optim.lr_scheduler)):
        opt = _optimizer(lib, "sgd")
        sched = s.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2)
        seq = []
        for epoch in range(8):
            for i in range(4):
                opt.step()
                sched.step(epoch + i / 4)
                seq.append(sched.get_last_lr()[0])
        rates.append(seq)
    np.testing.assert_allclose(rates[0], rates[1], rtol=1e-12)
    assert not math.isclose(min(rates[0]), max(rates[0]))


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
                                  "CosineAnnealingLR"])
def test_step_with_an_epoch_uses_the_closed_form_as_torch(torch, name):
    """The deprecated ``step(epoch)`` jumps: the closed form, before, inside and after each phase."""
    make = {"StepLR": lambda s, o: s.StepLR(o, 3, 0.5), "MultiStepLR": lambda s, o: s.MultiStepLR(o, [2, 5, 5]),
            "ConstantLR": lambda s, o: s.ConstantLR(o, 0.5, 4), "LinearLR": lambda s, o: s.LinearLR(o, 0.2, 0.9, 6),
            "ExponentialLR": lambda s, o: s.ExponentialLR(o, 0.8), "PolynomialLR": lambda s, o: s.PolynomialLR(o, 7, 1.5),
            "CosineAnnealingLR": lambda s, o: s.CosineAnnealingLR(o, 9, 1e-3)}[name]
    seqs = []
    for lib, s in ((minidl, ours_sched), (torch, torch.optim.lr_scheduler)):
        opt = _optimizer(lib, "sgd")
        sched = make(s, opt)
        seq = []
        for epoch in (1, 4, 2, 6, 11, 3, 20):
            opt.step()
            sched.step(epoch)
            seq.append(list(sched.get_last_lr()))
        seqs.append(seq)
    np.testing.assert_allclose(seqs[0], seqs[1], rtol=1e-12)
