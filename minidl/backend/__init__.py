"""The backend seam: which array module and which kernels an array uses.

The op code is written once against an array module ``xp`` (NumPy on the CPU;
CuPy on the GPU in a later issue). ``array_module(array)`` returns that module.
Kernels that are not plain array code live in ``reference.py`` (readable NumPy,
the specification) and in faster modules with the same signatures.
"""
import numpy as np


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
