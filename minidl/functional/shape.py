"""Joining, splitting, padding, cropping and resizing (PyTorch's names and signatures).

Each function checks its arguments (clear errors before any work) and calls an
op from ``minidl.ops``: ``join`` (cat, stack, split pieces), ``pad`` (pad,
crop) and ``resize`` (interpolate), where the math and the gradients live.
"""
import math
import numbers

from ..ops import join as _join_ops
from ..ops import pad as _pad_ops
from ..ops import resize as _resize_ops
from ..tensor import Tensor, _normalize_dim
from ._checks import check_tensor as _check_tensor

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- cat, stack
def _tensor_list(op, tensors):
    """``tensors`` as a non-empty list of Tensors, or a clear error."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (tuple, list)):
        raise TypeError(f"{op}: expected a list or tuple of Tensors, got {type(tensors).__name__}")
    if len(tensors) == 0:
        raise ValueError(f"{op}: expected a non-empty list of Tensors")
    for t, x in enumerate(tensors):
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}: expected a list of Tensors, got {type(x).__name__} at position {t}")
    return list(tensors)


def cat(tensors, dim=0):
    """Concatenate ``tensors`` along the existing dimension ``dim``.

    All tensors must have the same shape except in ``dim``; mixed dtypes are promoted
    as in PyTorch (int64 with float32 gives float32). As in PyTorch, a 1-D tensor of
    size 0 is skipped whatever the other shapes. Gradient: each input gets its slice
    of dy (docs/gradients/cat.md).
    """
    tensors = _tensor_list("cat", tensors)
    for t, x in enumerate(tensors):
        if x.ndim == 0:
            raise ValueError(f"cat: zero-dimensional tensor (at position {t}) cannot be concatenated")
    positions = [t for t, x in enumerate(tensors) if x.shape != (0,)] or [0]  # legacy: skip 1-D empties
    ref = positions[0]
    shape = tensors[ref].shape
    axis = _normalize_dim(dim, len(shape), "cat")
    for t in positions:
        x = tensors[t]
        if x.ndim != len(shape) or any(a != b for i, (a, b) in enumerate(zip(x.shape, shape)) if i != axis):
            raise ValueError(f"cat: tensors must have the same shape except in dimension {axis}, but tensor "
                             f"{ref} has shape {tuple(shape)} and tensor {t} has shape {tuple(x.shape)}")
    kept = [tensors[t] for t in positions]
    return _join_ops.Cat.apply(axis, *kept)


def stack(tensors, dim=0):
    """Stack equal-shaped ``tensors`` along a new dimension ``dim`` (0 <= dim <= ndim).

    Gradient: input t gets dy[..., t, ...] (index t along ``dim``; docs/gradients/cat.md).
    """
    tensors = _tensor_list("stack", tensors)
    first = tensors[0]
    for t, x in enumerate(tensors):
        if x.shape != first.shape:
            raise ValueError(f"stack: expects each tensor to be equal size, but tensor 0 has shape "
                             f"{tuple(first.shape)} and tensor {t} has shape {tuple(x.shape)}")
    return _join_ops.Stack.apply(_normalize_dim(dim, first.ndim + 1, "stack"), *tensors)


# ----------------------------------------------------------------------------- split, chunk
def split(tensor, split_size_or_sections, dim=0):
    """Cut ``tensor`` into pieces along ``dim``; returns a tuple of tensors.

    * an int ``split_size``: pieces of that size, the last one smaller if the size
      does not divide (``split(x of 5 rows, 2)`` gives 2, 2, 1 rows);
    * a list of sizes: pieces of exactly those sizes, which must add up to the size of ``dim``.

    Each piece is its own graph node; their gradients add up in ``tensor.grad``
    (docs/gradients/split.md).
    """
    _check_tensor("split", "tensor", tensor)
    if tensor.ndim == 0:
        raise ValueError("split: expects at least a 1-dimensional tensor, got a 0-d tensor")
    axis = _normalize_dim(dim, tensor.ndim, "split")
    n = tensor.shape[axis]
    if _is_int(split_size_or_sections):
        size = int(split_size_or_sections)
        if size < 0:
            raise ValueError(f"split: split_size must be non-negative, got {size}")
        if size == 0 and n != 0:
            raise ValueError(f"split: split_size can only be 0 if the size of dimension {axis} is 0, "
                             f"but it is {n} (shape {tuple(tensor.shape)})")
        pieces = [size] * (n // size) + ([n % size] if n % size else []) if size else []
        sizes = pieces or [0]  # a dimension of size 0 gives one empty piece, as in PyTorch
    elif isinstance(split_size_or_sections, (tuple, list)) and all(_is_int(s) for s in split_size_or_sections):
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes):
            raise ValueError(f"split: sections must be non-negative, got {tuple(sizes)}")
        if sum(sizes) != n:
            raise ValueError(f"split: sections {tuple(sizes)} add up to {sum(sizes)} but dimension {axis} "
                             f"of the tensor of shape {tuple(tensor.shape)} has size {n}")
    else:
        raise TypeError(f"split: split_size_or_sections must be an int or a list of ints, "
                        f"got {split_size_or_sections!r}")
    return _narrow_pieces(tensor, axis, sizes)


def chunk(input, chunks, dim=0):  # noqa: A002  (PyTorch's argument name)
    """Cut ``input`` into ``chunks`` pieces of size ``ceil(n / chunks)`` along ``dim`` (the last
    one smaller; fewer pieces when that size already covers ``n``), as ``torch.chunk``."""
    _check_tensor("chunk", "input", input)
    if not _is_int(chunks) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    if input.ndim == 0:
        raise ValueError("chunk: expects at least a 1-dimensional tensor, got a 0-d tensor")
    axis = _normalize_dim(dim, input.ndim, "chunk")
    n = input.shape[axis]
    if n == 0:
        return _narrow_pieces(input, axis, [0] * chunks)  # PyTorch keeps the number of chunks here
    return split(input, -(-n // chunks), axis)


def _narrow_pieces(tensor, axis, sizes):
    starts = [sum(sizes[:t]) for t in range(len(sizes))]
    return tuple(_join_ops.Narrow.apply(tensor, axis, start, size) for start, size in zip(starts, sizes))


# ----------------------------------------------------------------------------- pad
def pad(input, pad, mode="constant", value=None):  # noqa: A002  (PyTorch's argument names)
    """Pad (or, with negative widths, crop) the last ``len(pad) // 2`` dimensions.

    ``pad = (left, right, top, bottom, front, back)`` lists the widths LAST dimension
    first: ``(1, 2)`` adds 1 entry before and 2 after the last dimension; ``(1, 1, 2, 2)``
    also adds 2 rows above and below. Modes:

    * ``'constant'``: fill with ``value`` (default 0); any number of dimensions; a
      negative width removes entries from that side.
    * ``'reflect'``: mirror without repeating the edge (``x2 x1 | x0 x1 x2``); each width
      must be smaller than the size of its dimension.
    * ``'replicate'``: repeat the edge (``x0 x0 | x0 x1 x2``).
    * ``'circular'``: wrap around (``x1 x2 | x0 x1 x2``); widths at most the size.

    As in PyTorch, the non-constant modes pad the last 1, 2 or 3 dimensions of an
    input with 1 or 2 more dimensions (batch and channels): pad of length 2 for 2-D or
    3-D input, 4 for 3-D or 4-D, 6 for 4-D or 5-D. Gradients: docs/gradients/pad.md.
    """
    _check_tensor("pad", "input", input)
    widths = _pad_widths("pad", pad, input.shape)
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"pad: Unrecognised padding mode {mode!r}; expected one of "
                                  f"{', '.join(map(repr, _PAD_MODES))}")
    if mode == "constant":
        for axis, (b, a) in zip(range(input.ndim - len(widths), input.ndim), widths):
            if b + input.shape[axis] + a < 0:
                raise RuntimeError(f"pad: padding ({b}, {a}) of dimension {axis} would leave "
                                   f"{b + input.shape[axis] + a} entries (input shape {tuple(input.shape)})")
        return _pad_ops.ConstantPad.apply(input, widths, 0 if value is None else value)
    if value is not None and value != 0:  # PyTorch lets value=0 through
        raise RuntimeError(f"pad: Padding mode {mode!r} doesn't take in value argument (got value={value!r})")
    k = len(widths)
    if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(  # PyTorch's type
            f"pad: mode {mode!r} with padding of length {2 * k} is not supported for "
            f"{input.ndim}-D input (shape {tuple(input.shape)}); supported: length 2 for 2-D or 3-D "
            "input (last dim), 4 for 3-D or 4-D (last 2 dims), 6 for 4-D or 5-D (last 3 dims)")
    for axis, (b, a) in zip(range(input.ndim - k, input.ndim), widths):
        n = input.shape[axis]
        where = f"padding ({b}, {a}) of dimension {axis} (input shape {tuple(input.shape)})"
        if _pad_ops.middle(n, b, a)[2] <= 0:
            raise ValueError(f"pad: {mode} {where} leaves no input entries to copy")
        if mode == "reflect" and (b >= n or a >= n):
            raise RuntimeError(f"pad: reflect {where}: Padding size should be less than the corresponding "
                               f"input dimension: each padding must be less than the size {n} of the dimension")
        if mode == "circular" and max(b, a) > _pad_ops.middle(n, b, a)[2]:
            raise RuntimeError(f"pad: circular {where}: Padding value causes wrapping around more than once: "
                               f"each padding must be at most the size {_pad_ops.middle(n, b, a)[2]} of the dimension")
    return _pad_ops.CopyPad.apply(input, widths, mode)


def _pad_widths(op, pad, shape):
    """PyTorch's ``(left, right, top, bottom, ...)`` as [(before, after), ...] in dimension order."""
    if not isinstance(pad, (tuple, list)) or not all(_is_int(p) for p in pad):
        raise TypeError(f"{op}: pad must be a tuple of ints, got {pad!r}")
    if len(pad) % 2 != 0:
        raise RuntimeError(f"{op}: Padding length must be divisible by 2: pad must have an even length (before, "
                           f"after) per dimension, got {tuple(pad)}")
    if len(pad) // 2 > len(shape):
        raise RuntimeError(f"{op}: pad {tuple(pad)} pads {len(pad) // 2} dimensions but the input has only "
                           f"{len(shape)} (shape {tuple(shape)})")
    pairs = [(int(pad[i]), int(pad[i + 1])) for i in range(0, len(pad), 2)]  # last dim first
    return pairs[::-1]


# ----------------------------------------------------------------------------- crop
def center_crop(input, size):  # noqa: A002  (PyTorch's argument name)
    """The central ``size`` window of the last two dimensions (U-Net's crop before concat).

    ``size`` is an int (square) or ``(h, w)``. For input height H the window starts at
    row ``top = (H - h) // 2`` and for width W at column ``left = (W - w) // 2``; when
    ``H - h`` is odd the extra row is cut at the bottom (likewise the extra column on the
    right). Backward puts dy back into zeros (docs/gradients/center_crop.md).
    Note: torchvision's ``center_crop`` rounds the offset instead, ``int(round((H - h) / 2))``,
    which differs from this when H - h is odd.
    """
    _check_tensor("center_crop", "input", input)
    if input.ndim < 2:
        raise ValueError(f"center_crop: input must have at least 2 dimensions (..., H, W), "
                         f"got shape {tuple(input.shape)}")
    if _is_int(size):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(s) for s in size)):
        raise TypeError(f"center_crop: size must be an int or a pair of ints (h, w), got {size!r}")
    h, w = (int(s) for s in size)
    H, W = input.shape[-2:]
    if not (0 <= h <= H and 0 <= w <= W):
        raise ValueError(f"center_crop: size ({h}, {w}) does not fit in the last two dimensions ({H}, {W}) "
                         f"of the input of shape {tuple(input.shape)}")
    return _pad_ops.Crop.apply(input, (H - h) // 2, (W - w) // 2, h, w)


# ----------------------------------------------------------------------------- interpolate
_INTERP_MODES = {"nearest": (3, 4), "nearest-exact": (3, 4), "linear": (3,), "bilinear": (4,)}
_TORCH_ONLY_MODES = ("bicubic", "trilinear", "area")


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,  # noqa: A002
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dimensions of ``input`` (N, C, W) or (N, C, H, W), as ``torch.nn.functional.interpolate``.

    Give exactly one of ``size`` (int or one int per spatial dim) and ``scale_factor``
    (float or one per spatial dim; the output size is ``floor(in * scale_factor)``).
    Modes: ``'nearest'`` (PyTorch's legacy rule ``src = floor(dst * in / out)``, or
    ``floor(dst / scale_factor)`` when ``scale_factor`` is given), ``'nearest-exact'``
    (pixel centres), ``'linear'`` (3-D) and ``'bilinear'`` (4-D) with ``align_corners``
    (default False). ``recompute_scale_factor=True`` uses ``in / out`` instead of the
    given ``scale_factor`` inside the index rule. The nearest modes also accept integer
    input (label masks); the linear modes need floating point. The exact rules and the gradient (the
    transposed interpolation matrices) are in ``minidl/ops/resize.py`` and
    docs/gradients/interpolate.md.
    """
    op = "interpolate"
    _check_tensor(op, "input", input)
    if mode in _TORCH_ONLY_MODES:
        raise NotImplementedError(f"{op}: mode {mode!r} is not implemented in minidl; "
                                  f"available: {', '.join(map(repr, _INTERP_MODES))}")
    if mode not in _INTERP_MODES:
        raise ValueError(f"{op}: unknown mode {mode!r}; expected one of {', '.join(map(repr, _INTERP_MODES))}")
    if input.ndim not in _INTERP_MODES[mode]:
        expected = " or ".join(f"{d}-D" for d in _INTERP_MODES[mode])
        layouts = {3: "(N, C, W)", 4: "(N, C, H, W)"}
        raise ValueError(f"{op}: mode {mode!r} needs {expected} input "
                         f"{' or '.join(layouts[d] for d in _INTERP_MODES[mode])}, got shape {tuple(input.shape)}")
    if mode.startswith("nearest"):
        if align_corners is not None:
            raise ValueError(f"{op}: align_corners can only be set with the interpolating modes "
                             f"'linear' and 'bilinear', not with mode {mode!r}")
    else:
        align_corners = bool(align_corners)  # None means False
        if input.dtype.kind != "f":
            raise TypeError(f"{op}: mode {mode!r} needs a floating point input, got dtype {input.dtype}")
    if antialias:
        raise NotImplementedError(f"{op}: antialias=True is not implemented in minidl")
    dims = input.ndim - 2
    spatial = tuple(input.shape[2:])
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got "
                         f"{'both' if size is not None else 'neither'}")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size")
        out_size = _per_dim(op, "size", size, dims, spatial, _is_int)
        scale_factors = (None,) * dims
    else:
        scale_factors = _per_dim(op, "scale_factor", scale_factor, dims, spatial,
                                 lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool))
        scale_factors = tuple(float(s) for s in scale_factors)
        if any(not 0 < s < math.inf for s in scale_factors):
            raise ValueError(f"{op}: scale_factor must be a positive finite number, got {scale_factor!r}")
        out_size = tuple(int(n * s) for n, s in zip(spatial, scale_factors))  # floor, as PyTorch
        if recompute_scale_factor:
            scale_factors = (None,) * dims  # the index rule then uses in / out
    if any(n <= 0 for n in spatial) or any(n <= 0 for n in out_size):
        raise ValueError(f"{op}: input and output sizes must be greater than 0, but got input spatial size "
                         f"{spatial} (shape {tuple(input.shape)}) and output size {tuple(out_size)}")
    return _resize_ops.Interpolate.apply(input, tuple(int(n) for n in out_size), mode, align_corners,
                                         scale_factors)


def _per_dim(op, name, value, dims, spatial, is_valid):
    """``value`` (one entry, or one per spatial dimension) as a tuple of ``dims`` entries."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims
    if len(values) != dims:
        raise ValueError(f"{op}: {name} {value!r} must have one entry per spatial dimension of the input "
                         f"({dims}: spatial size {spatial})")
    if not all(is_valid(v) for v in values):
        raise TypeError(f"{op}: {name} must be {'an int' if name == 'size' else 'a number'} or a tuple of "
                        f"them, got {value!r}")
    return values
