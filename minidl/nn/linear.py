"""``Linear`` (y = x W^T + b) and ``Identity``."""

import math

from .. import dtypes
from ..creation import empty
from .. import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """Return the input unchanged; any constructor arguments are ignored (as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    r"""Affine map :math:`y = x W^T + b`.

    Shapes: input (*, in_features)   weight (out_features, in_features)
            bias (out_features,)     output (*, out_features)

    Initialisation (PyTorch's default), with ``k = 1 / in_features``:
        weight ~ U(-sqrt(k), sqrt(k))   via kaiming_uniform_(weight, a=sqrt(5)):
                 gain = sqrt(2 / (1 + 5)) = sqrt(1/3),
                 bound = sqrt(3) * gain / sqrt(fan_in) = 1 / sqrt(fan_in)
        bias   ~ U(-sqrt(k), sqrt(k))
    so the weight has std 1 / sqrt(3 * in_features).

    ``dtype`` defaults to minidl's default float (float32); ``device`` to the default
    device (``minidl.set_default_device``).
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for what, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Linear: {what} must be an int >= 0, got {value!r}")
        dtype = dtypes.default_float if dtype is None else dtypes.as_dtype(dtype)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty((out_features, in_features), dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty((out_features,), dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()


    def reset_parameters(self):
        """Draw fresh weights and bias from the default distributions (see class doc)."""
        # a=sqrt(5) makes the kaiming bound exactly 1/sqrt(fan_in); see
        # https://github.com/pytorch/pytorch/issues/57109
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
