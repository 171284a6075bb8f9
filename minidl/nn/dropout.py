"""``Dropout`` and ``Dropout2d``: random zeroing in training mode, the identity in eval mode."""

from ..functional.dropout import dropout, dropout2d
from .module import Module

__all__ = ["Dropout", "Dropout2d"]


class _DropoutNd(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise TypeError(f"{type(self).__name__}: p must be a number in [0, 1], got {p!r}")
        if p < 0 or p > 1:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be between 0 and 1, "
                             f"but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    r"""In training, zero each entry with probability ``p`` and scale the rest by 1/(1-p);
    in eval mode (``model.eval()``), return the input unchanged.

    ``inplace=True`` writes the result into the input and returns it (as in PyTorch).
    """

    def forward(self, input):
        return dropout(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    r"""In training, zero each whole channel input[n, c] of an (N, C, H, W) input with
    probability ``p`` and scale the rest by 1/(1-p); in eval mode, the identity.

    See :func:`minidl.functional.dropout.dropout2d` for 3-D inputs.
    """

    def forward(self, input):
        return dropout2d(input, self.p, self.training, self.inplace)
