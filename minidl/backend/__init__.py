"""The backend seam: which array module and which kernels an array uses.

The op code is written once against an array module ``xp`` (NumPy on the CPU;
CuPy on the GPU in a later issue): ``array_module(array)`` returns it. The few
kernels that are not plain array code (im2col, col2im, pooling argmax and its
scatter, ...) go through ``kernels_for(array)``, which returns a module with
the same functions for every backend:

    reference   readable NumPy loops over the kernel window: the specification
    numba       the same kernels compiled with Numba (CPU speed issue)
    cupy        the same kernels as CUDA kernels (GPU issue)

Choosing a backend: the environment variable ``MINIDL_BACKEND`` (read at
import) or :func:`set_backend` force one for CPU arrays; by default the
fastest available one is used.
"""
import importlib
import os

import numpy as np

_CPU_BACKENDS = ("reference",)  # in order of preference: the last available one is the default
_forced = os.environ.get("MINIDL_BACKEND") or None


def available_backends():
    """Names of the CPU kernel backends that import on this machine."""
    return list(_CPU_BACKENDS)


def set_backend(name):
    """Force the kernel backend for CPU arrays (``None`` restores the default)."""
    global _forced
    if name is not None and name not in _CPU_BACKENDS:
        raise ValueError(f"set_backend: unknown or unavailable backend {name!r}; "
                         f"available: {', '.join(available_backends())}")
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
    return _forced or _CPU_BACKENDS[-1]


def kernels_for(array):
    """The kernel module for ``array`` (see the module docstring)."""
    return importlib.import_module(f"{__name__}.{get_backend()}")


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


if _forced is not None and _forced not in _CPU_BACKENDS:
    raise ImportError(f"MINIDL_BACKEND={_forced!r} is not an available backend; "
                      f"choose one of {', '.join(_CPU_BACKENDS)}")
