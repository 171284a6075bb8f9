"""F.dropout and F.dropout2d: random zeroing of entries or whole channels (training only)."""
import warnings

from ..inplace import apply_inplace
from ..ops import dropout as _dropout
from ._checks import check_tensor as _check_tensor


def _check_p(op, p):
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{op}: p must be a number in [0, 1], got {p!r}")
    if p < 0.0 or p > 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero each entry with probability ``p`` and scale the rest by 1/(1-p) (when ``training``).

    With ``training=False`` or ``p=0`` the input itself is returned (no copy, as in PyTorch).
    ``inplace=True`` writes the result into ``input`` and returns it.
    """
    _check_tensor("dropout", "input", input)
    _check_p("dropout", p)
    if not training or p == 0:
        return input
    return _apply(input, p, tuple(input.shape), inplace, "dropout_")


def _apply(input, p, mask_shape, inplace, name):  # noqa: A002
    if inplace:
        return apply_inplace(input, name, lambda: _dropout.Dropout.apply(input, float(p), mask_shape))
    return _dropout.Dropout.apply(input, float(p), mask_shape)


def dropout2d(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero each whole channel input[n, c] with probability ``p`` and scale the rest by 1/(1-p).

    input (N, C, H, W). A 3-D input is treated as PyTorch treats it today: as (N, C, L)
    (one draw per input[n, c, :], with PyTorch's warning), NOT as an unbatched (C, H, W).
    With ``training=False`` or ``p=0`` the input itself is returned. ``inplace=True`` writes
    the result into ``input`` and returns it.
    """
    _check_tensor("dropout2d", "input", input)
    _check_p("dropout2d", p)
    if input.ndim not in (3, 4):
        raise ValueError(f"dropout2d: input must be 4-D (N, C, H, W) or 3-D (N, C, L), "
                         f"got shape {tuple(input.shape)} (use dropout for element-wise dropout)")
    if input.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
            "1D dropout behavior is desired - input is interpreted as shape (N, C, L), where C "
            "is the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=2,
        )
    if not training or p == 0:
        return input
    mask_shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)  # one draw per (n, c)
    return _apply(input, p, mask_shape, inplace, "dropout2d_")
