"""unet.augment: image, mask and weight map stay aligned; elastic deformation as in the paper.

Alignment trick: the image's two channels hold each pixel's own row and column (scaled to
[0, 1]) and the mask holds the pixel's index ``row * W + col``. Bilinear interpolation of a
linear ramp is exact, so after any augmentation the image still says which input pixel each
output pixel came from, and the mask (nearest neighbour) must name the same pixel. If the mask
or the weight were moved differently from the image, they would disagree almost everywhere.
"""
import numpy as np
import pytest

from unet.augment import Augmenter, elastic_displacement

H, W = 48, 64


def _coordinate_sample(height=H, width=W):
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([yy / (height - 1), xx / (width - 1)]).astype(np.float32)   # (2, H, W)
    mask = (yy * width + xx).astype(np.int64)                                    # pixel index
    weight = (xx / (width - 1)).astype(np.float32)                               # = image[1]
    return image, mask, weight


def _decode(image, mask, height=H, width=W):
    """Source pixel per output pixel, according to the image and according to the mask."""
    from_image = np.round(image[0] * (height - 1)), np.round(image[1] * (width - 1))
    from_mask = mask // width, mask % width
    return from_image, from_mask


@pytest.mark.parametrize("crop", [None, (32, 32), (24, 40)])
def test_elastic_flip_rot_crop_keep_alignment(crop):
    image, mask, weight = _coordinate_sample()
    aug = Augmenter(flip=True, rot90=True, crop_size=crop, jitter=0.0, elastic=True)
    deformed = 0
    for seed in range(12):
        out_img, out_mask, out_w = aug(image, mask, weight, rng=np.random.default_rng(seed))
        expected_shape = crop or (H, W)
        assert out_mask.shape in (expected_shape, expected_shape[::-1])
        assert out_img.shape == (2,) + out_mask.shape and out_w.shape == out_mask.shape
        (iy, ix), (my, mx) = _decode(out_img, out_mask)
        # Nearest neighbour and rounding the exact coordinate agree except on exact ties.
        agree = (iy == my) & (ix == mx)
        assert agree.mean() > 0.99
        assert np.abs(iy - my).max() <= 1 and np.abs(ix - mx).max() <= 1
        # The weight map went through the same bilinear sampling as image channel 1.
        np.testing.assert_allclose(out_w, out_img[1], atol=1e-6)
        # A rigid move (crop, flip, rot90) steps through the source by ONE vector between
        # horizontal neighbours; an elastic deformation needs several.
        steps = {(a, b) for a, b in zip(np.diff(my, axis=1).ravel(), np.diff(mx, axis=1).ravel())}
        deformed += len(steps) > 1
    assert deformed >= 10


def test_without_elastic_is_an_exact_dihedral_crop():
    image, mask, weight = _coordinate_sample()
    aug = Augmenter(flip=True, rot90=True, crop_size=(20, 20), jitter=0.0, elastic=False)
    seen = set()
    for seed in range(40):
        out_img, out_mask, out_w = aug(image, mask, weight, rng=np.random.default_rng(seed))
        (iy, ix), (my, mx) = _decode(out_img, out_mask)
        np.testing.assert_array_equal(iy, my)
        np.testing.assert_array_equal(ix, mx)
        np.testing.assert_array_equal(out_w, out_img[1])
        # Source rows/cols of a crop + flips + rot90 form a contiguous 20 x 20 block.
        assert my.max() - my.min() == 19 and mx.max() - mx.min() == 19
        # Which corner of the output holds the block's top-left pixel: 8 orientations possible.
        corner = tuple(np.argwhere((my == my.min()) & (mx == mx.min()))[0])
        seen.add((corner, int(mx[0, 1] - mx[0, 0]), int(my[0, 1] - my[0, 0])))
    assert len(seen) >= 6


def test_non_square_output_keeps_shape_with_rot90():
    image, mask, weight = _coordinate_sample()
    aug = Augmenter(crop_size=(16, 40), jitter=0.0)
    for seed in range(10):
        out_img, out_mask, out_w = aug(image, mask, weight, rng=np.random.default_rng(seed))
        assert out_mask.shape == (16, 40) and out_img.shape == (2, 16, 40)


def test_mask_stays_labels_and_dtypes():
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 3, (H, W))
    mask[mask == 1] = 2                     # values {0, 2}: nearest neighbour invents no 1
    image = rng.random((1, H, W)).astype(np.float32)
    out_img, out_mask, out_w = Augmenter()(image, mask, None, rng=rng)
    assert out_w is None
    assert out_img.dtype == np.float32 and out_mask.dtype == np.int64
    assert set(np.unique(out_mask)) <= {0, 2}
    assert out_img.min() >= 0.0 and out_img.max() <= 1.0


def test_reproducible_with_seed_and_seed_matters():
    image, mask, weight = _coordinate_sample()
    aug = Augmenter(crop_size=32)
    a = aug(image, mask, weight, rng=np.random.default_rng(11))
    b = aug(image, mask, weight, rng=np.random.default_rng(11))
    c = aug(image, mask, weight, rng=np.random.default_rng(12))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])


def test_elastic_displacement_interpolates_the_coarse_grid():
    # 3x3 vectors at the corners, edge midpoints and centre; with odd sizes the centre pixel
    # sits exactly on the middle grid point, and the spline passes through the grid values.
    field = elastic_displacement((41, 61), np.random.default_rng(5), sigma=10.0, grid=3)
    coarse = np.random.default_rng(5).normal(0.0, 10.0, size=(2, 3, 3))   # same draws
    assert field.shape == (2, 41, 61)
    for gy, y in enumerate((0, 20, 40)):
        for gx, x in enumerate((0, 30, 60)):
            np.testing.assert_allclose(field[:, y, x], coarse[:, gy, gx], atol=1e-9)
    # Smooth: neighbouring pixels move by nearly the same amount.
    assert np.abs(np.diff(field, axis=1)).max() < 3.0
    assert np.abs(np.diff(field, axis=2)).max() < 3.0


def test_elastic_displacement_is_non_trivial_with_std_10():
    rng = np.random.default_rng(0)
    corners = np.array([elastic_displacement((17, 17), rng)[:, 0, 0] for _ in range(400)])
    assert 9.0 < corners.std() < 11.0          # paper: standard deviation 10 px
    assert abs(corners.mean()) < 1.5
    field = elastic_displacement((64, 64), np.random.default_rng(1))
    assert np.abs(field).max() > 3.0           # a real deformation, not ~identity


def test_elastic_changes_the_image_but_not_alignment_of_a_real_sample():
    from unet.synthetic import make_cells
    image, mask = make_cells((64, 64), np.random.default_rng(2))
    aug = Augmenter(flip=False, rot90=False, jitter=0.0, elastic=True)
    out_img, out_mask, _ = aug(image, mask, rng=np.random.default_rng(3))
    assert (out_mask != mask).mean() > 0.05      # the deformation moved the membranes
    # Membranes stay dark after deformation: the image moved with the mask.
    assert out_img[0][out_mask == 1].mean() - out_img[0][out_mask == 0].mean() > 0.1


def test_jitter_changes_image_only():
    image, mask, weight = _coordinate_sample()
    image = 0.25 + 0.5 * image                    # away from the clip limits
    aug = Augmenter(flip=False, rot90=False, elastic=False, jitter=0.2)
    out_img, out_mask, out_w = aug(image, mask, weight, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(out_mask, mask)
    np.testing.assert_array_equal(out_w, weight)
    assert not np.allclose(out_img, image)
    # Brightness/contrast is affine: out = a * image + b with the same a, b everywhere.
    a, b = np.polyfit(image.ravel(), out_img.ravel(), 1)
    np.testing.assert_allclose(out_img, a * image + b, atol=1e-5)
    assert 0.8 <= a <= 1.2 and abs(b) < 0.4


def test_identity_settings_change_nothing():
    image, mask, weight = _coordinate_sample()
    out = Augmenter(flip=False, rot90=False, jitter=0.0, elastic=False)(
        image, mask, weight, rng=np.random.default_rng(0))
    for x, y in zip(out, (image, mask, weight)):
        np.testing.assert_array_equal(x, y)


def test_bad_arguments():
    image, mask, _ = _coordinate_sample()
    with pytest.raises(ValueError, match="crop_size"):
        Augmenter(crop_size=100)(image, mask, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        Augmenter()(image, mask)
    with pytest.raises(ValueError, match="mask"):
        Augmenter()(image, mask[:10], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="jitter"):
        Augmenter(jitter=2.0)
