"""Neural-network building blocks: ``Module``, ``Parameter``, layers, containers, ``init``."""

from . import init
from .activation import ReLU, Sigmoid, Tanh
from .container import ModuleList, Sequential
from .linear import Identity, Linear
from .module import Module
from .parameter import Parameter

__all__ = [
    "Identity",
    "Linear",
    "Module",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "init",
]
