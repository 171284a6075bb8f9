"""Pooling functions: max_pool2d, max_unpool2d, avg_pool2d, adaptive_avg_pool2d.

Each checks and normalises its arguments (PyTorch's names, defaults and rules, with clear
errors before any work), accepts batched (N,C,H,W) or unbatched (C,H,W) input like PyTorch,
and calls an op from ``minidl.ops.pool`` where the math and its gradient live.
"""
import numbers

from .. import dtypes
from ..ops import pool
from ..tensor import Tensor
from ._checks import check_ndim, check_tensor


def _pair(op, name, value, minimum):
    """An int or a pair of ints, each >= ``minimum``, as a pair of Python ints."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    if not (1 <= len(items) <= 2 and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                          for v in items)):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    result = tuple(int(v) for v in items) * (3 - len(items))  # 3 -> (3, 3); (3,) -> (3, 3)
    if min(result) < minimum:
        bound = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {bound}, got {value!r}")
    return result


def _check_flag(op, name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be True or False, got {value!r}")


def _check_input(op, input, floating=True):  # noqa: A002
    """3-D (C,H,W) or 4-D (N,C,H,W), non-empty except for the batch; float when ``floating``."""
    check_tensor(op, "input", input)
    check_ndim(op, "input", input, (3, 4))
    if floating and input.dtype not in (dtypes.float32, dtypes.float64):
        raise TypeError(f"{op}: input must be a float32 or float64 tensor (the pooling kernels' "
                        f"dtypes; convert with .float()), got dtype {input.dtype}")
    if 0 in input.shape[-3:]:
        raise ValueError(f"{op}: input must have non-zero channels, height and width (only the "
                         f"batch may be empty), got shape {tuple(input.shape)}")


def _batched(input):  # noqa: A002
    """(C,H,W) -> (1,C,H,W) as PyTorch treats unbatched input; 4-D input unchanged."""
    return input.unsqueeze(0) if input.ndim == 3 else input


def _unbatched_like(input, y):  # noqa: A002
    """Undo ``_batched`` on a result y (a Tensor) if ``input`` was 3-D."""
    return y.squeeze(0) if input.ndim == 3 else y


def _window(op, kernel_size, stride, padding, dilation=1, padding_rule=True):
    """Normalised (kernel, stride, padding, dilation) pairs; stride None (or []) = kernel_size.

    ``padding_rule``: PyTorch's pooling rule padding <= kernel_size // 2 (max_unpool2d has none).
    """
    kernel = _pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _pair(op, "stride", stride, 1)
    padding = _pair(op, "padding", padding, 0)
    dilation = _pair(op, "dilation", dilation, 1)
    if padding_rule and (padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2):
        raise ValueError(f"{op}: padding {padding} must be at most half of kernel_size {kernel} "
                         f"(PyTorch's rule: padding <= kernel_size // 2 in each dimension)")
    return kernel, stride, padding, dilation


def _output_size(op, input, kernel, stride, padding, dilation, ceil_mode):  # noqa: A002
    H, W = input.shape[-2:]
    out = tuple(pool.pool_output_size(n, K, S, P, D, ceil_mode)
                for n, K, S, P, D in zip((H, W), kernel, stride, padding, dilation))
    if min(out) < 1:
        dil = f", dilation {dilation}" if op == "max_pool2d" else ""
        raise ValueError(f"{op}: input of spatial size {(H, W)} is too small for kernel {kernel} "
                         f"with stride {stride}, padding {padding}{dil}, ceil_mode={ceil_mode}: "
                         f"the output would be {out[0]}x{out[1]}")
    return out


def _check_no_empty_window(input, kernel, stride, padding, dilation, out):  # noqa: A002
    """Every max-pool window must hold an input cell (dilation can make one all padding)."""
    for axis, (n, K, S, P, D, O) in enumerate(zip(input.shape[-2:], kernel, stride, padding,
                                                  dilation, out)):
        for i in range(O):
            start = S * i - P
            first = start + D * -(start // D) if start < 0 else start  # first cell >= 0 (ceil)
            if first >= n or first > start + D * (K - 1):
                name = ("row", "column")[axis]
                raise ValueError(
                    f"max_pool2d: the window of output {name} {i} holds only padding (kernel "
                    f"{kernel}, stride {stride}, padding {padding}, dilation {dilation}, input of "
                    f"spatial size {tuple(input.shape[-2:])}); PyTorch returns -inf with an "
                    "out-of-range index there. Use less padding or dilation")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """Max over each window.  input (N,C,H,W) or (C,H,W) -> output (N,C,OH,OW) or (C,OH,OW).

    ``OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1`` (ceil with ``ceil_mode``, as long as the
    last window starts inside the input or its left padding). Padding is -inf. With
    ``return_indices=True`` also returns the int64 flat index ``h*W + w`` of each window's
    maximum in its input plane (what ``max_unpool2d`` takes). Ties: the first maximum in window
    scan order (rows, then columns) wins and receives the gradient, as in PyTorch.
    """
    op = "max_pool2d"
    _check_input(op, input)
    kernel, stride, padding, dilation = _window(op, kernel_size, stride, padding, dilation)
    _check_flag(op, "ceil_mode", ceil_mode)
    _check_flag(op, "return_indices", return_indices)
    out = _output_size(op, input, kernel, stride, padding, dilation, ceil_mode)
    _check_no_empty_window(input, kernel, stride, padding, dilation, out)
    x = _batched(input)
    y, argmax = pool.window_max(x._data, kernel, stride, padding, dilation, out)
    y = _unbatched_like(input, pool.MaxPool2d.apply(x, argmax, y))
    if not return_indices:
        return y
    return y, Tensor(argmax[0] if input.ndim == 3 else argmax)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,  # noqa: A002
               count_include_pad=True, divisor_override=None):
    """Mean over each window.  input (N,C,H,W) or (C,H,W) -> output (N,C,OH,OW) or (C,OH,OW).

    Padding is 0. Each window sum is divided by the number of its cells inside the padded
    input (``count_include_pad=True``) or inside the input (``False``), or by
    ``divisor_override`` when given; see ``minidl.ops.pool.AvgPool2d``.
    """
    op = "avg_pool2d"
    _check_input(op, input)
    kernel, stride, padding, _ = _window(op, kernel_size, stride, padding)
    _check_flag(op, "ceil_mode", ceil_mode)
    _check_flag(op, "count_include_pad", count_include_pad)
    if divisor_override is not None:
        if not isinstance(divisor_override, numbers.Integral) or isinstance(divisor_override, bool):
            raise TypeError(f"avg_pool2d: divisor_override must be an int or None, "
                            f"got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must not be zero")
        divisor_override = int(divisor_override)
    out = _output_size(op, input, kernel, stride, padding, (1, 1), ceil_mode)
    y = pool.AvgPool2d.apply(_batched(input), kernel, stride, padding, out, count_include_pad,
                             divisor_override)
    return _unbatched_like(input, y)


def adaptive_avg_pool2d(input, output_size):  # noqa: A002
    """Mean over windows chosen so the output is ``output_size`` (int, or pair; None keeps H/W).

    input (N,C,H,W) or (C,H,W) -> output (N,C,OH,OW) or (C,OH,OW). Window i along H covers
    rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1 (likewise along W).
    """
    op = "adaptive_avg_pool2d"
    _check_input(op, input)
    items = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(items) != 2 or not all(v is None or (isinstance(v, numbers.Integral)
                                                and not isinstance(v, bool)) for v in items):
        raise ValueError(f"{op}: output_size must be an int or a pair of ints (or None to keep "
                         f"that size), got {output_size!r}")
    out = tuple(int(n if v is None else v) for v, n in zip(items, input.shape[-2:]))
    if min(out) < 0:
        raise ValueError(f"{op}: output_size must be non-negative, got {output_size!r}")
    y = pool.AdaptiveAvgPool2d.apply(_batched(input), out)
    return _unbatched_like(input, y)


def _unpool_output_size(input, kernel, stride, padding, output_size):  # noqa: A002
    """PyTorch's rule: default (H-1)*S - 2P + K; a given size must be within S of it."""
    default = tuple((n - 1) * S - 2 * P + K
                    for n, K, S, P in zip(input.shape[-2:], kernel, stride, padding))
    if output_size is None:
        size = default
    else:
        items = tuple(output_size) if isinstance(output_size, (tuple, list)) else None
        if items is not None and len(items) == 4:
            items = items[2:]  # a full (N, C, OH, OW) shape, e.g. the input of the max_pool2d
        if items is None or len(items) != 2 or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
            raise ValueError(f"max_unpool2d: output_size must be a sequence of 2 or 4 ints "
                             f"((OH, OW) or (N, C, OH, OW)), got {output_size!r}")
        size = tuple(int(v) for v in items)
        for d, (n, dn, S) in enumerate(zip(size, default, stride)):
            if not dn - S < n < dn + S:
                raise ValueError(f"max_unpool2d: invalid output_size {tuple(output_size)}: "
                                 f"dim {d} must be strictly between {dn - S} and {dn + S} "
                                 f"(the default is {dn} = (input size - 1) * stride - 2 * "
                                 f"padding + kernel_size)")
    if min(size) < 1:
        raise ValueError(f"max_unpool2d: the output size {size} (from input of spatial size "
                         f"{tuple(input.shape[-2:])}, kernel {kernel}, stride {stride}, padding "
                         f"{padding}) must be at least 1x1")
    return size


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):  # noqa: A002
    """Partial inverse of ``max_pool2d``: each value goes back to its index, zeros elsewhere.

    input, indices (N,C,H,W) or (C,H,W) -> output (N,C,OH,OW) or (C,OH,OW), with ``indices``
    the int64 flat indices ``h*OW + w`` that ``max_pool2d(..., return_indices=True)`` returned.
    Default output size: ``(H - 1)*S - 2*P + K``; ``output_size`` (e.g. the pooled input's
    size) resolves the ambiguity when the pooling dropped rows or columns.
    """
    op = "max_unpool2d"
    _check_input(op, input, floating=False)
    check_tensor(op, "indices", indices)
    if indices.dtype != dtypes.int64:
        raise TypeError(f"{op}: indices must be an int64 tensor (as returned by max_pool2d with "
                        f"return_indices=True), got dtype {indices.dtype}")
    if indices.shape != input.shape:
        raise ValueError(f"{op}: indices must have the shape of input {tuple(input.shape)}, "
                         f"got {tuple(indices.shape)}")
    kernel, stride, padding, _ = _window(op, kernel_size, stride, padding, padding_rule=False)
    size = _unpool_output_size(input, kernel, stride, padding, output_size)
    data = indices._data
    if data.size and (int(data.min()) < 0 or int(data.max()) >= size[0] * size[1]):
        bad = int(data.min()) if int(data.min()) < 0 else int(data.max())
        raise ValueError(f"{op}: found an invalid index {bad} in indices: the output planes are "
                         f"{size[0]}x{size[1]}, so indices must lie in [0, {size[0] * size[1]})")
    x = _batched(input)
    idx = data[None] if input.ndim == 3 else data
    return _unbatched_like(input, pool.MaxUnpool2d.apply(x, idx, size))

