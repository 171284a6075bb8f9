"""PyTorch-shaped functions (``import minidl.functional as F``).

Each function checks and normalises its arguments, raising a clear error that
names the function, the argument and the shapes, then calls an op from
``minidl.ops`` where the math and its gradient live.
"""
from .ops import activation, linalg
from .tensor import Tensor


def _check_tensor(op, name, value):
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a minidl Tensor, got {type(value).__name__}")


def linear(input, weight, bias=None):  # noqa: A002  (PyTorch's argument name)
    """y = input @ weight^T + bias.   input (..., IN), weight (OUT, IN), bias (OUT,)."""
    _check_tensor("linear", "input", input)
    _check_tensor("linear", "weight", weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {input.shape} has {input.shape[-1] if input.ndim else 0} "
                         f"features but weight of shape {weight.shape} expects {weight.shape[1]}")
    if bias is not None:
        _check_tensor("linear", "bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},) to match weight "
                             f"{weight.shape}, got {bias.shape}")
    return linalg.Linear.apply(input, weight, bias)


def relu(input, inplace=False):  # noqa: A002
    """max(input, 0). ``inplace`` is accepted for PyTorch compatibility; a new tensor is returned."""
    return activation.Relu.apply(input)


def sigmoid(input):  # noqa: A002
    return activation.Sigmoid.apply(input)


def tanh(input):  # noqa: A002
    return activation.Tanh.apply(input)
