"""unet.weights: class balance and the U-Net border weight map against hand-computed values."""
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from unet.weights import border_weight_map, class_balance_map, save_weight_map_png


def test_class_balance_hand_case():
    mask = np.zeros((4, 8), dtype=np.int64)
    mask[:, :2] = 1                      # class 1: 8 of 32 pixels (1/4), class 0: 3/4
    w = class_balance_map(mask, 2)
    assert w.dtype == np.float32 and w.shape == (4, 8)
    # w_k = 1 / (K' f_k): class 0 -> 1 / (2 * 3/4) = 2/3, class 1 -> 1 / (2 * 1/4) = 2
    np.testing.assert_allclose(w[mask == 0], 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(w[mask == 1], 2.0, rtol=1e-6)
    assert w.mean() == pytest.approx(1.0)
    assert w[0, 0] / w[0, 5] == pytest.approx(3.0)      # ratio = inverse frequency ratio


def test_class_balance_absent_class_and_single_class():
    mask = np.zeros((5, 5), dtype=np.int64)
    mask[0, :] = 2                      # class 1 absent: K' = 2 present classes
    w = class_balance_map(mask, 3)
    np.testing.assert_allclose(w[mask == 2], 25 / (2 * 5), rtol=1e-6)
    np.testing.assert_allclose(w[mask == 0], 25 / (2 * 20), rtol=1e-6)
    assert w.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(class_balance_map(np.zeros((3, 3), np.int64), 2), 1.0)
    with pytest.raises(ValueError, match="class_balance_map"):
        class_balance_map(mask, 2)                       # value 2 with only 2 classes


def _two_squares():
    """Two 10 x 10 cells (rows 10..19; cols 5..14 and 18..27) with a 3-px gap (cols 15..17)."""
    mask = np.zeros((30, 40), dtype=np.int64)
    mask[10:20, 5:15] = 1
    mask[10:20, 18:28] = 1
    return mask


def test_border_weight_two_squares_by_hand():
    mask = _two_squares()
    w = border_weight_map(mask, w0=10.0, sigma=5.0)
    # w_c: 200 cell pixels, 1000 background of 1200 -> cell 1200/(2*200) = 3, bg 1200/(2*1000) = 0.6
    wc_cell, wc_bg = 3.0, 0.6
    # Middle of the gap, (15, 16): nearest pixels (15, 14) and (15, 18): d1 = d2 = 2, sum 4.
    assert w[15, 16] == pytest.approx(wc_bg + 10 * np.exp(-16 / 50), rel=1e-5)
    # Next to the left cell, (15, 15): d1 = 1, d2 = 3, sum 4 again.
    assert w[15, 15] == pytest.approx(wc_bg + 10 * np.exp(-16 / 50), rel=1e-5)
    # Five rows above the gap, (5, 16): corners (10, 14) and (10, 18) are at sqrt(25 + 4).
    assert w[5, 16] == pytest.approx(wc_bg + 10 * np.exp(-(2 * np.sqrt(29)) ** 2 / 50), rel=1e-5)
    # Left of the left cell, (15, 2): d1 = 3 (col 5), d2 = 16 (col 18): sum 19.
    assert w[15, 2] == pytest.approx(wc_bg + 10 * np.exp(-19 ** 2 / 50), rel=1e-4)
    # Cell pixels get only the class weight (the border term is for the gaps).
    np.testing.assert_allclose(w[mask == 1], wc_cell, rtol=1e-6)
    # Far corner, (0, 39): d1 = |(0,39)-(10,27)| = sqrt(244), d2 = |(0,39)-(10,14)| = sqrt(725).
    expected = wc_bg + 10 * np.exp(-(np.sqrt(244) + np.sqrt(725)) ** 2 / 50)
    assert w[0, 39] == pytest.approx(expected, abs=1e-5)


def test_border_weight_fewer_than_two_cells_is_class_balance_only():
    mask = np.zeros((20, 20), dtype=np.int64)
    mask[5:10, 5:10] = 1
    np.testing.assert_allclose(border_weight_map(mask), class_balance_map(mask, 2), rtol=1e-6)
    empty = np.zeros((8, 8), dtype=np.int64)
    np.testing.assert_allclose(border_weight_map(empty), 1.0)


def test_border_weight_matches_brute_force_on_synthetic_cells():
    from unet.synthetic import make_cells
    _, mask = make_cells((96, 96), np.random.default_rng(0))
    labels, n = ndimage.label(mask == 1)
    assert n >= 5
    # Independent brute force: one full-image distance transform per cell, sort, take 2.
    dist = np.sort(np.stack([ndimage.distance_transform_edt(labels != i)
                             for i in range(1, n + 1)]), axis=0)          # (n, H, W)
    freq = np.bincount(mask.ravel(), minlength=2) / mask.size
    expected = 1.0 / (2 * freq[mask])
    expected += (mask == 0) * 10 * np.exp(-(dist[0] + dist[1]) ** 2 / 50)
    np.testing.assert_allclose(border_weight_map(mask), expected, atol=1e-4, rtol=1e-5)


def test_border_weight_other_cell_class_and_params():
    mask = 1 - _two_squares()           # cells are now class 0, gaps class 1
    w = border_weight_map(mask, w0=4.0, sigma=2.0, cell_class=0)
    # Same geometry: middle of the gap d1 + d2 = 4; w_c of the gap class (now class 1) = 0.6.
    assert w[15, 16] == pytest.approx(0.6 + 4 * np.exp(-16 / 8), rel=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        border_weight_map(mask, sigma=0)
    with pytest.raises(ValueError, match="mask"):
        border_weight_map(mask.astype(np.float32))


def test_save_weight_map_png(tmp_path):
    w = border_weight_map(_two_squares())
    path = save_weight_map_png(w, tmp_path / "sub" / "w.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 50
        pixels = np.asarray(img.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10    # a colour map, not blank
