"""``minidl.autograd.Variable``: PyTorch's old wrapper, which became Tensor itself.

Old PyTorch code writes ``Variable(x)`` or ``Variable(x, requires_grad=True)``; since PyTorch
0.4 that is a new leaf tensor on x's memory, outside any graph, and ``isinstance(t, Variable)``
is true of every tensor. minidl gives the same.
"""
from .autograd import execution_engine
from .tensor import Tensor


class _VariableMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableMeta):
    """``Variable(data, requires_grad=False)``: ``data.detach()`` (same memory, a new leaf) with
    ``requires_grad`` set. Deprecated in PyTorch; use tensors directly."""

    def __new__(cls, data, requires_grad=False, volatile=False):
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        return data.detach().requires_grad_(requires_grad)

    # ``Variable._execution_engine.queue_callback(fn)``: run fn at the end of this backward pass
    _execution_engine = execution_engine
