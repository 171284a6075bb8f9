"""Activation modules: thin wrappers around ``minidl.functional``."""

import warnings

from .. import dtypes
from .. import functional as F
from ..creation import empty
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["ELU", "GELU", "Hardtanh", "LeakyReLU", "LogSoftmax", "PReLU", "ReLU", "ReLU6", "SiLU", "Sigmoid",
           "Softmax", "Softplus", "Tanh"]


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



class Hardtanh(Module):
    r"""Elementwise ``x`` clamped to ``[min_val, max_val]`` (``inplace=True``: into the input)."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None, max_value=None):
        super().__init__()
        for old, new, value in (("min_value", "min_val", min_value), ("max_value", "max_val", max_value)):
            if value is not None:  # PyTorch's deprecated spellings
                warnings.warn(f"Hardtanh: keyword argument {old} is deprecated and renamed to {new}",
                              FutureWarning, stacklevel=2)
        min_val = min_val if min_value is None else min_value
        max_val = max_val if max_value is None else max_value
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace
        if not self.max_val > self.min_val:
            raise ValueError(f"Hardtanh: max_val must be greater than min_val, got min_val={min_val}, "
                             f"max_val={max_val}")

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    r"""Elementwise :math:`\min(\max(0, x), 6)`: ``Hardtanh(0, 6)``."""

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ELU(Module):
    r"""Elementwise :math:`x` for :math:`x > 0`, else :math:`\alpha (e^x - 1)`."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    r"""Elementwise :math:`x \Phi(x)` (``approximate='none'``) or its tanh approximation (``'tanh'``)."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    r"""Elementwise :math:`x \sigma(x)` (swish)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Softplus(Module):
    r"""Elementwise :math:`\log(1 + e^{\beta x}) / \beta`, and :math:`x` where :math:`\beta x >` threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class PReLU(Module):
    r"""Elementwise :math:`x` for :math:`x > 0`, else :math:`a x` with a learnable slope ``a``:
    one for every entry (``num_parameters=1``) or one per channel (``num_parameters=C``).

    Parameter ``weight`` (num_parameters,), initialised to ``init`` (0.25).
    """

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        dtype = dtypes.default_float if dtype is None else dtypes.as_dtype(dtype)
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(empty((num_parameters,), dtype=dtype, device=device))
        self.reset_parameters()

    def reset_parameters(self):
        init.constant_(self.weight, self.init)

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
