"""Activation functions: elementwise nonlinearities (softmax-like ones act along a dim)."""
from ..ops import activation
from ._checks import check_tensor as _check_tensor


def relu(input, inplace=False):  # noqa: A002
    """max(input, 0). ``inplace`` is accepted for PyTorch compatibility; a new tensor is returned."""
    return activation.Relu.apply(input)


def sigmoid(input):  # noqa: A002
    return activation.Sigmoid.apply(input)


def tanh(input):  # noqa: A002
    return activation.Tanh.apply(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):  # noqa: A002
    """input where input > 0, else negative_slope * input. ``inplace`` is accepted for PyTorch
    compatibility; a new tensor is returned."""
    _check_tensor("leaky_relu", "input", input)
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got {negative_slope!r}")
    return activation.LeakyRelu.apply(input, float(negative_slope))
