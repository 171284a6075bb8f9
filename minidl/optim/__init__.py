r"""Optimizers and learning-rate schedules (PyTorch's ``torch.optim``, on NumPy).

* :class:`Optimizer` - base class: param groups, per-parameter state, state_dict.
* :class:`SGD` - gradient descent with optional (Nesterov) momentum.
* :class:`Adam`, :class:`AdamW` - adaptive moments, with L2 or decoupled weight decay.
* :class:`RMSprop`, :class:`Adadelta`, :class:`Adagrad`, :class:`Adamax`, :class:`NAdam`,
  :class:`RAdam` - the other adaptive-step-size optimizers of ``torch.optim``.
* :mod:`lr_scheduler` - StepLR, CosineAnnealingLR, ReduceLROnPlateau and the other schedules.

Every update rule is written as equations in its class docstring.
"""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adadelta", "Adagrad", "Adamax",
           "NAdam", "RAdam", "lr_scheduler"]
