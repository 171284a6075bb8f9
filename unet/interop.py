r"""Move weights between these models and PyTorch state dicts.

A state dict is a flat mapping from dotted names to arrays. Our names come from the module
tree exactly as PyTorch builds them (``down1.maxpool_conv.1.double_conv.0.weight``), so a
PyTorch model with the same tree has the same names, and the mapping is the identity.

Name mappings (``mapping=``), always from OUR name to THE OTHER model's name:

    None or "identity"  the same names. This covers
                        * a PyTorch twin built with the same module tree (the tests do this);
                        * milesial/Pytorch-UNet: ``UNet(padding="same", batch_norm=True,
                          up_mode="transpose")`` has its tree (``inc``, ``down1..down4``,
                          ``up1..up4``, ``outc``; ``double_conv``, ``maxpool_conv``, ``up``,
                          ``conv``) and, like its current version, bias-free convolutions
                          before batch norm. (Its ``bilinear=True`` variant has different
                          channel counts and does not map.)
    "pytorch-fcn"       wkentaro/pytorch-fcn (FCN32s/16s/8s): flat names ``conv1_1.weight``,
                        ``fc6.weight``, ``score_fr.bias``, ``upscore2.weight``. Ours group the
                        backbone in ``block1..block5`` and ``fc``: ``block1.conv1_1.weight``,
                        ``fc.fc6.weight``; the mapping drops that first component.
    a dict              {our name: their name}; names not in the dict stay the same.
    a callable          our name -> their name.

Every value is copied (NumPy arrays out, any array-like in: NumPy arrays, minidl Tensors,
torch Tensors). Loading checks everything first and changes nothing when a key is missing,
unexpected, or has the wrong shape (``Module.load_state_dict``).
"""
import os
import re
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

import minidl

__all__ = ["load_torch_state_dict", "export_torch_state_dict", "torch_names", "MAPPINGS"]


def _identity(name):
    return name


_FCN_GROUP = re.compile(r"^(block[1-5]|fc)\.")


def _pytorch_fcn(name):
    """block1.conv1_1.weight -> conv1_1.weight, fc.fc6.bias -> fc6.bias; others unchanged."""
    return _FCN_GROUP.sub("", name, count=1)


MAPPINGS = {"identity": _identity, "pytorch-fcn": _pytorch_fcn}


def _mapping_function(mapping):
    if mapping is None:
        return _identity
    if isinstance(mapping, str):
        if mapping not in MAPPINGS:
            raise ValueError(f"interop: unknown mapping {mapping!r}; known: {sorted(MAPPINGS)}, "
                             "or pass a dict or a function")
        return MAPPINGS[mapping]
    if isinstance(mapping, Mapping):
        return lambda name: mapping.get(name, name)
    if callable(mapping):
        return mapping
    raise TypeError(f"interop: mapping must be None, a name in {sorted(MAPPINGS)}, a dict or a "
                    f"function, got {type(mapping).__name__}")


def torch_names(model, mapping=None):
    """OrderedDict {our name: their name} for every entry of ``model.state_dict()``."""
    rename = _mapping_function(mapping)
    names = OrderedDict((ours, rename(ours)) for ours in model.state_dict())
    theirs = list(names.values())
    if len(set(theirs)) != len(theirs):
        clashes = sorted({t for t in theirs if theirs.count(t) > 1})
        raise ValueError(f"interop: the mapping sends several of our names to {clashes}")
    return names


def _as_array(key, value):
    """A NumPy array from a NumPy array, a minidl Tensor or a torch Tensor."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, minidl.Tensor):
        return value.detach().numpy()
    if all(hasattr(value, attr) for attr in ("detach", "cpu", "numpy")):  # a torch.Tensor
        return value.detach().cpu().numpy()
    raise TypeError(f"interop: the value of {key!r} is a {type(value).__name__}, not an array "
                    "(NumPy array, minidl Tensor or torch Tensor)")


def _read(state_dict_or_path):
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        try:
            import torch
        except ImportError as error:
            raise ImportError("interop: reading a .pth file needs PyTorch (pip install torch); "
                              "without it, pass a dict of NumPy arrays") from error
        state = torch.load(state_dict_or_path, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping):
            raise TypeError(f"interop: {state_dict_or_path} holds a {type(state).__name__}, "
                            "not a state dict")
        return state
    if not isinstance(state_dict_or_path, Mapping):
        raise TypeError(f"interop: expected a state dict (a mapping of names to arrays) or a path, "
                        f"got {type(state_dict_or_path).__name__}")
    return state_dict_or_path


def load_torch_state_dict(model, state_dict_or_path, mapping=None, strict=True):
    """Copy a PyTorch state dict (a mapping of names to arrays, or a ``.pth`` file when torch
    is installed) into ``model``; ``mapping`` translates names (module docstring).

    With ``strict=True`` every entry of the model must be given and nothing else; the model
    is left unchanged when anything is wrong. Returns ``(missing_keys, unexpected_keys)`` in
    THEIR names.
    """
    state = _read(state_dict_or_path)
    ours_to_theirs = torch_names(model, mapping)
    theirs_to_ours = {theirs: ours for ours, theirs in ours_to_theirs.items()}
    renamed, unexpected = OrderedDict(), []
    for key, value in state.items():
        if key in theirs_to_ours:
            renamed[theirs_to_ours[key]] = _as_array(key, value)
        else:
            unexpected.append(key)
    missing = [theirs for ours, theirs in ours_to_theirs.items() if ours not in renamed]
    if strict and (missing or unexpected):
        raise RuntimeError(f"interop: the state dict does not match {type(model).__name__} "
                           f"(names after the mapping):\n  missing: {missing}\n  unexpected: {unexpected}")
    model.load_state_dict(renamed, strict=False)
    return missing, unexpected


def export_torch_state_dict(model, mapping=None, path=None):
    """An OrderedDict {their name: NumPy array (a copy)} of ``model``'s parameters and buffers.

    ``{k: torch.from_numpy(v) for k, v in ...items()}`` gives a PyTorch state dict; with
    ``path`` it is also written there with ``torch.save`` (needs PyTorch).
    """
    ours_to_theirs = torch_names(model, mapping)
    state = model.state_dict()
    exported = OrderedDict((ours_to_theirs[ours], np.array(value.numpy(), copy=True))
                           for ours, value in state.items())
    if path is not None:
        try:
            import torch
        except ImportError as error:
            raise ImportError("interop: writing a .pth file needs PyTorch (pip install torch)") from error
        torch.save(OrderedDict((k, torch.from_numpy(v)) for k, v in exported.items()), path)
    return exported
