"""The configuration of a training run (:class:`TrainConfig`) and the network it describes.

Its own module so that both the trainer (unet/train.py) and the checkpoints (unet/checkpoint.py),
which rebuild a model from a saved config, can import it without importing each other.
"""
import dataclasses
import math
import re
from dataclasses import dataclass, field

import numpy as np

from .data import parse_mask_map

__all__ = ["ConfigError", "TrainConfig", "build_model"]

_MONITORS = ("dice", "mean_iou", "fw_iou", "pixel_accuracy", "v_rand", "val_loss", "train_loss")


class ConfigError(ValueError):
    """Training options that cannot work together (raised before any training is done)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on. ``unet train --help`` lists the same options.

    Data: ``image_dir``/``mask_dir`` (pairs matched by file stem, ``mask_map`` like
    ``"0:0,255:1"``), or, when they are None, ``synthetic`` generated samples of
    ``synthetic_size``. ``val_fraction`` of the samples (or ``val_indices``) validate.
    Steps: ``epochs`` epochs of ``steps_per_epoch`` batches (default: one pass over the
    training samples), or a total of ``steps`` when that is set.
    """

    # data
    image_dir: str = None
    mask_dir: str = None
    mask_map: str = None
    synthetic: int = 40
    synthetic_size: tuple = (128, 128)
    synthetic_kind: str = "auto"       # "cells", "trimaps" (3 classes); auto: trimaps for fcn8s/16s/32s
    val_fraction: float = 0.2
    val_indices: tuple = None
    # model
    model: str = "unet"                # a name of unet.zoo.MODELS (`unet models` lists them)
    depth: int = 4
    base_channels: int = 16
    padding: str = "same"              # "same" or "valid" (the paper)
    batch_norm: bool = False
    dropout: float = 0.0
    up_mode: str = "transpose"
    fcn_variant: str = "8s"
    fcn_width: float = 0.125
    width: float = 1.0                 # the seed models' channels, as a fraction of the article's
    encoder_weights: str = None        # a torchvision ResNet34 / VGG16 state dict file to start from
    # optimisation
    optimizer: str = "adam"            # "adam" or "sgd" (momentum 0.99 as in the paper)
    lr: float = 1e-3
    momentum: float = 0.99
    weight_decay: float = 0.0
    schedule: str = "none"             # "none", "step", "cosine", "plateau", "onecycle"
    lr_step: int = 10                  # StepLR period (epochs)
    lr_gamma: float = 0.1              # StepLR / plateau factor
    batch_size: int = 4
    epochs: int = 10
    steps_per_epoch: int = None
    steps: int = None
    # loss
    loss: str = "ce"                   # "ce" (cross-entropy) or "bce" (BCE-with-logits, one-hot)
    border_weight: bool = False        # multiply the loss by the paper's border weight map
    w0: float = 10.0
    sigma: float = 5.0
    dice_weight: float = 0.0           # + dice_weight * soft Dice loss
    # augmentation
    crop_size: int = None              # network input tile; default: largest that fits, <= 256
    augment: bool = True
    elastic: bool = True
    jitter: float = 0.1
    workers: int = 0                   # processes that make the batches ahead (0: the main process)
    # validation and output
    cell_class: int = 1                # class of cell interiors, for V_rand; None: no V_rand
    monitor: str = "dice"
    out_dir: str = "runs/unet"
    seed: int = 0
    resume: str = None
    extra: dict = field(default_factory=dict)   # free-form notes kept in the checkpoint

    def __post_init__(self):
        self.check()

    def check(self):
        """A clear error for an option that no run can use, before any work is done."""
        from .zoo import MODELS
        choices = {"model": tuple(MODELS), "padding": ("same", "valid"),
                   "optimizer": ("adam", "sgd"),
                   "schedule": ("none", "step", "cosine", "plateau", "onecycle"),
                   "loss": ("ce", "bce"), "fcn_variant": ("32s", "16s", "8s"),
                   "up_mode": ("transpose", "bilinear", "upsample"),
                   "synthetic_kind": ("auto", "cells", "trimaps")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"TrainConfig: {name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}")
        positive = ["depth", "base_channels", "batch_size", "epochs", "lr_step", "synthetic"]
        positive += [n for n in ("steps_per_epoch", "steps", "crop_size") if getattr(self, n) is not None]
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"TrainConfig: {name} must be a positive int, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, (int, np.integer)) or self.workers < 0:
            raise ConfigError(f"TrainConfig: workers must be an int >= 0, got {self.workers!r}")
        for name in ("lr", "momentum", "weight_decay", "dice_weight", "w0", "sigma", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"TrainConfig: {name} must be a finite number >= 0, got {value!r}")
        size = self.synthetic_size
        if (not isinstance(size, (tuple, list)) or len(size) != 2 or
                not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 8 for n in size)):
            raise ConfigError(f"TrainConfig: synthetic_size must be (H, W) with ints >= 8 (the cells "
                              f"need room), got {size!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise ConfigError(f"TrainConfig: val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.sigma <= 0:
            raise ConfigError(f"TrainConfig: sigma (the border weight's width) must be > 0, got {self.sigma!r}")
        if self.monitor not in _MONITORS and not re.fullmatch(r"(iou|dice)_\d+", self.monitor):
            raise ConfigError(f"TrainConfig: monitor must be one of {_MONITORS} or iou_k / dice_k "
                              f"for a class k, got {self.monitor!r}")
        if self.lr <= 0:
            raise ConfigError(f"TrainConfig: lr must be > 0, got {self.lr!r}")
        if (self.image_dir is None) != (self.mask_dir is None):
            raise ConfigError("TrainConfig: give both image_dir and mask_dir (or neither, for "
                             f"synthetic data); got image_dir={self.image_dir!r}, "
                             f"mask_dir={self.mask_dir!r}")
        if self.mask_map is not None:
            parse_mask_map(self.mask_map)            # DataError for bad text, now
        if self.up_mode == "upsample" and self.model != "zhixuhao" or \
                self.up_mode == "bilinear" and self.model != "unet":
            raise ConfigError(f"TrainConfig: up_mode {self.up_mode!r} is not one of model "
                              f"{self.model!r}'s (unet: transpose, bilinear; zhixuhao: transpose, upsample)")
        if not (isinstance(self.width, (int, float)) and not isinstance(self.width, bool)
                and math.isfinite(self.width) and self.width > 0):
            raise ConfigError(f"TrainConfig: width must be a number > 0, got {self.width!r}")
        if self.encoder_weights is not None:
            if MODELS[self.model].encoder is None:
                encoders = ", ".join(name for name, e in MODELS.items() if e.encoder)
                raise ConfigError(f"TrainConfig: model {self.model!r} has no pretrained encoder to load "
                                  f"encoder_weights into (models with one: {encoders})")
            import os
            if not os.path.isfile(self.encoder_weights):
                raise ConfigError(f"TrainConfig: encoder_weights {self.encoder_weights!r} is not a file")

    def to_dict(self):
        """A plain dict (tuples stay tuples) for the checkpoint."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """The config saved in a checkpoint; unknown keys are an error (another version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"TrainConfig.from_dict: unknown options {unknown}")
        values = dict(values)
        for name in ("synthetic_size", "val_indices"):   # the checkpoint stores tuples as lists
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


def build_model(config, in_channels, num_classes):
    """The network described by ``config`` for ``in_channels`` and ``num_classes`` (unet.zoo)."""
    from .zoo import build
    return build(config, in_channels, num_classes)
