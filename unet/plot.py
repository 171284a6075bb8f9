"""The training curves as a PNG: losses on the left, validation metrics on the right.

Drawn with matplotlib's object API on an Agg canvas (no pyplot): it works without a
display and changes no global plotting state.
"""
import math
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_history"]

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
