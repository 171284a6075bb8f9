"""U-Net's skip connection: center_crop and cat, forward and backward (your solution)."""
import numpy as np


def cat(pieces, dim):
    """Given: the pieces laid end to end along ``dim`` (docs/gradients/cat.md)."""
    return np.concatenate(pieces, axis=dim)


def center_crop(x, H, W):
    """x (N, C, Hx, Wx) -> y (N, C, H, W): the centre window of the last two dims."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def center_crop_backward(dy, x_shape):
    """dy (N, C, H, W), x_shape (N, C, Hx, Wx) -> dx of shape x_shape."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def cat_backward(dy, sizes, dim):
    """dy (..., sum(sizes), ...) with sum(sizes) at position dim -> [dx_0, ..., dx_{k-1}], dx_t with n_t there."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
