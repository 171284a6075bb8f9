"""The CPU device's allocator: a cache of large arrays, reused once nothing refers to them.

Why. Writing to memory the process has just been given is slow the first time (the operating
system maps and zeroes every page on its first touch), and NumPy returns a large freed array
to the system at once, so an op that makes a new large output every step would pay that
every step. ReLU's and cat's outputs, batch norm's outputs and dx, conv2d's dx and the autograd
engine's gradient sums take their memory from here (measurements: docs/performance.md, "The
allocator").

How. :func:`empty` hands out a view of a cached buffer of the same size in bytes when one is
free, else allocates a new buffer and caches it. A buffer is free when nothing but the cache
refers to it: every view of a NumPy array (a Tensor's data, a slice, a reshape) keeps a
reference to the array that owns the memory, so its reference count says whether any view is
still alive; nothing else is tracked and no one has to give a buffer back. Arrays below
MIN_BYTES are left to NumPy's allocator (it caches small blocks itself).

Memory. The cache holds at most as many bytes as were ever in use at once through it (its
high-water mark since the last :func:`empty_cache`, :func:`peak_in_use_bytes`), and they stay
resident between steps (as PyTorch's CUDA caching allocator does on the GPU). When a buffer
must be added and that would take the cache above the mark, the free buffers handed out
longest ago are released first. Without that, every size would keep as many buffers as it
ever had in use at once, and a training step, whose backward frees the large arrays of one
size while it asks for arrays of other sizes, would hold both: in the U-Net step the cache
held up to 245 MiB of free buffers, and the step's peak was 1.14-1.37x PyTorch's
(docs/performance.md). An op that is about to allocate large temporaries outside the cache
(Winograd's backward) calls :func:`make_room` first, so that the cache and the temporaries
together stay within the mark: at the bottom of a wide U-Net's backward the cache holds the
top levels' free buffers, and they and the temporaries made that step's peak.
:func:`empty_cache` releases the free ones; :func:`set_cache_enabled`
(False) turns the cache off; :func:`cached_bytes` says how much it holds. The cache is CPU
only: CuPy has its own pool.
"""
import math
import sys
import threading

import numpy as np

from . import array_module

MIN_BYTES = 2**20  # smaller arrays: NumPy's own allocator
_cache = {}  # nbytes -> [1-D uint8 buffers of that size]
_last_handed_out = {}  # id(buffer) -> the hand-out count when it was last handed out
_hand_outs = 0
_peak_in_use = 0  # the most bytes ever in use at once through the cache
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
    size = math.prod(shape) if isinstance(shape, (tuple, list)) else int(shape)  # not np.prod: slow per call
    nbytes = int(size) * dtype.itemsize
    if not _enabled or nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    global _hand_outs, _peak_in_use
    with _lock:
        buffers = _cache.setdefault(nbytes, [])
        for buffer in buffers:
            if _views(buffer) == 0:  # free: only the cache refers to it
                break
        else:
            in_use = _in_use_bytes() + nbytes  # every buffer of this size is in use
            _peak_in_use = max(_peak_in_use, in_use)
            _release_free(_cached_bytes() + nbytes - _peak_in_use)  # stay within the mark
            buffer = np.empty(nbytes, dtype=np.uint8)
            buffers.append(buffer)
        _hand_outs += 1
        _last_handed_out[id(buffer)] = _hand_outs
        return buffer.view(dtype).reshape(shape)  # its .base is ``buffer``: a reference to it


def make_room(nbytes):
    """Make room for ``nbytes`` of temporaries that an op is about to allocate outside the
    cache: release free buffers, those handed out longest ago first, until the cache and the
    temporaries together fit within the cache's high-water mark (or none is free). Returns the
    bytes released."""
    with _lock:
        before = _cached_bytes()
        _release_free(before + nbytes - _peak_in_use)
        return before - _cached_bytes()


def _in_use_bytes():
    """Bytes of the cached buffers that something refers to (call with the lock held)."""
    in_use = 0
    for nbytes, buffers in _cache.items():
        for buffer in buffers:
            if _views(buffer) > 0:
                in_use += nbytes
    return in_use


def _cached_bytes():
    return sum(nbytes * len(buffers) for nbytes, buffers in _cache.items())


def _release_free(excess):
    """Release free buffers, those handed out longest ago first, until ``excess`` bytes are
    released or none is free (call with the lock held)."""
    free = []
    for nbytes, buffers in _cache.items():
        for buffer in buffers:
            if _views(buffer) == 0:
                free.append((_last_handed_out[id(buffer)], nbytes, buffer))
    free.sort(key=lambda entry: entry[0])
    for _, nbytes, buffer in free:
        if excess <= 0:
            break
        _forget(nbytes, buffer)
        excess -= nbytes


def _forget(nbytes, buffer):
    """Drop ``buffer`` from the cache (NumPy frees it once nothing else refers to it)."""
    buffers = _cache[nbytes]
    buffers[:] = [b for b in buffers if b is not buffer]
    if not buffers:
        del _cache[nbytes]
    del _last_handed_out[id(buffer)]


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
        return _cached_bytes()


def peak_in_use_bytes():
    """The most bytes ever in use at once through the cache: it never holds more (see above)."""
    with _lock:
        return _peak_in_use


def empty_cache():
    """Release the cached buffers that nothing refers to (the others stay until then); the
    high-water mark starts again from the bytes still in use."""
    global _peak_in_use
    with _lock:
        _release_free(_cached_bytes())
        _peak_in_use = _cached_bytes()


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
