"""minidl.optim.lr_scheduler against torch.optim.lr_scheduler, by hand, and bad input."""
import math

import numpy as np
import pytest

# These tests step schedulers alone; PyTorch and minidl warn that optimizer.step() should come first.
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")

from minidl.nn import Parameter
from minidl.optim import SGD, Adam, lr_scheduler
from minidl.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, ReduceLROnPlateau, StepLR

LRS = (0.1, 0.03)


def minidl_optimizer(lrs=LRS):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    return SGD(groups, lr=1.0, momentum=0.9)


def torch_optimizer(torch, lrs=LRS):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))], "lr": lr}
              for lr in lrs]
    return torch.optim.SGD(groups, lr=1.0, momentum=0.9)


def lrs_of(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


def assert_lrs_close(ours, theirs):
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


def run_against_torch(make_ours, make_theirs, steps, metrics=None):
    """Step both schedulers `steps` times; compare every learning rate after every step."""
    torch = pytest.importorskip("torch")
    opt, topt = minidl_optimizer(), torch_optimizer(torch)
    sched, tsched = make_ours(opt), make_theirs(torch, topt)
    assert_lrs_close(sched.get_last_lr(), tsched.get_last_lr())
    history = [lrs_of(opt)]
    for t in range(steps):
        opt.step()
        topt.step()
        if metrics is None:
            sched.step()
            tsched.step()
        else:
            sched.step(metrics[t])
            tsched.step(metrics[t])
        assert_lrs_close(lrs_of(opt), lrs_of(topt))
        assert_lrs_close(sched.get_last_lr(), tsched.get_last_lr())
        assert sched.last_epoch == tsched.last_epoch
        history.append(lrs_of(opt))
    return history


# ---------------------------------------------------------------- StepLR

@pytest.mark.parametrize("step_size,gamma", [(3, 0.5), (1, 0.9), (7, 0.1)])
def test_step_lr_matches_torch(step_size, gamma):
    history = run_against_torch(
        lambda opt: StepLR(opt, step_size=step_size, gamma=gamma),
        lambda torch, opt: torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma),
        steps=40)
    assert history[-1][0] < history[0][0]


def test_step_lr_by_hand():
    opt = minidl_optimizer()
    sched = StepLR(opt, step_size=2, gamma=0.5)
    seen = []
    for _ in range(6):
        seen.append(sched.get_last_lr()[0])
        sched.step()
    assert seen == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert sched.base_lrs == list(LRS)
    assert [g["initial_lr"] for g in opt.param_groups] == list(LRS)


# ------------------------------------------------------ CosineAnnealingLR

@pytest.mark.parametrize("T_max,eta_min", [(10, 0.001), (7, 0.0), (25, 1e-4)])
def test_cosine_annealing_matches_torch_past_t_max(T_max, eta_min):
    run_against_torch(
        lambda opt: CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min),
        lambda torch, opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min),
        steps=50)


def test_cosine_annealing_follows_the_closed_form():
    T_max, eta_min = 10, 0.001
    opt = minidl_optimizer()
    sched = CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min)
    for t in range(1, 3 * T_max):
        sched.step()
        for lr, base in zip(sched.get_last_lr(), LRS):
            expected = eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2
            assert lr == pytest.approx(expected, rel=1e-10, abs=1e-15)
    assert sched.last_epoch == 3 * T_max - 1


def test_cosine_annealing_resumed_with_last_epoch_matches_torch():
    torch = pytest.importorskip("torch")
    opt, topt = minidl_optimizer(), torch_optimizer(torch)
    for group in opt.param_groups + topt.param_groups:
        group["initial_lr"] = group["lr"] * 2
    sched = CosineAnnealingLR(opt, T_max=8, eta_min=0.01, last_epoch=3)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=8, eta_min=0.01, last_epoch=3)
    for _ in range(20):
        topt.step()
        sched.step()
        tsched.step()
        assert_lrs_close(lrs_of(opt), lrs_of(topt))


def test_two_schedulers_on_one_optimizer_compose_like_torch():
    """The recursive cosine formula carries another scheduler's change along."""
    torch = pytest.importorskip("torch")
    opt, topt = minidl_optimizer(), torch_optimizer(torch)
    ours = [StepLR(opt, 4, gamma=0.7), CosineAnnealingLR(opt, T_max=12, eta_min=0.002)]
    theirs = [torch.optim.lr_scheduler.StepLR(topt, 4, gamma=0.7),
              torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=12, eta_min=0.002)]
    for _ in range(40):
        topt.step()
        for a, b in zip(ours, theirs):
            a.step()
            b.step()
        assert_lrs_close(lrs_of(opt), lrs_of(topt))


# ------------------------------------------------------ ReduceLROnPlateau

METRICS = [1.0, 0.9, 0.95, 0.91, 0.92, 0.9, 0.899995, 0.93, 0.5, 0.6, 0.55, 0.52, 0.51,
           0.505, 0.5001, 0.6, 0.7, 0.8, 0.49, 0.49, 0.49, 0.3, 0.31, 0.32, 0.33, 0.34,
           0.35, 0.36, 0.37, 0.38, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]

PLATEAU_CONFIGS = [
    dict(),
    dict(patience=2),
    dict(patience=0, factor=0.5),
    dict(patience=1, cooldown=2, factor=0.5, min_lr=0.01),
    dict(patience=1, threshold=0.05, threshold_mode="abs", min_lr=[0.02, 0.0]),
    dict(mode="max", patience=1, factor=0.3),
    dict(mode="max", patience=2, threshold=0.01, threshold_mode="abs", cooldown=1),
    dict(patience=0, factor=0.5, eps=0.01),
]


@pytest.mark.parametrize("kwargs", PLATEAU_CONFIGS, ids=[str(c) for c in PLATEAU_CONFIGS])
def test_reduce_on_plateau_matches_torch(kwargs):
    history = run_against_torch(
        lambda opt: ReduceLROnPlateau(opt, **kwargs),
        lambda torch, opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs),
        steps=len(METRICS), metrics=METRICS)
    if kwargs:
        assert history[-1] != history[0]          # the script did trigger reductions


def test_reduce_on_plateau_by_hand():
    opt = minidl_optimizer()
    sched = ReduceLROnPlateau(opt, patience=1, factor=0.5, cooldown=1)
    lrs = []
    for metric in [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0]:
        sched.step(metric)
        lrs.append(sched.get_last_lr()[0])
    # epochs 3,4 are bad -> reduce after epoch 4; epoch 5 is cooldown; 6,7 bad again -> reduce
    assert lrs == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]
    assert sched.best == 3.0 and sched.num_bad_epochs == 0


def test_reduce_on_plateau_accepts_a_zero_dim_array_metric():
    opt = minidl_optimizer()
    sched = ReduceLROnPlateau(opt, patience=0)
    sched.step(np.array(2.0))
    sched.step(np.float64(3.0))
    assert sched.get_last_lr() == [0.1 * 0.1, 0.03 * 0.1]


# ------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("make", [
    lambda opt: StepLR(opt, step_size=4, gamma=0.5),
    lambda opt: CosineAnnealingLR(opt, T_max=9, eta_min=0.001),
    lambda opt: ReduceLROnPlateau(opt, patience=1, cooldown=1, factor=0.5),
], ids=["StepLR", "CosineAnnealingLR", "ReduceLROnPlateau"])
def test_resume_from_state_dicts(make):
    def advance(opt, sched, metrics):
        for m in metrics:
            opt.step()
            sched.step(m) if isinstance(sched, ReduceLROnPlateau) else sched.step()
        return lrs_of(opt)

    full_opt = minidl_optimizer()
    full = make(full_opt)
    expected = advance(full_opt, full, METRICS)

    opt = minidl_optimizer()
    sched = make(opt)
    advance(opt, sched, METRICS[:15])
    opt_sd, sched_sd = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in sched_sd

    new_opt = minidl_optimizer(lrs=(0.5, 0.5))
    new_sched = make(new_opt)
    new_opt.load_state_dict(opt_sd)
    new_sched.load_state_dict(sched_sd)
    assert new_sched.last_epoch == sched.last_epoch
    assert advance(new_opt, new_sched, METRICS[15:]) == expected
    assert new_sched.get_last_lr() == full.get_last_lr()


def test_get_last_lr_returns_a_copy():
    sched = StepLR(minidl_optimizer(), step_size=1)
    sched.get_last_lr().append(99)
    assert sched.get_last_lr() == list(LRS)


def test_works_with_adam_too():
    opt = Adam([Parameter(np.zeros(1))], lr=0.01)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.005
    assert isinstance(sched, LRScheduler) and lr_scheduler.StepLR is StepLR


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("make,error,match", [
    (lambda opt: StepLR(object(), 3), TypeError, r"StepLR: object is not an Optimizer"),
    (lambda opt: StepLR(opt, 0), ValueError, r"StepLR: step_size must be a positive integer, got 0"),
    (lambda opt: StepLR(opt, 2.5), ValueError, r"step_size must be a positive integer, got 2\.5"),
    (lambda opt: CosineAnnealingLR(opt, T_max=0), ValueError, r"CosineAnnealingLR: T_max must be positive"),
    (lambda opt: StepLR(opt, 3, last_epoch=4), KeyError,
     r"param 'initial_lr' is not specified in param_groups\[0\]"),
    (lambda opt: StepLR(opt, 3, last_epoch=-2), ValueError, r"last_epoch must be an integer >= -1"),
    (lambda opt: ReduceLROnPlateau(opt, factor=1.0), ValueError, r"Factor should be < 1\.0"),
    (lambda opt: ReduceLROnPlateau(opt, mode="minimum"), ValueError, r"mode 'minimum' is unknown"),
    (lambda opt: ReduceLROnPlateau(opt, threshold_mode="relative"), ValueError,
     r"threshold mode 'relative' is unknown"),
    (lambda opt: ReduceLROnPlateau(opt, min_lr=[0.1]), ValueError, r"expected 2 min_lrs, got 1"),
    (lambda opt: ReduceLROnPlateau(object()), TypeError, r"object is not an Optimizer"),
])
def test_bad_arguments(make, error, match):
    opt = minidl_optimizer()
    with pytest.raises(error, match=match):
        make(opt)
    assert lrs_of(opt) == list(LRS)
    assert all("initial_lr" not in g for g in opt.param_groups)


def test_load_state_dict_of_another_scheduler_is_refused():
    opt = minidl_optimizer()
    step = StepLR(opt, step_size=3)
    cosine = CosineAnnealingLR(minidl_optimizer(), T_max=5)
    with pytest.raises(ValueError, match=r"StepLR\.load_state_dict: unexpected keys \['T_max', 'eta_min'\]"):
        step.load_state_dict(cosine.state_dict())
    assert step.step_size == 3 and not hasattr(step, "T_max")
