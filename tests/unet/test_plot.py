"""The pictures a run writes: training curves and predictions beside their truth."""
import numpy as np
import pytest
from PIL import Image

from unet.plot import plot_history, plot_predictions
from unet.predict import class_colours

MAGENTA = (255, 0, 255)


def _count(png, colour):
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    return int((pixels == colour).all(axis=1).sum())


def _sample(wrong):
    rng = np.random.default_rng(0)
    mask = (rng.random((24, 24)) > 0.3).astype(np.int64)
    labels = mask.copy()
    if wrong:
        labels[4:10, 4:10] = 1 - labels[4:10, 4:10]          # a 6x6 block predicted wrong
    return "a", rng.random((1, 24, 24)).astype(np.float32), mask, labels


def test_wrong_pixels_are_magenta_and_only_they(tmp_path):
    plot_predictions([_sample(wrong=False)], tmp_path / "right.png", class_names=("membrane", "cell"))
    plot_predictions([_sample(wrong=True)], tmp_path / "wrong.png", class_names=("membrane", "cell"))
    legend_swatch = _count(tmp_path / "right.png", MAGENTA)   # the legend's "wrong" patch
    # screen pixels per image pixel, from the cells in the truth and prediction panels
    _, _, mask, _ = _sample(wrong=False)
    cell = tuple(int(c) for c in class_colours(1))
    per_pixel = _count(tmp_path / "right.png", cell) / (2 * mask.sum())
    extra = _count(tmp_path / "wrong.png", MAGENTA) - legend_swatch
    assert 0.8 * 36 * per_pixel <= extra <= 1.2 * 36 * per_pixel      # the 6x6 wrong block


def test_pictures_are_enlarged_without_smoothing(tmp_path):
    _, image, mask, _ = _sample(wrong=False)
    plot_predictions([("a", image, mask, mask)], tmp_path / "p.png", scale=8)
    cell = tuple(int(c) for c in class_colours(1))
    # truth and prediction panels, each image pixel drawn as (about) 8x8 screen pixels of
    # exactly the class colour (smoothing would blend the colours at every cell edge)
    per_pixel = _count(tmp_path / "p.png", cell) / (2 * mask.sum())
    assert 0.8 * 64 <= per_pixel <= 1.2 * 64


def test_no_samples_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no samples"):
        plot_predictions([], tmp_path / "p.png")


def test_history_without_validation_draws_both_panels(tmp_path):
    history = [{"epoch": 1, "train_loss": 0.7}, {"epoch": 2, "train_loss": 0.6}]
    plot_history(history, tmp_path / "h.png")
    assert Image.open(tmp_path / "h.png").size == (1000, 400)
    with pytest.raises(ValueError, match="empty"):
        plot_history([], tmp_path / "e.png")
