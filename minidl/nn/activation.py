"""Activation modules: thin wrappers around ``minidl.functional``."""

from .. import functional as F
from .module import Module

__all__ = ["LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Tanh"]


class ReLU(Module):
    r"""Elementwise :math:`\max(0, x)`.

    ``inplace=True`` writes the result into the input and returns it (as in PyTorch).
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input, inplace=self.inplace)

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


class LeakyReLU(Module):
    r"""Elementwise :math:`x` for :math:`x > 0`, else ``negative_slope`` :math:`\cdot x`.

    ``inplace=True`` writes the result into the input and returns it (as in PyTorch).
    """

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Softmax(Module):
    r"""``softmax(input, dim)``: exp(x_i) / sum_j exp(x_j) along ``dim`` (entries in (0, 1), summing to 1).

    The default ``dim=None`` is PyTorch's signature, but like ``F.softmax`` the forward
    then raises a clear error instead of guessing a dim (PyTorch's guess is deprecated).
    """

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    r"""``log_softmax(input, dim)``: x_i - log sum_j exp(x_j) along ``dim``, computed stably.

    The default ``dim=None`` is PyTorch's signature, but like ``F.log_softmax`` the forward
    then raises a clear error instead of guessing a dim (PyTorch's guess is deprecated).
    """

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"

