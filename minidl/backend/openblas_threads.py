"""NumPy's OpenBLAS threads: how long they spin after a matrix product, whatever the import order.

`import minidl` sets ``OPENBLAS_THREAD_TIMEOUT=12`` (unless it is set) so that OpenBLAS's idle
threads stop spinning microseconds after a matrix product instead of OpenBLAS's default of 2**28
clock ticks (about 0.1 s): a spinning thread holds a core that the Numba kernel after the product
needs, and that kernel runs up to 2.5x slower (docs/performance.md, "Threads"). OpenBLAS reads the
variable once, when it is loaded. A program that imports NumPy before minidl (``import numpy as
np`` first, as most do) has loaded it already, so the variable alone comes too late:
:func:`apply_thread_timeout` then has each OpenBLAS that is loaded re-read its environment and
restart its threads (the two steps OpenBLAS itself takes in a child process after a fork).
Where the BLAS is not OpenBLAS, or an OpenBLAS lacks those functions, nothing changes.

Call it only when no other thread is inside a BLAS call (minidl calls it while being imported).
"""
import ctypes

# the functions of OpenBLAS's thread server that re-read the environment and restart the threads
_RESTART = ("openblas_read_env", "blas_thread_shutdown_", "blas_thread_init")


def loaded_openblas_paths(maps="/proc/self/maps"):
    """The files of the OpenBLAS libraries this process has loaded (Linux; [] where unknown)."""
    try:
        with open(maps) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    paths = set()
    for line in lines:  # address, permissions, offset, device, inode, path (if any)
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith("/"):
            paths.add(fields[5])
    return sorted(p for p in paths if "openblas" in p.rsplit("/", 1)[-1].lower())


def apply_thread_timeout():
    """Make every loaded OpenBLAS take ``OPENBLAS_THREAD_TIMEOUT`` (and its other variables) from
    the environment now. Returns the paths of the libraries that did."""
    applied = []
    for path in loaded_openblas_paths():
        try:
            lib = ctypes.CDLL(path)  # already loaded: this only looks the library up
            read_env, shutdown, init = (getattr(lib, name) for name in _RESTART)
        except (OSError, AttributeError):
            continue
        read_env()
        shutdown()  # the idle threads exit ...
        init()  # ... and new ones start, reading the timeout just read
        applied.append(path)
    return applied
