r"""Optimizers and learning-rate schedules (PyTorch's ``torch.optim``, on NumPy).

* :class:`Optimizer` - base class: param groups, per-parameter state, state_dict.
* :class:`SGD` - gradient descent with optional (Nesterov) momentum.
* :class:`Adam`, :class:`AdamW` - adaptive moments, with L2 or decoupled weight decay.
* :class:`RMSprop`, :class:`Adadelta` - steps scaled by running RMS values.
* :mod:`lr_scheduler` - StepLR, CosineAnnealingLR, ReduceLROnPlateau.

Every update rule is written as equations in its class docstring.
"""

from . import lr_scheduler
from .adadelta import Adadelta
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adadelta", "lr_scheduler"]
