r"""Devices: where a tensor's memory lives, and what computes on it.

A device is an array module (NumPy, CuPy, or the strict test device's), the kernel module for
its arrays, and the way to copy an array to it and back:

    cpu     NumPy arrays; kernels: Numba (numba_cpu.py) if it imports, else the reference,
            or the one chosen with ``set_backend`` (minidl/backend/__init__.py)
    cuda    CuPy arrays on the GPU, CuPy imported here and nowhere else, on first use;
            kernels: cupy_gpu.py
    strict  NumPy underneath, CuPy's refusals on top (strict.py): the test suite runs on it
            to find any op that silently falls back to NumPy; kernels: the reference

An array's device is decided by its type (:func:`device_of`), never by a global setting.
``minidl.device("cuda:0")`` is the public name of one, as ``torch.device``.
"""
import importlib

import numpy as np

from . import strict

DEVICE_TYPES = ("cpu", "cuda", "strict")


class device:
    """A device name, as ``torch.device``: ``device("cpu")``, ``device("cuda:0")``,
    ``device("cuda", 0)``. Compares equal to its string (``t.device == "cpu"``)."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):  # noqa: A002  (PyTorch's argument name)
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string or a device, got {type!r}")
        name, _, number = type.partition(":")
        if number:
            if index is not None:
                raise ValueError(f"device: type ({type!r}) must not include an index because index "
                                 f"was passed explicitly: {index}")
            if not number.isdigit():
                raise ValueError(f"device: invalid device string {type!r}")
            index = int(number)
        if name not in DEVICE_TYPES:
            raise ValueError(f"device: unknown device type {name!r} in {type!r}; expected one of "
                             f"{', '.join(DEVICE_TYPES)} (optionally with an index, 'cuda:0')")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
            raise ValueError(f"device: index must be a non-negative int, got {index!r}")
        if name != "cuda" and index not in (None, 0):
            raise ValueError(f"device: {name} has only device 0, got index {index}")
        self.type, self.index = name, index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (TypeError, ValueError):
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


# --- CUDA through CuPy: imported here, on first use, and nowhere else --------------------------
_cupy = None
_cuda_problem = None  # why CUDA cannot be used here (None: not looked yet, "": it can)


def cuda_problem():
    """Why the ``cuda`` device cannot be used on this machine, or "" when it can."""
    global _cupy, _cuda_problem
    if _cuda_problem is None:
        try:
            import cupy
        except ImportError as error:
            _cuda_problem = (f"CuPy is not installed ({error}); install the CuPy build for your "
                             "CUDA driver, e.g. `pip install cupy-cuda12x` (CUDA 12) or "
                             "`pip install cupy-cuda13x` (CUDA 13)")
        else:
            try:
                count = cupy.cuda.runtime.getDeviceCount()
            except Exception as error:  # CuPy raises its own CUDARuntimeError types
                count, reason = 0, f"{type(error).__name__}: {error}"
            else:
                reason = "no GPU was found"
            _cuda_problem = "" if count > 0 else (f"CuPy is installed but cannot use a CUDA GPU here "
                                                  f"({reason}): check the driver and the GPU")
            _cupy = cupy if count > 0 else None
    return _cuda_problem


def cupy_module(who="cuda"):
    """CuPy, or a RuntimeError that says what is missing."""
    problem = cuda_problem()
    if problem:
        raise RuntimeError(f"{who}: the cuda device is not available: {problem}")
    return _cupy


def cuda_device(index=None):
    """The device ``.cuda(index)`` means: ``cuda``, or ``cuda:<index>`` for an int, a device or a
    string."""
    if index is None:
        return device("cuda")
    if isinstance(index, (str, device)):
        return device(index)
    return device("cuda", int(index))


def cuda_device_count():
    return 0 if cuda_problem() else _cupy.cuda.runtime.getDeviceCount()


# --- which device an array is on --------------------------------------------------------------
def device_of(array):
    """The :class:`device` of an array, from its type."""
    if isinstance(array, (np.ndarray, np.generic)):
        return CPU
    if isinstance(array, strict.StrictArray):
        return STRICT
    if type(array).__module__.split(".")[0] == "cupy":
        return device("cuda", int(array.device.id))
    raise TypeError(f"an array of type {type(array).__name__} belongs to no minidl device")


def array_module(array):
    """The array module of ``array``: numpy, the strict device's, or cupy."""
    if type(array) is np.ndarray or isinstance(array, np.generic):
        return np
    if isinstance(array, strict.StrictArray):
        return strict
    if type(array).__module__.split(".")[0] == "cupy":
        return cupy_module()
    return np  # Python numbers and lists: NumPy's rules


def module_of_device(dev):
    """The array module of a :class:`device`."""
    dev = device(dev)
    return {"cpu": np, "strict": strict}.get(dev.type) or cupy_module(str(dev))


def to_device(array, dev):
    """``array`` (NumPy, strict or CuPy) copied to device ``dev``; itself if it is there already."""
    dev = device(dev)
    here = device_of(array)
    if here.type == dev.type and (dev.index is None or here.index in (None, dev.index)):
        return array
    host = array if here == CPU else array.get()  # through the host: the explicit copy back
    if dev.type == "cpu":
        return host
    if dev.type == "strict":
        return strict.asarray(host)
    cupy = cupy_module(str(dev))
    with cupy.cuda.Device(dev.index or 0):
        return cupy.asarray(host)


def to_host(array):
    """A NumPy array with ``array``'s values (the array itself when it is one)."""
    return array if isinstance(array, (np.ndarray, np.generic)) else array.get()


def kernel_module_of_device(dev, cpu_kernels):
    """The kernel module for arrays of ``dev`` (``cpu_kernels``: the chosen CPU one)."""
    if dev.type == "cpu":
        return cpu_kernels
    name = "reference" if dev.type == "strict" else "cupy_gpu"
    return importlib.import_module(f"minidl.backend.{name}")


CPU = device("cpu")
STRICT = device("strict")
