"""The same-padding U-Net of ``unet.UNet`` written in torch.nn, with the same module names.

Structure (``unet/parts.py``, ``unet/models.py``; no batch norm, no dropout, transposed
up-convolutions), channels c_i = base * 2**i at level i = 0 .. depth-1:

    inc                 DoubleConv(in, c_0)
    down{i}             maxpool_conv = Sequential(MaxPool2d(2, 2), DoubleConv(c_{i-1}, c_i))
    up{i}               up = ConvTranspose2d(c, c/2, 2, stride=2); conv = DoubleConv(c, c/2 ...)
                        forward(x, skip) = conv(cat([skip, up(x)], dim=1))      skip first
    outc                conv = Conv2d(c_0, n_classes, 1)
    DoubleConv          double_conv = Sequential(Conv2d(3x3, pad 1), ReLU, Conv2d(3x3, pad 1), ReLU)

The names (``down1.maxpool_conv.1.double_conv.0.weight``, ...) equal minidl's state dict
keys, so :func:`copy_weights` loads minidl's weights with the identity mapping and
``strict=True`` (a wrong name or shape fails loudly instead of benchmarking another net).
Import this module after ``benchmarks._common`` (it imports torch).
"""
import torch
from torch import nn

from unet.interop import export_torch_state_dict


class DoubleConv(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.double_conv = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2, 2), DoubleConv(c_in, c_out))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_in // 2, 2, stride=2)
        self.conv = DoubleConv(c_in, c_out)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], dim=1))  # skip first, as in unet/parts.py


class OutConv(nn.Module):
    def __init__(self, c_in, n_classes):
        super().__init__()
        self.conv = nn.Conv2d(c_in, n_classes, 1)

    def forward(self, x):
        return self.conv(x)


class TorchUNet(nn.Module):
    """x (N, in_channels, H, W) -> scores (N, n_classes, H, W); H, W divisible by 2**(depth-1)."""

    def __init__(self, in_channels, n_classes, base_channels, depth):
        super().__init__()
        c = [base_channels * 2 ** i for i in range(depth)]
        self.depth = depth
        self.inc = DoubleConv(in_channels, c[0])
        for i in range(1, depth):
            self.add_module(f"down{i}", Down(c[i - 1], c[i]))
        for i in range(1, depth):  # up1 leaves the bottom level
            level = depth - 1 - i
            self.add_module(f"up{i}", Up(c[level + 1], c[level]))
        self.outc = OutConv(c[0], n_classes)

    def forward(self, x):
        skips = []
        x = self.inc(x)
        for i in range(1, self.depth):
            skips.append(x)
            x = getattr(self, f"down{i}")(x)
        for i, skip in zip(range(1, self.depth), reversed(skips)):
            x = getattr(self, f"up{i}")(x, skip)
        return self.outc(x)


def torch_twin(model):
    """A :class:`TorchUNet` with exactly the weights of the minidl ``unet.UNet`` ``model``."""
    if model.padding != "same" or model.batch_norm or model.dropout_p or model.up_mode != "transpose":
        raise ValueError("torch_twin: only the plain same-padding U-Net is mirrored (padding='same', "
                         f"no batch norm, no dropout, up_mode='transpose'), got {model.extra_repr()}")
    twin = TorchUNet(model.in_channels, model.n_classes, model.base_channels, model.depth)
    copy_weights(model, twin)
    return twin


def copy_weights(model, twin):
    """Copy every parameter of minidl ``model`` into ``twin`` (strict: same names and shapes)."""
    state = {name: torch.from_numpy(array) for name, array in export_torch_state_dict(model).items()}
    twin.load_state_dict(state, strict=True)
