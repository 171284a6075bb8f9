"""dtype names and the rules that pick a tensor's dtype.

minidl's dtypes *are* NumPy dtypes, so ``minidl.float32 == np.float32`` and an
array's dtype can be used wherever a minidl dtype is expected.
"""
import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
bool = np.dtype("bool")  # noqa: A001  (mirrors torch.bool)

default_float = float32


def as_dtype(dtype):
    """Normalise ``dtype`` (None, a minidl/NumPy dtype, or a name) to a NumPy dtype."""
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; use minidl.float32, float64, int64 or bool") from None


def infer_dtype(array):
    """PyTorch's rule for data given without a dtype.

    NumPy arrays keep their dtype (as ``torch.from_numpy`` does); Python floats
    become float32, Python ints int64, Python bools bool.
    """
    return array.dtype


def python_data_dtype(array):
    """dtype for data that came from Python lists/scalars (not NumPy arrays)."""
    kind = array.dtype.kind
    if kind == "f":
        return default_float
    if kind in "iu":
        return int64
    if kind == "b":
        return bool
    raise TypeError(f"tensor: cannot make a tensor from data of dtype {array.dtype}")


def is_floating(dtype):
    return np.dtype(dtype).kind == "f"
