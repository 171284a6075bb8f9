"""Training checkpoints: everything needed to continue a run exactly, in ONE ``.npz`` file.

A checkpoint is a plain dict saved with :func:`minidl.save` (no pickle; written to a
temporary file, flushed and renamed, so a crash never leaves a half-written checkpoint)::

    format          "unet-checkpoint", version 1
    model           model.state_dict()                  the weights
    optimizer       optimizer.state_dict()              Adam moments / SGD momentum buffers
    scheduler       scheduler.state_dict() or None      learning-rate schedule position
    minidl_rng      minidl.get_rng_state()              dropout (and any minidl.rand) draws
    data_rng        numpy Generator state               the data's root generator (kept for the
                                                        format: each epoch's order and each
                                                        batch's draws follow from seed, epoch
                                                        and place, unet/train.py)
    epoch           epochs completed
    step            optimizer steps completed (over the whole run)
    epoch_order     the current epoch's sample order (int64 array) when the run stopped
                    in the middle of an epoch (Ctrl-C), else None
    epoch_losses    the training losses of the steps done in that unfinished epoch
    config          the TrainConfig as a dict (to rebuild the model and continue)
    history         one dict per finished epoch (losses, learning rate, validation metrics)
    best            {"metric": name, "value": best value, "epoch": epoch} or None
    data            {"in_channels": C, "num_classes": K}

Restoring all of these (model, optimizer, scheduler, both random generators, and the
position in the epoch) is what makes a resumed run give the same weights, bit for bit, as
one that was never interrupted.
"""
import os

import numpy as np

import minidl

from .config import TrainConfig, build_model

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "load_model"]

FORMAT = "unet-checkpoint"
VERSION = 1
_REQUIRED = ("model", "optimizer", "scheduler", "minidl_rng", "data_rng", "epoch", "step",
             "epoch_order", "epoch_losses", "config", "history", "best", "data")


class CheckpointError(ValueError):
    """A file that is not a usable training checkpoint."""


def save_checkpoint(path, *, model, optimizer, scheduler, data_rng, epoch, step, config,
                    history, best=None, epoch_order=None, epoch_losses=(), data_info=None,
                    minidl_rng=None):
    """Write a checkpoint to ``path`` atomically (see the module docstring for the fields).

    ``data_rng`` is the ``numpy.random.Generator`` of the data pipeline (or its state
    dict, when the caller saved the state before a step); ``config`` a dict;
    ``minidl_rng`` a state from ``minidl.get_rng_state()`` (default: the current one).
    """
    if isinstance(data_rng, np.random.Generator):
        data_rng = data_rng.bit_generator.state
    checkpoint = {
        "format": FORMAT, "version": VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "minidl_rng": minidl.get_rng_state() if minidl_rng is None else minidl_rng,
        "data_rng": data_rng,
        "epoch": int(epoch), "step": int(step),
        "epoch_order": None if epoch_order is None else np.asarray(epoch_order, dtype=np.int64),
        "epoch_losses": [float(v) for v in epoch_losses],
        "config": dict(config),
        "history": [dict(row) for row in history],
        "best": best,
        "data": dict(data_info or {}),
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    minidl.save(checkpoint, path)


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`; a clear error otherwise."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"load_checkpoint: no checkpoint file at '{path}'")
    try:
        checkpoint = minidl.load(path)
    except (ValueError, OSError, KeyError) as error:    # not an npz / not a minidl file
        reason = str(error).replace(f"minidl.load: {path} ", "")
        raise CheckpointError(f"'{path}' is not a usable checkpoint: {reason}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"load_checkpoint: '{path}' is a minidl file but not a training "
                              f"checkpoint (expected format {FORMAT!r})")
    if checkpoint.get("version") != VERSION:
        raise CheckpointError(f"load_checkpoint: '{path}' has checkpoint version "
                              f"{checkpoint.get('version')!r}; this code reads version {VERSION}")
    missing = [key for key in _REQUIRED if key not in checkpoint]
    if missing:
        raise CheckpointError(f"load_checkpoint: '{path}' is damaged: missing {missing}")
    return checkpoint


def load_model(path):
    """The trained model of a checkpoint (in eval mode) and its training config (a TrainConfig)."""
    checkpoint = load_checkpoint(path)
    config = TrainConfig.from_dict(checkpoint["config"])
    info = checkpoint["data"]
    model = build_model(config, info["in_channels"], info["num_classes"])
    try:
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, ValueError) as error:
        raise CheckpointError(f"'{path}': its weights do not fit the model its config describes "
                              f"({str(error).splitlines()[-1].strip()})") from None
    model.eval()
    return model, config
