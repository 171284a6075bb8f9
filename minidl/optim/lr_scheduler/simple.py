r"""Schedules that multiply the learning rate by a factor each epoch.

Each is written, as in PyTorch, *recursively* from the current ``group['lr']``
(so that it composes with other schedulers on the same optimizer); the closed
form in each docstring is what it gives when nothing else touches the rate, and
is what ``step(epoch)`` uses.
"""

import types
from bisect import bisect_right
from collections import Counter

from ._base import LRScheduler

__all__ = ["LambdaLR", "MultiplicativeLR", "MultiStepLR", "ExponentialLR", "LinearLR",
           "ConstantLR", "PolynomialLR"]


class _LambdaScheduler(LRScheduler):
    """Shared by LambdaLR and MultiplicativeLR: one function of the epoch per group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.optimizer = optimizer
        if not isinstance(lr_lambda, (list, tuple)):
            self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        else:
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got "
                                 f"{len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def state_dict(self):
        r"""As PyTorch: plain functions (lambdas) are not saved (``None``); callable
        objects are saved as a copy of their ``__dict__``."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
                               for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        saved = state_dict.pop("lr_lambdas")
        super().load_state_dict(state_dict)
        for fn, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                fn.__dict__.update(attributes)


class LambdaLR(_LambdaScheduler):
    r"""Set each group's rate to its initial rate times a function of the epoch.

    ::

        lr_epoch = base_lr * lr_lambda(epoch)

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        lr_lambda (callable or list of callables): ``epoch -> factor``, one per group or shared.
        last_epoch (int): index of the last epoch, -1 for a fresh schedule.
    """

    def get_lr(self):
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]


class MultiplicativeLR(_LambdaScheduler):
    r"""Multiply each group's rate by a function of the epoch, every epoch.

    ::

        lr_0     = base_lr
        lr_epoch = lr_{epoch-1} * lr_lambda(epoch)

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        lr_lambda (callable or list of callables): ``epoch -> factor``, one per group or shared.
        last_epoch (int): index of the last epoch, -1 for a fresh schedule.
    """

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [group["lr"] for group in groups]
        return [group["lr"] * fn(self.last_epoch) for fn, group in zip(self.lr_lambdas, groups, strict=True)]


class MultiStepLR(LRScheduler):
    r"""Multiply each group's rate by ``gamma`` at each milestone epoch.

    ::

        lr_epoch = lr_{epoch-1} * gamma ** (number of times epoch is in milestones)
                 ( = base_lr * gamma ** (number of milestones <= epoch) )

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        milestones (list of int): epochs of the decays (a repeated one decays twice).
        gamma (float): multiplicative factor (default 0.1).
        last_epoch (int): index of the last epoch, -1 for a fresh schedule.
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch not in self.milestones:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch] for group in groups]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch) for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""Multiply each group's rate by ``gamma`` every epoch.

    ::

        lr_epoch = lr_{epoch-1} * gamma       ( = base_lr * gamma ** epoch )

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        gamma (float): multiplicative factor.
        last_epoch (int): index of the last epoch, -1 for a fresh schedule.
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class ConstantLR(LRScheduler):
    r"""Multiply each group's rate by ``factor`` for the first ``total_iters`` epochs.

    ::

        lr_epoch = base_lr * factor    for epoch < total_iters
                   base_lr             from epoch total_iters on
        (recursively: lr_0 = lr * factor, lr_{total_iters} = lr_{total_iters-1} / factor)

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        factor (float): the factor, in [0, 1] (default 1/3).
        total_iters (int): number of epochs with the reduced rate (default 5).
        last_epoch (int): index of the last epoch, -1 for a fresh schedule.
    """

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in groups]
        if self.last_epoch != self.total_iters:
            return [group["lr"] for group in groups]
        return [group["lr"] * (1.0 / self.factor) for group in groups]

    def _get_closed_form_lr(self):
        return [base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    r"""Ramp each group's rate linearly from ``start_factor`` to ``end_factor`` times its initial rate.

    ::

        f_epoch  = start_factor + (end_factor - start_factor) * min(epoch, total_iters) / total_iters
        lr_epoch = base_lr * f_epoch

    computed recursively as ``lr_epoch = lr_{epoch-1} * f_epoch / f_{epoch-1}``, i.e.
    ``lr_{epoch-1} * (1 + (end - start) / (total_iters * start + (epoch - 1) * (end - start)))``.

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        start_factor (float): the factor at epoch 0, in (0, 1] (default 1/3).
        end_factor (float): the factor from epoch ``total_iters`` on, in [0, 1] (default 1).
        total_iters (int): length of the ramp in epochs (default 5).
        last_epoch (int): index of the last epoch, -1 for a fresh schedule.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less "
                             "or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in groups]
        slope = self.end_factor - self.start_factor
        ratio = 1.0 + slope / (self.total_iters * self.start_factor + (self.last_epoch - 1) * slope)
        return [group["lr"] * ratio for group in groups]

    def _get_closed_form_lr(self):
        return [base_lr * (self.start_factor + (self.end_factor - self.start_factor)
                           * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    r"""Decay each group's rate polynomially to 0 over ``total_iters`` epochs.

    ::

        lr_epoch = base_lr * (1 - min(epoch, total_iters) / total_iters) ** power

    computed recursively as
    ``lr_epoch = lr_{epoch-1} * ((1 - epoch / T) / (1 - (epoch - 1) / T)) ** power`` (T = total_iters).

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        total_iters (int): epochs until the rate reaches 0 (default 5).
        power (float): the power of the polynomial (default 1).
        last_epoch (int): index of the last epoch, -1 for a fresh schedule.
    """

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in groups]
        factor = ((1.0 - self.last_epoch / self.total_iters)
                  / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return [group["lr"] * factor for group in groups]

    def _get_closed_form_lr(self):
        return [base_lr * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
                for base_lr in self.base_lrs]
