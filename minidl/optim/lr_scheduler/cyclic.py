r"""Cyclic schedules: cosine annealing with warm restarts, CyclicLR, OneCycleLR."""

import math
import types

from ..optimizer import Optimizer
from ._base import LRScheduler, _format_param

__all__ = ["CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR"]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing that restarts from the initial rate (SGDR, Loshchilov & Hutter 2017).

    ::

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    ``T_cur`` counts the epochs since the last restart; the first period has
    ``T_i = T_0`` epochs and each next one ``T_mult`` times more. ``step()``
    increments ``T_cur`` (restarting when it reaches ``T_i``); ``step(epoch)``
    accepts a fractional epoch (call it every batch with ``epoch + i / iters``)
    and finds the period that contains it::

        T_mult == 1:  T_cur = epoch mod T_0
        T_mult > 1:   n = floor(log_{T_mult}(epoch / T_0 * (T_mult - 1) + 1))
                      T_cur = epoch - T_0 * (T_mult**n - 1) / (T_mult - 1),   T_i = T_0 * T_mult**n
        (epoch < T_0: T_i = T_0, T_cur = epoch)

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        T_0 (int): length of the first period.
        T_mult (int): growth factor of the period, >= 1 (default 1).
        eta_min (float): the minimum learning rate (default 0).
        last_epoch (int): index of the last epoch, -1 for a fresh schedule.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        if not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base_lr in self.base_lrs]

    def step(self, epoch=None):
        r"""Advance one epoch, or go to ``epoch`` (may be fractional; no warning, as in PyTorch)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def _set_momentum(group, value, use_beta1):
    """Write the cycled momentum: ``betas[0]`` (Adam-like) or ``'momentum'`` (SGD-like)."""
    if use_beta1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


def _check_cycle_momentum(optimizer):
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
    return "betas" in optimizer.defaults


class CyclicLR(LRScheduler):
    r"""Cycle each group's rate between ``base_lr`` and ``max_lr`` (Smith, 2017). Step per batch.

    With ``total = step_size_up + step_size_down`` and ``ratio = step_size_up / total``,
    at iteration ``t`` (= ``last_epoch``)::

        cycle = floor(1 + t / total)
        x     = 1 + t / total - cycle                      (position in the cycle, in [0, 1))
        s     = x / ratio              if x <= ratio       (rising)
                (x - 1) / (ratio - 1)  otherwise           (falling)
        lr    = base_lr + (max_lr - base_lr) * s * scale
        momentum = max_momentum - (max_momentum - base_momentum) * s * scale   (cycle_momentum)

    where ``scale = scale_fn(cycle)`` (scale_mode 'cycle') or ``scale_fn(t)`` ('iterations'):
    'triangular': 1; 'triangular2': ``1 / 2**(cycle - 1)``; 'exp_range': ``gamma**t``.
    The momentum is ``betas[0]`` for optimizers with betas, else ``'momentum'``.

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        base_lr, max_lr (float or list): the bounds of the rate, per group or shared.
        step_size_up (int): iterations of the rising half (default 2000).
        step_size_down (int): iterations of the falling half (default: step_size_up).
        mode (str): 'triangular', 'triangular2' or 'exp_range' (ignored with scale_fn).
        gamma (float): base of 'exp_range' (default 1).
        scale_fn (callable): custom ``x -> scale``, with ``scale_mode`` 'cycle' or 'iterations'.
        cycle_momentum (bool): cycle the momentum inversely to the rate (default True).
        base_momentum, max_momentum (float or list): its bounds (default 0.8, 0.9).
        last_epoch (int): index of the last iteration, -1 for a fresh schedule.
    """

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode="triangular", gamma=1.0, scale_fn=None, scale_mode="cycle",
                 cycle_momentum=True, base_momentum=0.8, max_momentum=0.9, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        base_lrs = _format_param("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups, strict=True):
                group["lr"] = lr
        self.max_lrs = _format_param("max_lr", optimizer, max_lr)
        step_size_up = float(step_size_up)
        step_size_down = float(step_size_down) if step_size_down is not None else step_size_up
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _check_cycle_momentum(optimizer)
            self.base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            self.max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                for m_max, m_base, group in zip(self.max_momentums, self.base_momentums,
                                                optimizer.param_groups, strict=True):
                    _set_momentum(group, m_max, self.use_beta1)
                    group["max_momentum"] = m_max
                    group["base_momentum"] = m_base
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self):
        """The built-in modes fix scale_mode; a custom scale_fn keeps the given one."""
        if self._scale_fn_custom is not None:
            return
        if self.mode in ("triangular", "triangular2"):
            self.scale_mode = "cycle"
        elif self.mode == "exp_range":
            self.scale_mode = "iterations"

    def scale_fn(self, x):
        r"""The amplitude scale at cycle (or iteration) ``x``."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x                                   # exp_range

    def get_lr(self):
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        lrs = [base_lr + (max_lr - base_lr) * scale_factor * scale
               for base_lr, max_lr in zip(self.base_lrs, self.max_lrs, strict=True)]
        if self.cycle_momentum:
            for group, m_base, m_max in zip(self.optimizer.param_groups, self.base_momentums,
                                            self.max_momentums, strict=True):
                _set_momentum(group, m_max - (m_max - m_base) * scale_factor * scale, self.use_beta1)
        return lrs

    def state_dict(self):
        r"""As PyTorch: a custom ``scale_fn`` that is a plain function is not saved."""
        state = super().state_dict()
        fn = state.pop("_scale_fn_custom")
        state["_scale_fn_custom"] = (fn.__dict__.copy()
                                     if fn is not None and not isinstance(fn, types.FunctionType) else None)
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        fn = state_dict.pop("_scale_fn_custom")
        super().load_state_dict(state_dict)
        if fn is not None:
            self._scale_fn_custom.__dict__.update(fn)
        self._init_scale_fn()


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, 2018): warm up to ``max_lr``, then anneal far below. Step per batch.

    ``initial_lr = max_lr / div_factor``, ``min_lr = initial_lr / final_div_factor``;
    with ``N = total_steps`` (or ``epochs * steps_per_epoch``) and ``p = pct_start``
    the phases (each annealed from its start to its end value) are::

        two phases:    steps [0, pN - 1]:      initial_lr -> max_lr,   max_momentum -> base_momentum
                       steps [pN - 1, N - 1]:  max_lr -> min_lr,       base_momentum -> max_momentum
        three_phase:   steps [0, pN - 1]:      initial_lr -> max_lr,   max_momentum -> base_momentum
                       [pN - 1, 2pN - 2]:      max_lr -> initial_lr,   base_momentum -> max_momentum
                       [2pN - 2, N - 1]:       initial_lr -> min_lr,   max_momentum (kept)

    In a phase from step ``a`` to ``b``, at step ``t``, with ``pct = (t - a) / (b - a)``::

        cos:     value = end + (start - end) * (1 + cos(pi * pct)) / 2
        linear:  value = start + (end - start) * pct

    The momentum is ``betas[0]`` for optimizers with betas, else ``'momentum'``.
    Stepping past ``total_steps`` raises ValueError, as in PyTorch.

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        max_lr (float or list): the peak rate, per group or shared.
        total_steps (int): number of steps of the cycle; or give ``epochs`` and ``steps_per_epoch``.
        pct_start (float): fraction of the cycle spent warming up (default 0.3).
        anneal_strategy (str): 'cos' (default) or 'linear'.
        cycle_momentum (bool): cycle the momentum inversely to the rate (default True).
        base_momentum, max_momentum (float or list): its bounds (default 0.85, 0.95).
        div_factor (float): ``initial_lr = max_lr / div_factor`` (default 25).
        final_div_factor (float): ``min_lr = initial_lr / final_div_factor`` (default 1e4).
        three_phase (bool): come back to initial_lr before the final annealing.
        last_epoch (int): index of the last step, -1 for a fresh schedule.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        # each phase: (end_step, start_lr key, end_lr key, start_momentum key, end_momentum key)
        warm_up_end = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                dict(end_step=warm_up_end, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=float(2 * pct_start * self.total_steps) - 2, start_lr="max_lr",
                     end_lr="initial_lr", start_momentum="base_momentum", end_momentum="max_momentum"),
                dict(end_step=self.total_steps - 1, start_lr="initial_lr", end_lr="min_lr",
                     start_momentum="max_momentum", end_momentum="max_momentum"),
            ]
        else:
            self._schedule_phases = [
                dict(end_step=warm_up_end, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=self.total_steps - 1, start_lr="max_lr", end_lr="min_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
            ]
        if not isinstance(pct_start, float) or pct_start < 0 or pct_start > 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._anneal_func_type = anneal_strategy
        max_lrs = _format_param("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for m, group in zip(max_lrs, optimizer.param_groups, strict=True):
                group["initial_lr"] = m / div_factor
                group["max_lr"] = m
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _check_cycle_momentum(optimizer)
            max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for m_max, m_base, group in zip(max_momentums, base_momentums,
                                                optimizer.param_groups, strict=True):
                    _set_momentum(group, m_max, self.use_beta1)
                    group["max_momentum"] = m_max
                    group["base_momentum"] = m_base
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, pct):
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total steps is "
                             f"{self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase["start_momentum"]],
                                                group[phase["end_momentum"]], pct)
                    break
                start_step = end_step
            lrs.append(lr)
            if self.cycle_momentum:
                _set_momentum(group, momentum, self.use_beta1)
        return lrs
