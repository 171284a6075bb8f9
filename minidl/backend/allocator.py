"""The CPU device's allocator: a cache of large arrays, reused once nothing refers to them.

Why. Writing to memory the process has just been given is slow the first time (the operating
system maps and zeroes every page on its first touch), and NumPy returns a large freed array
to the system at once, so an op that makes a new large output every step would pay that
every step. ReLU's and cat's outputs, conv2d's dx and the autograd engine's gradient sums take
their memory from here (measurements: docs/performance.md, "The allocator").

How. :func:`empty` hands out a view of a cached buffer of the same size in bytes when one is
free, else allocates a new buffer and caches it. A buffer is free when nothing but the cache
refers to it: every view of a NumPy array (a Tensor's data, a slice, a reshape) keeps a
reference to the array that owns the memory, so its reference count says whether any view is
still alive; nothing else is tracked and no one has to give a buffer back. Arrays below
MIN_BYTES are left to NumPy's allocator (it caches small blocks itself).

Memory. A buffer is only added when every cached one of its size is in use, so the cache
holds at most as many bytes as were ever in use at once through it, and they stay resident
between steps (as PyTorch's CUDA caching allocator does on the GPU). :func:`empty_cache`
releases the free ones; :func:`set_cache_enabled` (False) turns the cache off;
:func:`cached_bytes` says how much it holds. The cache is CPU only: CuPy has its own pool.
"""
import sys
import threading

import numpy as np

from . import array_module

MIN_BYTES = 2**20  # smaller arrays: NumPy's own allocator
_cache = {}  # nbytes -> [1-D uint8 buffers of that size]
_enabled = True
_lock = threading.Lock()  # two threads must not take the same free buffer


def _views(buffer):
    """How many arrays refer to ``buffer`` besides the cache: each view of it holds it as its
    ``.base`` (call it with a local variable of the caller, as the calibration below does)."""
    return sys.getrefcount(buffer) - _REFERENCES_WHEN_FREE


def _count_references_when_free():
    """getrefcount of a buffer that only the cache holds, as seen from inside :func:`_views`:
    the cache's list, the caller's local variable, _views's parameter and getrefcount's own
    argument on CPython 3.11 (4); measured once rather than assumed, as interpreters differ."""
    def seen_inside(buffer):
        return sys.getrefcount(buffer)

    for buffer in [np.empty(1, dtype=np.uint8)]:
        return seen_inside(buffer)


_REFERENCES_WHEN_FREE = _count_references_when_free()


def empty(shape, dtype, xp=np):
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``: for NumPy (``xp``) from
    the cache when it is enabled and the array has at least MIN_BYTES; for any other array
    module, its own ``empty`` (CuPy keeps its own pool)."""
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not _enabled or nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    with _lock:
        buffers = _cache.setdefault(nbytes, [])
        for buffer in buffers:
            if _views(buffer) == 0:  # free: only the cache refers to it
                break
        else:
            buffer = np.empty(nbytes, dtype=np.uint8)
            buffers.append(buffer)
        return buffer.view(dtype).reshape(shape)  # its .base is ``buffer``: a reference to it


def empty_like(array):
    """:func:`empty` with ``array``'s shape, dtype and array module."""
    return empty(array.shape, array.dtype, array_module(array))


def holds(array):
    """Whether ``array`` is a view of one of the cache's buffers (for tests and debugging)."""
    buffer = getattr(array, "base", None)
    if not isinstance(buffer, np.ndarray):
        return False
    with _lock:
        return any(b is buffer for b in _cache.get(buffer.nbytes, ()))


def cached_bytes():
    """Bytes held by the cache, in use or free."""
    with _lock:
        return sum(nbytes * len(buffers) for nbytes, buffers in _cache.items())


def empty_cache():
    """Release the cached buffers that nothing refers to (the others stay until then)."""
    with _lock:
        for nbytes in list(_cache):
            in_use = []
            for buffer in _cache[nbytes]:
                if _views(buffer) > 0:
                    in_use.append(buffer)
            if in_use:
                _cache[nbytes] = in_use
            else:
                del _cache[nbytes]


def set_cache_enabled(enabled):
    """Turn the cache on or off (off: :func:`empty` is ``np.empty``; buffers already handed out
    stay valid). Returns the previous setting."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"set_cache_enabled: enabled must be True or False, got {enabled!r}")
    previous, _enabled = _enabled, enabled
    if not enabled:
        empty_cache()
    return previous
