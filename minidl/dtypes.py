"""dtype names and the rules that pick a tensor's dtype.

minidl's dtypes *are* NumPy dtypes, so ``minidl.float32 == np.float32`` and an
array's dtype can be used wherever a minidl dtype is expected.
"""
import builtins
import numbers

import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
bool = np.dtype("bool")  # noqa: A001  (mirrors torch.bool)
int32 = np.dtype("int32")
int16 = np.dtype("int16")
int8 = np.dtype("int8")
uint8 = np.dtype("uint8")
float16 = np.dtype("float16")  # storage and conversion only: ops on it run in NumPy's float16, not tuned

default_float = float32


def set_default_dtype(d):
    """The dtype of tensors made from Python floats and of float factories (``zeros``, ``rand``,
    ``linspace``, ...) when no ``dtype=`` is given, and of a Python float in type promotion
    (``int_tensor * 2.5``), as ``torch.set_default_dtype``: float32 (the start) or float64.
    (PyTorch also takes float16 and bfloat16; minidl does not compute in them.)"""
    global default_float
    try:
        dtype = np.dtype(d)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind != "f":
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default "
                        f"type, got {d!r}")
    if dtype not in (float32, float64):
        raise TypeError(f"set_default_dtype: minidl supports float32 and float64 as the default type, "
                        f"got {dtype} (it does not compute in half precision)")
    default_float = dtype


def get_default_dtype():
    """The current default floating-point dtype (float32 unless ``set_default_dtype`` changed it)."""
    return default_float


def as_dtype(dtype):
    """Normalise ``dtype`` (None, a minidl/NumPy dtype, or a name) to a NumPy dtype."""
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; use minidl.float32, float64, float16, int64, int32, "
                        "int16, int8, uint8 or bool") from None


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


# --- type promotion: PyTorch's rules ------------------------------------------------------
# Categories, lowest first: bool < integer < floating. Operands are ranked too: a tensor with
# at least one dimension outranks a 0-dim tensor, which outranks a Python number. The result
# is the dtype of the highest-ranked operands, unless a lower-ranked operand is of a HIGHER
# category: then the two are promoted together. So float32 tensor + float64 0-dim tensor is
# float32, but int64 tensor + 2.5 is float32 (a Python float stands for the default float)
# and bool tensor + 1 is int64.

def _category(dtype):
    return {"b": 0, "u": 1, "i": 1, "f": 2}[np.dtype(dtype).kind]


def promote_types(a, b):
    """The smallest dtype that holds both (``torch.promote_types``): within a category the
    larger one; an integer with a float gives the float (NumPy would widen float16)."""
    a, b = np.dtype(a), np.dtype(b)
    if _category(a) != _category(b) and 2 in (_category(a), _category(b)):
        return a if _category(a) == 2 else b
    return np.promote_types(a, b)


def _scalar_dtype(value):
    """The dtype a Python number stands for: bool, int64 or the default float."""
    if isinstance(value, (builtins.bool, np.bool_)):
        return bool
    if isinstance(value, numbers.Integral):
        return int64
    if isinstance(value, numbers.Real):
        return default_float
    raise TypeError(f"unsupported operand {value!r} of type {type(value).__name__}")


def result_type(*operands):
    """The dtype of an elementwise op on ``operands`` (Tensors, arrays, Python numbers), by
    PyTorch's rules (``torch.result_type``), explained above."""
    ranks = [None, None, None]  # dimensioned tensors, 0-dim tensors, Python numbers
    for value in operands:
        if hasattr(value, "dtype") and not isinstance(value, np.generic):
            rank, dtype = (0 if value.ndim > 0 else 1), np.dtype(value.dtype)
        elif isinstance(value, np.generic):
            rank, dtype = 1, value.dtype  # NumPy scalars count as 0-dim tensors
        else:
            rank, dtype = 2, _scalar_dtype(value)
        ranks[rank] = dtype if ranks[rank] is None else promote_types(ranks[rank], dtype)
    return _combine(ranks[0], _combine(ranks[1], ranks[2]))


def _combine(higher, lower):
    """The dtype from a higher-ranked and a lower-ranked group (either may be None)."""
    if higher is None:
        return lower
    if lower is None or _category(higher) == 2:
        return higher
    if higher == bool or _category(lower) == 2:
        return promote_types(higher, lower)
    return higher


def can_cast(from_dtype, to_dtype):
    """Whether an in-place op may write a ``from_dtype`` result into a ``to_dtype`` tensor:
    never into a lower category (PyTorch: "result type Float can't be cast to ... Long")."""
    return _category(from_dtype) <= _category(to_dtype)


_TORCH_NAMES = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long",
                "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


_C_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long int",
            "int32": "int", "int16": "short int", "int8": "signed char", "uint8": "unsigned char",
            "bool": "bool"}


def c_name(dtype):
    """PyTorch's C name of a dtype in some of its error messages (float64 -> "double")."""
    return _C_NAMES.get(np.dtype(dtype).name, np.dtype(dtype).name)


def torch_name(dtype):
    """PyTorch's name of a dtype in its error messages (float32 -> "Float")."""
    return _TORCH_NAMES.get(np.dtype(dtype).name, np.dtype(dtype).name)
