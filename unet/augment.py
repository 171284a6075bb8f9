"""Data augmentation that moves image, mask and weight map together.

``Augmenter(...)(image, mask, weight, rng=rng)`` applies, in this order:

1. a random crop window (``crop_size``), and inside it the paper's **elastic deformation**:
   random displacement vectors on a coarse ``elastic_grid x elastic_grid`` grid (3 x 3 in the
   paper), each component drawn from N(0, ``elastic_sigma``^2) with ``elastic_sigma`` = 10 px,
   interpolated to every pixel with a cubic spline (the paper's "bicubic interpolation"). Output
   pixel ``p`` of the window takes the input value at ``origin + p + d(p)``: with
   ``scipy.ndimage.map_coordinates``, order 0 (nearest neighbour) for the mask so labels stay
   labels, order 1 (bilinear) for the image and the weight map, and ``mode='mirror'`` so that
   points displaced outside the image read its mirror image (as the overlap-tile prediction
   does). Sampling the full image at the window's coordinates means a crop near the middle
   sees real neighbouring pixels, and only the window's pixels are computed;
2. random horizontal and vertical flips (probability 1/2 each);
3. a random rotation by k * 90 degrees (k in 0..3; only 0 or 180 degrees when the output is not
   square, so that every sample of a batch keeps the same shape);
4. intensity jitter on the image only: ``(x - mean) * (1 + c) + mean + b`` with c, b uniform in
   [-jitter, jitter], clipped to [0, 1].

All random numbers come from the ``rng`` argument (a ``numpy.random.Generator``), so the same
seed gives the same result. Steps 1-3 use the same coordinates for image, mask and weight.
"""
import numbers

import numpy as np
from scipy import ndimage

__all__ = ["Augmenter", "elastic_displacement"]


def elastic_displacement(shape, rng, sigma=10.0, grid=3):
    """A smooth random displacement field ``(2, H, W)`` float64 (row shift, column shift).

    ``grid x grid`` vectors with components from N(0, sigma^2) are placed evenly over the image
    (corners included) and interpolated with a cubic spline to every pixel.
    """
    height, width = shape
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))                  # (2, g, g)
    # Pixel (y, x) sits at position (y, x) * (g - 1) / (size - 1) on the coarse grid.
    cy = np.linspace(0.0, grid - 1, height)
    cx = np.linspace(0.0, grid - 1, width)
    gy, gx = np.meshgrid(cy, cx, indexing="ij")                             # (H, W) each
    return np.stack([ndimage.map_coordinates(coarse[i], [gy, gx], order=3, mode="nearest")
                     for i in range(2)])                                    # (2, H, W)


def _pair(where, name, value):
    """None, an int or an (h, w) pair -> None or (h, w)."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in value)):
        raise ValueError(f"{where}: {name} must be None, a positive int or (h, w), got {value!r}")
    return int(value[0]), int(value[1])


class Augmenter:
    """Random geometric and intensity augmentation (see the module docstring for the steps).

    Args:
        flip: random horizontal and vertical flips.
        rot90: random rotations by multiples of 90 degrees.
        crop_size: None (keep the size), an int or (h, w): a random window of that size.
        jitter: brightness/contrast jitter amplitude (0 turns it off).
        elastic: the paper's elastic deformation.
        elastic_sigma: standard deviation of the coarse displacement vectors, in pixels.
        elastic_grid: size of the coarse grid of displacement vectors.
    """

    def __init__(self, flip=True, rot90=True, crop_size=None, jitter=0.1, elastic=True,
                 elastic_sigma=10.0, elastic_grid=3):
        self.crop_size = _pair("Augmenter", "crop_size", crop_size)
        if not (isinstance(jitter, numbers.Real) and 0 <= jitter < 1):
            raise ValueError(f"Augmenter: jitter must be a number in [0, 1), got {jitter!r}")
        if not (isinstance(elastic_sigma, numbers.Real) and elastic_sigma >= 0):
            raise ValueError(f"Augmenter: elastic_sigma must be >= 0, got {elastic_sigma!r}")
        if not (isinstance(elastic_grid, (int, np.integer)) and elastic_grid >= 2):
            raise ValueError(f"Augmenter: elastic_grid must be an int >= 2, got {elastic_grid!r}")
        self.flip = bool(flip)
        self.rot90 = bool(rot90)
        self.jitter = float(jitter)
        self.elastic = bool(elastic)
        self.elastic_sigma = float(elastic_sigma)
        self.elastic_grid = int(elastic_grid)

    def __repr__(self):
        return (f"Augmenter(flip={self.flip}, rot90={self.rot90}, crop_size={self.crop_size}, "
                f"jitter={self.jitter}, elastic={self.elastic}, "
                f"elastic_sigma={self.elastic_sigma}, elastic_grid={self.elastic_grid})")

    def _check(self, image, mask, weight, rng):
        where = "Augmenter"
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{where}: rng must be a numpy.random.Generator, got "
                            f"{type(rng).__name__}")
        image, mask = np.asarray(image), np.asarray(mask)
        if image.ndim != 3:
            raise ValueError(f"{where}: image must be (C, H, W), got shape {image.shape}")
        if mask.shape != image.shape[1:]:
            raise ValueError(f"{where}: mask must be (H, W) = {image.shape[1:]}, got {mask.shape}")
        if weight is not None and np.shape(weight) != image.shape[1:]:
            raise ValueError(f"{where}: weight must be (H, W) = {image.shape[1:]}, got "
                             f"{np.shape(weight)}")
        if self.crop_size is not None and (self.crop_size[0] > image.shape[1]
                                           or self.crop_size[1] > image.shape[2]):
            raise ValueError(f"{where}: crop_size {self.crop_size} is larger than the image "
                             f"{image.shape[1:]}")

    def __call__(self, image, mask, weight=None, rng=None):
        """Augment one sample: ``image (C, H, W)``, ``mask (H, W)``, ``weight (H, W)`` or None.

        Returns ``(image float32 (C, h, w), mask int64 (h, w), weight float32 (h, w) or None)``.
        """
        self._check(image, mask, weight, rng)
        image = np.asarray(image, dtype=np.float32)
        mask = np.asarray(mask, dtype=np.int64)
        weight = None if weight is None else np.asarray(weight, dtype=np.float32)
        height, width = mask.shape
        out_h, out_w = self.crop_size or (height, width)

        # 1. crop window + elastic deformation.
        y0 = int(rng.integers(0, height - out_h + 1))
        x0 = int(rng.integers(0, width - out_w + 1))
        if self.elastic and self.elastic_sigma > 0:
            disp = elastic_displacement((out_h, out_w), rng, self.elastic_sigma,
                                        self.elastic_grid)                    # (2, h, w)
            yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float64)
            coords = np.stack([yy + y0 + disp[0], xx + x0 + disp[1]])          # (2, h, w)
            image = np.stack([ndimage.map_coordinates(channel, coords, order=1, mode="mirror")
                              for channel in image])
            mask = ndimage.map_coordinates(mask, coords, order=0, mode="mirror")
            if weight is not None:
                weight = ndimage.map_coordinates(weight, coords, order=1, mode="mirror")
        else:
            image = image[:, y0:y0 + out_h, x0:x0 + out_w]
            mask = mask[y0:y0 + out_h, x0:x0 + out_w]
            if weight is not None:
                weight = weight[y0:y0 + out_h, x0:x0 + out_w]

        # 2.-3. flips and 90-degree rotations (views; made contiguous at the end).
        axes = []
        if self.flip:
            axes = [axis for axis in (-2, -1) if rng.random() < 0.5]
        k = 0
        if self.rot90:
            k = int(rng.integers(0, 4)) if out_h == out_w else 2 * int(rng.integers(0, 2))

        def move(a):
            return np.rot90(np.flip(a, axes) if axes else a, k, axes=(-2, -1))

        image, mask = move(image), move(mask)
        if weight is not None:
            weight = move(weight)

        # 4. intensity jitter (image only).
        if self.jitter > 0:
            contrast = 1.0 + rng.uniform(-self.jitter, self.jitter)
            brightness = rng.uniform(-self.jitter, self.jitter)
            mean = image.mean()
            image = np.clip((image - mean) * contrast + mean + brightness, 0.0, 1.0)

        image = np.ascontiguousarray(image, dtype=np.float32)
        mask = np.ascontiguousarray(mask, dtype=np.int64)
        if weight is not None:
            weight = np.ascontiguousarray(weight, dtype=np.float32)
        return image, mask, weight

    def skip(self, shape, rng):
        """Draw from ``rng`` exactly what :meth:`__call__` draws for an image of ``shape``
        (``(C, H, W)``), without making the sample: ``rng`` is left where the call would leave
        it. A rank of ``mpiexec -n N unet train`` skips the samples of the other ranks' shares
        this way, so that each sample is still augmented with its one-process draws.
        Keep it in step with :meth:`__call__` (tests/unet/test_augment_skip.py checks it)."""
        height, width = shape[-2:]
        out_h, out_w = self.crop_size or (height, width)
        rng.integers(0, height - out_h + 1)                                   # y0
        rng.integers(0, width - out_w + 1)                                    # x0
        if self.elastic and self.elastic_sigma > 0:                           # elastic_displacement
            rng.normal(0.0, self.elastic_sigma, size=(2, self.elastic_grid, self.elastic_grid))
        if self.flip:
            rng.random(), rng.random()                                        # both axes
        if self.rot90:
            rng.integers(0, 4) if out_h == out_w else rng.integers(0, 2)
        if self.jitter > 0:
            rng.uniform(-self.jitter, self.jitter), rng.uniform(-self.jitter, self.jitter)
