r"""Learning-rate schedules, as ``torch.optim.lr_scheduler``.

A scheduler rewrites ``group['lr']`` of every param group of an optimizer. Call
``scheduler.step()`` once per epoch (``CyclicLR`` and ``OneCycleLR``: once per batch), after
``optimizer.step()``. Each schedule's equations are in its docstring:

* base.py: ``LRScheduler``, ``StepLR``, ``CosineAnnealingLR``, ``ReduceLROnPlateau``;
* multiplicative.py: ``LambdaLR``, ``MultiplicativeLR``, ``MultiStepLR``, ``ConstantLR``,
  ``LinearLR``, ``ExponentialLR``, ``PolynomialLR``;
* cyclic.py: ``CosineAnnealingWarmRestarts``, ``CyclicLR``, ``OneCycleLR``;
* combined.py: ``SequentialLR``, ``ChainedScheduler``.
"""
from .base import CosineAnnealingLR, LRScheduler, ReduceLROnPlateau, StepLR
from .combined import ChainedScheduler, SequentialLR
from .cyclic import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from .multiplicative import (ConstantLR, ExponentialLR, LambdaLR, LinearLR, MultiplicativeLR, MultiStepLR,
                             PolynomialLR)

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "ReduceLROnPlateau", "LambdaLR", "MultiplicativeLR",
           "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "SequentialLR",
           "ChainedScheduler", "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR"]
