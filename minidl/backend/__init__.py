"""The backend seam: which array module and which kernels an array uses.

The op code is written once against an array module ``xp`` (NumPy on the CPU;
CuPy on the GPU in a later issue): ``array_module(array)`` returns it. The few
kernels that are not plain array code (im2col, col2im, pooling argmax and its
scatter, ...) go through ``kernels_for(array)``, which returns a module with
the same functions for every backend:

    reference   readable NumPy loops over the kernel window: the specification
    numba       the same kernels compiled with Numba (``numba_cpu.py``), used when
                ``import numba`` works
    cupy        the same kernels as CUDA kernels (GPU issue)

Choosing a backend: by default CPU arrays use the fastest available one (numba,
else reference). The environment variable ``MINIDL_BACKEND=reference|numba``
(read when minidl is imported) or :func:`set_backend` / :func:`use_backend`
force one, for tests and benchmarks; forcing one that cannot be used here raises
ImportError saying why. Numba itself is imported on the first kernel call (or by
:func:`available_backends`), not by ``import minidl``.
"""
import importlib
import os

import numpy as np

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
    return _forced or available_backends()[-1]


def kernel_module(name):
    """The kernel module of backend ``name`` (``"numba"`` -> ``minidl.backend.numba_cpu``)."""
    return importlib.import_module(f"{__name__}.{_MODULES[name]}")


def kernels_for(array):
    """The kernel module for ``array`` (see the module docstring)."""
    return kernel_module(get_backend())


def array_module(array):
    """``numpy`` for NumPy arrays (CuPy is added with the GPU backend)."""
    return np


def device_of(array):
    """The device name of an array: ``"cpu"`` for NumPy arrays."""
    return "cpu"


def check_device(device, op="tensor"):
    """Validate a device name and return it normalised."""
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name.startswith("cuda"):
        raise RuntimeError(
            f"{op}: device {name!r} is not available: the CuPy GPU backend is not "
            "installed in this build of minidl (it needs `pip install minidl[gpu]` and a CUDA GPU)"
        )
    raise ValueError(f"{op}: unknown device {name!r}; expected 'cpu' or 'cuda'")


def move(array, device):
    """``array`` on ``device`` (a copy only when it has to move)."""
    check_device(device, op="to")
    return array


def add_at(target, index, values):
    """``target[index] += values`` where repeated indices ADD (unbuffered)."""
    np.add.at(target, index, values)


if _forced is not None:
    if _forced not in _CPU_BACKENDS:
        raise ImportError(f"MINIDL_BACKEND={_forced!r} is not an available backend; "
                          f"choose one of {', '.join(_CPU_BACKENDS)}")
    _check_usable(_forced, f"MINIDL_BACKEND={_forced}")
