"""Activation functions: elementwise nonlinearities (softmax-like ones act along a dim).

``inplace=True`` writes the result into ``input`` and returns ``input`` (PyTorch's meaning), with
the rules and gradients of any in-place op (minidl/inplace.py).
"""
import numbers

from .. import dtypes
from ..inplace import apply_inplace
from ..ops import activation
from ._checks import check_tensor as _check_tensor


def relu(input, inplace=False):  # noqa: A002
    """max(input, 0); with ``inplace=True`` written into ``input``."""
    _check_tensor("relu", "input", input)
    if inplace:
        return input.relu_()
    return activation.Relu.apply(input)


def relu_(input):  # noqa: A002
    return relu(input, inplace=True)


def sigmoid(input):  # noqa: A002
    _check_tensor("sigmoid", "input", input)
    return input.sigmoid()  # the method: one code path (integers become the default float)


def tanh(input):  # noqa: A002
    _check_tensor("tanh", "input", input)
    return input.tanh()


def leaky_relu(input, negative_slope=0.01, inplace=False):  # noqa: A002
    """input where input > 0, else negative_slope * input; with ``inplace=True`` written into
    ``input``."""
    _check_tensor("leaky_relu", "input", input)
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got {negative_slope!r}")
    if inplace:
        return apply_inplace(input, "leaky_relu_",
                             lambda: activation.LeakyRelu.apply(input, float(negative_slope)))
    return activation.LeakyRelu.apply(input, float(negative_slope))


def leaky_relu_(input, negative_slope=0.01):  # noqa: A002
    return leaky_relu(input, negative_slope, inplace=True)


# ----------------------------------------------------------------------------- hardtanh .. prelu
def _check_number(op, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    return float(value)


def _check_floating(op, input):  # noqa: A002
    if not dtypes.is_floating(input.dtype):
        raise RuntimeError(f"{op}: expected a floating point input, got dtype {dtypes.torch_name(input.dtype)}")


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):  # noqa: A002
    """input clamped to [min_val, max_val]; the gradient is 1 strictly inside, 0 elsewhere.
    With ``inplace=True`` written into ``input``."""
    _check_tensor("hardtanh", "input", input)
    min_val = _check_number("hardtanh", "min_val", min_val)
    max_val = _check_number("hardtanh", "max_val", max_val)
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val cannot be greater than max_val, got min_val={min_val}, "
                         f"max_val={max_val}")
    if inplace:
        return apply_inplace(input, "hardtanh_", lambda: activation.Hardtanh.apply(input, min_val, max_val))
    return activation.Hardtanh.apply(input, min_val, max_val)


def hardtanh_(input, min_val=-1.0, max_val=1.0):  # noqa: A002
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input, inplace=False):  # noqa: A002
    """min(max(input, 0), 6): ``hardtanh(input, 0, 6)``."""
    _check_tensor("relu6", "input", input)
    if inplace:
        return apply_inplace(input, "relu6_", lambda: activation.Hardtanh.apply(input, 0.0, 6.0))
    return activation.Hardtanh.apply(input, 0.0, 6.0)


def elu(input, alpha=1.0, inplace=False):  # noqa: A002
    """input where input > 0, else alpha * (exp(input) - 1); with ``inplace=True`` written into
    ``input``."""
    _check_tensor("elu", "input", input)
    alpha = _check_number("elu", "alpha", alpha)
    _check_floating("elu", input)
    if inplace:
        return apply_inplace(input, "elu_", lambda: activation.Elu.apply(input, alpha))
    return activation.Elu.apply(input, alpha)


def elu_(input, alpha=1.0):  # noqa: A002
    return elu(input, alpha, inplace=True)


def gelu(input, approximate="none"):  # noqa: A002
    """input * Phi(input), Phi the standard normal CDF (``approximate='none'``, with erf) or its
    tanh approximation (``approximate='tanh'``)."""
    _check_tensor("gelu", "input", input)
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"gelu: approximate argument must be either none or tanh, got {approximate!r}")
    _check_floating("gelu", input)
    return activation.Gelu.apply(input, approximate)


def silu(input, inplace=False):  # noqa: A002
    """input * sigmoid(input) (swish); with ``inplace=True`` written into ``input``."""
    _check_tensor("silu", "input", input)
    _check_floating("silu", input)
    if inplace:
        return apply_inplace(input, "silu_", lambda: activation.Silu.apply(input))
    return activation.Silu.apply(input)


def softplus(input, beta=1.0, threshold=20.0):  # noqa: A002
    """log(1 + exp(beta * input)) / beta, and input itself where beta * input > threshold."""
    _check_tensor("softplus", "input", input)
    beta = _check_number("softplus", "beta", beta)
    threshold = _check_number("softplus", "threshold", threshold)
    _check_floating("softplus", input)
    return activation.Softplus.apply(input, beta, threshold)


def prelu(input, weight):  # noqa: A002
    """input where input > 0, else weight * input, with one weight per channel (dimension 1) or
    a single weight for every entry. ``weight`` is a learnable Tensor of shape (C,) or (1,)."""
    _check_tensor("prelu", "input", input)
    _check_tensor("prelu", "weight", weight)
    _check_floating("prelu", input)
    if weight.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.ndim}")
    count = weight.numel()
    if input.ndim == 0 and count != 1:
        raise RuntimeError("prelu: Not allow zero-dim input tensor.")
    channels = input.shape[1] if input.ndim >= 2 else 1
    if count != 1 and count != channels:
        raise RuntimeError(f"prelu: Mismatch of parameter numbers and input channel size. Found parameter "
                           f"numbers = {count} and channel size = {channels}.")
    if count == 1:
        shape = (1,) * input.ndim  # one weight for every entry
    else:
        shape = (1, channels) + (1,) * (input.ndim - 2)  # (1, C, 1, ...): per channel
    return activation.Prelu.apply(input, weight, shape)
