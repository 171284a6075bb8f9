r"""Learning-rate schedules, as ``torch.optim.lr_scheduler``.

A scheduler rewrites ``group['lr']`` of every param group of an optimizer.
Call ``scheduler.step()`` once per epoch (or per iteration), after
``optimizer.step()`` (the first ``scheduler.step()`` warns otherwise, as PyTorch)::

    for epoch in range(epochs):
        train_one_epoch(model, optimizer)      # ... optimizer.step() ...
        scheduler.step()

``last_epoch`` counts the calls to ``step()``: it is -1 before construction and 0
right after it (the constructor performs the first "step", which leaves the
learning rates as they are). Each group's starting learning rate is remembered
in ``group['initial_lr']`` and in ``base_lrs``. Most schedules update the rate
recursively from the current ``group['lr']``, as PyTorch's do, so that several
schedulers on one optimizer compose.

Create the scheduler *before* ``optimizer.load_state_dict(...)`` when resuming,
since constructing it rewrites ``group['lr']``.

* :mod:`._base`: LRScheduler, StepLR, CosineAnnealingLR, ReduceLROnPlateau.
* :mod:`.simple`: LambdaLR, MultiplicativeLR, MultiStepLR, ExponentialLR, LinearLR,
  ConstantLR, PolynomialLR.
* :mod:`.composite`: SequentialLR, ChainedScheduler.
* :mod:`.cyclic`: CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR.
"""

from ._base import CosineAnnealingLR, LRScheduler, ReduceLROnPlateau, StepLR
from .composite import ChainedScheduler, SequentialLR
from .cyclic import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from .simple import (ConstantLR, ExponentialLR, LambdaLR, LinearLR, MultiplicativeLR, MultiStepLR,
                     PolynomialLR)

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "ReduceLROnPlateau", "LambdaLR",
           "MultiplicativeLR", "MultiStepLR", "ExponentialLR", "LinearLR", "ConstantLR",
           "PolynomialLR", "SequentialLR", "ChainedScheduler", "CosineAnnealingWarmRestarts",
           "CyclicLR", "OneCycleLR"]
