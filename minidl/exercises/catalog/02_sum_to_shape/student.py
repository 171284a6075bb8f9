"""sum_to_shape: the gradient of broadcasting (your solution)."""
import numpy as np  # noqa: F401  (for your solution)


def sum_to_shape(grad, shape):
    """grad (the broadcast shape) -> the gradient of the input of shape ``shape``."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
