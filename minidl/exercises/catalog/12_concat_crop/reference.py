"""U-Net's skip connection: center_crop and cat, forward and backward (the reference solution)."""
import numpy as np


def cat(pieces, dim):
    """Given: the pieces laid end to end along ``dim`` (docs/gradients/cat.md)."""
    return np.concatenate(pieces, axis=dim)


def center_crop(x, H, W):
    """x (N, C, Hx, Wx) -> y (N, C, H, W): the centre window of the last two dims."""
    Hx, Wx = x.shape[-2:]
    top, left = (Hx - H) // 2, (Wx - W) // 2  # odd difference: the extra row (column) is cut at the bottom (right)
    return x[..., top:top + H, left:left + W].copy()


def center_crop_backward(dy, x_shape):
    """dy (N, C, H, W), x_shape (N, C, Hx, Wx) -> dx of shape x_shape."""
    H, W = dy.shape[-2:]
    row, column = (x_shape[-2] - H) // 2, (x_shape[-1] - W) // 2  # where the window started
    dx = np.zeros(x_shape, dtype=dy.dtype)
    dx[..., row:row + H, column:column + W] = dy  # dy back in its window, zeros outside
    return dx


def cat_backward(dy, sizes, dim):
    """dy (..., sum(sizes), ...) with sum(sizes) at position dim -> [dx_0, ..., dx_{k-1}], dx_t with n_t there."""
    offsets = np.cumsum(sizes)[:-1]  # offset_1, ..., offset_{k-1}: where pieces 1 .. k-1 start along dim
    pieces = np.split(dy, offsets, axis=dim)  # dx_t = dy[offset_t : offset_t + n_t] along dim
    return list(pieces)
