"""PyTorch's file format (``torch.save``'s zip archive), read and written without torch.

A ``.pt``/``.pth`` file is a zip archive whose entries sit under one folder name::

    <name>/data.pkl      the object, pickled (protocol 2); each tensor is a call
                         torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
                         and each storage a "persistent id" ('storage', torch.FloatStorage,
                         key, 'cpu', numel) that points at an entry below
    <name>/data/<key>    a storage's raw bytes
    <name>/byteorder     'little' or 'big'
    <name>/version, .format_version, .storage_alignment, .data/serialization_id

Unpickling can run any code a file names, so :func:`load_torch_file` only admits what
PyTorch's ``torch.load(weights_only=True)`` admits: tensors, parameters, storages, dtype
and size names, and plain containers (dict, OrderedDict, list, tuple, set, numbers, strings).
Any other name in the file is refused before it is called.
"""
import io
import os
import pickle
import uuid
import zipfile
from collections import OrderedDict

import numpy as np

from . import dtypes
from .backend import to_host
from .nn.parameter import Parameter
from .tensor import Tensor

# torch's storage classes and dtype names -> NumPy dtypes (bfloat16 and complex are not read)
_STORAGES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
             "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
             "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}
_STORAGE_OF = {np.dtype(v): k for k, v in _STORAGES.items()}
_DTYPE_NAMES = {"float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"}


def is_torch_file(path):
    """Whether ``path`` is a zip archive in PyTorch's layout (a ``data.pkl`` entry)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


# ----------------------------------------------------------------------
# load
# ----------------------------------------------------------------------
class _StorageType:
    """``torch.FloatStorage`` and its kin, as read from a file: only their dtype matters."""

    def __init__(self, name):
        self.dtype = np.dtype(_STORAGES[name])


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """A tensor on ``storage`` (a 1-D array): ``size`` entries from ``storage_offset`` with
    ``stride`` (in elements), a view of the storage's memory, so that tensors saved on one
    storage (a tensor and its transpose, slices) still share it."""
    size, stride = tuple(size), tuple(stride)
    item = storage.itemsize
    needed = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else 0
    if needed > storage.size:
        raise ValueError(f"a tensor of size {size} and stride {stride} at offset {storage_offset} "
                         f"does not fit its storage of {storage.size} elements")
    array = np.lib.stride_tricks.as_strided(storage[storage_offset:] if storage.size else storage,
                                            shape=size, strides=[s * item for s in stride])
    if 0 in stride and array.size > 1:
        array = array.copy()  # an expanded tensor: give each element memory of its own
    return Tensor(array, requires_grad=bool(requires_grad) and array.dtype.kind == "f")


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    return Parameter(data, requires_grad=requires_grad)


def _rebuild_from_type_v2(func, new_type, args, state):
    if new_type is not Tensor:
        raise pickle.UnpicklingError(f"tensor subclass {new_type!r}")
    return func(*args)


class _WeightsOnlyUnpickler(pickle.Unpickler):
    """Resolves only the names of a state dict; every other global is refused."""

    _ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): Tensor,
        ("torch", "Size"): tuple,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
    }

    def __init__(self, data, zf, prefix, byteorder):
        super().__init__(io.BytesIO(data))
        self.zf, self.prefix = zf, prefix
        self.order = "<" if byteorder == "little" else ">"
        self.storages = {}  # key -> array: tensors on one storage share its memory

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        if module == "torch" and name in _DTYPE_NAMES:
            return getattr(dtypes, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a weights-only load refuses "
                                     "(it could run code); only tensors, parameters and plain "
                                     "containers are read")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if key not in self.storages:
            raw = self.zf.read(f"{self.prefix}data/{key}")
            dtype = storage_type.dtype.newbyteorder(self.order)
            if len(raw) < numel * dtype.itemsize:
                raise pickle.UnpicklingError(f"storage {key} holds {len(raw)} bytes, fewer than its "
                                             f"{numel} elements need")
            array = np.frombuffer(raw, dtype=dtype, count=numel)
            self.storages[key] = array.astype(storage_type.dtype)  # native order, writable, owned
        return self.storages[key]


def load_torch_file(path):
    """The object in a ``torch.save`` file, with minidl tensors (on the CPU)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            pkl = next(n for n in names if n == "data.pkl" or n.endswith("/data.pkl"))
            prefix = pkl[: -len("data.pkl")]
            byteorder = (zf.read(prefix + "byteorder").decode() if prefix + "byteorder" in names
                         else "little")
            return _WeightsOnlyUnpickler(zf.read(pkl), zf, prefix, byteorder).load()
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile,
            AttributeError, IndexError) as error:
        raise ValueError(f"minidl.load: {path} is a PyTorch file that cannot be read: {error}") from None


# ----------------------------------------------------------------------
# save
# ----------------------------------------------------------------------
class _Global:
    """A name written into the pickle as it is (``torch._utils._rebuild_tensor_v2``): torch
    need not be importable here, only where the file is loaded."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle asks for a callable; it is only ever written, never called
        raise TypeError(f"{self.module}.{self.name} is a name for the file, not a function here")


_REBUILD_TENSOR = _Global("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = _Global("torch._utils", "_rebuild_parameter")


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _TorchPickler(pickle._Pickler):  # the Python pickler: its save() can be extended
    def __init__(self, fh):
        super().__init__(fh, protocol=2)
        self.storages = []

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            storage_type = _Global("torch", _STORAGE_OF[obj.array.dtype])
            return ("storage", storage_type, obj.key, "cpu", obj.array.size)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, Tensor):
            if isinstance(obj, Parameter):  # a parameter is a call around its data's tensor
                return _REBUILD_PARAMETER, (obj.detach(), obj.requires_grad, OrderedDict())
            array = to_host(obj._data)
            array = array if array.flags.c_contiguous else array.copy(order="C")  # (keeps 0-d as 0-d)
            storage = _Storage(str(len(self.storages)), array)
            self.storages.append(storage)
            strides = tuple(s // array.itemsize for s in array.strides) if array.size else (1,) * array.ndim
            return _REBUILD_TENSOR, (storage, 0, tuple(array.shape), strides, False, OrderedDict())
        return NotImplemented


def _check_savable(obj, where):
    """Refuse, before anything is written, what a weights-only PyTorch load could not read."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return
    if isinstance(obj, np.generic) and obj.dtype in _STORAGE_OF:
        return
    if isinstance(obj, (Tensor, np.ndarray)):
        dtype = (obj._data if isinstance(obj, Tensor) else obj).dtype
        if dtype not in _STORAGE_OF:
            raise TypeError(f"minidl.save: the tensor at {where} has dtype {dtype}, which "
                            "a PyTorch file made here cannot hold")
        return
    if isinstance(obj, (dict, OrderedDict)):
        for key, value in obj.items():
            _check_savable(key, f"{where} (a key)")
            _check_savable(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple, set, frozenset):
        for i, value in enumerate(obj):
            _check_savable(value, f"{where}[{i}]")
        return
    raise TypeError(f"minidl.save: cannot write {type(obj).__name__} (at {where}) to a PyTorch file: "
                    "it holds tensors (and arrays, as tensors), dicts, lists, tuples, numbers, strings "
                    "and None (what "
                    "torch.load(weights_only=True) reads); save a state_dict()")


def _as_torch_values(obj):
    """NumPy arrays (minidl's optimizer state holds them) become tensors, NumPy scalars numbers."""
    if isinstance(obj, np.ndarray):
        return Tensor(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return type(obj)((k, _as_torch_values(v)) for k, v in obj.items())
    if type(obj) in (list, tuple, set, frozenset):
        return type(obj)(_as_torch_values(v) for v in obj)
    return obj


def save_torch_file(obj, path):
    """Write ``obj`` in ``torch.save``'s zip format, atomically (a temporary name, then rename)."""
    _check_savable(obj, "obj")
    obj = _as_torch_values(obj)
    buffer = io.BytesIO()
    pickler = _TorchPickler(buffer)
    pickler.dump(obj)
    directory, base = os.path.split(os.path.abspath(path))
    name = os.path.splitext(base)[0] or "archive"  # the folder inside the zip, as torch.save names it
    tmp = os.path.join(directory, f".{base}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
                zf.writestr(f"{name}/data.pkl", buffer.getvalue())
                zf.writestr(f"{name}/.format_version", "1")
                zf.writestr(f"{name}/.storage_alignment", "64")
                zf.writestr(f"{name}/byteorder", "little" if np.little_endian else "big")
                for storage in pickler.storages:
                    zf.writestr(f"{name}/data/{storage.key}", storage.array.tobytes())
                zf.writestr(f"{name}/version", "3\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
