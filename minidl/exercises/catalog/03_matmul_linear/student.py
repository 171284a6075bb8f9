"""F.linear backward: dx, dweight, dbias (your solution)."""
import numpy as np  # noqa: F401  (for your solution)


def linear_backward(x, weight, dy):
    """x (N, IN) or (B, N, IN), weight (OUT, IN), dy (N, OUT) or (B, N, OUT) -> dx, dweight, dbias."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
