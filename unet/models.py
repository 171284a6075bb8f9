r"""U-Net (Ronneberger, Fischer, Brox, MICCAI 2015), configurable around the paper's network.

The paper's network is ``UNet()``: 1 input channel, 2 classes, 64 channels at the top level,
5 levels (64, 128, 256, 512, 1024 channels), unpadded convolutions. A 572x572 tile gives a
388x388 map of scores (``UNet().output_size(572) == 388``).
"""
import math

import minidl.nn as nn

from .parts import DoubleConv, Down, OutConv, Up
from .planner import check_unet_config, plan_unet, unet_valid_input_size

__all__ = ["UNet", "he_normal_"]


def he_normal_(module):
    r"""The paper's initialisation of one layer: weights ~ N(0, 2/N), biases 0.

    "N denotes the number of incoming nodes of one neuron" (Sec. 3): for a KxK convolution
    over C channels N = K*K*C (``kaiming_normal_(mode="fan_in", nonlinearity="relu")``). For
    the 2x2 up-convolution with stride 2 each output pixel is reached by ONE kernel tap per
    input channel, so N = C (K*K*C / (S*S)); PyTorch's ``kaiming_normal_`` would use the
    weight's second dimension instead, which is not the number of incoming nodes here.
    Other layers (BatchNorm, pooling, ReLU) are left as they are.
    """
    if isinstance(module, nn.ConvTranspose2d):
        (KH, KW), (SH, SW) = module.kernel_size, module.stride
        fan_in = module.in_channels * KH * KW // (SH * SW)
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_in))
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class UNet(nn.Module):
    r"""U-Net: a contracting path, a symmetric expanding path, and skip connections.

    Args:
        in_channels: channels of the input image (1 in the paper).
        n_classes: scores per pixel (2 in the paper: cell and background).
        base_channels: channels at the top level; level ``i`` has ``base_channels * 2**(i-1)``.
        depth: number of levels including the bottom one (5 in the paper: 4 max-pools).
        padding: ``"valid"`` (the paper: unpadded 3x3 convolutions, the output is smaller
            than the input and the skip tensors are centre-cropped) or ``"same"`` (padded:
            output size = input size, which must be divisible by ``2**(depth-1)``).
        batch_norm: BatchNorm2d after every 3x3 convolution (not in the paper).
        dropout: probability of the Dropout at the end of the contracting path (applied to
            the bottom level's output; the paper uses dropout there, without a value).
        up_mode: ``"transpose"`` (the paper's 2x2 up-convolution) or ``"bilinear"`` (bilinear
            up-sampling followed by a 1x1 convolution that halves the channels).

    Shapes: x (N, in_channels, H, W) -> scores (N, n_classes, OH, OW) with
    ``(OH, OW) = self.output_size((H, W))``; unusable sizes raise a ``ValueError`` that names
    the nearest usable ones (``self.valid_input_size``).

    Modules (the paper's Fig. 1, top level first; names as in milesial/Pytorch-UNet):
        inc                 DoubleConv at level 1
        down1 ... down{d-1} max-pool + DoubleConv: levels 2 ... d (d = depth)
        dropout             Dropout (or Identity when dropout=0)
        up1 ... up{d-1}     up-sample + crop/concat + DoubleConv: back to levels d-1 ... 1
        outc                1x1 convolution to n_classes

    Every convolution starts from the paper's He-normal initialisation (:func:`he_normal_`).
    """

    def __init__(self, in_channels=1, n_classes=2, base_channels=64, depth=5, padding="valid",
                 batch_norm=False, dropout=0.0, up_mode="transpose"):
        super().__init__()
        check_unet_config(depth, padding)
        if up_mode not in ("transpose", "bilinear"):
            raise ValueError(f"UNet: up_mode must be 'transpose' (the paper) or 'bilinear', "
                             f"got up_mode={up_mode!r}")
        for name, value in (("in_channels", in_channels), ("n_classes", n_classes),
                            ("base_channels", base_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"UNet: {name} must be an int >= 1, got {name}={value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"UNet: dropout must be a probability in [0, 1), got dropout={dropout!r}")
        self.in_channels, self.n_classes, self.base_channels = in_channels, n_classes, base_channels
        self.depth, self.padding, self.batch_norm = depth, padding, batch_norm
        self.dropout_p, self.up_mode = dropout, up_mode

        channels = [base_channels * 2 ** i for i in range(depth)]        # per level, top first
        self.inc = DoubleConv(in_channels, channels[0], padding, batch_norm)
        for i in range(1, depth):
            self.add_module(f"down{i}", Down(channels[i - 1], channels[i], padding, batch_norm))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for i in range(1, depth):          # up1 leaves the bottom level, up{d-1} reaches the top
            level = depth - 1 - i          # the level (counted from 0) that up{i} arrives at
            self.add_module(f"up{i}", Up(channels[level + 1], channels[level], padding, batch_norm,
                                         up_mode))
        self.outc = OutConv(channels[0], n_classes)
        self.apply(he_normal_)

    @property
    def downs(self):
        """[down1, ..., down{depth-1}]: the steps of the contracting path, top first."""
        return [getattr(self, f"down{i}") for i in range(1, self.depth)]

    @property
    def ups(self):
        """[up1, ..., up{depth-1}]: the steps of the expanding path, bottom first."""
        return [getattr(self, f"up{i}") for i in range(1, self.depth)]

    def forward(self, x):
        """x (N, in_channels, H, W) -> scores (N, n_classes, OH, OW)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UNet: expected input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        self.output_size(tuple(x.shape[-2:]))           # clear error for unusable sizes
        skips = []
        x = self.inc(x)                                 # level 1
        for down in self.downs:                         # contracting path
            skips.append(x)
            x = down(x)
        x = self.dropout(x)                             # end of the contracting path
        for up, skip in zip(self.ups, reversed(skips)):  # expanding path, with the skips
            x = up(x, skip)
        return self.outc(x)

    # -------------------------------------------------------------- shape planner
    def plan(self, input_size):
        """The sizes through the network for ONE spatial dimension (a :class:`UNetPlan`)."""
        return plan_unet(input_size, self.depth, self.padding)

    def output_size(self, input_size):
        """Output size for an int (square) or an (H, W) input size; raises for unusable sizes."""
        if isinstance(input_size, (tuple, list)):
            _check_pair(input_size, "input_size")
            return tuple(plan_unet(n, self.depth, self.padding, f"input {what}").output_size
                         for n, what in zip(input_size, ("height", "width")))
        return plan_unet(input_size, self.depth, self.padding).output_size

    def valid_input_size(self, min_size):
        """The smallest input size >= ``min_size`` (int or (H, W)) that the network takes:
        every max-pool sees an even size and nothing shrinks away."""
        if isinstance(min_size, (tuple, list)):
            _check_pair(min_size, "min_size")
            return tuple(unet_valid_input_size(n, self.depth, self.padding) for n in min_size)
        return unet_valid_input_size(min_size, self.depth, self.padding)

    def crop_offsets(self, input_size):
        """The (top or left) offset of the centre crop of the skip tensor at each level, top
        level first: a list of ints, or of (top, left) pairs for an (H, W) input size."""
        if isinstance(input_size, (tuple, list)):
            _check_pair(input_size, "input_size")
            h, w = (plan_unet(n, self.depth, self.padding, f"input {what}").crop_offsets
                    for n, what in zip(input_size, ("height", "width")))
            return list(zip(h, w))
        return plan_unet(input_size, self.depth, self.padding).crop_offsets

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, n_classes={self.n_classes}, "
                f"base_channels={self.base_channels}, depth={self.depth}, padding={self.padding!r}, "
                f"batch_norm={self.batch_norm}, dropout={self.dropout_p}, up_mode={self.up_mode!r}")


def _check_pair(value, name):
    if len(value) != 2:
        raise ValueError(f"UNet: {name} must be an int or a pair (H, W), got {value!r}")
