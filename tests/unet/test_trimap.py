"""unet.synthetic.make_trimap: pets-like 3-class trimaps (0 object, 1 background, 2 boundary)."""
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from unet.data import SegmentationData
from unet.synthetic import make_trimap, write_trimap_folder


def test_shapes_types_ranges():
    image, mask = make_trimap((48, 72), np.random.default_rng(0))
    assert image.shape == (3, 48, 72) and image.dtype == np.float32
    assert mask.shape == (48, 72) and mask.dtype == np.int64
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert set(np.unique(mask)) <= {0, 1, 2}


@pytest.mark.parametrize("size", [(64, 64), (128, 96)])
def test_every_sample_has_the_three_classes(size):
    rng = np.random.default_rng(1)
    for _ in range(25):
        _, mask = make_trimap(size, rng)
        counts = np.bincount(mask.ravel(), minlength=3)
        assert (counts > 0).all(), counts
        assert counts[1] > counts[2]                 # the band is thin: less of it than background


@pytest.mark.parametrize("border", [1, 2, 3])
def test_boundary_band_width(border):
    """A band of dilation minus erosion with a disk of radius r separates object from
    background by more than 2r - 1 pixels; it is about 2r + 1 wide: 90% of its pixels lie
    within r + 1 of its edge (where blobs meet it can be wider), and some at r."""
    rng = np.random.default_rng(10 + border)
    widths = []
    for _ in range(15):
        _, mask = make_trimap((96, 96), rng, border=border)
        to_background = ndimage.distance_transform_edt(mask != 1)        # distance to class 1
        assert to_background[mask == 0].min() > 2 * border - 1
        to_outside_band = ndimage.distance_transform_edt(mask == 2)[mask == 2]
        assert np.percentile(to_outside_band, 90) <= border + 1
        widths.append(to_outside_band.max())
        # 4-neighbours of an object pixel are never background
        obj, bg = mask == 0, mask == 1
        assert not (obj[:, :-1] & bg[:, 1:]).any() and not (obj[:-1] & bg[1:]).any()
    assert min(widths) >= border                      # the band is not thinner than asked


def test_band_grows_with_border():
    fractions = []
    for border in (1, 2, 4):
        rng = np.random.default_rng(5)                # the same objects each time
        _, mask = make_trimap((128, 128), rng, border=border)
        fractions.append((mask == 2).mean())
    assert fractions[0] < fractions[1] < fractions[2]


def test_reproducible_and_varied():
    a = make_trimap((64, 64), np.random.default_rng(7))
    b = make_trimap((64, 64), np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    rng = np.random.default_rng(8)
    masks = [make_trimap((64, 64), rng)[1] for _ in range(30)]
    object_fractions = [(m == 0).mean() for m in masks]
    assert len(set(object_fractions)) == 30                               # all different
    assert max(object_fractions) > 2 * min(object_fractions)              # varied sizes
    labels = [ndimage.label(m != 1)[1] for m in masks]                    # objects (with their band)
    assert min(labels) >= 1 and max(labels) >= 2                          # sometimes several


def test_image_shows_the_objects():
    """The object's mean colour differs from the background's: the classes can be learned."""
    rng = np.random.default_rng(3)
    for _ in range(10):
        image, mask = make_trimap((64, 64), rng)
        inside, outside = image[:, mask == 0].mean(axis=1), image[:, mask == 1].mean(axis=1)
        assert np.linalg.norm(inside - outside) > 0.12


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        make_trimap((32, 32), 0)
    with pytest.raises(ValueError, match="size must be"):
        make_trimap((4, 32), rng)
    with pytest.raises(ValueError, match=r"border must be an int in \[1, max\(1, min\(H, W\) // 16\) = 2\]"):
        make_trimap((32, 40), rng, border=3)
    with pytest.raises(ValueError, match="n must be a positive int"):
        write_trimap_folder("unused", 0)


def test_write_trimap_folder_reads_back_as_three_classes(tmp_path):
    folder = write_trimap_folder(tmp_path / "tri", 3, size=(32, 40), seed=4, border=1)
    names = sorted(p.name for p in (folder / "images").iterdir())
    assert names == ["000.png", "001.png", "002.png"]
    assert Image.open(folder / "images" / "000.png").mode == "RGB"
    data = SegmentationData.from_folders(folder / "images", folder / "masks")
    assert data.num_classes == 3 and data.in_channels == 3
    rng = np.random.default_rng(4)
    for k in range(3):
        image, mask = make_trimap((32, 40), rng, border=1)
        np.testing.assert_array_equal(data.masks[k], mask)
        np.testing.assert_allclose(data.images[k], image, atol=0.5 / 255 + 1e-6)
