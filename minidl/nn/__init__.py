"""Neural-network building blocks: ``Module``, ``Parameter``, layers, containers, ``init``."""

from . import init
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .linear import Identity, Linear
from .module import Module
from .norm import BatchNorm1d, BatchNorm2d
from .parameter import Parameter
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, MaxUnpool2d
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

__all__ = [
    "Upsample",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
    "Conv2d",
    "ConvTranspose2d",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "MaxPool2d",
    "MaxUnpool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "Dropout2d",
    "LeakyReLU",
    "LogSoftmax",
    "Softmax",
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
