r"""Prediction on images of any size: the U-Net paper's overlap-tile strategy (Ronneberger et al.
2015, Fig. 2), and PNG output of probabilities, label masks and overlays.

Two kinds of network, two tilings (docs/prediction.md draws both):

valid padding (the paper): an input tile of t pixels gives o = t - 2m output pixels, the
    centre of the tile; m is the "context margin" (92 for the paper's 572 -> 388). The image
    is mirror-padded by m on every side (``np.pad(mode="reflect")``) plus a little more at
    the bottom/right, and cut into input tiles whose outputs lie side by side over the image.

same padding (padded U-Net, FCN): the output has the size of the input, but the pixels near
    a tile's edge see the network's zero padding instead of the image. A tile is therefore
    trusted only at least m pixels away from its inner edges, m >= the receptive-field radius
    (:func:`context_and_stride`); at the image's own edges the zero padding is the same as in
    a pass over the whole image, so those pixels are kept.

Both tilings move from tile to tile by a multiple of the network's total pooling stride u
(2**(depth-1) for a U-Net, 32 for FCN): max-pooling is only shift-equivariant for such
shifts, and with them every tile computes exactly what one pass over the whole (padded)
image would (:func:`predict_whole`), so the tile size is only a memory/speed setting. For
a U-Net with ``up_mode="bilinear"`` (``align_corners=True``) this equality does not hold: the
up-sampling grid depends on the tile size, so tiles differ slightly from one big pass.
"""
import contextlib
import math
import os
from typing import NamedTuple

import numpy as np
from PIL import Image

import minidl
import minidl.functional as F
import minidl.nn as nn

from .fcn import FCN
from .models import UNet

__all__ = ["predict_probabilities", "predict_whole", "save_prediction", "context_and_stride",
           "check_tile_size", "class_colours", "DEFAULT_TILE"]

DEFAULT_TILE = 572          # the paper's input tile; the default upper bound of a tile's side
MIRROR_MODE = "reflect"     # d c b | a b c d | c b a: the edge pixel is the mirror axis


# ============================================================================ geometry
def _first(value):
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


def context_and_stride(model):
    r"""(radius r, stride u) of a same-padding network, in input pixels, from its layers.

    u: the product of the strides of the pooling/strided layers on the way down, the largest
    scale any feature map has (U-Net: 2**(depth-1), FCN: 32).

    r: an upper bound on how far an output pixel "sees": the layers are walked in the order
    they were registered (the down path, then the up path) and each adds its FULL window
    width at its scale, twice what a symmetric radius would need, so r is safe without
    tracking which side a window leans to:
        conv / max-pool, kernel K, dilation D, at scale q:  + D (K - 1) q, then q *= stride
        transposed conv, kernel K, stride S:  + ceil(K / S) q (input pixels it mixes), q /= S
        Upsample x f:  + 2 q (the two neighbours it interpolates), q /= f
    Skip connections and side branches (FCN's score_pool3/4, a ResNet block's ``downsample``
    shortcut, which is skipped) see less than the main path, which passes every layer, so
    they stay inside the bound.
    """
    scale, radius, stride = 1.0, 0.0, 1.0
    for name, layer in model.named_modules():
        if "downsample" in name.split("."):  # a residual block's shortcut: a side branch
            continue
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            dilation = _first(getattr(layer, "dilation", 1))
            radius += dilation * (_first(layer.kernel_size) - 1) * scale
            scale *= _first(layer.stride or layer.kernel_size)
        elif isinstance(layer, nn.ConvTranspose2d):
            step = _first(layer.stride)
            radius += math.ceil(_first(layer.kernel_size) / step) * scale
            scale /= step
        elif isinstance(layer, nn.Upsample):
            radius += 2 * scale
            scale /= _first(layer.scale_factor)
        stride = max(stride, scale)
    return int(math.ceil(radius)), int(stride)


def _round_up(n, multiple):
    return -(-n // multiple) * multiple


class _Geometry:
    """What tiling needs to know about a model, for one spatial dimension at a time.

    ``valid``: output smaller than input (valid U-Net); then ``margin`` is its context margin
    m = (t - o) / 2. Otherwise ``margin`` is the trusted-distance r rounded up to a multiple
    of ``stride`` u. ``accepts(n)``: the input sizes the network takes.
    """

    def __init__(self, model):
        if isinstance(model, UNet):
            self.in_channels, self.n_classes = model.in_channels, model.n_classes
            self.stride = 2 ** (model.depth - 1)
            self.valid = model.padding == "valid"
            if self.valid:
                t = model.valid_input_size(1)
                self.margin = (t - model.output_size(t)) // 2
            else:
                self.margin = _round_up(context_and_stride(model)[0], self.stride)
        elif isinstance(model, FCN):
            self.in_channels, self.n_classes = model.in_channels, model.n_classes
            radius, self.stride = context_and_stride(model)
            self.valid = False
            self.margin = _round_up(radius, self.stride)
        elif all(hasattr(model, a) for a in ("output_size", "valid_input_size", "in_channels", "n_classes")):
            # a seed model (unet/zoo.py): its own size rule gives the stride and the margin
            self.in_channels, self.n_classes = model.in_channels, class_count(model)
            t = model.valid_input_size(1)
            self.stride = model.valid_input_size(t + 1) - t
            self.valid = model.output_size(t) < t
            if self.valid:
                self.margin = (t - model.output_size(t)) // 2
            else:
                self.margin = _round_up(context_and_stride(model)[0], self.stride)
        else:
            raise TypeError(f"predict: the model must be a unet.UNet, a unet.FCN or a model of "
                            f"unet.zoo, got {type(model).__name__}")
        self.model = model

    def accepts(self, n):
        """Whether the network takes an input side of n pixels."""
        if isinstance(self.model, FCN):
            return n >= 1
        try:
            self.model.output_size(n)
            return True
        except ValueError:
            return False

    def smallest_input(self, n):
        """The smallest input side >= n that the network takes."""
        return n if isinstance(self.model, FCN) else self.model.valid_input_size(n)


# ============================================================================ tiling plans
class _Segment(NamedTuple):
    """One tile along one dimension: the tile is ``padded[in0:in1]``; rows ``src0:src1`` of
    its network output go to rows ``dst0:dst1`` of the result."""

    in0: int
    in1: int
    src0: int
    src1: int
    dst0: int
    dst1: int


def _valid_plan(size, tile, geo):
    """Valid padding: tiles every s pixels (s = o rounded down to a multiple of u); tile k reads
    padded rows [k s, k s + t) and its output covers image rows [k s, k s + o). Returns
    (pad_before, pad_after, segments); each image row is written once."""
    m = geo.margin
    out = tile - 2 * m
    step = out - out % geo.stride
    count = 1 if size <= out else 1 + math.ceil((size - out) / step)
    padded = (count - 1) * step + tile
    segments = []
    for k in range(count):
        start = k * step
        end = size if k == count - 1 else start + step       # the last tile writes the rest
        segments.append(_Segment(start, start + tile, 0, end - start, start, end))
    return m, padded - m - size, segments


def _same_plan(size, tile, geo):
    """Same padding: the image is padded at the end to a size P the network takes; tiles
    start at 0, s, 2s, ... (s = t - 2m) and the last one ends at P. A tile's output is kept
    from m past its start (0 for the first) to m before its end (P for the last)."""
    m = geo.margin
    padded = geo.smallest_input(size)
    if tile >= padded:
        return 0, padded - size, [_Segment(0, padded, 0, size, 0, size)]
    step = tile - 2 * m
    starts = [0]
    while starts[-1] + tile < padded:
        starts.append(starts[-1] + step)
    segments = []
    for k, start in enumerate(starts):
        last = k == len(starts) - 1
        end = padded if last else start + tile                # the last tile may be shorter
        keep0 = 0 if k == 0 else start + m
        keep1 = min(padded if last else end - m, size)
        segments.append(_Segment(start, end, keep0 - start, keep1 - start, keep0, keep1))
    return 0, padded - size, segments


def _check_tile(tile, geo, what):
    """An explicit tile side: one the network takes, on the pooling grid, with output left
    over between the context margins."""
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
        raise ValueError(f"predict_probabilities: tile_size must be a positive int or a pair (h, w), "
                         f"got a tile {what} of {tile!r}")
    tile = int(tile)
    if not geo.accepts(tile):
        raise ValueError(f"predict_probabilities: the network cannot take a tile {what} of {tile}; "
                         f"the next size it takes is {geo.smallest_input(tile)}")
    if not geo.valid and tile % geo.stride:
        raise ValueError(f"predict_probabilities: a tile {what} of {tile} is not a multiple of the "
                         f"network's stride {geo.stride} (tiles must start on the pooling grid)")
    need = 2 * geo.margin + geo.stride
    if tile < need:
        raise ValueError(f"predict_probabilities: a tile {what} of {tile} leaves fewer than {geo.stride} "
                         f"output pixels between the context margins of {geo.margin} pixels; use at "
                         f"least {geo.smallest_input(need)}")
    return tile


def _default_tile(size, geo):
    """The smallest tile that covers the whole side in one go, but no bigger than about
    DEFAULT_TILE (same padding: or 4 context margins, if that is bigger)."""
    smallest = geo.smallest_input(2 * geo.margin + geo.stride)   # on the grid: m, u multiples of u
    cap = max(geo.smallest_input(DEFAULT_TILE), smallest)
    if not geo.valid:
        # at least 4 margins, so at least half of every tile is kept; on the pooling grid
        cap = _round_up(max(cap, 4 * geo.margin), geo.stride)
    whole = geo.smallest_input(size + 2 * geo.margin) if geo.valid else geo.smallest_input(size)
    return max(min(whole, cap), smallest)


def _plan(size, tile, geo, what):
    tile = _default_tile(size, geo) if tile is None else _check_tile(tile, geo, what)
    return (_valid_plan if geo.valid else _same_plan)(size, tile, geo)


# ============================================================================ running the net
def _check_image(where, model, geo, image):
    if isinstance(image, minidl.Tensor):
        image = image.detach().numpy()
    image = np.asarray(image)
    if image.ndim == 2:                                       # (H, W): one channel
        image = image[None]
    if image.ndim != 3 or image.shape[0] != geo.in_channels:
        raise ValueError(f"{where}: expected an image of shape ({geo.in_channels}, H, W) for "
                         f"{type(model).__name__}(in_channels={geo.in_channels}), got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"{where}: expected a float image normalised to [0, 1], got dtype {image.dtype}")
    return image


def _device_and_dtype(model):
    param = next(iter(model.parameters()), None)
    return ("cpu", minidl.float32) if param is None else (param.device, param.dtype)


def class_count(model):
    """Classes a model's output stands for: one logit channel is two classes (1 - p, p)."""
    return 2 if model.n_classes == 1 else model.n_classes


def _probabilities(model, batch):
    """softmax(model(batch)) over the classes: (N, C, h, w) numpy -> (N, K, oh, ow) float32.
    A one-channel model (a logit s of class 1): the two classes' (1 - sigmoid(s), sigmoid(s))."""
    device, dtype = _device_and_dtype(model)
    x = minidl.tensor(batch, dtype=dtype, device=device)
    scores = model(x)
    if scores.shape[1] == 1:
        p = F.sigmoid(scores)
        probs = minidl.cat([1 - p, p], dim=1)
    else:
        probs = F.softmax(scores, dim=1)
    return np.asarray(probs.to("cpu").numpy(), dtype=np.float32)


@contextlib.contextmanager
def _eval_mode(model):
    """Eval mode (Dropout off, BatchNorm running statistics) and no gradients; the previous
    training mode is restored afterwards, so a validation pass inside training is harmless."""
    was_training = model.training
    model.eval()
    try:
        with minidl.no_grad():
            yield
    finally:
        model.train(was_training)


def check_tile_size(model, tile_size):
    """Raise ValueError unless ``tile_size`` (an int, (h, w) or None) is a tile that
    :func:`predict_probabilities` can use with ``model``; the command line checks before work."""
    geo = _Geometry(model)
    for tile, what in zip(_tile_pair(tile_size), ("height", "width")):
        if tile is not None:
            _check_tile(tile, geo, what)


def _tile_pair(tile_size):
    if isinstance(tile_size, (tuple, list)):
        if len(tile_size) != 2:
            raise ValueError(f"predict_probabilities: tile_size must be an int or (h, w), got {tile_size!r}")
        return tuple(tile_size)
    return tile_size, tile_size


def predict_probabilities(model, image, tile_size=None, batch_size=4):
    r"""Class probabilities (K, H, W) float32 of an image (C, H, W) of any size, by overlap-tile.

    ``tile_size``: the network's input tile side, an int or (h, w) (the paper: 572); None (for
    both or for one side) picks the smallest tile that covers the image, at most about
    ``DEFAULT_TILE``. ``batch_size`` tiles go through the network at once. The model runs
    in eval mode under ``minidl.no_grad()``; its training mode is restored afterwards.

    The result equals :func:`predict_whole` (one pass over the padded image) up to float
    rounding, for valid- and same-padding U-Nets with ``up_mode="transpose"`` and for FCN.
    """
    geo = _Geometry(model)
    image = _check_image("predict_probabilities", model, geo, image)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"predict_probabilities: batch_size must be a positive int, got {batch_size!r}")
    tile_h, tile_w = _tile_pair(tile_size)
    _, H, W = image.shape
    top, bottom, rows = _plan(H, tile_h, geo, "height")
    left, right, cols = _plan(W, tile_w, geo, "width")
    padded = np.pad(image, ((0, 0), (top, bottom), (left, right)), mode=MIRROR_MODE)

    # group the tiles by shape (the last row/column of same-padding tiles may be smaller)
    groups = {}
    for row in rows:
        for col in cols:
            groups.setdefault((row.in1 - row.in0, col.in1 - col.in0), []).append((row, col))

    result = np.empty((geo.n_classes, H, W), dtype=np.float32)
    with _eval_mode(model):
        for tiles in groups.values():
            for i in range(0, len(tiles), batch_size):
                chunk = tiles[i:i + batch_size]
                batch = np.stack([padded[:, r.in0:r.in1, c.in0:c.in1] for r, c in chunk])  # (n, C, th, tw)
                probs = _probabilities(model, batch)                                   # (n, K, oh, ow)
                for p, (r, c) in zip(probs, chunk):
                    result[:, r.dst0:r.dst1, c.dst0:c.dst1] = p[:, r.src0:r.src1, c.src0:c.src1]
    return result


def predict_whole(model, image):
    """Class probabilities (K, H, W) float32 from ONE pass of the network.

    Valid U-Net: the image mirror-padded by the context margin on every side and at the
    bottom/right up to a size the network takes. Same-padding U-Net: mirror-padded at the
    bottom/right up to the next multiple of 2**(depth-1) (none if H and W already are). FCN:
    the image as it is. The reference that :func:`predict_probabilities` is tested against.
    """
    geo = _Geometry(model)
    image = _check_image("predict_whole", model, geo, image)
    _, H, W = image.shape
    m = geo.margin if geo.valid else 0
    pads = [(0, 0)]
    for n in (H, W):
        total = geo.smallest_input(n + 2 * m)
        pads.append((m, total - n - m))
    padded = np.pad(image, pads, mode=MIRROR_MODE)
    with _eval_mode(model):
        probs = _probabilities(model, padded[None])[0]          # (K, oh, ow)
    return np.ascontiguousarray(probs[:, :H, :W])


# ============================================================================ saving
_PALETTE = np.array([[0, 0, 0], [0, 200, 255], [255, 80, 80], [80, 255, 80], [255, 220, 0],
                     [200, 80, 255], [255, 140, 0], [0, 255, 180]], dtype=np.float32)


def class_colours(labels):
    """RGB float (..., 3) of class labels: class 0 black, classes 1.. in the palette's colours
    (repeating after 7); the overlays and the demo's pictures share them."""
    labels = np.asarray(labels)
    return _PALETTE[np.where(labels > 0, (labels - 1) % (len(_PALETTE) - 1) + 1, 0)]


def _to_rgb(image):
    """(C, H, W) float in [0, 1] -> (H, W, 3) float in [0, 255]; gray repeated, C > 3: first 3."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0, 1) * 255
    if image.shape[0] >= 3:
        return np.transpose(image[:3], (1, 2, 0))             # (H, W, 3)
    return np.repeat(image[0][:, :, None], 3, axis=2)         # (H, W, 3)


def save_prediction(out_dir, name, image, probs):
    """Write three PNGs of a prediction and return their paths {"prob", "mask", "overlay"}.

    ``<name>_prob.png``: 8-bit gray, the probability of class 1 (K = 2) or of the predicted
    class (K > 2), times 255. ``<name>_mask.png``: the argmax labels; for K <= 2 written as
    0/255 (the ISBI convention, read back by the {0,255} mask mapping), otherwise the class
    indices 0..K-1. ``<name>_overlay.png``: the image in RGB with every class k >= 1 tinted
    in its own colour and the outlines of the label regions drawn in yellow.
    """
    image = np.asarray(image)
    image = image[None] if image.ndim == 2 else image
    probs = np.asarray(probs)
    if probs.ndim != 3 or image.ndim != 3 or probs.shape[1:] != image.shape[1:]:
        raise ValueError(f"save_prediction: expected image (C, H, W) and probs (K, H, W) of the same "
                         f"H, W, got image {image.shape} and probs {probs.shape}")
    if not isinstance(name, str) or not name or os.sep in name:
        raise ValueError(f"save_prediction: name must be a non-empty file name, got {name!r}")
    os.makedirs(out_dir, exist_ok=True)
    K = probs.shape[0]
    labels = probs.argmax(axis=0)                                      # (H, W)
    shown = probs[1] if K == 2 else probs.max(axis=0)
    paths = {kind: os.path.join(out_dir, f"{name}_{kind}.png") for kind in ("prob", "mask", "overlay")}

    Image.fromarray(np.round(np.clip(shown, 0, 1) * 255).astype(np.uint8)).save(paths["prob"])
    mask = labels * 255 if K <= 2 else labels
    Image.fromarray(mask.astype(np.uint8 if K <= 256 else np.uint16)).save(paths["mask"])

    rgb = _to_rgb(image)                                                # (H, W, 3)
    colours = class_colours(labels)                                     # (H, W, 3)
    tinted = np.where((labels > 0)[:, :, None], 0.6 * rgb + 0.4 * colours, rgb)
    edge = np.zeros(labels.shape, dtype=bool)              # a pixel whose right/lower neighbour differs
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    tinted[edge] = (255, 255, 0)
    Image.fromarray(np.round(tinted).astype(np.uint8), mode="RGB").save(paths["overlay"])
    return paths
