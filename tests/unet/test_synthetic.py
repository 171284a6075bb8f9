"""unet.synthetic: reproducible, plausible membrane/cell images, and the folder writer."""
import time

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from unet.data import SegmentationData
from unet.synthetic import make_cells, write_synthetic_folder


def test_shapes_types_ranges():
    image, mask = make_cells((40, 56), np.random.default_rng(0))
    assert image.shape == (1, 40, 56) and image.dtype == np.float32
    assert mask.shape == (40, 56) and mask.dtype == np.int64
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert set(np.unique(mask)) == {0, 1}


def test_reproducible_with_seed():
    a = make_cells((64, 64), np.random.default_rng(7))
    b = make_cells((64, 64), np.random.default_rng(7))
    c = make_cells((64, 64), np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    d1 = SegmentationData.synthetic(3, size=(32, 32), seed=1)
    d2 = SegmentationData.synthetic(3, size=(32, 32), seed=1)
    for x, y in zip(d1.images + d1.masks, d2.images + d2.masks):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(d1.masks[0], d1.masks[1])     # samples differ from each other


def test_membranes_thin_cells_many_and_touching():
    rng = np.random.default_rng(3)
    fractions = []
    for _ in range(10):
        image, mask = make_cells((128, 128), rng)
        fractions.append(1.0 - mask.mean())
        _, n_cells = ndimage.label(mask == 1)
        assert 15 <= n_cells <= 80, n_cells
        # Thin: membrane pixels are within 2 px of a cell (junctions and jags reach ~3 px).
        dist_to_cell = ndimage.distance_transform_edt(mask == 0)[mask == 0]
        assert np.mean(dist_to_cell <= 2.0) > 0.95 and dist_to_cell.max() <= 4.0
        # Touching: the membranes separate neighbouring cells, so the 7x7 neighbourhood of
        # a membrane pixel (3-4 px thick) nearly always holds two different cells.
        labels, _ = ndimage.label(mask == 1)
        lo = ndimage.minimum_filter(np.where(labels > 0, labels, 10 ** 6), size=7)
        hi = ndimage.maximum_filter(labels, size=7)
        between = (mask == 0) & (lo < hi) & (lo < 10 ** 6)
        assert between.sum() > 0.9 * (mask == 0).sum()
    # ISBI 2012 has about 22% membrane; we aim near it.
    assert 0.18 <= np.mean(fractions) <= 0.28, fractions
    assert min(fractions) >= 0.12 and max(fractions) <= 0.35


def test_learnable_contrast_membranes_darker():
    rng = np.random.default_rng(5)
    for _ in range(5):
        image, mask = make_cells((96, 96), rng)
        cells, membranes = image[0][mask == 1], image[0][mask == 0]
        assert cells.mean() - membranes.mean() > 0.15
        assert cells.std() > 0.03                   # texture / illumination inside cells


def test_fast_enough():
    # Loose bound (shared 2-core machine): a 128 x 128 sample in well under 50 ms on average.
    rng = np.random.default_rng(0)
    make_cells((128, 128), rng)
    start = time.perf_counter()
    for _ in range(20):
        make_cells((128, 128), rng)
    assert (time.perf_counter() - start) / 20 < 0.05


def test_write_synthetic_folder_matches_in_memory(tmp_path):
    folder = write_synthetic_folder(tmp_path / "syn", 3, size=(32, 40), seed=4)
    names = sorted(p.name for p in (folder / "images").iterdir())
    assert names == ["000.png", "001.png", "002.png"]
    assert sorted(p.name for p in (folder / "masks").iterdir()) == names
    raw = np.array(Image.open(folder / "masks" / "001.png"))
    assert raw.dtype == np.uint8 and set(np.unique(raw)) == {0, 255}
    memory = SegmentationData.synthetic(3, size=(32, 40), seed=4)
    disk = SegmentationData.from_folders(folder / "images", folder / "masks")
    assert disk.names == memory.names
    for k in range(3):
        np.testing.assert_array_equal(disk.masks[k], memory.masks[k])
        np.testing.assert_allclose(disk.images[k], memory.images[k], atol=0.5 / 255 + 1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="make_cells: size"):
        make_cells((4, 64), np.random.default_rng(0))
    with pytest.raises(TypeError, match="make_cells: rng"):
        make_cells((64, 64), 0)
