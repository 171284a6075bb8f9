"""Image/mask data for segmentation: loading, mask-to-class mapping, pairing and splitting.

Conventions (shared by the whole ``unet`` package):

* an image is a float32 array ``(C, H, W)`` with values in [0, 1]: ``C = 1`` for grayscale,
  ``C = 3`` for colour; 8-bit files are divided by 255, 16-bit files by 65535;
* a mask is an int64 array ``(H, W)`` of class indices ``0 .. K-1``. For membrane/cell data
  (ISBI 2012 and ``unet.synthetic``) class 1 is cell interior and class 0 is membrane.

Files are read with Pillow: PNG, TIFF (a multi-page TIFF stack such as ISBI's
``train-volume.tif`` gives one sample per page) and JPEG. Raw mask values are mapped to classes
either automatically (``{0, 255}`` -> ``{0: 0, 255: 1}``; values already in ``0 .. K-1`` are kept)
or by an explicit mapping such as ``"0:1,255:0"``. Every problem raises :class:`DataError`
naming the file (or argument) at fault. ``docs/data.md`` has the details.
"""
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "DataError", "IMAGE_EXTENSIONS", "load_images", "load_masks", "parse_mask_map",
    "auto_mask_map", "apply_mask_map", "split_indices", "SegmentationData",
]

# File name endings the folder loader picks up (compared in lower case).
IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")

# Automatic identity mapping only for values 0 .. MAX_AUTO_CLASSES-1: a mask with values such as
# {0, 128, 255} is almost certainly not "256 classes" and needs an explicit mapping.
MAX_AUTO_CLASSES = 64


class DataError(ValueError):
    """A file or argument the data loaders cannot use; the message names it and says why."""


# ============================================================================ reading files
def _open_pages(where, path):
    """Open ``path`` with Pillow and return a list of its pages (each a loaded PIL image)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: cannot read '{path}': no such file")
    try:
        with Image.open(path) as img:
            pages = []
            for index in range(getattr(img, "n_frames", 1)):
                img.seek(index)
                pages.append(img.copy())   # copy() decodes the pixels now, inside the try
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # UnidentifiedImageError: not an image at all; OSError/SyntaxError/...: truncated or
        # damaged data that Pillow notices while decoding.
        raise DataError(f"{where}: cannot read '{path}': not an image or corrupt "
                        f"({type(exc).__name__}: {exc})") from exc
    return pages


def _page_to_image(where, path, page):
    """One PIL page -> float32 (C, H, W) in [0, 1]."""
    mode = page.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return (np.asarray(page, dtype=np.float32) / 65535.0)[None]        # (1, H, W)
    if mode == "I":
        # 32-bit integer pages: accepted when they hold 16-bit values (some TIFF writers).
        arr = np.asarray(page, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(f"{where}: cannot read '{path}': 32-bit integer image with values "
                            f"{arr.min()}..{arr.max()}, expected 8- or 16-bit values")
        return (arr.astype(np.float32) / 65535.0)[None]
    if mode == "F":
        arr = np.asarray(page, dtype=np.float32)
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            raise DataError(f"{where}: cannot read '{path}': floating-point image with values "
                            f"outside [0, 1] (min {np.nanmin(arr)}, max {np.nanmax(arr)})")
        return arr[None]
    if mode in ("1", "L", "LA"):
        page = page.convert("L")
        return (np.asarray(page, dtype=np.float32) / 255.0)[None]
    # RGB, RGBA, P (palette), CMYK, YCbCr, ...: 8-bit colour.
    arr = np.asarray(page.convert("RGB"), dtype=np.float32) / 255.0          # (H, W, 3)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))                     # (3, H, W)


def load_images(path):
    """Read an image file into a list of float32 arrays ``(C, H, W)`` in [0, 1], one per page.

    Grayscale gives ``C = 1``; colour (RGB, RGBA, palette: converted to RGB) gives ``C = 3``.
    8-bit values are divided by 255, 16-bit values by 65535. A multi-page TIFF gives one entry
    per page. Raises :class:`DataError` naming ``path`` if it is missing, not an image or corrupt.
    """
    pages = _open_pages("load_images", path)
    return [_page_to_image("load_images", path, page) for page in pages]


def _page_to_mask(where, path, page):
    """One PIL page -> raw integer values (H, W) int64 (no mapping)."""
    mode = page.mode
    if mode == "1":
        page = page.convert("L")          # booleans -> 0 / 255, like a saved binary mask
    elif mode in ("LA", "PA"):
        page = page.getchannel(0)         # drop the alpha channel, keep values / palette indices
    elif mode in ("RGB", "RGBA"):
        arr = np.asarray(page.convert("RGB"))                                 # (H, W, 3)
        if not ((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()):
            raise DataError(f"{where}: cannot read '{path}': colour mask (mode {mode}) with "
                            f"unequal channels; save masks as grayscale or palette images whose "
                            f"values are the class labels")
        return arr[..., 0].astype(np.int64)
    elif mode == "F":
        arr = np.asarray(page, dtype=np.float64)
        if not np.array_equal(arr, np.round(arr)):
            raise DataError(f"{where}: cannot read '{path}': floating-point mask with "
                            f"non-integer values; masks must hold integer labels")
        return arr.astype(np.int64)
    elif mode not in ("L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N"):
        raise DataError(f"{where}: cannot read '{path}': unsupported mask mode {mode!r}")
    # For palette ('P') masks the raw values are the palette indices, which is what
    # label images (e.g. PASCAL VOC) store.
    return np.asarray(page).astype(np.int64)


def load_masks(path):
    """Read a mask file into a list of raw integer arrays ``(H, W)`` int64, one per page.

    Values are returned as stored (e.g. 0 and 255); map them with :func:`apply_mask_map`.
    Grayscale, palette (indices), 16-bit and binary images are accepted; an RGB mask is accepted
    only if its three channels are equal. Raises :class:`DataError` naming ``path``.
    """
    pages = _open_pages("load_masks", path)
    return [_page_to_mask("load_masks", path, page) for page in pages]


# ============================================================================ mask mapping
def parse_mask_map(text):
    """Parse ``"0:1,255:0"`` into ``{0: 1, 255: 0}`` (raw mask value -> class index).

    Spaces are ignored. Raises :class:`DataError` for empty text, a pair that is not
    ``int:int``, a negative class or a raw value given twice.
    """
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"parse_mask_map: expected text like '0:1,255:0', got {text!r}")
    mapping = {}
    for item in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(-?\d+):(-?\d+)", item)
        if match is None:
            raise DataError(f"parse_mask_map: bad pair {item!r} in {text!r}; expected "
                            f"'value:class' pairs separated by commas, e.g. '0:1,255:0'")
        value, cls = int(match.group(1)), int(match.group(2))
        if cls < 0:
            raise DataError(f"parse_mask_map: class must be >= 0, got {cls} in {text!r}")
        if value in mapping:
            raise DataError(f"parse_mask_map: value {value} is mapped twice in {text!r}")
        mapping[value] = cls
    return mapping


def auto_mask_map(values):
    """Choose a mapping from the raw values found in the masks (an iterable or a dict's keys).

    * values within {0, 255} that include 255 (binary masks saved as 0/255): ``{0: 0, 255: 1}``;
    * values within {0 .. K-1} with ``K <= MAX_AUTO_CLASSES`` (64): the identity, for every
      value 0 .. max (so a class missing from these masks still has its index);
    * anything else raises :class:`DataError` suggesting an explicit ``--mask-map``.
    """
    values = sorted(int(v) for v in values)
    if not values:
        raise DataError("auto_mask_map: no mask values given (are the masks empty?)")
    if set(values) <= {0, 255} and 255 in values:
        return {0: 0, 255: 1}
    if values[0] >= 0 and values[-1] < MAX_AUTO_CLASSES:
        return {v: v for v in range(values[-1] + 1)}
    shown = values if len(values) <= 12 else values[:6] + ["..."] + values[-3:]
    example = ",".join(f"{v}:{i}" for i, v in enumerate(values[:3]))
    raise DataError(f"auto_mask_map: cannot guess classes from mask values {shown}: expected "
                    f"{{0, 255}} or values 0..K-1 (K <= {MAX_AUTO_CLASSES}); give an explicit "
                    f"mapping with --mask-map, e.g. --mask-map '{example}'")


def _format_mapping(mapping):
    return "{" + ", ".join(f"{k}:{v}" for k, v in sorted(mapping.items())) + "}"


def apply_mask_map(mask, mapping, source="mask"):
    """Map raw mask values to classes: ``out[y, x] = mapping[mask[y, x]]``, int64 ``(H, W)``.

    Raises :class:`DataError` naming ``source`` (usually the file) and listing the values
    that the mapping does not cover.
    """
    mask = np.asarray(mask)
    if not np.issubdtype(mask.dtype, np.integer):
        raise DataError(f"apply_mask_map: '{source}': mask must hold integers, got dtype "
                        f"{mask.dtype}")
    if not mapping:
        raise DataError(f"apply_mask_map: '{source}': the mapping is empty")
    present = np.unique(mask)
    keys = np.array(sorted(mapping), dtype=np.int64)
    missing = present[~np.isin(present, keys)]
    if missing.size:
        shown = missing[:10].tolist() + (["..."] if missing.size > 10 else [])
        raise DataError(f"apply_mask_map: '{source}' has mask values {shown} that are not in "
                        f"the mapping {_format_mapping(mapping)}; add them with --mask-map")
    classes = np.array([mapping[k] for k in keys.tolist()], dtype=np.int64)
    # Every value is a key, so searchsorted finds its exact position in the sorted keys.
    return classes[np.searchsorted(keys, mask.astype(np.int64))]


# ============================================================================ splitting
def split_indices(n, val_fraction=0.2, val_indices=None, seed=0):
    """Split ``range(n)`` into sorted ``(train_indices, val_indices)`` lists.

    With ``val_indices`` given, those are the validation samples and the rest train. Otherwise a
    random (``seed``) ``round(n * val_fraction)`` samples validate, at least 1 when
    ``val_fraction > 0``, and at least 1 sample is always left for training.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"split_indices: n must be a positive int, got {n!r}")
    if val_indices is not None:
        val = [int(i) for i in val_indices]
        bad = [i for i in val if not 0 <= i < n]
        if bad:
            raise DataError(f"split_indices: val_indices {bad} are out of range 0..{n - 1}")
        if len(set(val)) != len(val):
            raise DataError(f"split_indices: val_indices has duplicates: {list(val_indices)}")
        if len(val) >= n:
            raise DataError(f"split_indices: val_indices take all {n} samples; none left to train")
        val_set = set(val)
        return [i for i in range(n) if i not in val_set], sorted(val)
    if not 0.0 <= float(val_fraction) < 1.0:
        raise DataError(f"split_indices: val_fraction must be in [0, 1), got {val_fraction!r}")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    n_val = min(n_val, n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


# ============================================================================ the data set
def _natural_key(name):
    """Sort key so that '2.png' comes before '10.png'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _list_image_files(where, folder, what):
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{where}: {what} folder '{folder}' does not exist or is not a folder")
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _count_values(masks):
    """Raw value -> pixel count over a list of integer masks."""
    counts = {}
    for m in masks:
        values, n = np.unique(m, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist()):
            counts[v] = counts.get(v, 0) + c
    return counts


class SegmentationData:
    """A list of ``(image, mask)`` samples with names, ready for training.

    Attributes: ``images`` (float32 ``(C, H, W)`` each), ``masks`` (int64 ``(H, W)`` each, class
    indices), ``names``, ``num_classes``, ``in_channels``, ``mask_values`` (raw value -> pixel
    count over all masks) and ``mapping`` (raw value -> class). Samples may differ in size.
    """

    def __init__(self, images, masks, names, num_classes=None, mask_values=None, mapping=None,
                 mapping_source="given"):
        if not (len(images) == len(masks) == len(names)):
            raise DataError(f"SegmentationData: got {len(images)} images, {len(masks)} masks and "
                            f"{len(names)} names; expected equal counts")
        if len(images) == 0:
            raise DataError("SegmentationData: no samples")
        channels = {int(np.shape(img)[0]) for img in images}
        for img, msk, name in zip(images, masks, names):
            if np.ndim(img) != 3 or np.ndim(msk) != 2 or np.shape(img)[1:] != np.shape(msk):
                raise DataError(f"SegmentationData: sample '{name}': image {np.shape(img)} and "
                                f"mask {np.shape(msk)} do not match; expected (C, H, W) and (H, W)")
        if len(channels) > 1:
            raise DataError(f"SegmentationData: images have different channel counts "
                            f"{sorted(channels)}; convert them all to grayscale or all to RGB")
        self.images = [np.asarray(img, dtype=np.float32) for img in images]
        self.masks = [np.asarray(msk, dtype=np.int64) for msk in masks]
        self.names = list(names)
        max_class = max(int(m.max()) for m in self.masks)
        if num_classes is None:
            num_classes = max(max_class + 1, 2)
        if max_class >= num_classes or min(int(m.min()) for m in self.masks) < 0:
            raise DataError(f"SegmentationData: mask classes must be in 0..{num_classes - 1}, "
                            f"found up to {max_class}")
        self.num_classes = int(num_classes)
        self.in_channels = channels.pop()
        if mask_values is None:   # masks are their own raw values
            mask_values = _count_values(self.masks)
        self.mask_values = dict(mask_values)
        self.mapping = dict(mapping) if mapping is not None else {
            k: k for k in range(self.num_classes)}
        self.mapping_source = mapping_source
        self._raw_counts = None   # per-sample raw value counts, when loaded from files

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_folders(cls, image_dir, mask_dir, mask_map=None):
        """Load pairs from two folders, matching an image to the mask with the same file stem.

        ``mask_map``: ``None`` (automatic, see :func:`auto_mask_map`), a dict or a string like
        ``"0:1,255:0"``. A multi-page image needs a mask file with the same number of pages;
        its samples are named ``<stem>_<page>``. Masks without an image are ignored.
        """
        where = "SegmentationData.from_folders"
        if isinstance(mask_map, str):
            mask_map = parse_mask_map(mask_map)
        image_files = _list_image_files(where, image_dir, "image")
        mask_files = _list_image_files(where, mask_dir, "mask")
        if not image_files:
            raise DataError(f"{where}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in "
                            f"'{image_dir}'")
        masks_by_stem = {}
        for path in mask_files:
            if path.stem in masks_by_stem:
                raise DataError(f"{where}: two masks with stem '{path.stem}': "
                                f"'{masks_by_stem[path.stem]}' and '{path}'")
            masks_by_stem[path.stem] = path
        # Check every pair exists before reading any pixels.
        for path in image_files:
            if path.stem not in masks_by_stem:
                raise DataError(f"{where}: no mask for image '{path}': expected a file named "
                                f"'{path.stem}' + one of {', '.join(IMAGE_EXTENSIONS)} in "
                                f"'{mask_dir}'")

        images, raw_masks, names, sources = [], [], [], []
        for path in image_files:
            mask_path = masks_by_stem[path.stem]
            img_pages = load_images(path)
            msk_pages = load_masks(mask_path)
            if len(img_pages) != len(msk_pages):
                raise DataError(f"{where}: '{path}' has {len(img_pages)} pages but its mask "
                                f"'{mask_path}' has {len(msk_pages)}")
            stack = len(img_pages) > 1
            for page, (img, msk) in enumerate(zip(img_pages, msk_pages)):
                if img.shape[1:] != msk.shape:
                    raise DataError(f"{where}: image '{path}' is {img.shape[1]}x{img.shape[2]} "
                                    f"but mask '{mask_path}' is {msk.shape[0]}x{msk.shape[1]}"
                                    + (f" (page {page})" if stack else ""))
                images.append(img)
                raw_masks.append(msk)
                names.append(f"{path.stem}_{page:03d}" if stack else path.stem)
                sources.append(f"{mask_path} (page {page})" if stack else str(mask_path))

        channels = {img.shape[0] for img in images}
        if len(channels) > 1:
            gray = next(n for n, img in zip(names, images) if img.shape[0] == 1)
            rgb = next(n for n, img in zip(names, images) if img.shape[0] == 3)
            raise DataError(f"{where}: '{image_dir}' mixes grayscale ('{gray}') and colour "
                            f"('{rgb}') images; convert them all to one kind")
        raw_counts = [_count_values([m]) for m in raw_masks]
        mask_values = _count_values(raw_masks)
        source = "given"
        if mask_map is None:
            mask_map = auto_mask_map(mask_values)
            source = "automatic"
        masks = [apply_mask_map(m, mask_map, src) for m, src in zip(raw_masks, sources)]
        num_classes = max(max(mask_map.values()) + 1, 2)
        data = cls(images, masks, names, num_classes=num_classes, mask_values=mask_values,
                   mapping=mask_map, mapping_source=source)
        data._raw_counts = raw_counts
        return data

    @classmethod
    def synthetic(cls, n, size=(128, 128), seed=0, kind="cells"):
        """``n`` synthetic samples: membrane/cell images from :func:`unet.synthetic.make_cells`
        (``kind="cells"``, 2 classes) or RGB object/background/boundary trimaps from
        :func:`unet.synthetic.make_trimap` (``kind="trimaps"``, 3 classes).

        The same ``(n, size, seed, kind)`` always gives the same data (and the same as
        :func:`unet.synthetic.write_synthetic_folder` / ``write_trimap_folder``, up to the
        8-bit rounding of the PNGs).
        """
        from .synthetic import make_cells, make_trimap
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise DataError(f"SegmentationData.synthetic: n must be a positive int, got {n!r}")
        if kind not in ("cells", "trimaps"):
            raise DataError(f"SegmentationData.synthetic: kind must be 'cells' or 'trimaps', got {kind!r}")
        rng = np.random.default_rng(seed)
        make = make_cells if kind == "cells" else make_trimap
        pairs = [make(size, rng) for _ in range(n)]
        width = max(3, len(str(n - 1)))
        names = [f"{i:0{width}d}" for i in range(n)]
        if kind == "trimaps":
            return cls([p[0] for p in pairs], [p[1] for p in pairs], names, num_classes=3,
                       mapping={0: 0, 1: 1, 2: 2},
                       mapping_source="synthetic trimaps: 0 = object, 1 = background, 2 = boundary")
        return cls([p[0] for p in pairs], [p[1] for p in pairs], names, num_classes=2,
                   mapping={0: 0, 1: 1}, mapping_source="synthetic: 0 = membrane, 1 = cell")

    # ------------------------------------------------------------------ access
    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.masks[index]

    def subset(self, indices):
        """A new :class:`SegmentationData` with the samples at ``indices`` (arrays shared)."""
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not -len(self) <= i < len(self)]
        if bad:
            raise DataError(f"SegmentationData.subset: indices {bad} out of range for "
                            f"{len(self)} samples")
        if self._raw_counts is not None:
            counts = {}
            for i in indices:
                for value, count in self._raw_counts[i].items():
                    counts[value] = counts.get(value, 0) + count
        else:
            counts = _count_values([self.masks[i] for i in indices])
        data = SegmentationData([self.images[i] for i in indices],
                                [self.masks[i] for i in indices],
                                [self.names[i] for i in indices],
                                num_classes=self.num_classes, mask_values=counts,
                                mapping=self.mapping, mapping_source=self.mapping_source)
        if self._raw_counts is not None:
            data._raw_counts = [self._raw_counts[i] for i in indices]
        return data

    def class_fractions(self):
        """Fraction of all mask pixels in each class, float64 ``(num_classes,)``."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for m in self.masks:
            counts += np.bincount(m.ravel(), minlength=self.num_classes)[:self.num_classes]
        return counts / max(int(counts.sum()), 1)

    def report(self):
        """A human-readable summary: sizes, raw values found, the mapping, class fractions."""
        total = sum(self.mask_values.values())
        sizes = sorted({img.shape[1:] for img in self.images})
        size_text = ", ".join(f"{h}x{w}" for h, w in sizes[:5]) + (" ..." if len(sizes) > 5 else "")
        values = ", ".join(f"{v}: {c} ({100.0 * c / total:.1f}%)"
                           for v, c in sorted(self.mask_values.items()))
        fractions = ", ".join(f"class {k}: {100.0 * f:.1f}%"
                              for k, f in enumerate(self.class_fractions()))
        kind = {1: "grayscale", 3: "RGB"}.get(self.in_channels, f"{self.in_channels}-channel")
        return "\n".join([
            f"{len(self)} sample{'s' if len(self) != 1 else ''}, {kind}, sizes {size_text}, "
            f"{self.num_classes} classes",
            f"mask values found (value: pixels): {values}",
            f"mapping ({self.mapping_source}): "
            + ", ".join(f"{k} -> {v}" for k, v in sorted(self.mapping.items())),
            f"class pixel fractions: {fractions}",
        ])

    def __repr__(self):
        return (f"SegmentationData({len(self)} samples, in_channels={self.in_channels}, "
                f"num_classes={self.num_classes})")
