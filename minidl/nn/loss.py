"""Loss modules: thin wrappers around ``minidl.functional.loss`` (PyTorch's constructors).

``weight`` (and ``pos_weight``) are registered as buffers, as in PyTorch: they
move with ``.to()``, appear in ``state_dict()`` when set, and are never trained.
``size_average``/``reduce`` are PyTorch's deprecated spelling of ``reduction``.
"""

from ..functional import loss as F
from .module import Module

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "DiceLoss", "MSELoss", "NLLLoss"]


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = F.legacy_get_string(size_average, reduce)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    r"""Cross-entropy of logits (N, C[, d1, ...]) against class indices or probabilities.

    See :func:`minidl.functional.loss.cross_entropy`. For U-Net segmentation:
    logits (N, C, H, W) and a target of class indices (N, H, W).
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):  # noqa: A002
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    r"""Negative log-likelihood of log-probabilities (N, C[, d1, ...]) and class indices."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):  # noqa: A002
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_WeightedLoss):
    r"""Binary cross-entropy of probabilities in [0, 1] (logs clamped at -100)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)

    def forward(self, input, target):  # noqa: A002
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    r"""sigmoid + binary cross-entropy, computed stably from the logits; ``pos_weight`` weights positives."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):  # noqa: A002
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class MSELoss(_Loss):
    r"""Mean squared error (x - t)^2."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)

    def forward(self, input, target):  # noqa: A002
        return F.mse_loss(input, target, reduction=self.reduction)


class DiceLoss(_Loss):
    r"""Soft Dice loss 1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth) per sample and class.

    Not in PyTorch; see :func:`minidl.functional.loss.dice_loss` for the shapes.
    The input holds probabilities: apply softmax (dim=1) or sigmoid to the logits first.
    """

    def __init__(self, smooth=1.0, reduction="mean"):
        super().__init__(reduction=reduction)
        self.smooth = smooth

    def forward(self, input, target):  # noqa: A002
        return F.dice_loss(input, target, smooth=self.smooth, reduction=self.reduction)

    def extra_repr(self):
        return f"smooth={self.smooth}"
