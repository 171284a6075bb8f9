"""Activation modules: thin wrappers around ``minidl.functional``."""

from .. import functional as F
from .module import Module

__all__ = ["ReLU", "Sigmoid", "Tanh"]


class ReLU(Module):
    r"""Elementwise :math:`\max(0, x)`.

    ``inplace`` is accepted for PyTorch compatibility and shown in ``repr``,
    but the result is always a new tensor: minidl has no in-place autograd ops.
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    r"""Elementwise :math:`1 / (1 + e^{-x})`."""

    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    r"""Elementwise :math:`\tanh(x)`."""

    def forward(self, input):
        return F.tanh(input)
