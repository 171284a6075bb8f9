"""PyTorch-shaped functions (``import minidl.functional as F``).

One module per family; each function checks and normalises its arguments,
raising a clear error that names the function, the argument and the shapes,
then calls an op from ``minidl.ops`` where the math and its gradient live.
"""
from ..backend.geometry import conv_output_size, conv_transpose_output_size  # output sizes, for planners
from .activation import leaky_relu, leaky_relu_, relu, relu_, sigmoid, tanh
from .conv import conv2d, conv_transpose2d
from .dropout import dropout, dropout2d
from .linear import linear
from .loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, dice_loss,
                   mse_loss, nll_loss)
from .norm import batch_norm
from .pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d, max_unpool2d
from .shape import cat, center_crop, chunk, interpolate, pad, split, stack
from .softmax import log_softmax, softmax
# --- wt-nnlayers: more activations, pixel shuffle, layer/group/instance norm, one_hot
from .activation import elu, elu_, gelu, hardtanh, hardtanh_, prelu, relu6, silu, softplus
from .pixel_shuffle import pixel_shuffle, pixel_unshuffle
from .norm import group_norm, instance_norm, layer_norm
from .one_hot import one_hot
