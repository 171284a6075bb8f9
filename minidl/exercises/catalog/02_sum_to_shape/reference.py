"""sum_to_shape: the gradient of broadcasting (the reference solution)."""
import numpy as np  # noqa: F401  (for your solution)


def sum_to_shape(grad, shape):
    """grad (the broadcast shape) -> the gradient of the input of shape ``shape``."""
    lead = grad.ndim - len(shape)  # axes broadcasting added in front
    kept = tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    axes = tuple(range(lead)) + kept  # every axis along which the input was copied
    summed = grad.sum(axis=axes, keepdims=True) if axes else grad
    return summed.reshape(shape)
