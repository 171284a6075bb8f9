r"""The parts of U-Net (Ronneberger, Fischer, Brox 2015), one per arrow colour of the paper's Fig. 1.

    DoubleConv   blue arrows:  two (3x3 conv -> [BatchNorm] -> ReLU)
    Down         red arrow, then blue:  2x2 max-pool (stride 2), then DoubleConv
    Up           green arrow, grey arrow, then blue:  up-sample x2 halving the channels,
                 crop (or pad) and concatenate the skip tensor, then DoubleConv
    OutConv      teal arrow:  1x1 conv to one score per class

Shapes use N batch, C channels in, F channels out, H, W height and width. With
``padding="valid"`` (the paper) each 3x3 convolution takes one pixel off every side;
with ``padding="same"`` it keeps the size.

The attribute names (``double_conv``, ``maxpool_conv``, ``up``, ``conv``) are those of the
popular milesial/Pytorch-UNet, so that its state dicts load with the identity name mapping
(``unet/interop.py``, ``docs/models.md``).
"""
import minidl
import minidl.functional as F
import minidl.nn as nn

__all__ = ["DoubleConv", "Down", "Up", "OutConv"]

_PADDINGS = {"valid": 0, "same": 1}
_UP_MODES = ("transpose", "bilinear")


def _check_channels(part, **channels):
    for name, value in channels.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{part}: {name} must be a positive int, got {name}={value!r}")


def _check_padding(part, padding):
    if padding not in _PADDINGS:
        raise ValueError(f"{part}: padding must be 'valid' (the paper: unpadded convolutions) or "
                         f"'same', got padding={padding!r}")


class DoubleConv(nn.Module):
    r"""(3x3 conv -> [BatchNorm2d] -> ReLU) twice.

    Shapes: x (N, C, H, W) -> (N, F, H - 4, W - 4) with ``padding="valid"``,
                              (N, F, H, W)         with ``padding="same"``.
    ``self.double_conv`` is ``Sequential(conv, [bn], relu, conv, [bn], relu)``. With batch
    norm the convolutions have no bias: the normalisation would subtract it again.
    """

    def __init__(self, in_channels, out_channels, padding="valid", batch_norm=False):
        super().__init__()
        _check_channels("DoubleConv", in_channels=in_channels, out_channels=out_channels)
        _check_padding("DoubleConv", padding)
        pad = _PADDINGS[padding]
        layers = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, kernel_size=3, padding=pad, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
        self.double_conv = nn.Sequential(*layers)

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    r"""2x2 max-pool with stride 2, then :class:`DoubleConv` (one step down the U).

    Shapes: x (N, C, H, W), H and W even -> (N, F, H/2 - 4, W/2 - 4) ("valid"),
                                            (N, F, H/2, W/2)         ("same").
    The U-Net checks (``UNet.plan``) that every max-pool sees an even size before it runs.
    """

    def __init__(self, in_channels, out_channels, padding="valid", batch_norm=False):
        super().__init__()
        self.maxpool_conv = nn.Sequential(
            nn.MaxPool2d(kernel_size=2, stride=2),
            DoubleConv(in_channels, out_channels, padding, batch_norm),
        )

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    r"""Up-sample x2 to C/2 channels, join with the skip tensor, then :class:`DoubleConv`.

    Shapes: x (N, C, h, w), skip (N, C/2, Hs, Ws) -> (N, F, 2h - 4, 2w - 4) ("valid"),
                                                     (N, F, Hs, Ws)          ("same").
    Steps, as in the paper's Fig. 1:
      1. ``self.up``: ``up_mode="transpose"``: a 2x2 transposed convolution with stride 2
         ("up-convolution") from C to C/2 channels: (N, C, h, w) -> (N, C/2, 2h, 2w).
         ``up_mode="bilinear"``: ``Upsample(scale_factor=2, mode="bilinear",
         align_corners=True)`` then a 1x1 convolution C -> C/2, so that both modes give the
         same channel counts (milesial/Pytorch-UNet instead keeps C channels and shrinks
         them in the DoubleConv; we keep the paper's "halving" step explicit).
      2. "valid": centre-crop the skip tensor to (2h, 2w) (offset ((Hs - 2h)//2,
         (Ws - 2w)//2), ``F.center_crop``): the encoder's map is larger because the
         decoder has lost border pixels in every unpadded convolution since.
         "same": the sizes already agree inside a U-Net; if the skip tensor is larger (odd
         sizes, a part used on its own) the up-sampled tensor is zero-padded to its size.
      3. concatenate along the channels, skip FIRST: (N, C/2 + C/2, ., .) = (N, C, ., .).
      4. :class:`DoubleConv` C -> F.
    """

    def __init__(self, in_channels, out_channels, padding="valid", batch_norm=False,
                 up_mode="transpose"):
        super().__init__()
        _check_channels("Up", in_channels=in_channels, out_channels=out_channels)
        _check_padding("Up", padding)
        if in_channels % 2:
            raise ValueError(f"Up: in_channels must be even (up-sampling halves it), got {in_channels}")
        if up_mode == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        elif up_mode == "bilinear":
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                nn.Conv2d(in_channels, in_channels // 2, kernel_size=1),
            )
        else:
            raise ValueError(f"Up: up_mode must be 'transpose' (the paper) or 'bilinear', "
                             f"got up_mode={up_mode!r}")
        self.conv = DoubleConv(in_channels, out_channels, padding, batch_norm)
        self.padding = padding

    def forward(self, x, skip):
        x = self.up(x)                                           # (N, C/2, 2h, 2w)
        if self.padding == "valid":
            skip = F.center_crop(skip, tuple(x.shape[-2:]))      # (N, C/2, 2h, 2w)
        else:
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            if dh < 0 or dw < 0:
                raise ValueError(f"Up: the skip tensor {tuple(skip.shape)} is smaller than the "
                                 f"up-sampled tensor {tuple(x.shape)}")
            if dh or dw:
                x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return self.conv(minidl.cat([skip, x], dim=1))           # skip first


class OutConv(nn.Module):
    r"""1x1 convolution to ``n_classes`` scores per pixel: (N, C, H, W) -> (N, n_classes, H, W)."""

    def __init__(self, in_channels, n_classes):
        super().__init__()
        _check_channels("OutConv", in_channels=in_channels, n_classes=n_classes)
        self.conv = nn.Conv2d(in_channels, n_classes, kernel_size=1)

    def forward(self, x):
        return self.conv(x)
