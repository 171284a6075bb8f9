"""The backend seam: which device, array module and kernels an array uses.

The op code is written once against an array module ``xp``: ``array_module(array)`` returns
NumPy for a CPU array, CuPy for a GPU one, the strict test device's module for its arrays
(devices.py says what each device is). The few kernels that are not plain array code
(im2col, col2im, pooling argmax and its scatter, ...) go through ``kernels_for(array)``,
which returns a module with the same functions for every device:

    reference   readable array code over the kernel window: the specification
                (the strict device's kernels: it runs them through its own ``xp``)
    numba       the same kernels compiled with Numba (``numba_cpu.py``), for CPU arrays
                when ``import numba`` works
    cupy_gpu    the same kernels as CUDA kernels, for CuPy arrays

Both are decided by the array's type. Only the CPU has a choice of kernel module: by default
the fastest available one (numba, else reference); the environment variable
``MINIDL_BACKEND=reference|numba`` (read when minidl is imported) or :func:`set_backend` /
:func:`use_backend` force one, for tests and benchmarks; forcing one that cannot be used here
raises ImportError saying why. Numba itself is imported on the first kernel call (or by
:func:`available_backends`), not by ``import minidl``; its threads are set up then, by
``numba_cpu.start_threads()``.
"""
import importlib
import os

import numpy as np

from . import devices, strict
from .algorithms import conv_algorithm, get_conv_algorithm  # noqa: F401  (the algorithm switch)
from .devices import array_module, device, device_of, to_device, to_host  # noqa: F401  (the seam)

_CPU_BACKENDS = ("reference", "numba")  # by preference: the last available one is the default
_MODULES = {"reference": "reference", "numba": "numba_cpu"}  # backend name -> kernel module
_REQUIRES = {"numba": "numba"}  # backend name -> the package it needs
_missing = {}  # backend name -> None if it can be used, else why not (filled on first look)
_forced = os.environ.get("MINIDL_BACKEND") or None


def _why_unavailable(name):
    """``None`` if backend ``name`` can be used on this machine, else the reason (a sentence)."""
    package = _REQUIRES.get(name)
    if package is None:
        return None
    if name not in _missing:
        try:
            importlib.import_module(package)
            _missing[name] = None
        except ImportError as error:
            _missing[name] = f"`import {package}` fails ({error}); `pip install {package}`"
    return _missing[name]


def available_backends():
    """Names of the CPU kernel backends that work on this machine, the default last."""
    return [name for name in _CPU_BACKENDS if _why_unavailable(name) is None]


def _check_usable(name, who):
    """Raise ValueError for an unknown backend name, ImportError for one that cannot be used."""
    if name not in _CPU_BACKENDS:
        raise ValueError(f"{who}: unknown backend {name!r}; "
                         f"available: {', '.join(available_backends())}")
    reason = _why_unavailable(name)
    if reason is not None:
        raise ImportError(f"{who}: the {name!r} backend is not available: {reason}; "
                          f"available: {', '.join(available_backends())}")


def set_backend(name):
    """Force the kernel backend for CPU arrays (``None`` restores the default).

    ``name`` is one of :func:`available_backends`; an unknown name raises ValueError, a
    known one whose package does not import (numba) raises ImportError.
    """
    global _forced
    if name is not None:
        _check_usable(name, "set_backend")
    _forced = name


class use_backend:
    """Context manager: ``with use_backend("reference"): ...`` (tests and benchmarks)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = _forced
        set_backend(self.name)
        return self.name

    def __exit__(self, *exc_info):
        set_backend(self.previous)
        return False


def get_backend():
    """The name of the kernel backend used for CPU arrays."""
    return _forced or _default_backend()


_default = None  # the default backend's name, once looked up


def _default_backend():
    """The last available backend, looked up once (every op asks, and the answer cannot change:
    whether a package imports is remembered in ``_missing``)."""
    global _default
    if _default is None:
        _default = available_backends()[-1]
    return _default


_loaded = {}  # backend name -> its kernel module, set up


def kernel_module(name):
    """The kernel module of CPU backend ``name`` (``"numba"`` -> ``minidl.backend.numba_cpu``)."""
    module = _loaded.get(name)
    if module is None:
        module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
        if name == "numba":
            module.start_threads()  # Numba's thread pool, set up once, before its first kernel
        _loaded[name] = module
    return module


def kernels_for(array):
    """The kernel module for ``array``: by its device (see the module docstring)."""
    if type(array) is np.ndarray:
        return kernel_module(get_backend())
    dev = device_of(array)
    return devices.kernel_module_of_device(dev, kernel_module(get_backend()) if dev.type == "cpu" else None)


def memory_owner(array):
    """The array object that owns ``array``'s memory (``array`` itself unless it is a view): two
    arrays share memory when their owners are one object."""
    if isinstance(array, strict.StrictArray):
        return array.memory_owner()
    while getattr(array, "base", None) is not None:  # (the last may be a bytes buffer: an array
        array = array.base                            #  unpickled from another process)
    return array


def is_array(value):
    """Whether ``value`` is an array of some device (not a shape, a dtype, a number)."""
    if isinstance(value, (np.ndarray, np.generic, strict.StrictArray)):
        return True
    if value is None or isinstance(value, (tuple, bool, int, float, str)):  # what ops save most
        return False
    return hasattr(value, "__cuda_array_interface__")


def add_at(target, index, values):
    """``target[index] += values`` where repeated indices ADD (unbuffered), on any device."""
    xp = array_module(target)
    if xp is np or xp is strict:
        xp.add.at(target, index, values)
    else:
        import cupyx  # the cuda device only: CuPy is importable then

        cupyx.scatter_add(target, index, values)


if _forced is not None:
    if _forced not in _CPU_BACKENDS:
        raise ImportError(f"MINIDL_BACKEND={_forced!r} is not an available backend; "
                          f"choose one of {', '.join(_CPU_BACKENDS)}")
    _check_usable(_forced, f"MINIDL_BACKEND={_forced}")
