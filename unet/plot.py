"""Pictures of a run, as PNGs: the training curves (:func:`plot_history`: losses on the left,
validation metrics on the right) and predictions beside their truth (:func:`plot_predictions`).

Drawn with matplotlib's object API on an Agg canvas (no pyplot): it works without a
display and changes no global plotting state.
"""
import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_history", "plot_predictions"]

_METRICS = ("dice", "mean_iou", "pixel_accuracy", "fw_iou", "v_rand")


def plot_history(history, path):
    """Write ``path`` (PNG; a path or a binary file object) from the per-epoch rows of a
    training history.

    Left: ``train_loss`` and ``val_loss`` per epoch. Right: the validation metrics that the
    rows hold (dice, mean_iou, pixel_accuracy, fw_iou, v_rand), all in [0, 1].
    """
    if not history:
        raise ValueError("plot_history: the history is empty; nothing to plot")
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_metric = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        if key in history[0]:
            ax_loss.plot(epochs, [row[key] for row in history], style, label=key, markersize=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    for key in _METRICS:
        values = [row.get(key, math.nan) for row in history]
        if any(math.isfinite(v) for v in values):
            ax_metric.plot(epochs, values, "-o", label=key, markersize=3)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title("validation")
    ax_metric.set_ylim(0.0, 1.02)
    if ax_metric.lines:
        ax_metric.legend(loc="lower right")
    else:   # trained without a validation split (--val-fraction 0)
        ax_metric.text(0.5, 0.5, "no validation split", ha="center", va="center",
                       transform=ax_metric.transAxes)
    ax_metric.grid(alpha=0.3)
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # epochs are whole numbers
    fig.tight_layout()
    if hasattr(path, "write"):  # a file object (the trainer writes through unet.files.atomic_write)
        fig.savefig(path, format="png")
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    return path


_WRONG = (255, 0, 255)   # magenta: not a class colour


def plot_predictions(samples, path, class_names=None, scale=3):
    """Write ``path`` (PNG): one row per sample, four pictures side by side: the image, the true
    classes, the predicted classes, and the prediction over the image with its wrong pixels in
    magenta; a legend says which colour is which class.

    ``samples``: ``(name, image (C, H, W) in [0, 1], mask (H, W), labels (H, W))`` tuples.
    ``class_names``: one per class (default ``class 0``, ``class 1``, ...). Pictures are drawn
    ``scale`` times their pixel size, without smoothing, so that single pixels stay visible.
    """
    from matplotlib.patches import Patch

    from .predict import class_colours

    samples = list(samples)
    if not samples:
        raise ValueError("plot_predictions: no samples to draw")
    num_classes = 1 + max(max(int(m.max()), int(p.max())) for _, _, m, p in samples)
    names = list(class_names) if class_names is not None else []
    names += [f"class {k}" for k in range(len(names), num_classes)]
    height, width = samples[0][2].shape
    inches = scale * max(height, width) / 100                # 100 dpi: `scale` pixels per pixel
    fig = Figure(figsize=(4 * inches + 0.4, len(samples) * (inches + 0.35) + 0.7), dpi=100)
    FigureCanvasAgg(fig)
    titles = ("image", "truth", "prediction", "prediction on image (magenta: wrong)")
    for row, (name, image, mask, labels) in enumerate(samples):
        image = np.asarray(image, dtype=np.float32)
        gray = np.repeat(np.clip(image[0], 0, 1)[:, :, None], 3, axis=2) if image.shape[0] < 3 \
            else np.clip(np.transpose(image[:3], (1, 2, 0)), 0, 1)            # (H, W, 3)
        over = np.where((labels > 0)[:, :, None], 0.6 * gray + 0.4 * class_colours(labels) / 255, gray)
        over[labels != mask] = np.array(_WRONG) / 255
        pictures = (gray, class_colours(mask) / 255, class_colours(labels) / 255, over)
        for col, picture in enumerate(pictures):
            ax = fig.add_subplot(len(samples), 4, row * 4 + col + 1)
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=9)
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    legend = [Patch(facecolor=class_colours(k) / 255, edgecolor="gray", label=names[k])
              for k in range(num_classes)]
    legend.append(Patch(facecolor=np.array(_WRONG) / 255, label="wrong (last column)"))
    fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    if hasattr(path, "write"):
        fig.savefig(path, format="png")
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    return path
