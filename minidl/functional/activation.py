"""Activation functions: elementwise nonlinearities (softmax-like ones act along a dim).

``inplace=True`` writes the result into ``input`` and returns ``input`` (PyTorch's meaning), with
the rules and gradients of any in-place op (minidl/inplace.py).
"""
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
