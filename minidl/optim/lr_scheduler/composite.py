r"""Schedulers made of other schedulers: one after another, or all at once."""

from bisect import bisect_right

from ._base import LRScheduler, ReduceLROnPlateau

__all__ = ["SequentialLR", "ChainedScheduler"]


def _check_schedulers(name, schedulers, optimizer):
    if len(schedulers) < 1:
        raise ValueError(f"{name} expects at least one scheduler, but got no scheduler.")
    for i, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(f"{name} at index {i} should have `optimizer` as its attribute.")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(
                f"{name} does not support `ReduceLROnPlateau` scheduler as it requires additional "
                f"kwargs to be specified when calling `step`, but got one at index {i} in the given "
                f"schedulers sequence.")
        if optimizer is not scheduler.optimizer:
            raise ValueError(
                f"{name} expects all schedulers to belong to the same optimizer, but got scheduler "
                f"{type(scheduler).__name__} at index {i} has {scheduler.optimizer}, which is "
                f"different from {type(optimizer).__name__}.")


class _CompositeScheduler(LRScheduler):
    """state_dict / load_state_dict that save each inner scheduler's state dict."""

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        inner = state_dict.pop("_schedulers")
        super().load_state_dict(state_dict)
        for scheduler, saved in zip(self._schedulers, inner, strict=True):
            scheduler.load_state_dict(saved)


class SequentialLR(_CompositeScheduler):
    r"""Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]``, and so on.

    With milestones ``m_1 < m_2 < ...``, at epoch ``e`` the active scheduler is
    ``schedulers[i]`` with ``i`` = number of milestones ``<= e``. At a milestone the
    new scheduler restarts from its epoch 0 (``step(0)``: its closed form where it has
    one); otherwise the active scheduler takes an ordinary ``step()``.

    Construction resets every group's rate to ``initial_lr``, undoes the first step
    of every inner scheduler and redoes it for ``schedulers[0]`` only, as PyTorch does.

    Args:
        optimizer (Optimizer): the wrapped optimizer (shared by all schedulers).
        schedulers (list): the schedulers, in order.
        milestones (list of int): epochs where the next scheduler takes over
            (one fewer than the schedulers).
        last_epoch (int): index of the last epoch, -1 for a fresh schedule.
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        _check_schedulers(type(self).__name__, schedulers, optimizer)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than the "
                f"number of milestone points, but got number of schedulers {len(schedulers)} and the "
                f"number of milestones to be equal to {len(milestones)}")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._recursive_undo(self)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def _recursive_undo(self, scheduler):
        """Take back the construction step of every (nested) inner scheduler."""
        if hasattr(scheduler, "_schedulers"):
            for inner in scheduler._schedulers:
                self._recursive_undo(inner)
        elif hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch -= 1

    def step(self):
        r"""Advance one epoch: restart the next scheduler at a milestone, else step the active one."""
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_CompositeScheduler):
    r"""Step every scheduler of a list at each ``step()``, so that their effects compose.

    With recursive schedules (``lr_t = lr_{t-1} * factor_t``) the factors multiply,
    e.g. ConstantLR then ExponentialLR gives ``base_lr * factor(t) * gamma**t``.

    Args:
        schedulers (list): the schedulers, all of the same optimizer.
        optimizer (Optimizer, optional): that optimizer (default: the first scheduler's).
    """

    def __init__(self, schedulers, optimizer=None):
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler to be chained, "
                             f"but got no scheduler.")
        optimizer = optimizer or schedulers[0].optimizer
        _check_schedulers(type(self).__name__, schedulers, optimizer)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = [group["lr"] for group in self._schedulers[-1].optimizer.param_groups]

    def step(self):
        r"""Step each scheduler in turn."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = [group["lr"] for group in self._schedulers[-1].optimizer.param_groups]
