"""``Parameter``: a leaf tensor that a ``Module`` registers as learnable."""
import numpy as np

from ..backend import to_device
from ..creation import get_default_device
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad by default and is registered by ``Module``
    when assigned as an attribute. ``Parameter(tensor)`` shares the tensor's memory; a NumPy
    array (or anything array-like) is put on the default device (shared when that is the CPU)."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        if isinstance(data, Tensor):
            array = data._data
        else:
            array = to_device(np.asarray(data), get_default_device())
        if requires_grad and array.dtype.kind != "f":
            raise RuntimeError(f"Parameter: only floating point tensors can require gradients, got dtype {array.dtype}")
        super().__init__(array, requires_grad=requires_grad)
        if isinstance(data, Tensor):
            self._version_counter = data._version_counter  # the same memory: one history

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
