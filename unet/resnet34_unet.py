r"""``resnet34_unet``: fast.ai's ``Unet34``, a U-Net whose encoder is a ResNet34.

The network (fast.ai "Practical Deep Learning for Coders" part 2, lesson 14, the Carvana
notebook; the same model in iafoss's Kaggle kernel "Unet34 (dice 0.87+)"):

    encoder   ResNet34 without its average pool and fully connected head
              (:class:`ResNet34Encoder`, torchvision's names, so that an ImageNet state dict
              loads by name: ``unet.encoders.load_encoder_weights``):
                  conv1 7x7 stride 2 (no bias), bn1, relu      -> 64 ch, 1/2    hooked: "relu"
                  maxpool 3x3 stride 2 padding 1                -> 64 ch, 1/4
                  layer1  3 BasicBlocks                         -> 64 ch, 1/4    hooked: "layer1"
                  layer2  4 BasicBlocks (the first stride 2)    -> 128 ch, 1/8   hooked: "layer2"
                  layer3  6 BasicBlocks (the first stride 2)    -> 256 ch, 1/16  hooked: "layer3"
                  layer4  3 BasicBlocks (the first stride 2)    -> 512 ch, 1/32  (the output)
    ReLU, Dropout(0.2) on the encoder's output (the Kaggle versions; the lesson has none)
    up1  UnetBlock(512, 256, 256)  with layer3's features   -> 256 ch, 1/16
    up2  UnetBlock(256, 128, 256)  with layer2's features   -> 256 ch, 1/8
    up3  UnetBlock(256, 64, 256)   with layer1's features   -> 256 ch, 1/4
    up4  UnetBlock(256, 64, 256)   with the stem's features -> 256 ch, 1/2
    up5  ConvTranspose2d(256, n_classes, 2, stride=2)       -> n_classes ch, 1/1: the logits

The skip features are taken as the article does, by FORWARD HOOKS on the encoder's modules
(:class:`SaveFeatures`): running the encoder fills them, the decoder reads them.
:meth:`ResNet34UNet.close` removes the hooks (the article's ``close``).

Loss: the article trains the one-channel output with ``BCEWithLogitsLoss`` (sigmoid and
binary cross-entropy in one numerically stable function: the same mathematics as a sigmoid
followed by BCE). Recipe: Adam, weight decay 4e-4, the learning rate from a range test
(``lr_find``) and a one-cycle schedule.

Input sizes: H and W multiples of 32 (five halvings); the output has the input's size.
"""
import numbers
from collections import OrderedDict

import minidl
import minidl.functional as F
import minidl.nn as nn

__all__ = ["BasicBlock", "ResNet34Encoder", "SaveFeatures", "UnetBlock", "ResNet34UNet"]

# (name, BasicBlocks, channels, stride of the first block) of ResNet34
_RESNET34_LAYERS = (("layer1", 3, 64, 1), ("layer2", 4, 128, 2), ("layer3", 6, 256, 2),
                    ("layer4", 3, 512, 2))


def _check_positive_int(where, name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: {name} must be an int >= 1, got {name}={value!r}")


def _check_width(where, width):
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"{where}: width must be a positive number, got width={width!r}")


def _scaled(channels, width):
    return max(1, int(round(channels * width)))


class BasicBlock(nn.Module):
    r"""ResNet's basic block: two 3x3 convolutions and a shortcut (He et al. 2016, Fig. 2).

        out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))

    ``conv1`` has the block's stride; ``shortcut`` is the identity, or, where the shape changes
    (stride 2 or other channels), ``downsample = Sequential(1x1 conv with the stride, no bias;
    BatchNorm2d)`` (torchvision's option B). Convolutions have no bias: batch norm follows.

    Shapes: x (N, C, H, W) -> (N, F, ceil(H/s), ceil(W/s)), s = stride.
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.downsample = None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet34Encoder(nn.Module):
    r"""ResNet34 up to ``layer4`` (no average pool, no ``fc``), with torchvision's module and
    parameter names: ``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1`` ... ``layer4``;
    inside a layer ``layer2.0.conv1``, ``layer2.0.bn1``, ``layer2.0.downsample.0`` (the 1x1
    convolution) and ``layer2.0.downsample.1`` (its BatchNorm).

    Args:
        in_channels: image channels (3).
        width: multiplies every channel count (64, 128, 256, 512), rounded, at least 1;
            1.0 is ResNet34 (21,284,672 parameters).

    Shapes: x (N, in_channels, H, W) -> (N, 512*width, ceil(H/32), ceil(W/32)) (for H, W
    multiples of 32 exactly H/32, W/32). ``self.channels`` gives the channels after
    relu / layer1 / layer2 / layer3 / layer4.

    Initialisation as torchvision: convolutions He-normal with ``mode="fan_out"``, BatchNorm
    weight 1 and bias 0.
    """

    def __init__(self, in_channels=3, width=1.0):
        super().__init__()
        _check_positive_int("ResNet34Encoder", "in_channels", in_channels)
        _check_width("ResNet34Encoder", width)
        self.in_channels, self.width = in_channels, width
        stem = _scaled(64, width)
        self.conv1 = nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.channels = OrderedDict(relu=stem)
        c_in = stem
        for name, n_blocks, channels, stride in _RESNET34_LAYERS:
            c_out = _scaled(channels, width)
            blocks = [BasicBlock(c_in, c_out, stride)] + [BasicBlock(c_out, c_out) for _ in range(n_blocks - 1)]
            self.add_module(name, nn.Sequential(*blocks))
            self.channels[name] = c_in = c_out
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        """x (N, C, H, W) -> layer4's features (N, 512*width, H/32, W/32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))   # (N, 64w, H/4, W/4)
        x = self.layer1(x)                                     # (N, 64w, H/4, W/4)
        x = self.layer2(x)                                     # (N, 128w, H/8, W/8)
        x = self.layer3(x)                                     # (N, 256w, H/16, W/16)
        return self.layer4(x)                                  # (N, 512w, H/32, W/32)


class SaveFeatures:
    """A forward hook on ``module`` that keeps its latest output in ``self.features``
    (the article's class of the same name); ``remove()`` takes the hook off."""

    features = None

    def __init__(self, module):
        self.hook = module.register_forward_hook(self.hook_fn)

    def hook_fn(self, module, inputs, output):
        self.features = output

    def remove(self):
        self.hook.remove()


class UnetBlock(nn.Module):
    r"""One step up the decoder (the article's ``UnetBlock(up_in, x_in, n_out)``):

        up   = tr_conv(up_p)     2x2 transposed conv, stride 2: (N, up_in, h, w) -> (N, n_out/2, 2h, 2w)
        skip = x_conv(x_p)       1x1 conv:                      (N, x_in, 2h, 2w) -> (N, n_out/2, 2h, 2w)
        out  = bn(relu(cat([up, skip])))                        -> (N, n_out, 2h, 2w)

    The up-sampled tensor comes FIRST in the concatenation (as in the article). Both
    convolutions have a bias (the article's ``nn.ConvTranspose2d``/``nn.Conv2d`` defaults).
    """

    def __init__(self, up_in, x_in, n_out):
        super().__init__()
        for name, value in (("up_in", up_in), ("x_in", x_in), ("n_out", n_out)):
            _check_positive_int("UnetBlock", name, value)
        if n_out % 2:
            raise ValueError(f"UnetBlock: n_out must be even (two halves are concatenated), got {n_out}")
        self.x_conv = nn.Conv2d(x_in, n_out // 2, 1)
        self.tr_conv = nn.ConvTranspose2d(up_in, n_out // 2, 2, stride=2)
        self.bn = nn.BatchNorm2d(n_out)

    def forward(self, up_p, x_p):
        up_p = self.tr_conv(up_p)                          # (N, n_out/2, 2h, 2w)
        x_p = self.x_conv(x_p)                             # (N, n_out/2, 2h, 2w)
        return self.bn(F.relu(minidl.cat([up_p, x_p], dim=1)))   # (N, n_out, 2h, 2w)


class ResNet34UNet(nn.Module):
    r"""fast.ai's ``Unet34``: a ResNet34 encoder, four :class:`UnetBlock`s fed by forward
    hooks on the encoder, and a 2x2 transposed convolution to the logits (module docstring).

    Args:
        in_channels: image channels (3: the encoder is an ImageNet network).
        n_classes: output channels (1: one logit per pixel, trained with BCE-with-logits).
        width: multiplies every channel count of the encoder and the decoder (1.0: the
            article's network: 22,009,665 parameters, 21,284,672 of them in the encoder).
        dropout: probability of the Dropout on the encoder's output (0.2 in the Kaggle
            versions of Unet34, 0 in the lesson's notebook; off in eval mode).

    Shapes: x (N, in_channels, H, W), H and W multiples of 32 -> logits (N, n_classes, H, W).

    Modules: ``encoder`` (:class:`ResNet34Encoder`), ``dropout``, ``up1`` ... ``up4``
    (:class:`UnetBlock`), ``up5`` (ConvTranspose2d). ``self.sfs`` holds the four
    :class:`SaveFeatures` hooks on ``encoder.relu``, ``encoder.layer1``, ``encoder.layer2``,
    ``encoder.layer3``; :meth:`close` removes them (the model cannot run afterwards).
    """

    SOURCE = "fast.ai Unet34 (DL part 2 lesson 14, Carvana; iafoss Kaggle kernel 'Unet34')"
    LOSS = "bce"
    RECIPE = dict(optimizer="adam", lr=1e-2, weight_decay=4e-4, schedule="onecycle", lr_find=True)

    HOOKED = ("relu", "layer1", "layer2", "layer3")     # the encoder's modules with a hook
    MULTIPLE = 32

    def __init__(self, in_channels=3, n_classes=1, width=1.0, dropout=0.2):
        super().__init__()
        _check_positive_int("ResNet34UNet", "in_channels", in_channels)
        _check_positive_int("ResNet34UNet", "n_classes", n_classes)
        _check_width("ResNet34UNet", width)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"ResNet34UNet: dropout must be a probability in [0, 1), got dropout={dropout!r}")
        self.in_channels, self.n_classes, self.width, self.dropout_p = in_channels, n_classes, width, dropout
        self.encoder = ResNet34Encoder(in_channels, width)
        ch = self.encoder.channels
        dec = 2 * max(1, int(round(128 * width)))          # the article's 256, kept even
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.up1 = UnetBlock(ch["layer4"], ch["layer3"], dec)
        self.up2 = UnetBlock(dec, ch["layer2"], dec)
        self.up3 = UnetBlock(dec, ch["layer1"], dec)
        self.up4 = UnetBlock(dec, ch["relu"], dec)
        self.up5 = nn.ConvTranspose2d(dec, n_classes, 2, stride=2)
        # A plain list: the hooks are not modules and have no state to save.
        self.sfs = [SaveFeatures(getattr(self.encoder, name)) for name in self.HOOKED]

    def forward(self, x):
        """x (N, in_channels, H, W) -> logits (N, n_classes, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ResNet34UNet: expected input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        if not self.sfs:
            raise RuntimeError("ResNet34UNet: the feature hooks were removed by close(); build a new model")
        self.output_size(tuple(x.shape[-2:]))                  # clear error for unusable sizes
        x = self.dropout(F.relu(self.encoder(x)))              # (N, 512w, H/32, W/32); hooks filled
        stem, layer1, layer2, layer3 = (sf.features for sf in self.sfs)
        x = self.up1(x, layer3)                                # (N, 256w, H/16, W/16)
        x = self.up2(x, layer2)                                # (N, 256w, H/8, W/8)
        x = self.up3(x, layer1)                                # (N, 256w, H/4, W/4)
        x = self.up4(x, stem)                                  # (N, 256w, H/2, W/2)
        return self.up5(x)                                     # (N, n_classes, H, W)

    def close(self):
        """Remove the forward hooks (the article's ``close``); the model cannot run afterwards."""
        for sf in self.sfs:
            sf.remove()
        self.sfs = []

    # -------------------------------------------------------------- shape planner
    def _check_size(self, n, what="input size"):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"ResNet34UNet: {what} must be a positive int, got {n!r}")
        if n % self.MULTIPLE:
            below = (n // self.MULTIPLE) * self.MULTIPLE
            above = below + self.MULTIPLE
            nearest = f"{below} or {above}" if below else f"{above}"
            raise ValueError(f"ResNet34UNet: {what} {n} is not a multiple of {self.MULTIPLE} "
                             f"(five halvings); the nearest usable sizes are {nearest}")
        return int(n)

    def output_size(self, input_size):
        """The output size (equal to the input size) for an int or (H, W); raises a ValueError
        naming the nearest usable sizes when a size is not a multiple of 32."""
        if isinstance(input_size, (tuple, list)):
            if len(input_size) != 2:
                raise ValueError(f"ResNet34UNet: input_size must be an int or a pair (H, W), got {input_size!r}")
            return tuple(self._check_size(n, f"input {what}") for n, what in zip(input_size, ("height", "width")))
        return self._check_size(input_size)

    def valid_input_size(self, min_size):
        """The smallest multiple of 32 >= ``min_size`` (int or (H, W))."""
        if isinstance(min_size, (tuple, list)):
            if len(min_size) != 2:
                raise ValueError(f"ResNet34UNet: min_size must be an int or a pair (H, W), got {min_size!r}")
            return tuple(self.valid_input_size(n) for n in min_size)
        if isinstance(min_size, bool) or not isinstance(min_size, numbers.Integral) or min_size < 1:
            raise ValueError(f"ResNet34UNet: min_size must be a positive int, got {min_size!r}")
        return -(-int(min_size) // self.MULTIPLE) * self.MULTIPLE

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, n_classes={self.n_classes}, width={self.width}, "
                f"dropout={self.dropout_p}")
