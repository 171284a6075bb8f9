"""F.pixel_shuffle / F.pixel_unshuffle: trade channels for resolution and back (sub-pixel
convolution, Shi et al. 2016).

Both are a reshape, a permute and a reshape: no arithmetic, so their gradients are those of
the view ops (the same permutation, undone: ``minidl/ops/shape.py``); one is the inverse of
the other, so the gradient of pixel_shuffle is pixel_unshuffle of dy and vice versa.
"""
import numbers

from ._checks import check_tensor as _check_tensor


def _check_factor(op, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: argument '{name}' must be int, not {type(value).__name__}")
    if value <= 0:
        raise RuntimeError(f"{op} expects a positive {name}, but got {value}")
    return int(value)


def _check_input(op, input):  # noqa: A002
    _check_tensor(op, "input", input)
    if input.ndim < 3:
        raise RuntimeError(f"{op} expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")


def pixel_shuffle(input, upscale_factor):  # noqa: A002
    r"""(*, C r^2, H, W) -> (*, C, H r, W r):  y[..., c, h r + i, w r + j] = x[..., c r^2 + i r + j, h, w].

    Each group of r^2 channels becomes an r x r block of pixels.
    """
    op = "pixel_shuffle"
    _check_input(op, input)
    r = _check_factor(op, "upscale_factor", upscale_factor)
    *lead, channels, H, W = input.shape
    if channels % (r * r) != 0:
        raise RuntimeError(f"{op} expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={channels} is not divisible by {r * r}")
    C, k = channels // (r * r), len(lead)
    x = input.reshape(*lead, C, r, r, H, W)  # (*, C, i, j, H, W)
    x = x.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)  # (*, C, H, i, W, j)
    return x.reshape(*lead, C, H * r, W * r)  # (*, C, H r, W r): row h r + i, column w r + j


def pixel_unshuffle(input, downscale_factor):  # noqa: A002
    r"""(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of ``pixel_shuffle``:
    y[..., c r^2 + i r + j, h, w] = x[..., c, h r + i, w r + j].

    Each r x r block of pixels becomes r^2 channels.
    """
    op = "pixel_unshuffle"
    _check_input(op, input)
    r = _check_factor(op, "downscale_factor", downscale_factor)
    *lead, C, height, width = input.shape
    if height % r != 0:
        raise RuntimeError(f"{op} expects height to be divisible by downscale_factor, but "
                           f"input.size(-2)={height} is not divisible by {r}")
    if width % r != 0:
        raise RuntimeError(f"{op} expects width to be divisible by downscale_factor, but "
                           f"input.size(-1)={width} is not divisible by {r}")
    H, W, k = height // r, width // r, len(lead)
    x = input.reshape(*lead, C, H, r, W, r)  # (*, C, H, i, W, j)
    x = x.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)  # (*, C, i, j, H, W)
    return x.reshape(*lead, C * r * r, H, W)  # (*, C r^2, H, W): channel c r^2 + i r + j
