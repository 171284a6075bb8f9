r"""The article's PyTorch U-Net with batch normalisation and strided convolutions.

    level i (i = 1 .. depth, channels width * 2**(i-1)):
        enc{i}   2 x (3x3 conv, padding 1 -> BatchNorm -> ReLU)
        down{i}  3x3 conv, stride 2, padding 1 -> BatchNorm -> ReLU   (instead of a max-pool;
                 keeps the channels, halves the size)
    back up, deepest first:
        up{i}    ConvTranspose2d(k=3, s=2, p=1, output_padding=1) -> BatchNorm -> ReLU
                 (doubles the size exactly: (h - 1)*2 - 2 + 3 + 1 = 2h; halves the channels)
        dec{i}   concat (skip first) then 2 x (3x3 conv -> BatchNorm -> ReLU)
    head     1x1 conv to n_classes (the article: then a sigmoid, trained with BCELoss)

Every convolution is 'same', so the output has the input's size; the size must be divisible by
``2**(depth-1)``: a stride-2 convolution of an odd size n gives (n + 1)/2, which the
transposed convolution brings back to n + 1, one more than the skip tensor.

Loss: the article's ``sigmoid`` + ``nn.BCELoss`` is trained as
``binary_cross_entropy_with_logits`` on the logits ``forward`` returns: the same mathematics
without ``log(sigmoid(z))`` losing everything for large ``|z|``. Initialisation: PyTorch's
defaults (the article sets none); the convolutions keep their biases (PyTorch's default, as
in the article), although BatchNorm right after them cancels them.

We did not find the article among the stored pages (searched: PyTorch U-Net, stride-2
convolution down-sampling, BatchNorm, ``ConvTranspose2d(..., output_padding=1)``, BCELoss), so
its learning rate is not known here: ``RECIPE`` is Adam with PyTorch's default lr 1e-3.
"""
import minidl
import minidl.nn as nn

from .seed_sizes import SizedByRule, SizeRule

__all__ = ["BNUNet"]


def _conv_bn_relu(c_in, c_out, stride=1):
    """3x3 conv (padding 1, ``stride``) -> BatchNorm2d -> ReLU: (N, c_in, H, W) -> (N, c_out, H/stride, W/stride)."""
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


def _double_conv(c_in, c_out):
    """2 x (3x3 conv -> BN -> ReLU): (N, c_in, H, W) -> (N, c_out, H, W)."""
    return nn.Sequential(*_conv_bn_relu(c_in, c_out), *_conv_bn_relu(c_out, c_out))


class BNUNet(SizedByRule, nn.Module):
    r"""U-Net with BatchNorm, stride-2 convolutions down and 3x3 transposed convolutions up.

    Args:
        in_channels: image channels (1).
        n_classes: output channels (1: one logit per pixel).
        width: channels at the top level (64); level ``i`` has ``width * 2**(i-1)``.
        depth: levels (5: 64 ... 1024 channels at the default width).

    Shapes: x (N, in_channels, H, W), H and W divisible by ``2**(depth-1)``
    -> logits (N, n_classes, H, W).

    Modules: ``enc1`` ... ``enc{depth}``, ``down1`` ... ``down{depth-1}``, ``up{depth-1}`` ...
    ``up1``, ``dec{depth-1}`` ... ``dec1``, ``head`` (module docstring).
    """

    SOURCE = "PyTorch U-Net article: BatchNorm, stride-2 conv down, 3x3 transposed conv up"
    LOSS = "bce"
    RECIPE = dict(optimizer="adam", lr=1e-3, weight_decay=0.0)

    def __init__(self, in_channels=1, n_classes=1, width=64, depth=5):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("n_classes", n_classes), ("width", width),
                            ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BNUNet: {name} must be an int >= 1, got {name}={value!r}")
        self.in_channels, self.n_classes, self.width, self.depth = in_channels, n_classes, width, depth
        c = [width * 2 ** i for i in range(depth)]
        for i in range(1, depth + 1):
            self.add_module(f"enc{i}", _double_conv(in_channels if i == 1 else c[i - 2], c[i - 1]))
            if i < depth:
                self.add_module(f"down{i}", nn.Sequential(*_conv_bn_relu(c[i - 1], c[i - 1], stride=2)))
        for i in range(depth - 1, 0, -1):
            self.add_module(f"up{i}", nn.Sequential(
                nn.ConvTranspose2d(c[i], c[i - 1], 3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(c[i - 1]), nn.ReLU()))
            self.add_module(f"dec{i}", _double_conv(2 * c[i - 1], c[i - 1]))
        self.head = nn.Conv2d(c[0], n_classes, 1)
        self._sizes = SizeRule("BNUNet", levels=depth, shrink=0, pool=2)

    def forward(self, x):
        """x (N, in_channels, H, W) -> logits (N, n_classes, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"BNUNet: expected input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        self.output_size(tuple(x.shape[-2:]))                       # clear error for unusable sizes
        skips = []
        for i in range(1, self.depth + 1):
            x = getattr(self, f"enc{i}")(x)                         # (N, c_i, H/2**(i-1), W/2**(i-1))
            if i < self.depth:
                skips.append(x)
                x = getattr(self, f"down{i}")(x)                    # (N, c_i, H/2**i, W/2**i)
        for i in range(self.depth - 1, 0, -1):
            x = getattr(self, f"up{i}")(x)                          # (N, c_i, H/2**(i-1), ...)
            x = getattr(self, f"dec{i}")(minidl.cat([skips[i - 1], x], dim=1))
        return self.head(x)                                         # (N, n_classes, H, W)


    def extra_repr(self):
        return (f"in_channels={self.in_channels}, n_classes={self.n_classes}, width={self.width}, "
                f"depth={self.depth}")
