"""Neural-network building blocks: ``Module``, ``Parameter``, layers, containers, ``init``."""

from . import functional, init, utils
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dict_containers import ModuleDict, ParameterDict, ParameterList
from .dropout import Dropout, Dropout2d
from .flatten import Flatten, Unflatten
from .linear import Identity, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, DiceLoss, MSELoss, NLLLoss
from .module import Module
from .norm import BatchNorm1d, BatchNorm2d
from .parameter import Parameter
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, MaxUnpool2d
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "DiceLoss",
    "Dropout",
    "Dropout2d",
    "Flatten",
    "Identity",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "MaxUnpool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ParameterDict",
    "ParameterList",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Unflatten",
    "Upsample",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
    "init",
]

# --- wt-nnlayers: more activations, padding, pixel shuffle, layer/group/instance norm
from .activation import ELU, GELU, Hardtanh, PReLU, ReLU6, SiLU, Softplus  # noqa: E402
from .padding import ConstantPad2d, ReflectionPad2d, ReplicationPad2d, ZeroPad2d  # noqa: E402
from .pixelshuffle import PixelShuffle, PixelUnshuffle  # noqa: E402
from .norm import GroupNorm, InstanceNorm2d, LayerNorm  # noqa: E402

__all__ += ["ELU", "GELU", "Hardtanh", "PReLU", "ReLU6", "SiLU", "Softplus",
            "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "ZeroPad2d", "PixelShuffle", "PixelUnshuffle",
            "GroupNorm", "InstanceNorm2d", "LayerNorm"]

# --- wt-ddp: data-parallel training (DistributedDataParallel in nn.parallel)
from . import parallel  # noqa: E402
from .norm import SyncBatchNorm  # noqa: E402

__all__ += ["SyncBatchNorm"]
