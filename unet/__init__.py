"""Segmentation models on minidl: U-Net (Ronneberger et al. 2015) and FCN (Long et al. 2015).

    from unet import UNet, FCN

Parts (``unet.parts``), the shape planner (``unet.planner``) and PyTorch weight interop
(``unet.interop``) are documented in docs/models.md. Only minidl's public API is used.
"""
from .fcn import FCN
from .interop import export_torch_state_dict, load_torch_state_dict
from .models import UNet
from .parts import DoubleConv, Down, OutConv, Up

__all__ = ["UNet", "FCN", "DoubleConv", "Down", "Up", "OutConv",
           "load_torch_state_dict", "export_torch_state_dict"]
