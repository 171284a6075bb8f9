r"""zhixuhao/unet: the Keras U-Net for the ISBI 2012 cell-membrane challenge.

The network of zhixuhao's ``model.py`` (Keras) and of the article's TensorFlow version:

    level  channels (width=64)   encoder                          decoder
    1      64                    conv1: 2 x (3x3 conv, ReLU)      conv9: 2 x (3x3 conv, ReLU)
    2      128                   pool, conv2                      up9, concat, conv8 ...
    3      256                   pool, conv3                      ...
    4      512                   pool, conv4, Dropout(0.5)        up6 ... conv6
    5      1024                  pool, conv5, Dropout(0.5)
    head: 3x3 conv to 2 channels + ReLU, 1x1 conv to 1 channel (the article: sigmoid)

Every 3x3 convolution is 'same' (padding 1): the output has the input's size, which must be
divisible by 16 (four 2x2 max-pools). Up-sampling, ``up=``:

* ``"transpose"`` (the article's TensorFlow version): a 2x2 stride-2 transposed convolution
  halving the channels, then ReLU.
* ``"upsample"`` (the original Keras repository): ``UpSampling2D(2)`` (nearest neighbour x2),
  then ``Conv2D(C/2, 2, padding='same')`` + ReLU. Keras's 'same' for an EVEN kernel pads 0
  rows/columns on the top/left and 1 on the bottom/right (TensorFlow puts the odd pixel at
  the end): here ``ZeroPad2d((0, 1, 0, 1))`` before an unpadded 2x2 convolution.

The skip tensor comes first in the concatenation (``concatenate([drop4, up6], axis=3)``); at
level 4 it is the dropped-out ``drop4``, as in the original.

Loss: the article ends with a sigmoid and ``binary_crossentropy``. ``forward`` returns the
LOGITS (no sigmoid) and the model is trained with ``binary_cross_entropy_with_logits``: the
same mathematics (``BCE(sigmoid(z), t)``), computed without ``log(sigmoid(z))`` underflowing
for large ``|z|``. ``minidl.sigmoid(model(x))`` gives the article's probabilities.

Initialisation, as ``kernel_initializer='he_normal'`` in the Keras of the repository (2017):
a TRUNCATED normal with standard deviation ``sqrt(2 / fan_in)``, redrawn outside 2 standard
deviations (:func:`keras_he_normal_`), biases 0; the last 1x1 convolution has no initializer
in the original, so Keras's default ``glorot_uniform`` (:func:`keras_glorot_uniform_`).
"""
import math

import minidl
import minidl.nn as nn

from .seed_sizes import SizedByRule, SizeRule

__all__ = ["ZhixuhaoUNet", "keras_he_normal_", "keras_glorot_uniform_", "keras_fans"]

_UPS = ("transpose", "upsample")


def keras_fans(module):
    """(fan_in, fan_out) as Keras computes them for a kernel.

    A Keras conv kernel is (KH, KW, C_in, C_out): fan_in = KH*KW*C_in, fan_out = KH*KW*C_out
    (PyTorch's rule too). A Keras ``Conv2DTranspose`` kernel is (KH, KW, C_out, C_in), and
    Keras applies the same rule to it: fan_in = KH*KW*C_out, fan_out = KH*KW*C_in.
    """
    KH, KW = module.kernel_size
    if isinstance(module, nn.ConvTranspose2d):
        return KH * KW * module.out_channels, KH * KW * module.in_channels
    return KH * KW * module.in_channels, KH * KW * module.out_channels


def keras_he_normal_(module):
    """``he_normal``: weights from N(0, 2/fan_in) truncated at 2 standard deviations (values
    outside are redrawn), bias 0. (Keras >= 2.2.3 divides the std by 0.8796 so that the
    TRUNCATED distribution has variance 2/fan_in; the repository's Keras 2.0 did not.)"""
    std = math.sqrt(2.0 / keras_fans(module)[0])
    nn.init.trunc_normal_(module.weight, 0.0, std, a=-2 * std, b=2 * std)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def keras_glorot_uniform_(module):
    """Keras's default kernel initializer: U(-l, l), l = sqrt(6 / (fan_in + fan_out)); bias 0."""
    fan_in, fan_out = keras_fans(module)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(module.weight, -limit, limit)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _double_conv(c_in, c_out):
    """(3x3 'same' conv -> ReLU) twice: (N, c_in, H, W) -> (N, c_out, H, W)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())


def _up(c_in, up):
    """x2 up-sampling halving the channels: (N, C, h, w) -> (N, C/2, 2h, 2w)."""
    if up == "transpose":
        return nn.Sequential(nn.ConvTranspose2d(c_in, c_in // 2, 2, stride=2), nn.ReLU())
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),    # (N, C, 2h, 2w)
                         nn.ZeroPad2d((0, 1, 0, 1)),                     # Keras 'same', even kernel
                         nn.Conv2d(c_in, c_in // 2, 2), nn.ReLU())       # (N, C/2, 2h, 2w)


class ZhixuhaoUNet(SizedByRule, nn.Module):
    r"""The Keras ISBI U-Net of zhixuhao/unet (module docstring).

    Args:
        in_channels: image channels (1: ISBI's grey images).
        n_classes: output channels (1: one logit per pixel for the membrane mask).
        width: channels at the top level (64); level ``i`` has ``width * 2**(i-1)``.
        up: ``"transpose"`` (the article) or ``"upsample"`` (the repository).
        dropout: the probability of the two Dropout layers (0.5).

    Shapes: x (N, in_channels, H, W), H and W divisible by 16 -> logits (N, n_classes, H, W).

    Modules (the names of the Keras code): ``conv1`` ... ``conv5`` the encoder's double
    convolutions, ``drop4``, ``drop5``, ``pool`` (2x2 max-pool), ``up6`` ... ``up9``,
    ``conv6`` ... ``conv9`` the decoder's double convolutions, ``head`` = (3x3 conv to 2
    channels, ReLU, 1x1 conv to n_classes) = Keras's third ``conv9`` and ``conv10``.
    """

    SOURCE = "zhixuhao/unet (Keras, ISBI 2012)"
    LOSS = "bce"
    RECIPE = dict(optimizer="adam", lr=1e-4, weight_decay=0.0)

    def __init__(self, in_channels=1, n_classes=1, width=64, up="transpose", dropout=0.5):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("n_classes", n_classes), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ZhixuhaoUNet: {name} must be an int >= 1, got {name}={value!r}")
        if up not in _UPS:
            raise ValueError(f"ZhixuhaoUNet: up must be 'transpose' (the article) or 'upsample' "
                             f"(the Keras repository), got up={up!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"ZhixuhaoUNet: dropout must be a probability in [0, 1), got dropout={dropout!r}")
        self.in_channels, self.n_classes, self.width, self.up, self.dropout = (
            in_channels, n_classes, width, up, dropout)
        c = [width * 2 ** i for i in range(5)]                  # 64, 128, 256, 512, 1024
        self.conv1 = _double_conv(in_channels, c[0])
        self.conv2 = _double_conv(c[0], c[1])
        self.conv3 = _double_conv(c[1], c[2])
        self.conv4 = _double_conv(c[2], c[3])
        self.drop4 = nn.Dropout(dropout)
        self.conv5 = _double_conv(c[3], c[4])
        self.drop5 = nn.Dropout(dropout)
        self.pool = nn.MaxPool2d(2)
        self.up6, self.conv6 = _up(c[4], up), _double_conv(c[4], c[3])
        self.up7, self.conv7 = _up(c[3], up), _double_conv(c[3], c[2])
        self.up8, self.conv8 = _up(c[2], up), _double_conv(c[2], c[1])
        self.up9, self.conv9 = _up(c[1], up), _double_conv(c[1], c[0])
        self.head = nn.Sequential(nn.Conv2d(c[0], 2, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(2, n_classes, 1))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                keras_he_normal_(m)
        keras_glorot_uniform_(self.head[2])                      # conv10: Keras's default
        self._sizes = SizeRule("ZhixuhaoUNet", levels=5, shrink=0, pool=2)

    def forward(self, x):
        """x (N, in_channels, H, W) -> logits (N, n_classes, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ZhixuhaoUNet: expected input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        self.output_size(tuple(x.shape[-2:]))                    # clear error for unusable sizes
        c1 = self.conv1(x)                                       # (N, 64, H, W)
        c2 = self.conv2(self.pool(c1))                           # (N, 128, H/2, W/2)
        c3 = self.conv3(self.pool(c2))                           # (N, 256, H/4, W/4)
        d4 = self.drop4(self.conv4(self.pool(c3)))               # (N, 512, H/8, W/8)
        d5 = self.drop5(self.conv5(self.pool(d4)))               # (N, 1024, H/16, W/16)
        x = self.conv6(minidl.cat([d4, self.up6(d5)], dim=1))    # (N, 512, H/8, W/8)
        x = self.conv7(minidl.cat([c3, self.up7(x)], dim=1))     # (N, 256, H/4, W/4)
        x = self.conv8(minidl.cat([c2, self.up8(x)], dim=1))     # (N, 128, H/2, W/2)
        x = self.conv9(minidl.cat([c1, self.up9(x)], dim=1))     # (N, 64, H, W)
        return self.head(x)                                      # (N, n_classes, H, W)


    def extra_repr(self):
        return (f"in_channels={self.in_channels}, n_classes={self.n_classes}, width={self.width}, "
                f"up={self.up!r}, dropout={self.dropout}")
