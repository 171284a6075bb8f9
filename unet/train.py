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

Reproducibility and resuming. The model is initialised from ``minidl.manual_seed(seed)``.
The data's randomness is a function of where a batch sits in the run, not of what was drawn
before it: epoch ``e``'s sample order comes from ``numpy.random.default_rng([seed, 1, e])`` and
the crops and augmentation of its batch ``b`` from ``default_rng([seed, 2, e, b])``. So any
process can make any batch, and ``workers=N`` (batches made ahead in N worker processes) gives
the same batches as ``workers=0`` (made in the main process, just before each step). (Until
this version one generator was drawn from in turn, so the same seed gave other batches then.)
A checkpoint (``unet/checkpoint.py``) holds minidl's generator state, the model, the
optimizer, the schedule, the step and, for a run interrupted inside an epoch, that epoch's
sample order. Continuing from it replays exactly what the uninterrupted run would have done.

Ctrl-C: the first Ctrl-C finishes the current step, saves ``last.npz`` and stops (raising
``KeyboardInterrupt``); a second one interrupts at once (and still saves the state as of
the last finished step).
"""
import contextlib
import csv
import dataclasses
import io
import math
import os
import re
import signal
import sys
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
from .zoo import loss_of
from .data import SegmentationData, parse_mask_map, split_indices
from .files import RunLock, atomic_write, remove_orphans
from .metrics import segmentation_metrics
from .parallel import Job, data_parallel, join
from .predict import predict_probabilities, predict_whole
from .weights import border_weight_map

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "ConfigError", "train", "build_model",
           "validate", "load_data"]

# Fields that may differ between a checkpoint and the config that resumes it: they say how
# long to train and where to write, not what the run computes.
_RESUMABLE_CHANGES = ("epochs", "steps", "out_dir", "resume", "workers")
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


def _build_scheduler(config, optimizer, total_epochs, total_steps):
    sched = minidl.optim.lr_scheduler
    if config.schedule == "step":
        return sched.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    if config.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=total_epochs)
    if config.schedule == "onecycle":  # stepped after every batch, over the whole run
        return sched.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    if config.schedule == "plateau":
        mode = "min" if config.monitor in _LOWER_IS_BETTER else "max"
        return sched.ReduceLROnPlateau(optimizer, mode=mode, factor=config.lr_gamma,
                                       patience=max(1, config.lr_step // 2))
    return None


def load_encoder(model, config):
    """Start the encoder from ``config.encoder_weights`` (a torchvision ResNet34 or VGG16 file)."""
    from .encoders import load_encoder_weights, load_vgg16_weights
    from .zoo import MODELS
    load = load_encoder_weights if MODELS[config.model].encoder == "resnet34" else load_vgg16_weights
    loaded, _ = load(model, config.encoder_weights)
    return loaded


def synthetic_kind(config):
    """"cells" or "trimaps": what synthetic data ``config`` trains on (auto: the FCN article's
    pet trimaps for fcn8s/16s/32s, cells otherwise)."""
    if config.synthetic_kind != "auto":
        return config.synthetic_kind
    return "trimaps" if config.model in ("fcn8s", "fcn16s", "fcn32s") else "cells"


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
                                          seed=config.seed, kind=synthetic_kind(config))
    if len(data) < 2 and config.val_fraction > 0:
        raise ConfigError(f"train: need at least 2 samples (1 to train, 1 to validate), "
                         f"got {len(data)} (or --val-fraction 0, to train on everything)")
    train_idx, val_idx = split_indices(len(data), config.val_fraction, config.val_indices,
                                       seed=config.seed)
    return data.subset(train_idx), (data.subset(val_idx) if val_idx else None)


def _output_size(model, size):
    """The network's output size for a square input ``size``, or None if it cannot take it."""
    try:
        return model.output_size(size)
    except ValueError:
        return None


DEFAULT_TILE = 256   # default network input: big enough for context, small enough to be quick


def choose_tile(model, crop_size, image_size):
    """``(in, out)``: the network input tile and its output size, square.

    ``crop_size`` (the input tile) must be a size the network takes with an output no
    larger than the smallest image side. None picks the largest such tile of at most
    ``DEFAULT_TILE`` pixels (or, for a network whose smallest input is larger, the smallest
    one that fits): whole 512x512 images per step would make each step several times slower.
    """
    if crop_size is not None:
        out = _output_size(model, crop_size)
        if out is None:
            model.output_size(crop_size)                 # raises the planner's clear message
        if out > image_size:
            raise ConfigError(f"train: crop_size {crop_size} gives a {out}-pixel output, larger "
                             f"than the smallest image side {image_size}; use a smaller crop")
        return crop_size, out
    largest = image_size + 512                           # the margin of a valid U-Net < 512
    for n in [*range(min(DEFAULT_TILE, largest), 0, -1), *range(DEFAULT_TILE + 1, largest + 1)]:
        out = _output_size(model, n)
        if out is not None and out <= image_size:
            return n, out
    raise ConfigError(f"train: no input size of the network fits images of side {image_size}")


class BatchMaker:
    """Random training batches: sample order, border weights, crops and augmentation.

    ``rng`` (a numpy Generator) is the only source of randomness of :meth:`epoch_order` and
    :meth:`batch`; the trainer gives each epoch and each batch its own generator
    (:meth:`order_of_epoch`, :meth:`batch_at`), so that a batch depends only on the seed, the
    epoch and its place in the epoch.
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

    def order_of_epoch(self, epoch):
        """Epoch ``epoch``'s sample order, from its own generator ``default_rng([seed, 1, epoch])``."""
        return self.epoch_order(np.random.default_rng([self.config.seed, 1, epoch]))

    def batch_at(self, epoch, b, order, keep=None):
        """Batch ``b`` of epoch ``epoch`` (whose sample order is ``order``), augmented with draws
        from its own generator ``default_rng([seed, 2, epoch, b])``; ``keep=(start, stop)``: only
        those rows of it (one rank's share)."""
        size = self.config.batch_size
        rng = np.random.default_rng([self.config.seed, 2, epoch, b])
        return self.batch(order[b * size:(b + 1) * size], rng, keep)

    def batch(self, indices, rng, keep=None):
        """images (N, C, in, in) float32, masks (N, out, out) int64, weights or None.

        ``keep=(start, stop)``: only samples ``start:stop`` of ``indices``, the same numbers as
        those rows of the whole batch (the others' random draws are made and thrown away)."""
        images, masks, weights = [], [], []
        m, out = self.margin, self.tile_out
        start, stop = (0, len(indices)) if keep is None else keep
        for j, i in enumerate(indices):
            if not start <= j < stop:
                self.augmenter.skip(self.images[i].shape, rng)
                continue
            image, mask, weight = self.augmenter(self.images[i], self.masks[i], self.weights[i],
                                                 rng=rng)
            images.append(image)
            masks.append(mask[m:m + out, m:m + out])     # the centre the network predicts
            if weight is not None:
                weights.append(weight[m:m + out, m:m + out])
        weights = np.stack(weights).astype(np.float32) if weights else None
        return np.stack(images).astype(np.float32), np.stack(masks).astype(np.int64), weights


class _RunBatches:
    """The batches of a run by their place: item ``(epoch, b)`` is batch ``b`` of epoch ``epoch``
    (a map-style dataset for :class:`minidl.utils.data.DataLoader`, whose worker processes each
    hold a copy and remember the latest epoch's sample order). ``orders`` gives the orders that
    must not be drawn again: the unfinished epoch's order saved in a checkpoint. ``keep``:
    the rows of each batch to make (one rank's share), or None for all."""

    def __init__(self, maker, orders, keep=None):
        self.maker, self.orders, self.keep = maker, dict(orders), keep

    def __getitem__(self, place):
        epoch, b = place
        if epoch not in self.orders:
            self.orders = {epoch: self.maker.order_of_epoch(epoch)}   # only the latest epoch's
        if self.keep is None:
            return self.maker.batch_at(epoch, b, self.orders[epoch])
        return self.maker.batch_at(epoch, b, self.orders[epoch], self.keep)


def _places(epoch, b, steps_per_epoch, count):
    """``count`` places ``(epoch, b)`` from batch ``b`` of ``epoch`` on, in training order."""
    places = []
    for _ in range(count):
        places.append((epoch, b))
        epoch, b = (epoch + 1, 0) if b + 1 == steps_per_epoch else (epoch, b + 1)
    return places


def _as_is(batch):
    """The DataLoader's collate_fn: a place is already a whole batch of NumPy arrays."""
    return batch


def _worker_signals(worker_id):
    """A worker process ignores Ctrl-C and SIGHUP, which reach the whole process group: the
    main process handles them (finishes its step, saves, then stops the workers). SIGTERM, sent
    to one process, ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class BatchStream:
    """The run's batches in training order, from the place ``(epoch, b)`` on, ``count`` of them.

    ``workers == 0``: each batch is made in this process when it is asked for. ``workers >= 1``:
    a :class:`minidl.utils.data.DataLoader` makes them ahead in that many worker processes
    (two batches per worker in flight), so the step does not wait for augmentation; an error in
    a worker is raised here with the worker's traceback. Both give the same batches, because
    each batch's randomness depends only on its place (:meth:`BatchMaker.batch_at`).
    :meth:`close` stops the workers.
    """

    def __init__(self, maker, places, orders, workers, keep=None):
        dataset = _RunBatches(maker, orders, keep)
        if workers == 0:
            self._batches = (dataset[place] for place in places)
        else:
            from minidl.utils.data import DataLoader
            loader = DataLoader(dataset, batch_size=None, sampler=places, num_workers=workers,
                                collate_fn=_as_is, worker_init_fn=_worker_signals,
                                generator=minidl.Generator())  # not the global one: minidl_rng stays
            self._batches = iter(loader)

    def __iter__(self):
        return self

    def __next__(self):
        """``(images (N, C, in, in) float32, masks (N, out, out) int64, weights or None)``."""
        return next(self._batches)

    def close(self):
        shutdown = getattr(self._batches, "_shutdown_workers", None)
        if shutdown is not None:  # join the workers now rather than when collected
            shutdown()


def compute_loss(config, scores, masks, weights, num_classes):
    """The training loss (a scalar Tensor) for scores (N, K, OH, OW) and masks (N, OH, OW).

    ce:  mean over pixels of  w(x) * -log softmax(scores)[mask(x)]      (w = 1 without a map)
    bce: mean over pixels and classes of  w(x) * BCE(sigmoid(scores), one_hot(mask))
    one channel (K = 1, a seed model with a BCE loss): mean of w(x) * BCE(sigmoid(s), [mask == 1])
    plus ``dice_weight * (1 - soft Dice)`` of the softmax (ce) or sigmoid (bce) outputs.
    """
    target = minidl.tensor(masks)
    if scores.shape[1] == 1:  # one logit per pixel: the foreground (class 1) against the rest
        foreground = (masks == 1).astype(np.float32)[:, None]                       # (N, 1, OH, OW)
        weight = None if weights is None else minidl.tensor(weights[:, None])
        loss = F.binary_cross_entropy_with_logits(scores, minidl.tensor(foreground), weight=weight)
        probs = F.sigmoid(scores)
        if config.dice_weight > 0:
            loss = loss + config.dice_weight * F.dice_loss(minidl.cat([1 - probs, probs], dim=1), target)
        return loss
    if loss_of(config) == "bce":
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


def validate(model, data, cell_class=1, job=None):
    """Metrics of ``model`` on every whole image of ``data`` (unet.metrics keys) plus
    ``val_loss``, the mean of -log p(true class) over all pixels.

    ``job`` (a :class:`unet.parallel.Job` of several ranks): rank r predicts images r, r + N,
    ...; the ranks exchange their predicted masks and losses and every rank computes the same
    metrics from all of them (the numbers of a one-process validation)."""
    job = Job() if job is None else job
    mine = {}
    for i in range(job.rank, len(data.images), job.size):
        image, mask = data.images[i], data.masks[i]
        probs = predict_image(model, image)                                   # (K, H, W)
        p_true = np.take_along_axis(probs, mask[None], axis=0)[0]             # (H, W)
        mine[i] = (probs.argmax(axis=0), -np.log(np.clip(p_true, 1e-12, 1.0)).mean())
    done = {i: result for part in job.gather(mine) for i, result in part.items()}
    preds = [done[i][0] for i in range(len(data.images))]
    nll = [done[i][1] for i in range(len(data.images))]
    cell = cell_class if cell_class is not None and cell_class < data.num_classes else None
    metrics = segmentation_metrics(preds, list(data.masks), data.num_classes, cell_class=cell)
    metrics = {key: float(value) for key, value in metrics.items()}
    metrics["val_loss"] = float(np.mean(nll))
    return metrics


def write_csv(history, fh):
    """The history as CSV into the binary file ``fh``, one row per epoch (written whole, through
    ``atomic_write``, so it always matches a resumed run)."""
    columns = []
    for row in history:
        columns += [key for key in row if key not in columns]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    fh.write(text.getvalue().encode("utf-8"))


def _all_finite(model):
    return all(np.isfinite(p.detach().numpy()).all() for p in model.parameters())


def _is_better(metric, value, best):
    if best is None or not math.isfinite(best["value"]):
        return math.isfinite(value)
    return value < best["value"] if metric in _LOWER_IS_BETTER else value > best["value"]


def _check_resume(config, saved):
    """Resuming must not change what the run computes (only how long and where)."""
    mine = config.to_dict()
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # (options added since)
    changed = [name for name in mine if name not in _RESUMABLE_CHANGES
               and _normal(mine[name]) != _normal(saved.get(name, defaults[name]))]
    if changed:
        detail = ", ".join(f"{n}: checkpoint {saved.get(n)!r}, now {mine[n]!r}" for n in changed)
        raise ConfigError(f"train: cannot resume from '{config.resume}' with different options "
                         f"({detail}); only {list(_RESUMABLE_CHANGES[:3])} may change")


def _normal(value):
    return list(value) if isinstance(value, tuple) else value


class TrainingStopped(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP stopped training (after saving ``last.npz``); ``signum`` says
    which, and the command line exits with 128 + signum."""

    def __init__(self, signum=signal.SIGINT, agreed=False):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = int(signum)
        self.agreed = agreed   # every rank of a job stops at this step (else: this process alone)


class _StopFlag:
    """Turns the first Ctrl-C, SIGTERM or SIGHUP into a request to stop after the current step
    (a scheduler's SIGTERM and a closed terminal's SIGHUP save like Ctrl-C).

    In a job of several ranks the request waits for the ranks to agree
    (:meth:`unet.parallel.Job.agree`); ``announce``: this rank prints (rank 0). A second signal
    stops at once only on rank 0 (which saves, then ends the job); on another rank it is the
    same request again, so that no rank leaves the others waiting in a collective."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

    def __init__(self, announce=True):
        self.requested = None  # the signal number of the first request
        self.previous = {}
        self.announce, self.announced = announce, False

    def __enter__(self):
        # Only in the main thread, and only for signals nobody else handles (not when the process
        # was started with SIGINT ignored, as a background job is, or handles them itself).
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
                if signal.getsignal(signum) is default:
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested is not None and self.announce:  # a second one: stop now
            raise TrainingStopped(signum)
        self.requested = signum
        self._say(signum)

    def agreed(self, signum):
        """The ranks agreed to stop after this step (``signum``: a signal some rank received)."""
        if signum is not None:
            self._say(signum, elsewhere=self.requested is None)

    def _say(self, signum, elsewhere=False):
        if self.announce and not self.announced:
            self.announced = True
            where = " (on another rank)" if elsewhere else ""
            tqdm.write(f"train: {signal.Signals(signum).name}{where}: finishing this step, then "
                       "saving a checkpoint (send it again to stop at once)")

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False


def _prepare_out_dir(out_dir):
    """Make the output folder now, so that a bad --out fails before any training."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"train: --out '{out_dir}' is a file, not a folder")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"train: cannot create --out '{out_dir}': {error.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"train: cannot write to --out '{out_dir}' (no permission)")


def _saved_total_epochs(saved_config, steps_per_epoch):
    if saved_config.get("steps") is not None:
        return math.ceil(saved_config["steps"] / steps_per_epoch)
    return saved_config["epochs"]


def _replan_cosine(scheduler, optimizer, total_epochs, epoch):
    """A cosine schedule resumed with another total: from here on, the learning rates of a run
    planned with the new total (``lr_e = eta_min + (lr_0 - eta_min)(1 + cos(pi e / T)) / 2``)."""
    scheduler.T_max = total_epochs
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * (1 + math.cos(math.pi * epoch / total_epochs)) / 2


def _best_of(best_path, checkpoint):
    """The best so far: read from best.npz itself when it belongs to this run (after a kill
    between the two saves it may be newer than what last.npz remembers)."""
    best = checkpoint["best"]
    if os.path.isfile(best_path):
        try:
            other = load_checkpoint(best_path)
        except Exception:  # an unusable best.npz: it will be written again
            return best
        same_run = {k: v for k, v in other["config"].items() if k not in _RESUMABLE_CHANGES} == \
            {k: v for k, v in checkpoint["config"].items() if k not in _RESUMABLE_CHANGES}
        if same_run and other["best"] is not None:
            return other["best"]
    return best


# ============================================================================ the loop
def train(config, train_data=None, val_data=None, progress=True, callback=None, verbose=None):
    """Train the model described by ``config``; return a :class:`TrainResult`.

    ``progress``: a tqdm bar over the whole run (steps/s and the time left), drawn only on a
    terminal; ``verbose`` (default: as ``progress``): one summary line per epoch.
    ``train_data``/``val_data``: SegmentationData, default :func:`load_data` (config); no
    validation data (``val_fraction=0``): best.npz then follows the training loss.
    ``callback(info)`` is called after every step with a dict (epoch, step, loss, model);
    tests use it to interrupt a run. Raises :class:`TrainingDiverged` on a NaN/inf loss
    (``last.npz`` keeps the last good state), :class:`TrainingStopped` after saving on
    Ctrl-C, SIGTERM or SIGHUP.

    Resuming (``config.resume``): the run continues exactly where the checkpoint stopped,
    inside an epoch too; with a larger ``epochs``/``steps`` it goes on to the new total, and a
    cosine schedule is re-planned over the new total (from the next epoch on, the learning
    rates of a run planned with that total from the start). A run stopped by ``steps`` inside
    an epoch saves that epoch's remaining batches, so a resumed run equals a straight one.

    Started by ``mpiexec -n N`` (unet/parallel.py): the N processes train one run together, each
    on its share of every global batch; rank 0 alone writes files and prints; a signal to any
    rank stops all of them after the same step; checkpoints are the same for any N.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    job = join()
    if not job.main:                       # rank 0 alone prints and draws the bar
        progress = verbose = False
    if config.batch_size < job.size:
        raise ConfigError(f"train: --batch-size {config.batch_size} is smaller than the number of "
                          f"processes ({job.size}): every rank needs at least one sample of a batch")
    checkpoint = None
    if config.resume is not None:
        checkpoint = load_checkpoint(config.resume)
        _check_resume(config, checkpoint["config"])
    if train_data is None:
        train_data, loaded_val = load_data(config)
        val_data = loaded_val if val_data is None else val_data
    num_classes, in_channels = train_data.num_classes, train_data.in_channels
    monitor = config.monitor
    if val_data is None or len(val_data) == 0:
        val_data, monitor = None, "train_loss"
    if monitor == "v_rand" and config.cell_class is None:
        raise ConfigError("train: monitor 'v_rand' needs a cell_class")
    per_class = re.fullmatch(r"(iou|dice)_(\d+)", monitor)
    if per_class and int(per_class.group(2)) >= num_classes:
        raise ConfigError(f"train: monitor {monitor!r} names class {per_class.group(2)}, but the data has "
                          f"classes 0..{num_classes - 1}")
    if job.main:
        _prepare_out_dir(config.out_dir)
    if config.cell_class is not None and config.cell_class >= num_classes:
        raise ConfigError(f"train: cell_class {config.cell_class} is not a class of the data "
                         f"(classes 0..{num_classes - 1})")

    minidl.manual_seed(config.seed)
    model = build_model(config, in_channels, num_classes)
    if config.encoder_weights is not None and checkpoint is None:
        load_encoder(model, config)
    net = data_parallel(model, job)     # what trains: model itself, or its data-parallel wrapper
    if job.parallel:
        model = net.module              # (with SyncBatchNorm): what is saved and validated
    optimizer = _build_optimizer(config, model)
    # The data's randomness is per epoch and per batch (BatchMaker.batch_at); the checkpoint
    # keeps this root generator's state only for its format.
    data_state = np.random.default_rng([config.seed, 1]).bit_generator.state
    smallest = min(min(img.shape[-2:]) for img in train_data.images)
    tile_in, tile_out = choose_tile(model, config.crop_size, smallest)
    batches = BatchMaker(train_data, config, tile_in, tile_out)
    steps_per_epoch = batches.steps_per_epoch()
    total_epochs = config.epochs
    if config.steps is not None:
        total_epochs = math.ceil(config.steps / steps_per_epoch)
    total_steps = config.steps if config.steps is not None else total_epochs * steps_per_epoch
    scheduler = _build_scheduler(config, optimizer, total_epochs, total_steps)  # before load_state_dict

    out_dir = config.out_dir
    last_path = os.path.join(out_dir, "last.npz")
    best_path = os.path.join(out_dir, "best.npz")
    epoch, step, history, best = 0, 0, [], None
    order, losses = None, []                   # the unfinished epoch of an interrupted run
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
            if config.schedule == "onecycle" and scheduler.total_steps != total_steps:
                raise ConfigError(f"train: the one-cycle schedule of '{config.resume}' was planned over "
                                  f"{scheduler.total_steps} steps; resume it with the same total, not "
                                  f"{total_steps} (a one-cycle run cannot be extended)")
        minidl.set_rng_state(checkpoint["minidl_rng"])
        epoch, step = int(checkpoint["epoch"]), int(checkpoint["step"])
        history, best = list(checkpoint["history"]), _best_of(best_path, checkpoint)
        order, losses = checkpoint["epoch_order"], list(checkpoint["epoch_losses"])
        if step >= total_steps:
            what = f"--steps {config.steps}" if config.steps is not None else f"--epochs {config.epochs}"
            raise ConfigError(f"train: '{config.resume}' has done {epoch} epochs ({step} steps); "
                              f"{what} leaves nothing to train: ask for more")
        saved_total = _saved_total_epochs(checkpoint["config"], steps_per_epoch)
        if config.schedule == "cosine" and saved_total != total_epochs:
            _replan_cosine(scheduler, optimizer, total_epochs, epoch)
    info = {"in_channels": in_channels, "num_classes": num_classes}

    def save(path, rng_state, minidl_state, partial):
        if not job.main:                  # rank 0 alone writes; every replica holds the same state
            return path
        save_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler,
                        data_rng=rng_state, epoch=epoch, step=step, config=config.to_dict(),
                        history=history, best=best, epoch_order=order if partial else None,
                        epoch_losses=losses if partial else (), data_info=info,
                        minidl_rng=minidl_state)
        return path

    verbose = progress if verbose is None else verbose
    if verbose:
        validation = (f"{len(val_data)} validation images" if val_data is not None else
                      "no validation images (best.npz follows the training loss)")
        tqdm.write(f"train: {len(train_data)} training images, {validation}, {num_classes} classes; "
                   f"tile {tile_in} -> {tile_out}; {steps_per_epoch} steps/epoch, {total_steps} steps")
    if job.main:
        os.makedirs(out_dir, exist_ok=True)
    lock = RunLock(out_dir) if job.main else contextlib.nullcontext()
    agreed_stop = None                 # the stop every rank agreed on (Job.agree), several ranks
    with lock, _StopFlag(announce=job.main) as stop:
        if job.main:
            remove_orphans(out_dir)  # what a killed run's interrupted writes left
        # The state "as of the last finished step": what a stop saves.
        snapshot = (data_state, minidl.get_rng_state())
        bar = tqdm(total=total_steps, initial=step, disable=not (progress and sys.stderr.isatty()),
                   unit="step", dynamic_ncols=True, leave=False)
        places = _places(epoch, 0 if order is None else len(losses), steps_per_epoch, total_steps - step)
        keep = job.share(config.batch_size) if job.parallel else None   # this rank's rows
        stream = BatchStream(batches, places, {} if order is None else {epoch: order}, config.workers,
                             keep)
        try:
            with bar:
                while epoch < total_epochs and step < total_steps:
                    if order is None:
                        order, losses = batches.order_of_epoch(epoch), []
                    net.train()
                    start = time.perf_counter()
                    bar.set_description(f"epoch {epoch + 1}/{total_epochs}")
                    while len(losses) < steps_per_epoch and step < total_steps:
                        if not job.parallel and stop.requested is not None:
                            raise TrainingStopped(stop.requested)
                        if agreed_stop is not None:      # every rank stops after the same step
                            raise TrainingStopped(agreed_stop, agreed=True)
                        images, masks, weights = next(stream)           # batch len(losses) of epoch
                        # (with several ranks: this rank's rows ``keep`` of that global batch)
                        scores = net(minidl.tensor(images))                   # (n, K, OH, OW)
                        loss = compute_loss(config, scores, masks, weights, num_classes)
                        value = float(loss.item())
                        if job.parallel:   # the global batch's loss; did a signal reach any rank?
                            value, agreed_stop = job.agree(value, len(images), config.batch_size,
                                                           stop.requested)
                            stop.agreed(agreed_stop)
                        if not math.isfinite(value):
                            raise TrainingDiverged(_diverged_message(value, epoch, step, config,
                                                                     last_path))
                        optimizer.zero_grad()
                        loss.backward()          # (several ranks: the global batch's gradient)
                        optimizer.step()
                        if config.schedule == "onecycle":
                            scheduler.step()
                        step += 1
                        losses.append(value)
                        snapshot = (data_state, minidl.get_rng_state())
                        bar.update(1)
                        shown = {"loss": f"{value:.4f}"}
                        if history:        # the latest validation score, while training on
                            shown[monitor] = f"{history[-1][monitor]:.4f}"
                        bar.set_postfix(shown)
                        if callback is not None:
                            callback({"epoch": epoch, "step": step, "loss": value, "model": model})
                    if not _all_finite(model):
                        raise TrainingDiverged(_diverged_message(float("nan"), epoch, step, config,
                                                                 last_path, weights=True))
                    if len(losses) < steps_per_epoch:  # stopped by --steps inside an epoch
                        save(last_path, *snapshot, partial=True)
                        if verbose:
                            tqdm.write(f"train: reached --steps {total_steps} inside epoch {epoch + 1} "
                                       f"({len(losses)} of {steps_per_epoch} steps); {last_path} keeps "
                                       "the rest of the epoch for --resume")
                        break
                    metrics = validate(model, val_data, config.cell_class, job) if val_data is not None else {}
                    row = {"epoch": epoch + 1, "step": step,
                           "lr": float(optimizer.param_groups[0]["lr"]),
                           "train_loss": float(np.mean(losses)), **metrics,
                           "seconds": round(time.perf_counter() - start, 3)}
                    if monitor not in row:      # e.g. v_rand without a cell class
                        raise ConfigError(f"train: monitor {monitor!r} is not a logged value; "
                                          f"choose from {sorted(row)}")
                    if scheduler is not None:
                        if config.schedule == "plateau":
                            scheduler.step(row[monitor])
                        elif config.schedule != "onecycle":
                            scheduler.step()
                    epoch += 1
                    order, losses = None, []
                    history.append(row)
                    snapshot = (data_state, minidl.get_rng_state())
                    improved = _is_better(monitor, row[monitor], best)
                    if improved:  # best.npz first; after a kill between the two saves, a resumed
                        # run reads the best from best.npz itself (_best_of)
                        best = {"metric": monitor, "value": row[monitor], "epoch": epoch}
                        save(best_path, *snapshot, partial=False)
                    save(last_path, *snapshot, partial=False)
                    if job.main:
                        atomic_write(os.path.join(out_dir, "history.csv"), lambda fh: write_csv(history, fh))
                        from .plot import plot_history        # matplotlib is slow to import
                        atomic_write(os.path.join(out_dir, "training.png"), lambda fh: plot_history(history, fh))
                    if verbose:
                        tqdm.write(_epoch_line(row, total_epochs, monitor))
        except KeyboardInterrupt as error:
            # Weights and optimizer are as after `step` steps (unless the interrupt came
            # inside optimizer.step, which the first signal never does); save that state.
            save(last_path, *snapshot, partial=order is not None)
            if job.main:
                tqdm.write(f"train: stopped at epoch {epoch + 1}, step {step}; saved {last_path} "
                           f"(continue with --resume {last_path})")
            if getattr(error, "agreed", False):
                job.barrier()           # every rank leaves once rank 0 has saved
            if isinstance(error, TrainingStopped):
                raise
            raise TrainingStopped(signal.SIGINT) from error
        finally:
            stream.close()
    return TrainResult(model=model, history=history, best=best, epoch=epoch, step=step,
                       out_dir=out_dir, last_checkpoint=last_path,
                       best_checkpoint=best_path if best is not None and os.path.isfile(best_path) else None)


def _diverged_message(value, epoch, step, config, last_path, weights=False):
    what = "a weight became NaN or infinite" if weights else f"the loss is {value}"
    kept = (f"the last good checkpoint is '{last_path}'" if os.path.exists(last_path)
            else "no checkpoint was written yet")
    return (f"train: {what} at epoch {epoch + 1}, step {step + 1} (lr {config.lr:g}); training "
            f"stopped and nothing was saved: {kept}. Try a smaller --lr.")


def _epoch_line(row, total_epochs, monitor):
    shown = [f"epoch {row['epoch']}/{total_epochs}", f"loss {row['train_loss']:.4f}"]
    for key in ("val_loss", "pixel_accuracy", "mean_iou", "dice", "v_rand"):
        if key in row:
            shown.append(f"{key} {row[key]:.4f}")
    shown.append(f"lr {row['lr']:.3g}")
    shown.append(f"{row['seconds']:.1f}s")
    return "  ".join(shown)
