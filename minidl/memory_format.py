"""``minidl.contiguous_format``, ``channels_last``, ``preserve_format``: PyTorch's memory formats,
as names.

minidl keeps every array in NumPy's row-major (C) order and computes convolutions on that
layout, so a memory format changes nothing. The names exist so that PyTorch code such as
``x.to(device, memory_format=torch.channels_last)`` runs unchanged; as in PyTorch, asking
for ``channels_last`` on a tensor that does not have 4 dimensions is an error.
"""


class memory_format:
    """One of PyTorch's memory formats (a name; minidl's layout is always row-major)."""

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return f"minidl.{self._name}"


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
preserve_format = memory_format("preserve_format")


def check_memory_format(value, ndim, op):
    """Refuse what PyTorch refuses: a non-format, or channels_last on a tensor that is not 4-D."""
    if value is None:
        return
    if not isinstance(value, memory_format):
        raise TypeError(f"{op}: memory_format must be minidl.contiguous_format, channels_last or "
                        f"preserve_format, got {value!r}")
    if value is channels_last and ndim != 4:
        raise RuntimeError("required rank 4 tensor to use channels_last format")
