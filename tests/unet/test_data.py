"""unet.data: loaders for every format, mask mapping, pairing, reports, errors, splitting.

Every file is written by the test itself with Pillow; expected values come from the arrays
written (divided by 255 or 65535 by hand), never from the loader.
"""
import numpy as np
import pytest
from PIL import Image

from unet.data import (DataError, SegmentationData, apply_mask_map, auto_mask_map,
                       load_images, load_masks, parse_mask_map, split_indices)


def _ramp(h, w, top):
    """A (h, w) ramp 0..top, distinct values, so scaling and orientation errors show."""
    return np.linspace(0, top, h * w).round().reshape(h, w)


# ============================================================================ load_images
def test_png_8bit_gray(tmp_path):
    arr = _ramp(5, 7, 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    [img] = load_images(tmp_path / "a.png")
    assert img.dtype == np.float32 and img.shape == (1, 5, 7)
    np.testing.assert_allclose(img[0], arr / 255.0, rtol=0, atol=1e-7)


def test_png_16bit_gray(tmp_path):
    arr = _ramp(6, 4, 65535).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "a.png")
    [img] = load_images(tmp_path / "a.png")
    assert img.dtype == np.float32 and img.shape == (1, 6, 4)
    np.testing.assert_allclose(img[0], arr / 65535.0, rtol=0, atol=1e-6)
    assert img.max() == pytest.approx(1.0)


def test_png_rgb_channels_first(tmp_path):
    arr = np.zeros((4, 5, 3), dtype=np.uint8)
    arr[..., 0] = 10
    arr[..., 1] = 100
    arr[1, 2, 2] = 255
    Image.fromarray(arr).save(tmp_path / "c.png")
    [img] = load_images(tmp_path / "c.png")
    assert img.shape == (3, 4, 5)
    np.testing.assert_allclose(img[0], 10 / 255.0, atol=1e-7)
    np.testing.assert_allclose(img[1], 100 / 255.0, atol=1e-7)
    assert img[2, 1, 2] == pytest.approx(1.0) and img[2].sum() == pytest.approx(1.0)


def test_rgba_and_palette_become_rgb(tmp_path):
    rgba = np.zeros((3, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 17           # alpha must be dropped, not treated as a 4th channel
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    [img] = load_images(tmp_path / "rgba.png")
    assert img.shape == (3, 3, 3)
    np.testing.assert_allclose(img[0], 200 / 255.0, atol=1e-7)

    pal = Image.new("P", (4, 2))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)   # index 1 = red
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "pal.png")
    [img] = load_images(tmp_path / "pal.png")
    assert img.shape == (3, 2, 4)
    assert img[0, 0, 1] == pytest.approx(1.0) and img[1:, 0, 1].sum() == 0
    assert img.sum() == pytest.approx(1.0)


def test_jpeg_gray_and_rgb(tmp_path):
    # A smooth image survives JPEG nearly unchanged; the check is loose because JPEG is lossy.
    arr = np.tile(np.linspace(40, 200, 16), (16, 1)).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "g.jpg", quality=95)
    [img] = load_images(tmp_path / "g.jpg")
    assert img.shape == (1, 16, 16) and img.dtype == np.float32
    np.testing.assert_allclose(img[0], arr / 255.0, atol=6 / 255)

    rgb = np.stack([arr, 255 - arr, np.full_like(arr, 128)], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "c.jpeg", quality=95)
    [img] = load_images(tmp_path / "c.jpeg")
    assert img.shape == (3, 16, 16)
    np.testing.assert_allclose(img[1], (255 - arr) / 255.0, atol=8 / 255)


def test_multipage_tiff_one_sample_per_page(tmp_path):
    pages = [np.full((4, 6), 30 * (k + 1), dtype=np.uint8) for k in range(3)]
    pages[1][0, 0] = 255
    ims = [Image.fromarray(p) for p in pages]
    ims[0].save(tmp_path / "stack.tif", save_all=True, append_images=ims[1:])
    out = load_images(tmp_path / "stack.tif")
    assert len(out) == 3
    for page, img in zip(pages, out):
        assert img.shape == (1, 4, 6)
        np.testing.assert_allclose(img[0], page / 255.0, atol=1e-7)


def test_tiff_16bit(tmp_path):
    arr = _ramp(3, 5, 65535).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "a.tiff")
    [img] = load_images(tmp_path / "a.tiff")
    np.testing.assert_allclose(img[0], arr / 65535.0, atol=1e-6)


def test_corrupt_and_missing_image_name_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not a png at all")
    with pytest.raises(DataError, match=r"load_images.*junk\.png"):
        load_images(tmp_path / "junk.png")
    # A real PNG cut in half: Pillow recognises it but cannot decode it.
    Image.fromarray(_ramp(64, 64, 255).astype(np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.png"):
        load_images(tmp_path / "cut.png")
    with pytest.raises(DataError, match=r"nothere\.png"):
        load_images(tmp_path / "nothere.png")


# ============================================================================ load_masks
def test_load_masks_raw_values(tmp_path):
    arr = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "m.png")
    [m] = load_masks(tmp_path / "m.png")
    assert m.dtype == np.int64
    np.testing.assert_array_equal(m, arr)       # not divided, not mapped

    arr16 = np.array([[0, 1000], [65535, 7]], dtype=np.uint16)
    Image.fromarray(arr16).save(tmp_path / "m16.png")
    [m] = load_masks(tmp_path / "m16.png")
    np.testing.assert_array_equal(m, arr16.astype(np.int64))


def test_load_masks_rgb_needs_equal_channels(tmp_path):
    gray_rgb = np.repeat(np.array([[0, 2], [1, 0]], dtype=np.uint8)[..., None], 3, axis=-1)
    Image.fromarray(gray_rgb).save(tmp_path / "ok.png")
    [m] = load_masks(tmp_path / "ok.png")
    np.testing.assert_array_equal(m, [[0, 2], [1, 0]])
    colour = gray_rgb.copy()
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(DataError, match=r"colour\.png"):
        load_masks(tmp_path / "colour.png")


# ============================================================================ mask mapping
def test_parse_mask_map():
    assert parse_mask_map("0:1,255:0") == {0: 1, 255: 0}
    assert parse_mask_map(" 0 : 0 , 128:1, 255:2 ") == {0: 0, 128: 1, 255: 2}
    for bad in ["", "0-1", "0:1,", "a:1", "0:1,0:2", "0:-1", "0:1:2"]:
        with pytest.raises(DataError, match="parse_mask_map"):
            parse_mask_map(bad)


def test_auto_mask_map():
    assert auto_mask_map([0, 255]) == {0: 0, 255: 1}
    assert auto_mask_map({255: 5}) == {0: 0, 255: 1}          # all-cell masks still binary
    assert auto_mask_map([0, 1, 2]) == {0: 0, 1: 1, 2: 2}
    assert auto_mask_map([0, 2]) == {0: 0, 1: 1, 2: 2}        # class 1 absent, index kept
    for bad in ([0, 128, 255], [0, 1, 255], [-1, 0], [1000]):
        with pytest.raises(DataError, match="--mask-map"):
            auto_mask_map(bad)


def test_apply_mask_map_hand_case_and_error():
    raw = np.array([[0, 255, 255], [0, 0, 255]])
    out = apply_mask_map(raw, {0: 1, 255: 0}, "m.png")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [[1, 0, 0], [1, 1, 0]])
    raw[1, 1] = 7
    raw[0, 0] = 9
    with pytest.raises(DataError) as info:
        apply_mask_map(raw, {0: 1, 255: 0}, "masks/m.png")
    assert "masks/m.png" in str(info.value)
    assert "[7, 9]" in str(info.value)


# ============================================================================ folders
def _write_pair(img_dir, msk_dir, stem, image, mask, img_ext=".png", msk_ext=".png"):
    img_dir.mkdir(exist_ok=True)
    msk_dir.mkdir(exist_ok=True)
    Image.fromarray(image).save(img_dir / f"{stem}{img_ext}")
    Image.fromarray(mask).save(msk_dir / f"{stem}{msk_ext}")


def test_from_folders_pairs_by_stem_and_maps(tmp_path):
    img_dir, msk_dir = tmp_path / "images", tmp_path / "masks"
    masks = {}
    for k, stem in enumerate(["10", "2", "b"]):
        image = np.full((4, 5), 20 * k, dtype=np.uint8)
        mask = np.zeros((4, 5), dtype=np.uint8)
        mask[: k + 1] = 255                     # sample k has (k+1)*5 pixels of value 255
        masks[stem] = mask
        _write_pair(img_dir, msk_dir, stem, image, mask, msk_ext=".tif" if k == 1 else ".png")
    (msk_dir / "orphan.png").write_bytes(b"ignored: no image with this stem")
    data = SegmentationData.from_folders(img_dir, msk_dir)
    assert data.names == ["2", "10", "b"]        # natural order: 2 before 10
    assert len(data) == 3 and data.in_channels == 1 and data.num_classes == 2
    image, mask = data[0]                        # stem "2" was written with k = 1
    np.testing.assert_allclose(image, 20 / 255.0, atol=1e-7)
    np.testing.assert_array_equal(mask, masks["2"] // 255)
    # 255 pixels: 10 + 5 + 15 = 30 of 60
    assert data.mask_values == {0: 30, 255: 30}

    flipped = SegmentationData.from_folders(img_dir, msk_dir, mask_map="0:1,255:0")
    np.testing.assert_array_equal(flipped[0][1], 1 - masks["2"] // 255)


def test_report_contents(tmp_path):
    img_dir, msk_dir = tmp_path / "images", tmp_path / "masks"
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[0, :] = 255                             # 5 of 20 pixels: 25% class 1, 75% class 0
    _write_pair(img_dir, msk_dir, "a", np.zeros((4, 5), np.uint8), mask)
    text = SegmentationData.from_folders(img_dir, msk_dir).report()
    assert "1 sample," in text and "4x5" in text and "2 classes" in text
    assert "0: 15 (75.0%)" in text and "255: 5 (25.0%)" in text
    assert "automatic" in text and "0 -> 0" in text and "255 -> 1" in text
    assert "class 0: 75.0%" in text and "class 1: 25.0%" in text


def test_from_folders_missing_mask_names_the_image(tmp_path):
    img_dir, msk_dir = tmp_path / "images", tmp_path / "masks"
    _write_pair(img_dir, msk_dir, "a", np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(img_dir / "lonely.png")
    with pytest.raises(DataError, match=r"no mask for image '.*lonely\.png'"):
        SegmentationData.from_folders(img_dir, msk_dir)


def test_from_folders_corrupt_image_names_the_file(tmp_path):
    img_dir, msk_dir = tmp_path / "images", tmp_path / "masks"
    _write_pair(img_dir, msk_dir, "a", np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    (img_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(msk_dir / "broken.png")
    with pytest.raises(DataError, match=r"broken\.png"):
        SegmentationData.from_folders(img_dir, msk_dir)


def test_from_folders_unmapped_value_names_the_mask(tmp_path):
    img_dir, msk_dir = tmp_path / "images", tmp_path / "masks"
    mask = np.array([[0, 255], [128, 0]], dtype=np.uint8)
    _write_pair(img_dir, msk_dir, "x", np.zeros((2, 2), np.uint8), mask)
    with pytest.raises(DataError, match=r"masks.x\.png.*\[128\]"):
        SegmentationData.from_folders(img_dir, msk_dir, mask_map="0:0,255:1")
    with pytest.raises(DataError, match="--mask-map"):        # automatic mapping can't guess
        SegmentationData.from_folders(img_dir, msk_dir)


def test_from_folders_size_mismatch(tmp_path):
    img_dir, msk_dir = tmp_path / "images", tmp_path / "masks"
    _write_pair(img_dir, msk_dir, "a", np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(DataError, match=r"a\.png"):
        SegmentationData.from_folders(img_dir, msk_dir)


def test_from_folders_tiff_stacks(tmp_path):
    img_dir, msk_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    msk_dir.mkdir()
    pages = [Image.fromarray(np.full((3, 3), 50 * k, np.uint8)) for k in range(3)]
    pages[0].save(img_dir / "volume.tif", save_all=True, append_images=pages[1:])
    labels = []
    for k in range(3):
        m = np.zeros((3, 3), np.uint8)
        m[k, :] = 255
        labels.append(m)
    lab_pages = [Image.fromarray(m) for m in labels]
    lab_pages[0].save(msk_dir / "volume.tif", save_all=True, append_images=lab_pages[1:])
    data = SegmentationData.from_folders(img_dir, msk_dir)
    assert data.names == ["volume_000", "volume_001", "volume_002"]
    for k in range(3):
        np.testing.assert_allclose(data.images[k], 50 * k / 255.0, atol=1e-7)
        np.testing.assert_array_equal(data.masks[k], labels[k] // 255)
    lab_pages[0].save(msk_dir / "volume.tif", save_all=True, append_images=lab_pages[1:2])
    with pytest.raises(DataError, match="3 pages.*2"):
        SegmentationData.from_folders(img_dir, msk_dir)


def test_from_folders_missing_folder(tmp_path):
    with pytest.raises(DataError, match="nope"):
        SegmentationData.from_folders(tmp_path / "nope", tmp_path)


# ============================================================================ split / subset
def test_split_by_fraction():
    train, val = split_indices(10, val_fraction=0.3, seed=5)
    assert len(val) == 3 and len(train) == 7
    assert sorted(train + val) == list(range(10))
    assert train == sorted(train) and val == sorted(val)
    assert split_indices(10, 0.3, seed=5) == (train, val)              # reproducible
    others = {tuple(split_indices(10, 0.3, seed=s)[1]) for s in range(10)}
    assert len(others) > 1                                             # the seed matters
    assert split_indices(3, 0.01)[1] != []                           # at least one
    assert len(split_indices(2, 0.9)[0]) == 1                          # one left to train
    assert split_indices(4, 0.0) == ([0, 1, 2, 3], [])


def test_split_by_index_list_and_errors():
    assert split_indices(6, val_indices=[4, 1]) == ([0, 2, 3, 5], [1, 4])
    for kwargs in ({"val_indices": [6]}, {"val_indices": [1, 1]}, {"val_indices": [0, 1]},
                   {"val_fraction": 1.0}, {"val_fraction": -0.1}):
        with pytest.raises(DataError, match="split_indices"):
            split_indices(2, **kwargs)


def test_synthetic_dataset_and_subset():
    data = SegmentationData.synthetic(4, size=(32, 48), seed=3)
    assert len(data) == 4 and data.in_channels == 1 and data.num_classes == 2
    image, mask = data[2]
    assert image.shape == (1, 32, 48) and image.dtype == np.float32
    assert mask.shape == (32, 48) and mask.dtype == np.int64
    assert set(np.unique(mask)) == {0, 1}
    sub = data.subset([3, 1])
    assert sub.names == [data.names[3], data.names[1]]
    assert sub.images[0] is data.images[3]
    assert sum(sub.mask_values.values()) == 2 * 32 * 48
    assert sub.mask_values[1] == int(data.masks[3].sum() + data.masks[1].sum())
    assert "2 samples" in sub.report()
