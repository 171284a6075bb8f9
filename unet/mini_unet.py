r"""keras-segmentation's ``unet_mini`` (divamgupta/image-segmentation-keras, models/unet.py).

    level  channels (width=32)  encoder                                   decoder
    1      32                   conv1: conv3x3+ReLU, Dropout(0.2),        conv5: same, after
                                       conv3x3+ReLU; max-pool 2x2          up x2 + concat
    2      64                   conv2: the same; max-pool 2x2             conv4: same, after
                                                                           up x2 + concat
    3      128                  conv3: the same (the bottom)
    output: 1x1 conv to n_classes (keras-segmentation then reshapes and applies a softmax)

Every 3x3 convolution is 'same' (padding 1): the output has the input's size, which must be
divisible by 4 (two max-pools). Up-sampling is ``UpSampling2D((2, 2))``, nearest neighbour.
The concatenation puts the UP-SAMPLED tensor first and the skip tensor second
(``concatenate([UpSampling2D(...)(conv3), conv2])``), unlike the U-Net paper.

Loss: softmax + categorical cross-entropy in keras-segmentation; ``forward`` returns the
logits and the model is trained with ``cross_entropy`` (softmax inside the loss, the same
mathematics). Initialisation: Keras's defaults (the code sets none): ``glorot_uniform``
kernels, zero biases. Recipe: keras-segmentation's ``train(optimizer_name='adam')``, Keras's
Adam with its default learning rate 1e-3.
"""
import minidl
import minidl.nn as nn

from .seed_sizes import SizedByRule, SizeRule
from .zhixuhao import keras_glorot_uniform_

__all__ = ["MiniUNet"]


def _block(c_in, c_out, dropout):
    """conv3x3+ReLU -> Dropout -> conv3x3+ReLU, 'same': (N, c_in, H, W) -> (N, c_out, H, W)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())


class MiniUNet(SizedByRule, nn.Module):
    r"""keras-segmentation's ``unet_mini`` (module docstring).

    Args:
        in_channels: image channels (``channels=3``).
        n_classes: classes (``n_classes``; 2 here by default).
        width: channels at the top level (32): levels have width, 2*width, 4*width.
        dropout: the probability of the Dropout inside each block (0.2).

    Shapes: x (N, in_channels, H, W), H and W divisible by 4 -> logits (N, n_classes, H, W).

    Modules (the names of the Keras code): ``conv1``, ``conv2``, ``conv3`` (encoder),
    ``pool``, ``up`` (nearest x2, no parameters), ``conv4``, ``conv5`` (decoder), ``out``.
    """

    SOURCE = "divamgupta/image-segmentation-keras (keras-segmentation), unet_mini"
    LOSS = "ce"
    RECIPE = dict(optimizer="adam", lr=1e-3, weight_decay=0.0)

    def __init__(self, in_channels=3, n_classes=2, width=32, dropout=0.2):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("n_classes", n_classes), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MiniUNet: {name} must be an int >= 1, got {name}={value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"MiniUNet: dropout must be a probability in [0, 1), got dropout={dropout!r}")
        self.in_channels, self.n_classes, self.width, self.dropout = in_channels, n_classes, width, dropout
        c1, c2, c3 = width, 2 * width, 4 * width                     # 32, 64, 128
        self.conv1 = _block(in_channels, c1, dropout)
        self.conv2 = _block(c1, c2, dropout)
        self.conv3 = _block(c2, c3, dropout)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv4 = _block(c3 + c2, c2, dropout)
        self.conv5 = _block(c2 + c1, c1, dropout)
        self.out = nn.Conv2d(c1, n_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                keras_glorot_uniform_(m)
        self._sizes = SizeRule("MiniUNet", levels=3, shrink=0, pool=2)

    def forward(self, x):
        """x (N, in_channels, H, W) -> logits (N, n_classes, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MiniUNet: expected input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        self.output_size(tuple(x.shape[-2:]))                       # clear error for unusable sizes
        c1 = self.conv1(x)                                          # (N, 32, H, W)
        c2 = self.conv2(self.pool(c1))                              # (N, 64, H/2, W/2)
        c3 = self.conv3(self.pool(c2))                              # (N, 128, H/4, W/4)
        x = self.conv4(minidl.cat([self.up(c3), c2], dim=1))        # (N, 64, H/2, W/2), up first
        x = self.conv5(minidl.cat([self.up(x), c1], dim=1))         # (N, 32, H, W)
        return self.out(x)                                          # (N, n_classes, H, W)


    def extra_repr(self):
        return (f"in_channels={self.in_channels}, n_classes={self.n_classes}, width={self.width}, "
                f"dropout={self.dropout}")
