r"""ImageNet encoder weights by name: torchvision's ResNet34 and VGG16 state dicts.

Nothing is downloaded: give a file you have (``.pth`` written by ``torch.save``, read by
``minidl.load`` without PyTorch; an ``.npz`` of arrays, e.g. ``np.savez(path, **state)``; or a
file written by ``minidl.save``) or a dict of arrays (NumPy arrays, minidl or torch Tensors).

``load_encoder_weights(model, source)``  torchvision ``resnet34`` -> ``ResNet34UNet.encoder``
    (or a bare :class:`~unet.resnet34_unet.ResNet34Encoder`). The names are the same
    (``conv1.weight``, ``layer2.0.downsample.0.weight``, ...); torchvision's classifier head
    ``fc.weight``/``fc.bias`` is ignored. ``*.num_batches_tracked`` may be absent (torchvision's
    original 2017 files predate it); it then stays as it is.

``load_vgg16_weights(model, source)``  torchvision ``vgg16`` -> :class:`~unet.fcn.FCN`'s
    backbone, as the FCN paper converts VGG16 ("convolutionalization"):

        features.0, .2                 -> block1.conv1_1, conv1_2
        features.5, .7                 -> block2.conv2_1, conv2_2
        features.10, .12, .14          -> block3.conv3_1 .. conv3_3
        features.17, .19, .21          -> block4.conv4_1 .. conv4_3
        features.24, .26, .28          -> block5.conv5_1 .. conv5_3
        classifier.0 (4096, 512*7*7)   -> fc.fc6 (4096, 512, 7, 7): a 7x7 convolution
        classifier.3 (4096, 4096)      -> fc.fc7 (4096, 4096, 1, 1): a 1x1 convolution
        classifier.6 (1000, 4096)      ignored (ImageNet's 1000 classes)

    (torchvision's odd indices are the ReLUs, 4/9/16/23/30 the max-pools: no weights.)
    The reshape of classifier.0 is exact: torchvision flattens pool5's (512, 7, 7) map in
    C order before the first linear layer, so row k of the matrix IS the k-th 7x7 filter.
    The score layers and the up-sampling layers keep their initialisation (zero / bilinear).

Both check everything first: a missing key, an unexpected key or a wrong shape raises ONE
``RuntimeError`` that lists them all, and the model is left unchanged. They return
``(loaded, ignored)``: the source's keys that were copied and those that were skipped.
"""
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

import minidl

from .fcn import FCN, _VGG16
from .resnet34_unet import ResNet34Encoder

__all__ = ["read_state_dict", "load_encoder_weights", "load_vgg16_weights", "vgg16_names"]


def _as_array(where, key, value):
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, minidl.Tensor):
        return value.detach().cpu().numpy()
    if all(hasattr(value, attr) for attr in ("detach", "cpu", "numpy")):    # a torch.Tensor
        return value.detach().cpu().numpy()
    raise TypeError(f"{where}: the value of {key!r} is a {type(value).__name__}, not an array "
                    "(NumPy array, minidl Tensor or torch Tensor)")


def read_state_dict(source, where="read_state_dict"):
    """An OrderedDict {name: NumPy array} from a path (``.pth``/``.pt`` via ``minidl.load``,
    ``.npz`` of plain arrays or a ``minidl.save`` file) or a mapping of arrays."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: no such file: {path}")
        state = None
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                if "__structure__" not in npz.files:            # plain np.savez arrays
                    state = OrderedDict((k, npz[k]) for k in npz.files)
        if state is None:
            state = minidl.load(path)
        if not isinstance(state, Mapping):
            raise TypeError(f"{where}: {path} holds a {type(state).__name__}, not a state dict")
    elif isinstance(source, Mapping):
        state = source
    else:
        raise TypeError(f"{where}: expected a state dict (a mapping of names to arrays) or a path, "
                        f"got {type(source).__name__}")
    return OrderedDict((key, _as_array(where, key, value)) for key, value in state.items())


def _check_and_load(where, module, wanted, state, ignored, optional=()):
    """Copy ``state`` into ``module``: ``wanted`` maps each SOURCE key to (our key, the shape
    the source must have, a function from the source array to ours). Keys in ``ignored`` are
    skipped, keys in ``optional`` may be absent. Checks all first; raises listing every problem."""
    missing = [key for key in wanted if key not in state and key not in optional]
    unexpected = [key for key in state if key not in wanted and key not in ignored]
    wrong = [f"{key}: expected {tuple(shape)}, got {tuple(state[key].shape)}"
             for key, (_, shape, _) in wanted.items() if key in state and tuple(state[key].shape) != tuple(shape)]
    if missing or unexpected or wrong:
        raise RuntimeError(f"{where}: the state dict does not fit {type(module).__name__} "
                           f"(torchvision's names):\n  missing: {missing}\n  unexpected: {unexpected}\n"
                           f"  wrong shape: {wrong}")
    ours = OrderedDict((name, convert(state[key])) for key, (name, _, convert) in wanted.items() if key in state)
    module.load_state_dict(ours, strict=False)        # checks again; changes all or nothing
    return [key for key in wanted if key in state], [key for key in state if key in ignored]


def _same(array):
    return array


# ----------------------------------------------------------------------------- ResNet34
def load_encoder_weights(model, source):
    """Load a torchvision-style ResNet34 state dict into ``model.encoder`` (a
    :class:`~unet.resnet34_unet.ResNet34UNet`) or into a :class:`ResNet34Encoder` (module
    docstring). Returns ``(loaded keys, ignored keys)``."""
    where = "load_encoder_weights"
    encoder = model if isinstance(model, ResNet34Encoder) else getattr(model, "encoder", None)
    if not isinstance(encoder, ResNet34Encoder):
        raise TypeError(f"{where}: model must be a ResNet34UNet or a ResNet34Encoder, "
                        f"got {type(model).__name__}")
    state = read_state_dict(source, where)
    wanted = OrderedDict((name, (name, tuple(value.shape), _same))
                         for name, value in encoder.state_dict().items())
    ignored = [key for key in state if key.startswith("fc.")]
    optional = [key for key in wanted if key.endswith("num_batches_tracked")]
    return _check_and_load(where, encoder, wanted, state, ignored, optional)


# ----------------------------------------------------------------------------- VGG16
def vgg16_names():
    """OrderedDict {torchvision's ``features.N`` prefix: our ``blockB.convB_K`` prefix} for the
    13 convolutions of VGG16, in order."""
    names, index = OrderedDict(), 0
    for block, n_convs, _ in _VGG16:
        for k in range(1, n_convs + 1):
            names[f"features.{index}"] = f"block{block}.conv{block}_{k}"
            index += 2                                  # a convolution, then its ReLU
        index += 1                                      # the max-pool closing the block
    return names


def load_vgg16_weights(model, source):
    """Load a torchvision-style VGG16 state dict into an :class:`~unet.fcn.FCN`'s backbone and
    fc6/fc7 (module docstring). Returns ``(loaded keys, ignored keys)``."""
    where = "load_vgg16_weights"
    if not isinstance(model, FCN):
        raise TypeError(f"{where}: model must be an FCN, got {type(model).__name__}")
    state = read_state_dict(source, where)
    ours = model.state_dict()
    wanted = OrderedDict()
    for theirs, mine in vgg16_names().items():
        for suffix in ("weight", "bias"):
            wanted[f"{theirs}.{suffix}"] = (f"{mine}.{suffix}", tuple(ours[f"{mine}.{suffix}"].shape), _same)
    for theirs, mine in (("classifier.0", "fc.fc6"), ("classifier.3", "fc.fc7")):
        c_out, c_in, kh, kw = ours[f"{mine}.weight"].shape
        wanted[f"{theirs}.weight"] = (f"{mine}.weight", (c_out, c_in * kh * kw),
                                      # (out, in*kh*kw) -> (out, in, kh, kw): C-order flattening
                                      lambda a, shape=(c_out, c_in, kh, kw): a.reshape(shape))
        wanted[f"{theirs}.bias"] = (f"{mine}.bias", (c_out,), _same)
    ignored = [key for key in state if key.startswith("classifier.6.")]
    return _check_and_load(where, model, wanted, state, ignored)
