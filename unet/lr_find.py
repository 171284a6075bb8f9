"""The learning-rate range test (Smith 2017; fast.ai's ``lr_find``), as ``unet lr-find``.

Train from the run's starting weights while the learning rate grows geometrically from
``start`` to ``end`` over at most ``steps`` batches (the run's own data, augmentation, loss and
optimizer), one batch per rate; record the loss and its exponential moving average (factor
``beta``, bias-corrected as Adam's moments); stop early once the average exceeds four times
its lowest value (the loss has blown up). The suggestion is the rate where the smoothed loss
falls fastest (the steepest negative slope of loss against log lr), the usual reading of the
plot. Nothing is saved but the plot and the table: the model is thrown away.
"""
import csv
import io
import math
import os

import numpy as np

import minidl

from .files import atomic_write
from .train import BatchMaker, _build_optimizer, build_model, choose_tile, compute_loss, load_data, load_encoder

__all__ = ["lr_find", "suggest"]


def suggest(lrs, smoothed):
    """The rate of steepest descent of the smoothed loss against log(lr)."""
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    if len(lrs) < 3:
        return float(lrs[np.argmin(smoothed)]) if len(lrs) else None
    slope = np.gradient(smoothed, np.log(lrs))  # d loss / d log lr
    return float(lrs[int(np.argmin(slope))])


def lr_find(config, start=1e-7, end=10.0, steps=100, beta=0.98, out_dir=None, progress=print):
    """Run the range test for ``config``; return (lrs, losses, smoothed, suggested lr).

    Writes ``lr_find.csv`` and ``lr_find.png`` (loss against lr, log scale, the suggestion
    marked) to ``out_dir`` (default ``config.out_dir``)."""
    if not (0 < start < end):
        raise ValueError(f"lr_find: need 0 < start < end, got start={start}, end={end}")
    if not (isinstance(steps, int) and steps >= 2):
        raise ValueError(f"lr_find: steps must be an int >= 2, got {steps!r}")
    train_data, _ = load_data(config)
    minidl.manual_seed(config.seed)
    model = build_model(config, train_data.in_channels, train_data.num_classes)
    if config.encoder_weights is not None:
        load_encoder(model, config)
    optimizer = _build_optimizer(config, model)
    smallest = min(min(img.shape[-2:]) for img in train_data.images)
    tile_in, tile_out = choose_tile(model, config.crop_size, smallest)
    batches = BatchMaker(train_data, config, tile_in, tile_out)
    rng = np.random.default_rng([config.seed, 1])
    factor = (end / start) ** (1 / (steps - 1))
    lrs, losses, smoothed, average, best = [], [], [], 0.0, math.inf
    order = []
    model.train()
    for i in range(steps):
        lr = start * factor ** i
        for group in optimizer.param_groups:
            group["lr"] = lr
        if len(order) < config.batch_size:
            order = list(batches.epoch_order(rng))
        idx, order = order[:config.batch_size], order[config.batch_size:]
        images, masks, weights = batches.batch(idx, rng)
        loss = compute_loss(config, model(minidl.tensor(images)), masks, weights, train_data.num_classes)
        value = float(loss.item())
        if not math.isfinite(value):
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        average = beta * average + (1 - beta) * value
        corrected = average / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(corrected)
        best = min(best, corrected)
        if progress is not None and (i % 10 == 0 or i == steps - 1):
            progress(f"lr-find: step {i + 1}/{steps}  lr {lr:.3g}  loss {value:.4f}  smoothed {corrected:.4f}")
        if corrected > 4 * best:
            break
    suggestion = suggest(lrs, smoothed)
    out_dir = out_dir or config.out_dir
    os.makedirs(out_dir, exist_ok=True)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["lr", "loss", "smoothed_loss"])
    writer.writerows(zip(lrs, losses, smoothed))
    atomic_write(os.path.join(out_dir, "lr_find.csv"), lambda fh: fh.write(table.getvalue().encode()))
    _plot(lrs, losses, smoothed, suggestion, os.path.join(out_dir, "lr_find.png"))
    return lrs, losses, smoothed, suggestion


def _plot(lrs, losses, smoothed, suggestion, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(lrs, losses, color="0.75", label="loss")
    axes.plot(lrs, smoothed, label="smoothed loss")
    if suggestion is not None:
        axes.axvline(suggestion, color="C3", linestyle="--", label=f"suggested lr {suggestion:.2g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.legend()
    figure.tight_layout()
    atomic_write(path, lambda fh: figure.savefig(fh, format="png", dpi=100))
    plt.close(figure)
