"""Collation: turning a list of samples into one batch (as ``torch.utils.data._utils.collate``).

:func:`default_collate` works on the structure of the first sample and recurses:

    Tensor                 -> stacked along a new first axis          (minidl.stack)
    NumPy array            -> tensor, then stacked                    (str/object arrays: TypeError)
    NumPy scalar           -> 1-D tensor of its dtype
    float                  -> float64 tensor; int -> int64; bool -> bool (PyTorch's dtypes)
    str, bytes             -> the list, unchanged
    Mapping                -> the same kind of mapping, each key collated
    namedtuple             -> the same namedtuple, each field collated
    tuple                  -> a LIST of collated fields (as PyTorch, for backward compatibility)
    other Sequence         -> the same kind of sequence (all samples of equal length)

:func:`default_convert` (used when ``batch_size=None``) only turns NumPy arrays into tensors,
through the same structures. ``collate_fn_map`` lets :func:`collate` handle more types.
"""
import collections.abc
import copy
import re

import numpy as np

_STR_OR_OBJECT = re.compile(r"[SaUO]")  # NumPy dtype codes of bytes, str and object arrays

default_collate_err_msg_format = ("default_collate: batch must contain tensors, numpy arrays, numbers, "
                                  "dicts or lists; found {}")


def _is_namedtuple(value):
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _rebuild_mapping(elem, values):
    """``values`` (a dict) in ``elem``'s kind of mapping where that can be made, else a dict."""
    try:
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(values)
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def _rebuild_sequence(elem, values):
    """``values`` (a list) in ``elem``'s kind of sequence where that can be made, else a list."""
    try:
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, value in enumerate(values):
                clone[i] = value
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def collate(batch, *, collate_fn_map=None):
    """Collate ``batch`` (a list of samples): the function of ``collate_fn_map`` for the first
    sample's type (or a base class of it) if there is one, else recurse into mappings and
    sequences."""
    elem = batch[0]
    if collate_fn_map is not None:
        if type(elem) in collate_fn_map:
            return collate_fn_map[type(elem)](batch, collate_fn_map=collate_fn_map)
        for kind, fn in collate_fn_map.items():
            if isinstance(elem, kind):
                return fn(batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        values = {key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem}
        return _rebuild_mapping(elem, values)
    if _is_namedtuple(elem):
        return type(elem)(*(collate(field, collate_fn_map=collate_fn_map) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(sample) != size for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [collate(field, collate_fn_map=collate_fn_map) for field in zip(*batch)]
        return fields if isinstance(elem, tuple) else _rebuild_sequence(elem, fields)
    raise TypeError(default_collate_err_msg_format.format(type(elem)))


def collate_tensor_fn(batch, *, collate_fn_map=None):
    from ...functional.shape import stack
    return stack(list(batch), 0)  # (B, *sample_shape)


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    if _STR_OR_OBJECT.search(batch[0].dtype.str) is not None:
        raise TypeError(default_collate_err_msg_format.format(batch[0].dtype))
    from ...creation import as_tensor
    return collate([as_tensor(b) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    from ...creation import tensor
    return tensor(np.array(batch))  # NumPy scalars keep their dtype (np.float32 -> float32)


def collate_float_fn(batch, *, collate_fn_map=None):
    from ...creation import tensor
    from ...dtypes import float64
    return tensor(batch, dtype=float64)  # float64, as PyTorch (not the default float)


def collate_int_fn(batch, *, collate_fn_map=None):
    from ...creation import tensor
    return tensor(batch)  # int64; bools (an int subclass) give a bool tensor


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


def _tensor_type():
    from ...tensor import Tensor
    return Tensor


default_collate_fn_map = {
    _tensor_type(): collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def default_collate(batch):
    """A list of samples as one batch, with PyTorch's rules (module docstring)."""
    return collate(batch, collate_fn_map=default_collate_fn_map)


def default_convert(data):
    """NumPy arrays (and NumPy scalars) inside ``data`` become tensors; the structure stays
    (a tuple becomes a list, as PyTorch). Used when the DataLoader does not batch."""
    from ...creation import as_tensor
    from ...tensor import Tensor
    if isinstance(data, Tensor):
        return data
    kind = type(data)
    if kind.__module__ == "numpy" and kind.__name__ not in ("str_", "bytes_"):
        if isinstance(data, np.ndarray) and _STR_OR_OBJECT.search(data.dtype.str) is not None:
            return data
        return as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return _rebuild_mapping(data, {key: default_convert(data[key]) for key in data})
    if _is_namedtuple(data):
        return kind(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data
