"""The networks that ``unet train --model NAME`` builds; ``unet models`` lists them.

Each entry says how to build the network from a :class:`~unet.config.TrainConfig`, which loss
trains it, and where it comes from (docs/models.md has the whole table). ``width`` scales the
article's channel counts (1.0 = the article's network; tests and CI use 1/16).

Losses: a model whose ``LOSS`` is ``"bce"`` has one output channel of logits for two classes
(the foreground is class 1, ``--cell-class``'s class in the synthetic cells) trained with
``binary_cross_entropy_with_logits``, or one channel per class (one-hot) for more; a ``"ce"``
model has one channel per class and ``cross_entropy``. Prediction turns one channel p into the
two class probabilities (1 - p, p), so every metric and file works the same for every model.
"""
from typing import Callable, NamedTuple

from .bn_unet import BNUNet
from .fcn import FCN
from .mini_unet import MiniUNet
from .models import UNet
from .resnet34_unet import ResNet34UNet
from .tf_unet import TfUNet
from .zhixuhao import ZhixuhaoUNet

__all__ = ["MODELS", "PARAMETERS", "ModelEntry", "build", "loss_of", "output_channels",
           "parameter_count", "size_rule"]


def _scaled(channels, width):
    """The article's channel count at ``width`` (at least 1)."""
    return max(1, int(round(channels * width)))


class ModelEntry(NamedTuple):
    name: str
    cls: type
    build: Callable       # (config, in_channels, out_channels) -> the network
    summary: str          # one line for `unet models`
    encoder: str = None   # "resnet34" or "vgg16": what --encoder-weights loads


MODELS = {entry.name: entry for entry in [
    ModelEntry("unet", UNet,
               lambda c, i, k: UNet(i, k, c.base_channels, c.depth, c.padding, c.batch_norm, c.dropout, c.up_mode),
               "the paper U-Net, configurable (--base-channels, --depth, --padding, --batch-norm, ...)"),
    ModelEntry("fcn", FCN, lambda c, i, k: FCN(k, c.fcn_variant, i, c.fcn_width),
               "FCN with --fcn-variant and --fcn-width (the same networks as fcn8s/16s/32s)", "vgg16"),
    *[ModelEntry(f"fcn{v}", FCN, (lambda v: lambda c, i, k: FCN(k, v, i, c.width))(v),
                 f"FCN-{v} on VGG16 (Long et al. 2015), trained on 3-class trimaps by default", "vgg16")
      for v in ("8s", "16s", "32s")],
    ModelEntry("zhixuhao", ZhixuhaoUNet,
               lambda c, i, k: ZhixuhaoUNet(i, k, _scaled(64, c.width), up=c.up_mode),
               "the Keras ISBI U-Net (zhixuhao/unet): same padding, dropout 0.5, sigmoid + BCE"),
    ModelEntry("tf_unet", TfUNet, lambda c, i, k: TfUNet(i, k, _scaled(16, c.width)),
               "jakeret/tf_unet: valid convolutions, dropout before ReLU, softmax cross-entropy"),
    ModelEntry("resnet34_unet", ResNet34UNet, lambda c, i, k: ResNet34UNet(i, k, c.width),
               "fast.ai's Unet34: ResNet34 encoder read by forward hooks, one-cycle training", "resnet34"),
    ModelEntry("bn_unet", BNUNet, lambda c, i, k: BNUNet(i, k, _scaled(64, c.width)),
               "a PyTorch U-Net with BatchNorm, stride-2 conv down-sampling, sigmoid + BCE"),
    ModelEntry("mini_unet", MiniUNet, lambda c, i, k: MiniUNet(i, k, _scaled(32, c.width)),
               "keras-segmentation's unet_mini: 32-64-128 channels, dropout 0.2, softmax"),
]}


# Parameters at the article's width, 1 input channel, 2 classes (one output channel for the
# BCE models); "unet" is the paper's network (base 64, depth 5) and "fcn" is FCN-8s at width 1.
# Counting needs the whole network built (FCN: 134 million floats), so `unet models` shows
# these numbers; tests/unet/test_zoo.py builds every network and checks them.
PARAMETERS = {
    "unet": 31030658,
    "fcn": 134270278,
    "fcn8s": 134270278,
    "fcn16s": 134272772,
    "fcn32s": 134283970,
    "zhixuhao": 31031685,
    "tf_unet": 116770,
    "resnet34_unet": 22003393,
    "bn_unet": 37662209,
    "mini_unet": 471010,
}


def loss_of(config):
    """"ce" or "bce": the model's own loss for the seed models, --loss for unet and fcn."""
    if config.model in ("unet", "fcn"):
        return config.loss
    return MODELS[config.model].cls.LOSS


def output_channels(config, num_classes):
    """Output channels for ``num_classes`` classes: one logit for two classes under BCE."""
    return 1 if loss_of(config) == "bce" and num_classes == 2 and config.model not in ("unet", "fcn") \
        else num_classes


def build(config, in_channels, num_classes):
    """The network of ``config`` for ``in_channels`` and ``num_classes`` classes."""
    entry = MODELS[config.model]
    return entry.build(config, in_channels, output_channels(config, num_classes))


def parameter_count(model):
    return sum(int(p.numel()) for p in model.parameters())


def size_rule(model):
    """Which input sizes ``model`` takes and what comes out, in words."""
    if isinstance(model, FCN):
        return "any size; the output has the input's size"
    first = model.valid_input_size(1)
    step = model.valid_input_size(first + 1) - first
    out = model.output_size(first)
    if out == first:
        return f"multiples of {step}; the output has the input's size"
    return (f"{first}, {first + step}, {first + 2 * step}, ... (every {step}); the output is "
            f"{first - out} pixels smaller ({first} -> {out})")
