"""``minidl.save`` / ``minidl.load``: checkpoints in ONE ``.npz`` file, without pickle.

(A path ending in ``.pt`` or ``.pth`` is written in PyTorch's zip format instead, and
``load`` reads files written by ``torch.save`` too: see minidl/torch_format.py. The rest of
this docstring is about minidl's own format.)

Pickle can run arbitrary code when a file is loaded, so we never use it.
A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` files):

    arr_0, arr_1, ...   every array in the object, with its dtype and shape
    __structure__       a uint8 array holding UTF-8 JSON that describes the
                        nesting and points at the arrays by entry name

What can be saved (nested to any depth):

    dict / OrderedDict   keys: str, int, float, bool, None, or tuples of these
    list, tuple          (a namedtuple comes back as a plain tuple)
    str, int, float, bool, None
    numpy arrays and numpy scalars (not dtype=object: that would need pickle)
    minidl Tensors and Parameters (data and requires_grad; not .grad)

That covers ``model.state_dict()`` and ``optimizer.state_dict()`` (whose
``state`` dict has int keys).  Anything else -- a whole Module, a function --
raises ``TypeError`` naming where in the object it was found.

The JSON, for ``{"w": tensor, "step": 3}``::

    {"format": "minidl", "version": 1,
     "object": {"type": "dict", "ordered": false, "items": [
         ["w", {"type": "tensor", "entry": "arr_0", "requires_grad": false, "parameter": false}],
         ["step", 3]]}}

Lists are JSON lists and plain values are JSON values; every other node is a
JSON object with a ``"type"``.  An object saved twice (the same Tensor under
two keys) is stored once and loaded as one shared object.

Saving is atomic: the file is written under a temporary name in the same
directory, flushed to disk, then renamed over the target with ``os.replace``.
A crash or an error mid-save leaves any previous file intact.
"""

import json
import os
import uuid
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from .backend import device, is_array, to_host
from .nn.parameter import Parameter
from .tensor import Tensor
from .torch_format import LEGACY_MAGIC, encode_torch, is_torch_zip, load_torch_zip, write_torch_zip

__all__ = ["load", "save"]

_STRUCTURE = "__structure__"
_FORMAT = "minidl"
_VERSION = 1


def _as_path(f, op):
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    raise TypeError(
        f"minidl.{op}: expected a file path (str or pathlib.Path), got {type(f).__name__}"
    )


# ----------------------------------------------------------------------
# save
# ----------------------------------------------------------------------
class _Encoder:
    """Turns an object into (JSON-able structure, {entry name: array})."""

    def __init__(self):
        self.arrays = {}  # entry name -> ndarray
        self.entries = {}  # id(object) -> entry name, so a shared object is stored once
        self.keep_alive = []  # objects whose id is in self.entries (ids must not be reused)
        self.active = set()  # ids of the containers on the current path (cycle check)

    def _store(self, obj, array):
        if id(obj) not in self.entries:
            name = f"arr_{len(self.arrays)}"
            self.arrays[name] = array
            self.entries[id(obj)] = name
            self.keep_alive.append(obj)
        return self.entries[id(obj)]

    def encode(self, obj, path):
        # np.generic first: np.float64 is a subclass of float, np.bool_ is not bool.
        if isinstance(obj, np.generic):
            self._check_dtype(obj.dtype, path)
            return {"type": "scalar", "entry": self._store(obj, np.asarray(obj))}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, Tensor):
            array = to_host(obj._data)
            self._check_dtype(array.dtype, path)
            return {
                "type": "tensor",
                "entry": self._store(obj, array),
                "requires_grad": bool(obj.requires_grad),
                "parameter": isinstance(obj, Parameter),
            }
        if is_array(obj):  # on any device: stored from the host
            array = to_host(obj)
            self._check_dtype(array.dtype, path)
            return {"type": "ndarray", "entry": self._store(obj, array)}
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self.active:
                raise ValueError(f"minidl.save: {path} contains itself (a circular reference)")
            self.active.add(id(obj))
            try:
                return self._encode_container(obj, path)
            finally:
                self.active.discard(id(obj))
        hint = " (save module.state_dict() instead)" if hasattr(obj, "state_dict") else ""
        raise TypeError(
            f"minidl.save: cannot store an object of type {type(obj).__name__} at {path}{hint}; "
            "supported are dict, list, tuple, str, int, float, bool, None, "
            "numpy arrays and scalars, and minidl Tensors"
        )

    def _encode_container(self, obj, path):
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                items.append([self._encode_key(key, path), self.encode(value, f"{path}[{key!r}]")])
            return {"type": "dict", "ordered": isinstance(obj, OrderedDict), "items": items}
        items = [self.encode(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"type": "tuple", "items": items}
        return items

    def _encode_key(self, key, path):
        if isinstance(key, tuple):
            return {"type": "tuple", "items": [self._encode_key(k, path) for k in key]}
        if key is None or (isinstance(key, (bool, int, float, str)) and not isinstance(key, np.generic)):
            return key
        raise TypeError(
            f"minidl.save: cannot store a dict key of type {type(key).__name__} ({key!r}) "
            f"in {path}; keys must be str, int, float, bool, None or tuples of these"
        )

    @staticmethod
    def _check_dtype(dtype, path):
        if dtype.hasobject:
            raise TypeError(
                f"minidl.save: cannot store an array of dtype {dtype} at {path}: "
                "object arrays would need pickle"
            )


def _is_torch_name(path):
    return path.lower().endswith((".pt", ".pth", ".pt.tar", ".pth.tar"))  # (.pth.tar: a common checkpoint name)


def save(obj, f):
    """Save ``obj`` (e.g. a state dict) to the path ``f``, atomically: as one ``.npz`` file, or,
    when the name ends in ``.pt`` or ``.pth``, in PyTorch's zip format (which
    ``torch.load(f, weights_only=True)`` reads; see minidl/torch_format.py).

    The name is used exactly as given (no ``.npz`` is appended).  The whole
    object is checked before anything is written, so a ``TypeError`` leaves
    the file system untouched.
    """
    path = _as_path(f, "save")
    directory, name = os.path.split(os.path.abspath(path))
    if _is_torch_name(path):
        pickled, storages = encode_torch(obj)
        archive_name = os.path.splitext(name)[0] or "archive"

        def write(fh):
            write_torch_zip(fh, archive_name, pickled, storages)
    else:
        encoder = _Encoder()
        structure = {"format": _FORMAT, "version": _VERSION, "object": encoder.encode(obj, "obj")}
        arrays = dict(encoder.arrays)
        arrays[_STRUCTURE] = np.frombuffer(json.dumps(structure).encode("utf-8"), dtype=np.uint8)

        def write(fh):  # a file object, so NumPy cannot append ".npz"
            np.savez(fh, allow_pickle=False, **arrays)

    tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        # "xb": create a new file (never overwrite); it gets the usual permissions.
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the new one
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ----------------------------------------------------------------------
# load
# ----------------------------------------------------------------------
class _Decoder:
    """Rebuilds the object from the JSON structure and the arrays of an open npz."""

    def __init__(self, npz):
        self.npz = npz
        self.loaded = {}  # entry name -> object, so shared objects stay shared

    def _entry(self, node, make):
        name = node["entry"]
        if name not in self.loaded:
            if name not in self.npz.files:
                raise ValueError(f"minidl.load: the file is damaged: array {name!r} is missing")
            self.loaded[name] = make(self.npz[name])
        return self.loaded[name]

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        kind = node.get("type")
        if kind == "dict":
            pairs = [(self._decode_key(k), self.decode(v)) for k, v in node["items"]]
            return OrderedDict(pairs) if node["ordered"] else dict(pairs)
        if kind == "tuple":
            return tuple(self.decode(v) for v in node["items"])
        if kind == "ndarray":
            return self._entry(node, lambda a: a)
        if kind == "scalar":
            return self._entry(node, lambda a: a[()])
        if kind == "tensor":
            cls = Parameter if node["parameter"] else Tensor
            return self._entry(node, lambda a: cls(a, requires_grad=node["requires_grad"]))
        raise ValueError(f"minidl.load: the file is damaged: unknown node type {kind!r}")

    def _decode_key(self, key):
        if isinstance(key, dict):  # a tuple key
            return tuple(self._decode_key(k) for k in key["items"])
        return key


_SIGNATURES = ((b"\x93NUMPY", "a single .npy array"), (b"\x89PNG", "a PNG image"),
               (b"\x80", "a pickle file (minidl never unpickles: it could run code)"),
               (b"\xff\xd8\xff", "a JPEG image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"))


def load(f, map_location=None, weights_only=None):
    """Load an object saved by :func:`save` or by ``torch.save`` (Tensors come back as minidl
    Tensors on the CPU, or on ``map_location``, a device or its name, if given). PyTorch's
    ``weights_only=True`` rule always applies, whatever ``weights_only`` says.

    A file that is not one (empty, truncated, corrupted, another format) raises ValueError with
    one line naming the file and what is wrong.  A minidl file is never unpickled; the pickle of a
    ``torch.save`` file is read by a restricted unpickler that admits only what
    ``torch.load(weights_only=True)`` admits and raises ``pickle.UnpicklingError`` naming the
    file and any other global, without calling it (minidl/torch_format.py)."""
    path = _as_path(f, "load")
    if map_location is not None and not isinstance(map_location, (str, device)):
        raise TypeError(f"minidl.load: map_location must be a device or its name ('cpu', 'cuda'), "
                        f"got {type(map_location).__name__}")
    obj = _load(path)
    return obj if map_location is None else _to_device(obj, device(map_location))


def _to_device(obj, where):
    if isinstance(obj, Tensor):
        moved = obj.detach().to(where)
        return Parameter(moved, requires_grad=obj.requires_grad) if isinstance(obj, Parameter) else moved
    if isinstance(obj, dict):
        return type(obj)((k, _to_device(v, where)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, where) for v in obj)
    return obj


def _load(path):
    with open(path, "rb") as fh:
        head = fh.read(8)
        if not head:
            raise ValueError(f"minidl.load: {path} is empty (0 bytes), not a minidl checkpoint")
        if head.startswith(LEGACY_MAGIC[:8]) and (head + fh.read(6)) == LEGACY_MAGIC:
            raise ValueError(
                f"minidl.load: {path} was written by torch.save in PyTorch's legacy (non-zip) format, "
                "which minidl does not read; re-save it with PyTorch: "
                "torch.save(torch.load(path, weights_only=True), path) (the default "
                "_use_new_zipfile_serialization=True writes the zip format)")
        if not head.startswith(b"PK"):  # every .npz is a zip archive
            kind = next((what for magic, what in _SIGNATURES if head.startswith(magic)), "not a zip archive")
            raise ValueError(f"minidl.load: {path} is not a minidl checkpoint: it is {kind}")
        fh.seek(0)
        try:
            with zipfile.ZipFile(fh) as archive:
                if is_torch_zip(archive.namelist()):
                    return load_torch_zip(archive, path)
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as npz:
                return _load_npz(npz, path)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, UnicodeDecodeError,
                json.JSONDecodeError, RecursionError) as error:
            raise ValueError(f"minidl.load: {path} is damaged (truncated or corrupted): "
                             f"{type(error).__name__}: {error}") from None
        except ValueError as error:
            if str(error).startswith("minidl.load"):
                raise
            raise ValueError(f"minidl.load: {path} is damaged (truncated or corrupted): {error}") from None


def _load_npz(npz, path):
    if _STRUCTURE not in npz.files:
        raise ValueError(
            f"minidl.load: {path} is an .npz file but not a minidl checkpoint "
            f"(it has no {_STRUCTURE!r} entry)"
        )
    structure = json.loads(npz[_STRUCTURE].tobytes().decode("utf-8"))
    if structure.get("format") != _FORMAT or structure.get("version") != _VERSION:
        raise ValueError(
            f"minidl.load: {path} has format {structure.get('format')!r} version "
            f"{structure.get('version')!r}; this minidl reads {_FORMAT!r} version {_VERSION}"
        )
    return _Decoder(npz).decode(structure["object"])
