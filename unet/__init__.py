"""Segmentation on minidl: U-Net (Ronneberger et al. 2015) and FCN (Long et al. 2015), with
the data pipeline, trainer, overlap-tile prediction, metrics and a command line.

    from unet import UNet, FCN, SegmentationData, TrainConfig
    from unet.train import train

    python -m unet demo --out demo       # or the console script: unet demo

Parts (``unet.parts``), the shape planner (``unet.planner``) and PyTorch weight interop
(``unet.interop``) are documented in docs/models.md; training and the command line in
docs/training.md. Only minidl's public API is used.

The function ``train`` is not exported here, so that ``unet.train`` stays the module.
"""
import minidl  # noqa: F401  (first: it sets NumPy's BLAS threads up before NumPy loads)
from .augment import Augmenter
from .checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from .data import (DataError, SegmentationData, apply_mask_map, auto_mask_map, load_images,
                   load_masks, parse_mask_map, split_indices)
from .fcn import FCN
from .interop import export_torch_state_dict, load_torch_state_dict
from .metrics import (confusion_matrix, dice_per_class, frequency_weighted_iou, iou_per_class,
                      mean_iou, pixel_accuracy, rand_score_foreground, segmentation_metrics)
from .models import UNet
from .parts import DoubleConv, Down, OutConv, Up
from .predict import predict_probabilities, predict_whole, save_prediction
from .synthetic import make_cells, write_synthetic_folder
from .train import TrainConfig, TrainingDiverged, TrainResult
from .weights import border_weight_map, class_balance_map, save_weight_map_png

__all__ = [
    # models
    "UNet", "FCN", "DoubleConv", "Down", "Up", "OutConv",
    "load_torch_state_dict", "export_torch_state_dict",
    # data
    "DataError", "load_images", "load_masks", "parse_mask_map", "auto_mask_map",
    "apply_mask_map", "split_indices", "SegmentationData", "make_cells", "write_synthetic_folder",
    "Augmenter", "class_balance_map", "border_weight_map", "save_weight_map_png",
    # metrics and prediction
    "confusion_matrix", "pixel_accuracy", "iou_per_class", "mean_iou", "frequency_weighted_iou",
    "dice_per_class", "rand_score_foreground", "segmentation_metrics",
    "predict_probabilities", "predict_whole", "save_prediction",
    # training
    "TrainConfig", "TrainResult", "TrainingDiverged",
    "save_checkpoint", "load_checkpoint", "load_model", "CheckpointError",
]

# The seed models of issue 25: resnet34_unet, the encoder-weight loaders, the trimap data.
from .encoders import load_encoder_weights, load_vgg16_weights  # noqa: E402
from .resnet34_unet import ResNet34UNet  # noqa: E402
from .synthetic import make_trimap, write_trimap_folder  # noqa: E402

__all__ += ["ResNet34UNet", "load_encoder_weights", "load_vgg16_weights", "make_trimap",
            "write_trimap_folder"]
