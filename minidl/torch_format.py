"""PyTorch's checkpoint format (``torch.save``'s zip files), read and written without torch.

The layout of a file written by ``torch.save`` since PyTorch 1.6 (a zip archive whose entries
all sit under one folder, ``<name>/``, usually the file's stem)::

    <name>/data.pkl         a pickle (protocol 2) of the object; each tensor in it is
                            torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
                                                         requires_grad, backward_hooks)
                            and each storage a persistent id
                            ("storage", torch.FloatStorage, key, "cpu", numel)
    <name>/data/<key>       the raw bytes of storage <key> (numel elements)
    <name>/byteorder        "little" or "big": the byte order of those bytes
    <name>/version, ...     format versions and an id that minidl does not need

Reading: a pickle may call any function it names, so ``data.pkl`` is read by an unpickler
that knows only what PyTorch's ``torch.load(weights_only=True)`` admits for a state dict
(``collections.OrderedDict``, the tensor and parameter rebuild functions, the typed storages,
torch dtypes, ``torch.Size``, ``torch.device``, ``_codecs.encode`` for bytes, and plain
containers, numbers and strings). Every other global is refused with an ``UnpicklingError``
naming the file and the global, before it is called: nothing in the file runs.

Tensors come back as minidl Tensors (Parameters as ``nn.Parameter`` with their
``requires_grad``) on the CPU. Tensors that shared a storage in PyTorch share one NumPy
array here (views with the saved offset and strides), and one version counter.
Dtypes: float32, float64, float16 (kept as float16: minidl stores it, see dtypes.py), int64,
int32, int16, int8, uint8, bool. bfloat16 and complex storages are refused (NumPy has no
bfloat16).

Writing: ``minidl.save(obj, "x.pth")`` writes the same layout, one storage per tensor (the
same Tensor object twice is one storage), so that ``torch.load(f, weights_only=True)`` reads
it. What it can express: dict, OrderedDict, list, tuple, str, int, float, bool, None,
minidl Tensors and Parameters, NumPy arrays (saved as tensors) and NumPy scalars (saved as
Python numbers). The pickle is written opcode by opcode below, so no torch module is needed.
"""

import io
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from .autograd import VersionCounter
from .backend import is_array, to_host
from .nn.parameter import Parameter
from .tensor import Tensor

# torch storage class name <-> NumPy dtype (native byte order)
_STORAGES = {
    "FloatStorage": np.dtype("float32"), "DoubleStorage": np.dtype("float64"),
    "HalfStorage": np.dtype("float16"), "LongStorage": np.dtype("int64"),
    "IntStorage": np.dtype("int32"), "ShortStorage": np.dtype("int16"),
    "CharStorage": np.dtype("int8"), "ByteStorage": np.dtype("uint8"),
    "BoolStorage": np.dtype("bool"),
}
_STORAGE_OF = {dtype: name for name, dtype in _STORAGES.items()}
_UNSUPPORTED_STORAGES = ("BFloat16Storage", "ComplexFloatStorage", "ComplexDoubleStorage",
                         "QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage",
                         "QUInt2x4Storage", "UntypedStorage", "TypedStorage")
_TORCH_DTYPES = {"float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
                 "float16": "float16", "half": "float16", "int64": "int64", "long": "int64",
                 "int32": "int32", "int": "int32", "int16": "int16", "short": "int16",
                 "int8": "int8", "uint8": "uint8", "bool": "bool"}

# The first bytes of a file written by torch.save(..., _use_new_zipfile_serialization=False):
# pickle protocol 2, then the long 0x1950a86a20f9469cfc6c (torch's "magic number").
LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def is_torch_zip(names):
    """Whether the entry names of a zip archive are those of a ``torch.save`` file."""
    return any(n.count("/") == 1 and n.endswith("/data.pkl") for n in names)


# ----------------------------------------------------------------------
# load
# ----------------------------------------------------------------------
class _StorageType:
    """What the pickle's ``torch.FloatStorage`` (...) global becomes: just its dtype."""

    def __init__(self, name):
        self.name, self.dtype = name, _STORAGES[name]


class _Storage:
    """One storage of the file: a flat NumPy array and the version counter of its tensors."""

    def __init__(self, array):
        self.array = array
        self.version_counter = VersionCounter()


def _tensor_on(storage, offset, size, stride, where):
    """A Tensor viewing ``storage`` from element ``offset`` with ``size`` and ``stride``
    (in elements), checked to stay inside the storage (a bad file must not read past it)."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"{where}: a tensor's storage is {type(storage).__name__}, not a storage")
    try:
        offset, size, stride = int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    except (TypeError, ValueError):
        raise pickle.UnpicklingError(f"{where}: a tensor has a malformed offset, size or stride") from None
    flat = storage.array
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"{where}: a tensor has a malformed offset {offset}, size {size} "
                                     f"or stride {stride}")
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise pickle.UnpicklingError(f"{where}: a tensor of size {size}, stride {stride}, offset "
                                         f"{offset} reaches past its storage of {flat.size} elements")
    elif offset > flat.size:
        raise pickle.UnpicklingError(f"{where}: a tensor's offset {offset} is past its storage")
    item = flat.itemsize
    array = np.lib.stride_tricks.as_strided(flat[offset:] if flat.size else flat, shape=size,
                                            strides=tuple(s * item for s in stride))
    if any(s == 0 and n > 1 for n, s in zip(size, stride)):
        array = array.copy()  # an expanded tensor: one element seen many times; give it its own memory
        return Tensor(array)
    tensor = Tensor(array)
    tensor._version_counter = storage.version_counter  # a write to one is seen by all its views
    return tensor


def _refuse_hooks(hooks, where):
    if hooks:  # weights_only refuses backward hooks too (they are functions)
        raise pickle.UnpicklingError(f"{where}: a tensor has backward hooks; they cannot be loaded")


class _Unpickler(pickle._Unpickler):
    """Python's pickle reader, with every global and persistent id checked.

    The pure-Python reader is used (its opcode table can be changed): BUILD, which would set
    attributes on any object, is admitted only for an OrderedDict given a dict of names."""

    def __init__(self, data, storages, where):
        super().__init__(io.BytesIO(data))
        self.storages, self.where = storages, where
        self.dispatch = dict(pickle._Unpickler.dispatch)
        self.dispatch[pickle.BUILD[0]] = _Unpickler._build
        for opcode in (pickle.INST, pickle.OBJ, pickle.EXT1, pickle.EXT2, pickle.EXT4):
            self.dispatch[opcode[0]] = _Unpickler._refused_opcode

    def _build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is OrderedDict and isinstance(state, dict) and all(isinstance(k, str) for k in state):
            return  # a state dict's `_metadata` (module versions): minidl does not need it
        raise pickle.UnpicklingError(f"{self.where}: refused to set the state of a "
                                     f"{type(inst).__name__} (only plain containers and tensors load)")

    def _refused_opcode(self):
        raise pickle.UnpicklingError(f"{self.where}: refused a pickle opcode that creates arbitrary objects")

    def find_class(self, module, name):
        where = self.where
        full = f"{module}.{name}"
        if full == "collections.OrderedDict":
            return OrderedDict
        if full == "torch._utils._rebuild_tensor_v2":
            def rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
                _refuse_hooks(hooks, where)
                tensor = _tensor_on(storage, offset, size, stride, where)
                tensor._requires_grad = bool(requires_grad)
                return tensor
            return rebuild_tensor
        if full in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"):
            def rebuild_parameter(data, requires_grad, hooks=None, state=None):
                _refuse_hooks(hooks, where)
                if not isinstance(data, Tensor):
                    raise pickle.UnpicklingError(f"{where}: a Parameter's data is not a tensor")
                return Parameter(data, requires_grad=bool(requires_grad))  # shares data's memory
            return rebuild_parameter
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        if module == "torch" and name in _TORCH_DTYPES:
            return np.dtype(_TORCH_DTYPES[name])
        if full == "torch.Size":
            return lambda dims=(): tuple(int(d) for d in dims)
        if full == "torch.device":
            return lambda kind, index=None: str(kind) if index is None else f"{kind}:{index}"
        if full == "_codecs.encode":  # how protocol 2 writes bytes
            def encode(text, encoding):
                if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
                    raise pickle.UnpicklingError(f"{where}: refused _codecs.encode with {encoding!r}")
                return text.encode("latin1")
            return encode
        if module == "torch" and name in _UNSUPPORTED_STORAGES:
            raise pickle.UnpicklingError(f"{where}: has a torch.{name}; minidl reads the storages of "
                                         "float32/64, float16, int64/32/16/8, uint8 and bool tensors")
        if module == "torch" and name in ("bfloat16", "complex64", "complex128", "cfloat", "cdouble"):
            raise pickle.UnpicklingError(f"{where}: has the dtype torch.{name}, which minidl does not support")
        raise pickle.UnpicklingError(
            f"{where}: refused the global {full!r}: a checkpoint is loaded like torch.load(f, "
            "weights_only=True), which admits only tensors, state dicts and plain Python containers, "
            "numbers and strings (loading an arbitrary global could run code)")

    def persistent_load(self, pid):
        where = self.where
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise pickle.UnpicklingError(f"{where}: refused an unknown persistent id {pid!r}")
        _, storage_type, key, location, numel = pid
        if key not in self.storages:
            self.storages[key] = self._read_storage(storage_type, key, numel)
        storage = self.storages[key]
        if storage.array.dtype != storage_type.dtype:
            raise pickle.UnpicklingError(f"{where}: storage {key} is used with two dtypes "
                                         f"({storage.array.dtype} and {storage_type.dtype})")
        return storage

    # set by load() to the archive and its folder
    archive = prefix = byteorder = None

    def _read_storage(self, storage_type, key, numel):
        name = f"{self.prefix}data/{key}"
        try:
            raw = self.archive.read(name)
        except KeyError:
            raise pickle.UnpicklingError(f"{self.where}: storage entry {name!r} is missing") from None
        dtype = storage_type.dtype.newbyteorder("<" if self.byteorder == "little" else ">")
        if not isinstance(numel, int) or len(raw) != numel * dtype.itemsize:
            raise pickle.UnpicklingError(f"{self.where}: storage {name!r} has {len(raw)} bytes, expected "
                                         f"{numel} elements of {storage_type.dtype}")
        if storage_type.dtype == np.bool_ and any(b > 1 for b in raw):
            raise pickle.UnpicklingError(f"{self.where}: bool storage {name!r} holds values other than 0 and 1")
        # a fresh array in native byte order that minidl owns (np.frombuffer of bytes is read-only)
        return _Storage(np.frombuffer(raw, dtype=dtype).astype(storage_type.dtype, copy=True))


def load_torch_zip(archive, path):
    """The object of the ``torch.save`` zip file ``archive`` (an open ``zipfile.ZipFile``)."""
    where = f"minidl.load: {path}"
    pkl = next(n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl"))
    prefix = pkl[: -len("data.pkl")]
    names = set(archive.namelist())
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise ValueError(f"{where} has an unknown byte order {byteorder!r}")
    unpickler = _Unpickler(archive.read(pkl), {}, where)
    unpickler.archive, unpickler.prefix, unpickler.byteorder = archive, prefix, byteorder
    try:
        return unpickler.load()
    except pickle.UnpicklingError as error:
        if str(error).startswith(where):  # a refused global, or a tensor that does not fit
            raise
        raise ValueError(f"{where} is damaged (truncated or corrupted): {error}") from None
    except (EOFError, IndexError, TypeError, KeyError, ValueError, AttributeError, struct.error,
            UnicodeDecodeError, RecursionError, zipfile.BadZipFile, zlib.error, OSError) as error:
        if str(error).startswith(where):
            raise
        raise ValueError(f"{where} is damaged (truncated or corrupted): "
                         f"{type(error).__name__}: {error}") from None


# ----------------------------------------------------------------------
# save
# ----------------------------------------------------------------------
class _Writer:
    """Writes protocol-2 pickle opcodes for the object, and collects the storages. Only tensors
    are memoized: one Tensor object seen twice is written once and loads as one object."""

    def __init__(self):
        self.out = io.BytesIO()
        self.storages = []  # (key, raw little-endian bytes)
        self.keep_alive = []
        self.active = set()
        self.memo = {}  # id(tensor) -> memo index

    def op(self, *parts):
        for p in parts:
            self.out.write(p)

    def global_(self, module, name):
        self.op(b"c", module.encode() + b"\n", name.encode() + b"\n")

    def str_(self, s):
        data = s.encode("utf-8", "surrogatepass")
        self.op(b"X", struct.pack("<I", len(data)), data)

    def int_(self, i):
        if -(2 ** 31) <= i < 2 ** 31:
            self.op(b"J", struct.pack("<i", i))
        else:
            data = pickle.encode_long(i)
            self.op(b"\x8a", bytes([len(data)]), data) if len(data) < 256 else \
                self.op(b"\x8b", struct.pack("<i", len(data)), data)

    def tuple_(self, items, write):
        self.op(b"(")
        for item in items:
            write(item)
        self.op(b"t")

    def write(self, obj, path):
        if isinstance(obj, np.generic):
            if obj.dtype.kind not in "biuf":
                raise TypeError(f"minidl.save: cannot store a NumPy scalar of dtype {obj.dtype} at {path} "
                                "in PyTorch's format")
            obj = obj.item()
        if obj is None:
            self.op(b"N")
        elif obj is True or obj is False:
            self.op(b"\x88" if obj else b"\x89")
        elif isinstance(obj, int):
            self.int_(int(obj))
        elif isinstance(obj, float):
            self.op(b"G", struct.pack(">d", obj))
        elif isinstance(obj, str):
            self.str_(obj)
        elif isinstance(obj, Tensor) or is_array(obj):
            self.tensor(obj, path)
        elif isinstance(obj, (dict, list, tuple)):
            if id(obj) in self.active:
                raise ValueError(f"minidl.save: {path} contains itself (a circular reference)")
            self.active.add(id(obj))
            try:
                self.container(obj, path)
            finally:
                self.active.discard(id(obj))
        else:
            hint = " (save module.state_dict() instead)" if hasattr(obj, "state_dict") else ""
            raise TypeError(
                f"minidl.save: cannot store an object of type {type(obj).__name__} at {path} in "
                f"PyTorch's format{hint}; supported are dict, OrderedDict, list, tuple, str, int, float, "
                "bool, None, minidl Tensors, NumPy arrays and scalars")

    def container(self, obj, path):
        if isinstance(obj, dict):
            if isinstance(obj, OrderedDict):
                self.global_("collections", "OrderedDict")
                self.op(b")R")
            else:
                self.op(b"}")
            if obj:
                self.op(b"(")
                for key, value in obj.items():
                    self.key(key, path)
                    self.write(value, f"{path}[{key!r}]")
                self.op(b"u")
        elif isinstance(obj, list):
            self.op(b"]")
            if obj:
                self.op(b"(")
                for i, value in enumerate(obj):
                    self.write(value, f"{path}[{i}]")
                self.op(b"e")
        elif not obj:
            self.op(b")")
        else:
            self.op(b"(")
            for i, value in enumerate(obj):
                self.write(value, f"{path}[{i}]")
            self.op(b"t")

    def key(self, key, path):
        if isinstance(key, tuple):
            self.tuple_(key, lambda k: self.key(k, path))
        elif key is None or (isinstance(key, (bool, int, float, str)) and not isinstance(key, np.generic)):
            self.write(key, path)
        else:
            raise TypeError(f"minidl.save: cannot store a dict key of type {type(key).__name__} ({key!r}) "
                            f"in {path}; keys must be str, int, float, bool, None or tuples of these")

    def tensor(self, obj, path):
        if id(obj) in self.memo:  # BINGET / LONG_BINGET
            index = self.memo[id(obj)]
            self.op(b"h", bytes([index])) if index < 256 else self.op(b"j", struct.pack("<I", index))
            return
        self.tensor_body(obj, path)
        index = self.memo[id(obj)] = len(self.memo)  # BINPUT / LONG_BINPUT
        self.op(b"q", bytes([index])) if index < 256 else self.op(b"r", struct.pack("<I", index))

    def tensor_body(self, obj, path):
        array = to_host(obj._data if isinstance(obj, Tensor) else obj)
        if array.dtype not in _STORAGE_OF:
            raise TypeError(f"minidl.save: cannot store an array of dtype {array.dtype} at {path} in "
                            "PyTorch's format; supported are float32, float64, float16, int64, int32, int16, "
                            "int8, uint8 and bool")
        key, storage, numel = str(len(self.storages)), _STORAGE_OF[array.dtype], array.size
        flat = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
        self.storages.append((key, flat.tobytes()))
        self.keep_alive.append(obj)  # its id stays in self.memo
        parameter = isinstance(obj, Parameter)
        requires_grad = bool(isinstance(obj, Tensor) and obj.requires_grad)
        if parameter:
            self.global_("torch._utils", "_rebuild_parameter")
            self.op(b"(")
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.op(b"(")
        # the storage: a persistent id ("storage", torch.<Type>Storage, key, "cpu", numel)
        self.op(b"(")
        self.str_("storage")
        self.global_("torch", storage)
        self.str_(key)
        self.str_("cpu")
        self.int_(numel)
        self.op(b"tQ")
        self.int_(0)  # storage offset
        shape = array.shape
        strides = [1] * len(shape)  # C-contiguous strides, in elements
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * max(shape[i + 1], 1)
        self.tuple_(shape, self.int_)
        self.tuple_(strides, self.int_)
        self.op(b"\x88" if requires_grad and not parameter else b"\x89")
        self.global_("collections", "OrderedDict")
        self.op(b")R")  # no backward hooks
        self.op(b"tR")
        if parameter:
            self.op(b"\x88" if requires_grad else b"\x89")
            self.global_("collections", "OrderedDict")
            self.op(b")R")
            self.op(b"tR")


def encode_torch(obj):
    """(data.pkl bytes, [(key, bytes)]) for ``obj``; raises TypeError before anything is written."""
    writer = _Writer()
    writer.op(b"\x80\x02")
    writer.write(obj, "obj")
    writer.op(b".")
    return writer.out.getvalue(), writer.storages


def write_torch_zip(fh, name, pickled, storages):
    """Write the zip archive to the binary file ``fh``; entries under ``name/``, each
    storage's bytes starting at a multiple of 64 (as torch.save aligns them)."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as archive:
        def add(entry, data, align=False):
            info = zipfile.ZipInfo(f"{name}/{entry}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            if align:  # pad the local header's extra field so the data starts 64-aligned
                start = fh.tell() + 30 + len(info.filename.encode()) + 4
                pad = -start % 64
                info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            archive.writestr(info, data)

        add("data.pkl", pickled)
        add("byteorder", b"little")
        for key, data in storages:
            add(f"data/{key}", data, align=True)
        add("version", b"3\n")
        add(".data/version", b"3\n")
