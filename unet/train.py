r"""The trainer: one plain loop, configured by a :class:`TrainConfig` dataclass.

    config = TrainConfig(synthetic=40, epochs=10, out_dir="runs/demo")
    result = train(config)                    # -> TrainResult (model, history, paths)

Each step does, in this fixed order::

    images, masks, weights = next batch        random crops + augmentation (unet.augment)
    scores = model(images)                     (N, K, OH, OW)
    loss   = cross_entropy(scores, masks)      or BCE-with-logits on one-hot masks;
                                               optionally times the border weight map,
                                               plus dice_weight * soft Dice loss
    check the loss is finite                   else stop: TrainingDiverged
    optimizer.zero_grad(); loss.backward(); optimizer.step()

and after every epoch: validation on whole images (overlap-tile prediction for networks
whose output is smaller than their input), the learning-rate schedule, the CSV log, the
plot, ``last.npz`` and (when the monitored metric improved) ``best.npz``.

Valid padding (the paper). A valid-padding U-Net sees an input tile of ``in`` pixels and
predicts only the ``out < in`` pixels in its centre: ``margin = (in - out) / 2`` on each
side. As in the paper, the image is mirrored by ``margin`` pixels on every side before the
crop, so every pixel of the image can be a target; the mask and weight map are mirrored
the same way and then cut to the centre ``out x out`` of the crop.

Reproducibility and resuming. The model is initialised from ``minidl.manual_seed(seed)``;
batch order and augmentation draw from ONE ``numpy.random.Generator``. A checkpoint
(``unet/checkpoint.py``) holds both generators' states, the model, the optimizer, the
schedule, the step and, for a run interrupted inside an epoch, that epoch's sample order.
Continuing from it replays exactly what the uninterrupted run would have done.

Ctrl-C: the first Ctrl-C finishes the current step, saves ``last.npz`` and stops (raising
``KeyboardInterrupt``); a second one interrupts at once (and still saves the state as of
the last finished step).
"""
import csv
import math
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

import minidl
import minidl.functional as F

from .augment import Augmenter
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, build_model
from .data import SegmentationData, parse_mask_map, split_indices
from .metrics import segmentation_metrics
from .predict import predict_probabilities, predict_whole
from .weights import border_weight_map

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "ConfigError", "train", "build_model",
           "validate", "load_data"]

# Fields that may differ between a checkpoint and the config that resumes it: they say how
# long to train and where to write, not what the run computes.
_RESUMABLE_CHANGES = ("epochs", "steps", "out_dir", "resume")
_LOWER_IS_BETTER = ("val_loss", "train_loss")


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: object
    history: list
    best: dict
    epoch: int
    step: int
    out_dir: str
    last_checkpoint: str
    best_checkpoint: str


class TrainingDiverged(RuntimeError):
    """The loss (or a weight) became NaN or infinite; training stopped without saving."""


# ============================================================================ building blocks
def _build_optimizer(config, model):
    if config.optimizer == "sgd":
        return minidl.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    return minidl.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _build_scheduler(config, optimizer):
    sched = minidl.optim.lr_scheduler
    if config.schedule == "step":
        return sched.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    if config.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "plateau":
        mode = "min" if config.monitor in _LOWER_IS_BETTER else "max"
        return sched.ReduceLROnPlateau(optimizer, mode=mode, factor=config.lr_gamma,
                                       patience=max(1, config.lr_step // 2))
    return None


def load_data(config):
    """``(train_data, val_data)`` from the folders in ``config``, or synthetic data."""
    if config.image_dir is not None:
        for name, folder in (("image_dir", config.image_dir), ("mask_dir", config.mask_dir)):
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"train: {name} '{folder}' is not a folder")
        mapping = parse_mask_map(config.mask_map) if config.mask_map else None
        data = SegmentationData.from_folders(config.image_dir, config.mask_dir, mapping)
    else:
        data = SegmentationData.synthetic(config.synthetic, tuple(config.synthetic_size),
                                          seed=config.seed)
    if len(data) < 2:
        raise ConfigError(f"train: need at least 2 samples (1 to train, 1 to validate), "
                         f"got {len(data)}")
    train_idx, val_idx = split_indices(len(data), config.val_fraction, config.val_indices,
                                       seed=config.seed)
    return data.subset(train_idx), data.subset(val_idx)


def _output_size(model, size):
    """The network's output size for a square input ``size``, or None if it cannot take it."""
    try:
        return model.output_size(size)
    except ValueError:
        return None


def choose_tile(model, crop_size, image_size):
    """``(in, out)``: the network input tile and its output size, square.

    ``crop_size`` (the input tile) must be a size the network takes with an output no
    larger than the smallest image side; None picks the largest such tile.
    """
    if crop_size is not None:
        out = _output_size(model, crop_size)
        if out is None:
            model.output_size(crop_size)                 # raises the planner's clear message
        if out > image_size:
            raise ConfigError(f"train: crop_size {crop_size} gives a {out}-pixel output, larger "
                             f"than the smallest image side {image_size}; use a smaller crop")
        return crop_size, out
    for n in range(image_size + 512, 0, -1):             # the margin of a valid U-Net < 512
        out = _output_size(model, n)
        if out is not None and out <= image_size:
            return n, out
    raise ConfigError(f"train: no input size of the network fits images of side {image_size}")


class BatchMaker:
    """Random training batches: sample order, border weights, crops and augmentation.

    ``rng`` (a numpy Generator) is the only source of randomness, so its state plus the
    epoch's sample order say exactly which batches come next.
    """

    def __init__(self, data, config, tile_in, tile_out):
        self.data, self.config = data, config
        self.tile_in, self.tile_out = tile_in, tile_out
        self.margin = (tile_in - tile_out) // 2          # context pixels on each side
        if config.augment:
            self.augmenter = Augmenter(flip=True, rot90=True, crop_size=tile_in,
                                       jitter=config.jitter, elastic=config.elastic)
        else:
            self.augmenter = Augmenter(flip=False, rot90=False, crop_size=tile_in, jitter=0.0,
                                       elastic=False)
        m = self.margin
        self.images, self.masks, self.weights = [], [], []
        for image, mask in zip(data.images, data.masks):
            if config.border_weight:
                weight = border_weight_map(mask, w0=config.w0, sigma=config.sigma,
                                           cell_class=config.cell_class if config.cell_class
                                           is not None else 1, num_classes=data.num_classes)
            else:
                weight = None
            if m:    # mirror the borders so that every pixel can be a target (the paper)
                image = np.pad(image, ((0, 0), (m, m), (m, m)), mode="reflect")
                mask = np.pad(mask, m, mode="reflect")
                weight = None if weight is None else np.pad(weight, m, mode="reflect")
            self.images.append(image)
            self.masks.append(mask)
            self.weights.append(weight)

    def steps_per_epoch(self):
        if self.config.steps_per_epoch is not None:
            return self.config.steps_per_epoch
        return max(1, math.ceil(len(self.data) / self.config.batch_size))

    def epoch_order(self, rng):
        """Sample indices for one epoch: whole permutations, enough for every batch."""
        needed = self.steps_per_epoch() * self.config.batch_size
        parts = [rng.permutation(len(self.data)) for _ in range(math.ceil(needed / len(self.data)))]
        return np.concatenate(parts)[:needed].astype(np.int64)

    def batch(self, indices, rng):
        """images (N, C, in, in) float32, masks (N, out, out) int64, weights or None."""
        images, masks, weights = [], [], []
        m, out = self.margin, self.tile_out
        for i in indices:
            image, mask, weight = self.augmenter(self.images[i], self.masks[i], self.weights[i],
                                                 rng=rng)
            images.append(image)
            masks.append(mask[m:m + out, m:m + out])     # the centre the network predicts
            if weight is not None:
                weights.append(weight[m:m + out, m:m + out])
        weights = np.stack(weights).astype(np.float32) if weights else None
        return np.stack(images).astype(np.float32), np.stack(masks).astype(np.int64), weights


def compute_loss(config, scores, masks, weights, num_classes):
    """The training loss (a scalar Tensor) for scores (N, K, OH, OW) and masks (N, OH, OW).

    ce:  mean over pixels of  w(x) * -log softmax(scores)[mask(x)]      (w = 1 without a map)
    bce: mean over pixels and classes of  w(x) * BCE(sigmoid(scores), one_hot(mask))
    plus ``dice_weight * (1 - soft Dice)`` of the softmax (ce) or sigmoid (bce) outputs.
    """
    target = minidl.tensor(masks)
    if config.loss == "bce":
        one_hot = (masks[:, None] == np.arange(num_classes)[None, :, None, None])  # (N, K, OH, OW)
        weight = None if weights is None else minidl.tensor(weights[:, None])        # (N, 1, OH, OW)
        loss = F.binary_cross_entropy_with_logits(scores, minidl.tensor(one_hot.astype(np.float32)),
                                                  weight=weight)
        probs = F.sigmoid(scores)
    else:
        if weights is None:
            loss = F.cross_entropy(scores, target)
        else:
            loss = (F.cross_entropy(scores, target, reduction="none") * minidl.tensor(weights)).mean()
        probs = F.softmax(scores, dim=1)
    if config.dice_weight > 0:
        loss = loss + config.dice_weight * F.dice_loss(probs, target)
    return loss


def predict_image(model, image):
    """Class probabilities (K, H, W) of one whole image: one pass when the network keeps the
    size, else the overlap-tile prediction."""
    size = tuple(image.shape[-2:])
    try:
        whole = model.output_size(size) == size
    except ValueError:
        whole = False
    return predict_whole(model, image) if whole else predict_probabilities(model, image)


def validate(model, data, cell_class=1):
    """Metrics of ``model`` on every whole image of ``data`` (unet.metrics keys) plus
    ``val_loss``, the mean of -log p(true class) over all pixels."""
    preds, nll = [], []
    for image, mask in zip(data.images, data.masks):
        probs = predict_image(model, image)                                   # (K, H, W)
        preds.append(probs.argmax(axis=0))
        p_true = np.take_along_axis(probs, mask[None], axis=0)[0]             # (H, W)
        nll.append(-np.log(np.clip(p_true, 1e-12, 1.0)).mean())
    cell = cell_class if cell_class is not None and cell_class < data.num_classes else None
    metrics = segmentation_metrics(preds, list(data.masks), data.num_classes, cell_class=cell)
    metrics = {key: float(value) for key, value in metrics.items()}
    metrics["val_loss"] = float(np.mean(nll))
    return metrics


def write_csv(history, path):
    """The history as CSV, one row per epoch (rewritten whole, so it matches a resumed run)."""
    columns = []
    for row in history:
        columns += [key for key in row if key not in columns]
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in history:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, path)


def _all_finite(model):
    return all(np.isfinite(p.detach().numpy()).all() for p in model.parameters())


def _is_better(metric, value, best):
    if best is None or not math.isfinite(best["value"]):
        return math.isfinite(value)
    return value < best["value"] if metric in _LOWER_IS_BETTER else value > best["value"]


def _check_resume(config, saved):
    """Resuming must not change what the run computes (only how long and where)."""
    mine = config.to_dict()
    changed = [name for name in mine if name not in _RESUMABLE_CHANGES
               and _normal(mine[name]) != _normal(saved.get(name))]
    if changed:
        detail = ", ".join(f"{n}: checkpoint {saved.get(n)!r}, now {mine[n]!r}" for n in changed)
        raise ConfigError(f"train: cannot resume from '{config.resume}' with different options "
                         f"({detail}); only {list(_RESUMABLE_CHANGES[:3])} may change")


def _normal(value):
    return list(value) if isinstance(value, tuple) else value


class _StopFlag:
    """Turns the first Ctrl-C into a request to stop after the current step."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def __enter__(self):
        # Only where Python's own Ctrl-C handler is active: not in threads, and not when the
        # process was started with SIGINT ignored (a background job) or handles it itself.
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:               # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("train: Ctrl-C: finishing this step, then saving a checkpoint "
                   "(press Ctrl-C again to stop at once)")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


# ============================================================================ the loop
def train(config, train_data=None, val_data=None, progress=True, callback=None, verbose=None):
    """Train the model described by ``config``; return a :class:`TrainResult`.

    ``progress``: a tqdm bar per epoch; ``verbose`` (default: as ``progress``): one summary
    line per epoch.
    ``train_data``/``val_data``: SegmentationData, default :func:`load_data` (config).
    ``callback(info)`` is called after every step with a dict (epoch, step, loss, model);
    tests use it to interrupt a run. Raises :class:`TrainingDiverged` on a NaN/inf loss
    (``last.npz`` keeps the last good state), re-raises ``KeyboardInterrupt`` after saving.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    checkpoint = None
    if config.resume is not None:
        checkpoint = load_checkpoint(config.resume)
        _check_resume(config, checkpoint["config"])
    if train_data is None or val_data is None:
        loaded_train, loaded_val = load_data(config)
        train_data = loaded_train if train_data is None else train_data
        val_data = loaded_val if val_data is None else val_data
    num_classes, in_channels = train_data.num_classes, train_data.in_channels
    if config.monitor == "v_rand" and config.cell_class is None:
        raise ConfigError("train: monitor 'v_rand' needs a cell_class")
    if config.cell_class is not None and config.cell_class >= num_classes:
        raise ConfigError(f"train: cell_class {config.cell_class} is not a class of the data "
                         f"(classes 0..{num_classes - 1})")

    minidl.manual_seed(config.seed)
    model = build_model(config, in_channels, num_classes)
    optimizer = _build_optimizer(config, model)
    scheduler = _build_scheduler(config, optimizer)       # before load_state_dict (see its docs)
    data_rng = np.random.default_rng([config.seed, 1])
    smallest = min(min(img.shape[-2:]) for img in train_data.images)
    tile_in, tile_out = choose_tile(model, config.crop_size, smallest)
    batches = BatchMaker(train_data, config, tile_in, tile_out)
    steps_per_epoch = batches.steps_per_epoch()
    total_epochs = config.epochs
    if config.steps is not None:
        total_epochs = math.ceil(config.steps / steps_per_epoch)
    total_steps = config.steps if config.steps is not None else total_epochs * steps_per_epoch

    epoch, step, history, best = 0, 0, [], None
    order, losses = None, []                   # the unfinished epoch of an interrupted run
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        minidl.set_rng_state(checkpoint["minidl_rng"])
        data_rng.bit_generator.state = checkpoint["data_rng"]
        epoch, step = int(checkpoint["epoch"]), int(checkpoint["step"])
        history, best = list(checkpoint["history"]), checkpoint["best"]
        order, losses = checkpoint["epoch_order"], list(checkpoint["epoch_losses"])

    os.makedirs(config.out_dir, exist_ok=True)
    last_path = os.path.join(config.out_dir, "last.npz")
    best_path = os.path.join(config.out_dir, "best.npz")
    info = {"in_channels": in_channels, "num_classes": num_classes}

    def save(path, rng_state, minidl_state, partial):
        save_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler,
                        data_rng=rng_state, epoch=epoch, step=step, config=config.to_dict(),
                        history=history, best=best, epoch_order=order if partial else None,
                        epoch_losses=losses if partial else (), data_info=info,
                        minidl_rng=minidl_state)
        return path

    verbose = progress if verbose is None else verbose
    if verbose:
        tqdm.write(f"train: {len(train_data)} training and {len(val_data)} validation images, "
                   f"{num_classes} classes; tile {tile_in} -> {tile_out}; "
                   f"{steps_per_epoch} steps/epoch, {total_steps} steps")
    with _StopFlag() as stop:
        # The state "as of the last finished step": what Ctrl-C saves.
        snapshot = (data_rng.bit_generator.state, minidl.get_rng_state())
        try:
            while epoch < total_epochs and (step < total_steps or order is not None):
                if order is None:
                    new_order = batches.epoch_order(data_rng)
                    snapshot = (data_rng.bit_generator.state, minidl.get_rng_state())
                    order, losses = new_order, []
                model.train()
                start = time.perf_counter()
                bar = tqdm(total=steps_per_epoch, initial=len(losses), disable=not progress,
                           desc=f"epoch {epoch + 1}/{total_epochs}", leave=False, dynamic_ncols=True)
                with bar:
                    while len(losses) < steps_per_epoch and step < total_steps:
                        if stop.requested:
                            raise KeyboardInterrupt
                        b = len(losses)
                        idx = order[b * config.batch_size:(b + 1) * config.batch_size]
                        images, masks, weights = batches.batch(idx, data_rng)
                        scores = model(minidl.tensor(images))                 # (N, K, OH, OW)
                        loss = compute_loss(config, scores, masks, weights, num_classes)
                        value = float(loss.item())
                        if not math.isfinite(value):
                            raise TrainingDiverged(_diverged_message(value, epoch, step, config,
                                                                     last_path))
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                        step += 1
                        losses.append(value)
                        snapshot = (data_rng.bit_generator.state, minidl.get_rng_state())
                        bar.update(1)
                        shown = {"loss": f"{value:.4f}"}
                        if history:        # the latest validation score, while training on
                            shown[f"val_{config.monitor}"] = f"{history[-1][config.monitor]:.4f}"
                        bar.set_postfix(shown)
                        if callback is not None:
                            callback({"epoch": epoch, "step": step, "loss": value, "model": model})
                if not _all_finite(model):
                    raise TrainingDiverged(_diverged_message(float("nan"), epoch, step, config,
                                                             last_path, weights=True))
                metrics = validate(model, val_data, config.cell_class)
                row = {"epoch": epoch + 1, "step": step,
                       "lr": float(optimizer.param_groups[0]["lr"]),
                       "train_loss": float(np.mean(losses)), **metrics,
                       "seconds": round(time.perf_counter() - start, 3)}
                if scheduler is not None:
                    if config.schedule == "plateau":
                        scheduler.step(row.get(config.monitor, metrics["val_loss"]))
                    else:
                        scheduler.step()
                epoch += 1
                order, losses = None, []
                history.append(row)
                snapshot = (data_rng.bit_generator.state, minidl.get_rng_state())
                if config.monitor not in row:      # e.g. v_rand without a cell class
                    raise ConfigError(f"train: monitor {config.monitor!r} is not a logged value; "
                                      f"choose from {sorted(row)}")
                improved = _is_better(config.monitor, row[config.monitor], best)
                if improved:
                    best = {"metric": config.monitor, "value": row[config.monitor], "epoch": epoch}
                save(last_path, *snapshot, partial=False)
                if improved:
                    save(best_path, *snapshot, partial=False)
                write_csv(history, os.path.join(config.out_dir, "history.csv"))
                from .plot import plot_history            # matplotlib is slow to import
                plot_history(history, os.path.join(config.out_dir, "training.png"))
                if verbose:
                    tqdm.write(_epoch_line(row, total_epochs, config.monitor))
        except KeyboardInterrupt:
            # Weights and optimizer are as after `step` steps (unless the interrupt came
            # inside optimizer.step, which the first Ctrl-C never does); save that state.
            save(last_path, *snapshot, partial=order is not None)
            tqdm.write(f"train: interrupted at epoch {epoch + 1}, step {step}; saved {last_path} "
                       f"(continue with --resume {last_path})")
            raise
    return TrainResult(model=model, history=history, best=best, epoch=epoch, step=step,
                       out_dir=config.out_dir, last_checkpoint=last_path,
                       best_checkpoint=best_path if best is not None else None)


def _diverged_message(value, epoch, step, config, last_path, weights=False):
    what = "a weight became NaN or infinite" if weights else f"the loss is {value}"
    kept = (f"the last good checkpoint is '{last_path}'" if os.path.exists(last_path)
            else "no checkpoint was written yet")
    return (f"train: {what} at epoch {epoch + 1}, step {step + 1} (lr {config.lr:g}); training "
            f"stopped and nothing was saved: {kept}. Try a smaller --lr.")


def _epoch_line(row, total_epochs, monitor):
    shown = [f"epoch {row['epoch']}/{total_epochs}", f"loss {row['train_loss']:.4f}",
             f"val_loss {row['val_loss']:.4f}"]
    for key in ("pixel_accuracy", "mean_iou", "dice", "v_rand"):
        if key in row:
            shown.append(f"{key} {row[key]:.4f}")
    shown.append(f"lr {row['lr']:.3g}")
    shown.append(f"{row['seconds']:.1f}s")
    return "  ".join(shown)
