"""Synthetic membrane/cell images: the default data of the demo and the tests (no download).

Each sample imitates an electron-microscopy slice such as ISBI 2012: cells that touch each other,
separated by thin dark membranes. How one sample is made (``make_cells``):

1. Cells: a Voronoi tessellation. Seeds sit on a jittered square grid (spacing 22-26 px, so a
   cell covers about 575 px), every pixel takes the label of its nearest seed (one Euclidean
   distance transform with ``return_indices``). The label map is then bent by a smooth random
   displacement (two sine waves) so that membranes are curved, not straight polygon edges.
2. Membranes: pixels where the label changes (a 1 px line), widened by one pixel on each side
   (a dilation with the 4-neighbour cross): 3 px, up to 4 px where the bent line is jagged.
   This gives a membrane fraction of 20-26%, mean about 23.5% (ISBI: about 22%).
3. Intensities: cell interiors bright (0.55-0.85, one value per cell) with a fine texture
   (smoothed noise) and a few faint dark vesicles; membranes dark (0.10-0.30). Then a Gaussian
   blur, an uneven illumination (a slow plane wave multiplying the image), pixel noise, and a
   clip to [0, 1].

The mask is 1 for cell interior and 0 for membrane (the ISBI convention after the automatic
mapping 0 -> 0, 255 -> 1). A 128 x 128 sample takes a few milliseconds.
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

__all__ = ["make_cells", "write_synthetic_folder", "make_trimap", "write_trimap_folder"]


def _check_size(where, size):
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s >= 8 for s in size)):
        raise ValueError(f"{where}: size must be (H, W) with ints >= 8, got {size!r}")
    return int(size[0]), int(size[1])


def _voronoi_labels(height, width, spacing, rng):
    """Labels 1..n of the nearest seed for a (height, width) grid; seeds on a jittered grid.

    The grid extends one spacing beyond the image on every side, so cells at the border are
    cut by the image edge like real ones instead of being stretched.
    """
    pad = int(np.ceil(spacing))
    ph, pw = height + 2 * pad, width + 2 * pad
    ys = np.arange(spacing / 2, ph, spacing)
    xs = np.arange(spacing / 2, pw, spacing)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    jitter = 0.35 * spacing
    sy = np.clip(np.round(gy + rng.uniform(-jitter, jitter, gy.shape)), 0, ph - 1).astype(int)
    sx = np.clip(np.round(gx + rng.uniform(-jitter, jitter, gx.shape)), 0, pw - 1).astype(int)
    ids = np.zeros((ph, pw), dtype=np.int32)
    ids[sy.ravel(), sx.ravel()] = np.arange(1, sy.size + 1)
    # indices[:, y, x] = position of the nearest seed (the nearest zero of `ids == 0`).
    indices = ndimage.distance_transform_edt(ids == 0, return_distances=False,
                                             return_indices=True)       # (2, ph, pw)
    labels = ids[indices[0], indices[1]]                                 # (ph, pw)

    # Bend the tessellation: sample it at smoothly displaced coordinates (nearest neighbour).
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    amp = rng.uniform(1.0, 2.5, 2)
    wave = rng.uniform(25.0, 50.0, 2)
    phase = rng.uniform(0, 2 * np.pi, 2)
    dy = amp[0] * np.sin(2 * np.pi * xx / wave[0] + phase[0])
    dx = amp[1] * np.sin(2 * np.pi * yy / wave[1] + phase[1])
    return ndimage.map_coordinates(labels, [yy + pad + dy, xx + pad + dx], order=0,
                                   mode="nearest")                       # (height, width)


def make_cells(size=(128, 128), rng=None):
    """One synthetic sample: ``(image (1, H, W) float32 in [0, 1], mask (H, W) int64)``.

    ``mask`` is 1 on cell interiors and 0 on membranes. ``rng`` (a ``numpy.random.Generator``)
    makes it reproducible: the same generator state gives the same sample.
    """
    height, width = _check_size("make_cells", size)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"make_cells: rng must be a numpy.random.Generator, "
                        f"got {type(rng).__name__}")

    labels = _voronoi_labels(height, width, rng.uniform(22.0, 26.0), rng)

    # Membrane = the 1-px line where the label changes, plus its 4 neighbours (3 px thick).
    edge = np.zeros((height, width), dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    membrane = ndimage.binary_dilation(edge, structure=ndimage.generate_binary_structure(2, 1))
    mask = (~membrane).astype(np.int64)

    # Cell interiors: one brightness per cell plus fine texture and a few faint dark vesicles.
    cell_level = rng.uniform(0.55, 0.85, labels.max() + 1)
    image = cell_level[labels]
    texture = ndimage.gaussian_filter(rng.standard_normal((height, width)), 1.5)
    image += 0.05 / 0.19 * texture      # filtered unit noise has std ~0.19 at sigma 1.5
    n_vesicles = rng.poisson(height * width / 1500)
    spots = np.zeros((height, width))
    spots[rng.integers(0, height, n_vesicles), rng.integers(0, width, n_vesicles)] = 1.0
    spots = ndimage.gaussian_filter(spots, 1.5) * (2 * np.pi * 1.5 ** 2)  # peak ~1 per spot
    image -= 0.2 * np.minimum(spots, 1.0)

    # Membranes: dark.
    image[membrane] = rng.uniform(0.10, 0.30)

    # Imaging: blur, uneven illumination, noise.
    image = ndimage.gaussian_filter(image, rng.uniform(0.6, 1.1))
    yy, xx = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, 2 * np.pi)
    period = rng.uniform(1.5, 3.0) * max(height, width)
    along = (yy * np.sin(angle) + xx * np.cos(angle)) / period
    image *= 1.0 + rng.uniform(0.1, 0.25) * np.sin(2 * np.pi * along + rng.uniform(0, 2 * np.pi))
    image += rng.normal(0.0, rng.uniform(0.02, 0.05), (height, width))
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    return image[None], mask                                             # (1, H, W), (H, W)


def write_synthetic_folder(folder, n, size=(128, 128), seed=0):
    """Write ``n`` samples as ``folder/images/NNN.png`` (8-bit gray) and ``folder/masks/NNN.png``
    (0 = membrane, 255 = cell). Same samples as ``SegmentationData.synthetic(n, size, seed)``.

    Returns the folder as a ``Path``.
    """
    _check_size("write_synthetic_folder", size)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"write_synthetic_folder: n must be a positive int, got {n!r}")
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width = max(3, len(str(n - 1)))
    for i in range(n):
        image, mask = make_cells(size, rng)
        name = f"{i:0{width}d}.png"
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(folder / "images" / name)
        Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "masks" / name)
    return folder


# ----------------------------------------------------------------------------- trimaps
# 3-class trimaps as in the Oxford-IIIT Pets data set that the FCN article trains on. The pets
# trimap files label 1 = pet, 2 = background, 3 = border ("not classified"); minus one, those
# are our classes (``--mask-map 1:0,2:1,3:2`` reads the real files).
TRIMAP_OBJECT, TRIMAP_BACKGROUND, TRIMAP_BOUNDARY = 0, 1, 2


def _disk(radius):
    """A boolean disk of the given radius: the structuring element of the boundary band."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return yy * yy + xx * xx <= radius * radius


def _object_shape(height, width, rng):
    """One object as a boolean (H, W) mask: an ellipse, a blob or a polygon, at a random place,
    its radius 12-30% of the image's smaller side so that the erosion leaves an interior."""
    kind = rng.choice(["ellipse", "blob", "polygon"])
    short = min(height, width)
    cy, cx = rng.uniform(0.15, 0.85) * height, rng.uniform(0.15, 0.85) * width
    radius = rng.uniform(0.12, 0.3) * short
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    angle = np.arctan2(dy, dx)                                           # (H, W)
    if kind == "ellipse":
        ratio, theta = rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        return (u / radius) ** 2 + (v / (radius * ratio)) ** 2 <= 1.0
    if kind == "blob":                          # r(angle) = radius * (1 + sum_k a_k cos(k angle + phase_k))
        ks = np.arange(2, 6)
        amp = rng.uniform(0.0, 0.12, ks.size)
        phase = rng.uniform(0, 2 * np.pi, ks.size)
        edge = radius * (1 + np.sum(amp[:, None, None] * np.cos(ks[:, None, None] * angle + phase[:, None, None]),
                                    axis=0))                             # (H, W)
        return np.hypot(dy, dx) <= edge
    n = int(rng.integers(3, 9))                 # a star-shaped polygon with 3..8 corners
    corners = np.sort(rng.uniform(0, 2 * np.pi, n))
    lengths = radius * rng.uniform(0.8, 1.3, n)
    points = [(cx + r * np.cos(a), cy + r * np.sin(a)) for r, a in zip(lengths, corners)]
    canvas = Image.new("1", (width, height), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=1)
    return np.asarray(canvas, dtype=bool)


def _texture(height, width, rng):
    """Smoothed noise of unit-ish amplitude at a random scale, (H, W)."""
    noise = ndimage.gaussian_filter(rng.standard_normal((height, width)), rng.uniform(0.8, 3.0))
    return noise / max(noise.std(), 1e-12)


def make_trimap(size=(128, 128), rng=None, border=2):
    """One synthetic pets-like sample: ``(image (3, H, W) float32 in [0, 1], mask (H, W) int64)``.

    ``mask``: 0 = object, 1 = background, 2 = boundary (the Oxford-IIIT Pets trimap labels
    1/2/3 minus one). One to three objects (ellipses, wobbly blobs, star-shaped polygons;
    they may overlap and leave the image) on a textured background; the boundary class is the
    band ``dilation(objects) & ~erosion(objects)`` with a disk of radius ``border``
    (``scipy.ndimage``). So the band is about ``2*border + 1`` pixels wide (wider where objects
    meet or where a thin part is eroded away) and object and background pixels are more
    than ``2*border - 1`` apart.

    The image: a background colour with a texture (smoothed noise and a stripe pattern), the
    objects in another colour (at least 0.3 away in RGB) with their own finer texture, a slight
    blur, uneven illumination and pixel noise. ``rng`` (a ``numpy.random.Generator``) makes it
    reproducible.
    """
    height, width = _check_size("make_trimap", size)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"make_trimap: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    largest = max(1, min(height, width) // 16)
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or not 1 <= border <= largest:
        raise ValueError(f"make_trimap: border must be an int in [1, max(1, min(H, W) // 16) = {largest}], "
                         f"got border={border!r}")

    objects = np.zeros((height, width), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        objects |= _object_shape(height, width, rng)
    disk = _disk(int(border))
    inner = ndimage.binary_erosion(objects, structure=disk, border_value=1)
    outer = ndimage.binary_dilation(objects, structure=disk)
    mask = np.full((height, width), TRIMAP_BACKGROUND, dtype=np.int64)
    mask[outer] = TRIMAP_BOUNDARY
    mask[inner] = TRIMAP_OBJECT

    # Colours: background and object at least 0.3 apart (Euclidean, RGB in [0, 1]).
    back = rng.uniform(0.15, 0.85, 3)
    while True:
        front = rng.uniform(0.1, 0.9, 3)
        if np.linalg.norm(front - back) >= 0.3:
            break
    yy, xx = np.mgrid[0:height, 0:width]
    stripe_angle, stripe_period = rng.uniform(0, np.pi), rng.uniform(6.0, 20.0)
    stripes = np.sin(2 * np.pi * (yy * np.sin(stripe_angle) + xx * np.cos(stripe_angle)) / stripe_period)
    background = back[:, None, None] + 0.06 * _texture(height, width, rng) + 0.04 * stripes     # (3, H, W)
    fur = 0.07 * ndimage.gaussian_filter(rng.standard_normal((3, height, width)), (0, 0.7, 0.7)) / 0.2
    foreground = front[:, None, None] + fur                                                    # (3, H, W)
    image = np.where(objects[None], foreground, background)                                    # (3, H, W)

    image = ndimage.gaussian_filter(image, (0, rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.9)))
    angle = rng.uniform(0, 2 * np.pi)
    along = (yy * np.sin(angle) + xx * np.cos(angle)) / (rng.uniform(1.5, 3.0) * max(height, width))
    image *= 1.0 + rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * along + rng.uniform(0, 2 * np.pi))
    image += rng.normal(0.0, rng.uniform(0.01, 0.04), image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask                                  # (3, H, W), (H, W)


def write_trimap_folder(folder, n, size=(128, 128), seed=0, border=2):
    """Write ``n`` trimap samples as ``folder/images/NNN.png`` (8-bit RGB) and
    ``folder/masks/NNN.png`` (8-bit gray with the classes 0 = object, 1 = background,
    2 = boundary, which the automatic mask mapping reads as they are). Returns the folder."""
    _check_size("write_trimap_folder", size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"write_trimap_folder: n must be a positive int, got {n!r}")
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    digits = max(3, len(str(n - 1)))
    for i in range(n):
        image, mask = make_trimap(size, rng, border)
        name = f"{i:0{digits}d}.png"
        rgb = np.round(image.transpose(1, 2, 0) * 255).astype(np.uint8)          # (H, W, 3)
        Image.fromarray(rgb, mode="RGB").save(folder / "images" / name)
        Image.fromarray(mask.astype(np.uint8)).save(folder / "masks" / name)
    return folder
