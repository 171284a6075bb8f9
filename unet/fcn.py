r"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer, Darrell, CVPR 2015) on a VGG16 backbone.

The network, as in the authors' Caffe models (and wkentaro/pytorch-fcn):

    block1..block5   VGG16: 13 3x3 convolutions + ReLU in 5 blocks, each ending with a 2x2
                     max-pool of stride 2 (rounding UP, Caffe's rule); conv1_1 pads by 100
    fc               fc6 = 7x7 convolution (no padding), fc7 = 1x1 convolution, ReLU and
                     Dropout(0.5) after each: VGG's fully connected layers, "convolutionalized"
    score_fr         1x1 convolution to n_classes on fc7 (stride 32)
    32s: upscore     x32 transposed convolution (kernel 64, stride 32)
    16s: upscore2    x2 (kernel 4, stride 2); + score_pool4 (1x1 on pool4, stride 16);
         upscore16   x16 (kernel 32, stride 16)
    8s:  upscore2, + score_pool4, upscore_pool4 x2 (kernel 4, stride 2),
         + score_pool3 (1x1 on pool3, stride 8), upscore8 x8 (kernel 16, stride 8)

Why conv1_1 pads by 100: fc6 needs a 7x7 pool5 map, i.e. an input of about 200 pixels; the
padding lets any input through, and the final crop cuts the result back to the input size.

Where the crop offsets come from (``unet.planner.CoordMap``). Pixel j of a feature map is
centred on image coordinate ``scale * j + offset``. A layer with kernel K, stride S, padding
P moves the centre by c = (K-1)/2 - P input pixels, so a window layer (conv, pool) maps
(scale, offset) to (scale*S, offset + scale*c), a transposed convolution to
(scale/S, offset - scale*c/S). From the image (1, 0):

    conv1_1 (K3, P100)      (1, -99)           every other 3x3 conv (P1): c = 0
    pool1 (K2, S2)          (2, -98.5)         c = 1/2 at every pool
    pool2                   (4, -97.5)
    pool3                   (8, -95.5)
    pool4                   (16, -91.5)
    pool5                   (32, -83.5)
    fc6 (K7, P0)            (32, 12.5)         c = 3;  fc7 and score_fr (1x1) keep it
    32s: upscore (K64 S32)  (1, 12.5 - 31.5) = (1, -19): crop 19 to align with the image
    upscore2 (K4 S2)        (16, 12.5 - 24) = (16, -11.5): score_pool4 is at (16, -91.5),
                            so crop it by (-11.5 + 91.5) / 16 = 5
    16s: upscore16 (K32 S16) (1, -11.5 - 15.5) = (1, -27): crop 27
    8s: upscore_pool4 (K4 S2) (8, -11.5 - 12) = (8, -23.5): score_pool3 is at (8, -95.5),
                            crop it by (-23.5 + 95.5) / 8 = 9
        upscore8 (K16 S8)   (1, -23.5 - 7.5) = (1, -31): crop 31
The model computes these numbers from its own layers when it is built (``self.offsets``),
so they follow any change of the layer geometry. The offsets do not depend on the input
size; ceil-mode pooling only adds pixels at the bottom/right end.

Initialisation: the score layers start at zero (as in the paper); the transposed
convolutions start as bilinear interpolation (:func:`bilinear_kernel`) and are learned
unless ``freeze_upsampling=True`` (the authors' released models keep them fixed). The
backbone has PyTorch's default initialisation; the paper starts it from ImageNet VGG16
weights, which ``unet.interop`` can load.
"""
import numbers
from collections import OrderedDict

import numpy as np

import minidl.nn as nn

from .planner import CoordMap, SizeError, output_size_through

__all__ = ["FCN", "bilinear_kernel"]

# (block, number of 3x3 convolutions, channels) of VGG16
_VGG16 = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
_FC_CHANNELS = 4096
_VARIANTS = ("32s", "16s", "8s")


def bilinear_kernel(channels, kernel_size):
    r"""Weights (channels, channels, K, K) of a transposed convolution that up-samples each
    channel by bilinear interpolation (the ``bilinear`` filler of Caffe's FCN models).

    ``factor = ceil(K/2)``, centre ``factor - 1`` (K odd) or ``factor - 1/2`` (K even), and
    ``w[c, c, i, j] = (1 - |i - centre|/factor) * (1 - |j - centre|/factor)``, zero between
    different channels. With K = 2S and stride S each output pixel gets the tent-weighted
    average of its two nearest input pixels per axis: exactly bilinear interpolation
    (``F.interpolate(..., align_corners=False)``) shifted by S/2 pixels, away from the border.
    """
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - np.abs(np.arange(kernel_size) - centre) / factor        # (K,)
    weight = np.zeros((channels, channels, kernel_size, kernel_size))
    weight[np.arange(channels), np.arange(channels)] = np.outer(taps, taps)
    return weight


def _upsampler(n_classes, factor, freeze):
    """Transposed convolution x``factor`` (kernel 2*factor, no bias), bilinear at the start."""
    layer = nn.ConvTranspose2d(n_classes, n_classes, kernel_size=2 * factor, stride=factor, bias=False)
    layer.weight.data[...] = bilinear_kernel(n_classes, 2 * factor)
    if freeze:
        layer.weight.requires_grad_(False)
    return layer


def _score(in_channels, n_classes):
    """A zero-initialised 1x1 score layer."""
    layer = nn.Conv2d(in_channels, n_classes, kernel_size=1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _crop(x, offset, size, what):
    """x[:, :, offset:offset+h, offset:offset+w] with a clear error when it does not fit."""
    h, w = size
    if offset + h > x.shape[-2] or offset + w > x.shape[-1]:
        raise SizeError(f"FCN: cannot crop {what} of spatial size {tuple(x.shape[-2:])} at offset "
                        f"{offset} to ({h}, {w})")
    return x[:, :, offset:offset + h, offset:offset + w]


class FCN(nn.Module):
    r"""Fully convolutional network FCN-32s / 16s / 8s for semantic segmentation.

    Args:
        n_classes: scores per pixel (21 for PASCAL VOC).
        variant: ``"32s"`` (one x32 up-sampling), ``"16s"`` (adds pool4), ``"8s"`` (adds pool3).
        in_channels: image channels (3).
        width: multiplies every channel count of the backbone and of fc6/fc7 (rounded, at
            least 1), so that small versions run on a CPU; 1.0 is VGG16.
        freeze_upsampling: keep the bilinear up-sampling weights fixed (no gradient).

    Shapes: x (N, in_channels, H, W) -> scores (N, n_classes, H, W), for any H, W >= 1.
    The crop offsets (``self.offsets``) are derived from the layers, see the module docstring.

    Training (``LOSS``, ``RECIPE``): n_classes channels of logits with ``cross_entropy`` (the
    softmax is in the loss); the paper's SGD for FCN-VGG16: fixed learning rate 1e-4,
    momentum 0.9, weight decay 5e-4 (Sec. 4.3; the journal version's "heavy" at-once FCN-8s
    uses momentum 0.99 with an unnormalised loss), starting from ImageNet VGG16
    (:func:`unet.encoders.load_vgg16_weights`). Evaluated by mean IU (``unet.metrics.mean_iou``).
    """

    SOURCE = "Long, Shelhamer, Darrell: Fully Convolutional Networks (CVPR 2015), VGG16 backbone"
    LOSS = "ce"
    RECIPE = dict(optimizer="sgd", lr=1e-4, momentum=0.9, weight_decay=5e-4, metric="mean_iou")

    def __init__(self, n_classes=21, variant="32s", in_channels=3, width=1.0, freeze_upsampling=False):
        super().__init__()
        for name, value in (("n_classes", n_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"FCN: {name} must be an int >= 1, got {name}={value!r}")
        if variant not in _VARIANTS:
            raise ValueError(f"FCN: variant must be one of {_VARIANTS}, got variant={variant!r}")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            raise ValueError(f"FCN: width must be a positive number, got width={width!r}")
        self.n_classes, self.variant, self.in_channels, self.width = n_classes, variant, in_channels, width

        def channels(c):
            return max(1, int(round(c * width)))

        c_in = in_channels
        for block, n_convs, c_out in _VGG16:
            layers = OrderedDict()
            for k in range(1, n_convs + 1):
                pad = 100 if (block, k) == (1, 1) else 1
                layers[f"conv{block}_{k}"] = nn.Conv2d(c_in, channels(c_out), kernel_size=3, padding=pad)
                layers[f"relu{block}_{k}"] = nn.ReLU()
                c_in = channels(c_out)
            layers[f"pool{block}"] = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
            self.add_module(f"block{block}", nn.Sequential(layers))
        c_fc = channels(_FC_CHANNELS)
        self.fc = nn.Sequential(OrderedDict([
            ("fc6", nn.Conv2d(c_in, c_fc, kernel_size=7)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout(0.5)),
            ("fc7", nn.Conv2d(c_fc, c_fc, kernel_size=1)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout(0.5)),
        ]))
        self.score_fr = _score(c_fc, n_classes)
        if variant == "32s":
            self.upscore = _upsampler(n_classes, 32, freeze_upsampling)
        else:
            self.score_pool4 = _score(channels(512), n_classes)
            self.upscore2 = _upsampler(n_classes, 2, freeze_upsampling)
            if variant == "16s":
                self.upscore16 = _upsampler(n_classes, 16, freeze_upsampling)
            else:
                self.score_pool3 = _score(channels(256), n_classes)
                self.upscore_pool4 = _upsampler(n_classes, 2, freeze_upsampling)
                self.upscore8 = _upsampler(n_classes, 8, freeze_upsampling)
        self.offsets = self._crop_offsets()

    def _crop_offsets(self):
        """Crop offsets from the layer geometry (module docstring): {"score_pool4": 5, ...}."""
        image = CoordMap()
        pool3 = image.through(self.block1, self.block2, self.block3)
        pool4 = pool3.through(self.block4)
        score = pool4.through(self.block5, self.fc, self.score_fr)
        if self.variant == "32s":
            return {"output": score.through(self.upscore).crop_offset(image)}
        up2 = score.through(self.upscore2)
        offsets = {"score_pool4": pool4.through(self.score_pool4).crop_offset(up2)}
        if self.variant == "16s":
            offsets["output"] = up2.through(self.upscore16).crop_offset(image)
            return offsets
        up4 = up2.through(self.upscore_pool4)
        offsets["score_pool3"] = pool3.through(self.score_pool3).crop_offset(up4)
        offsets["output"] = up4.through(self.upscore8).crop_offset(image)
        return offsets

    def forward(self, x):
        """x (N, in_channels, H, W) -> scores (N, n_classes, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"FCN: expected input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        size = tuple(x.shape[-2:])
        self.output_size(size)                                   # clear error for unusable sizes
        pool3 = self.block3(self.block2(self.block1(x)))         # stride 8
        pool4 = self.block4(pool3)                               # stride 16
        score = self.score_fr(self.fc(self.block5(pool4)))       # stride 32
        if self.variant == "32s":
            return _crop(self.upscore(score), self.offsets["output"], size, "upscore")
        score = self.upscore2(score)                             # stride 16
        score = score + _crop(self.score_pool4(pool4), self.offsets["score_pool4"],
                              score.shape[-2:], "score_pool4")
        if self.variant == "16s":
            return _crop(self.upscore16(score), self.offsets["output"], size, "upscore16")
        score = self.upscore_pool4(score)                        # stride 8
        score = score + _crop(self.score_pool3(pool3), self.offsets["score_pool3"],
                              score.shape[-2:], "score_pool3")
        return _crop(self.upscore8(score), self.offsets["output"], size, "upscore8")

    # -------------------------------------------------------------- shape planner
    def plan(self, input_size):
        """Sizes of one spatial dimension through the network: {"pool3": ., "pool4": .,
        "score_fr": ., then per variant the up-sampled maps}, checking that every crop fits."""
        if isinstance(input_size, bool) or not isinstance(input_size, numbers.Integral) or input_size < 1:
            raise SizeError(f"FCN: input sizes must be positive ints, got {input_size!r}")
        input_size = int(input_size)
        sizes = {"pool3": output_size_through(input_size, self.block1, self.block2, self.block3)}
        sizes["pool4"] = output_size_through(sizes["pool3"], self.block4)
        sizes["pool5"] = output_size_through(sizes["pool4"], self.block5)
        if sizes["pool5"] < 7:
            raise SizeError(f"FCN: an input of size {input_size} leaves pool5 at {sizes['pool5']}, "
                            "smaller than fc6's 7x7 kernel")
        sizes["score_fr"] = output_size_through(sizes["pool5"], self.fc, self.score_fr)
        crops = []                                               # (what, size, offset, target)
        if self.variant == "32s":
            sizes["upscore"] = output_size_through(sizes["score_fr"], self.upscore)
            crops.append(("upscore", sizes["upscore"], self.offsets["output"], input_size))
        else:
            sizes["upscore2"] = output_size_through(sizes["score_fr"], self.upscore2)
            crops.append(("score_pool4", sizes["pool4"], self.offsets["score_pool4"], sizes["upscore2"]))
            if self.variant == "16s":
                sizes["upscore16"] = output_size_through(sizes["upscore2"], self.upscore16)
                crops.append(("upscore16", sizes["upscore16"], self.offsets["output"], input_size))
            else:
                sizes["upscore_pool4"] = output_size_through(sizes["upscore2"], self.upscore_pool4)
                crops.append(("score_pool3", sizes["pool3"], self.offsets["score_pool3"],
                              sizes["upscore_pool4"]))
                sizes["upscore8"] = output_size_through(sizes["upscore_pool4"], self.upscore8)
                crops.append(("upscore8", sizes["upscore8"], self.offsets["output"], input_size))
        for what, n, offset, target in crops:
            if offset + target > n:
                raise SizeError(f"FCN-{self.variant}: for an input of size {input_size}, {what} has "
                                f"size {n}, too small to crop {target} pixels at offset {offset}")
        sizes["output"] = input_size
        return sizes

    def output_size(self, input_size):
        """The output size (equal to the input size) for an int or (H, W); raises if unusable."""
        if isinstance(input_size, (tuple, list)):
            if len(input_size) != 2:
                raise ValueError(f"FCN: input_size must be an int or a pair (H, W), got {input_size!r}")
            return tuple(self.plan(n)["output"] for n in input_size)
        return self.plan(input_size)["output"]

    def valid_input_size(self, min_size):
        """The smallest usable size >= ``min_size`` (int or (H, W)): every size >= 1 is usable
        (conv1_1's padding of 100 lets any input through), so ``min_size`` itself."""
        self.output_size(min_size)             # checks the type and that every crop fits
        return tuple(min_size) if isinstance(min_size, (tuple, list)) else int(min_size)

    def extra_repr(self):
        return (f"n_classes={self.n_classes}, variant={self.variant!r}, in_channels={self.in_channels}, "
                f"width={self.width}, offsets={self.offsets}")
