"""``Parameter``: a leaf tensor that a ``Module`` registers as learnable."""
import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad by default and is registered by ``Module``
    when assigned as an attribute. ``Parameter(data)`` shares ``data``'s array."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            array = np.empty((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            array = data._data
        else:
            array = np.asarray(data)
        if requires_grad and array.dtype.kind != "f":
            raise RuntimeError(f"Parameter: only floating point tensors can require gradients, got dtype {array.dtype}")
        super().__init__(array, requires_grad=requires_grad)
        if isinstance(data, Tensor):
            self._version_counter = data._version_counter  # the same memory: one history

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
