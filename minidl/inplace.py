r"""In-place operations: ``x.add_(y)``, ``x += y``, ``x[i] = v``, ``relu_()``, ... with PyTorch's
semantics and gradients that stay right.

Every in-place op is its out-of-place op followed by a write:

    result = x + y               recorded in the graph as usual, when it needs to be
    x's memory <- result         x, and every view of x, sees the new values
    x's version += 1             backward refuses saved arrays that changed (autograd.py)
    x.grad_fn  <- result's       x now stands for the new value in the graph

Two details keep the gradients right:

* The recorded op may have saved ``x`` itself (``Mul`` saves ``a`` to give ``b`` its
  gradient), and ``x`` is about to be overwritten: the op gets a private copy first. If the
  op saved its *output*, that output now lives in ``x``'s memory, so the saved array becomes
  ``x``'s and is version-checked as ``x``.
* When ``x`` is a view of a base tensor (``x = base[1:3]``, ``base.view(6)``), the base's graph
  must learn that part of it changed: ``base.grad_fn`` becomes :class:`CopySlices`, and every
  view of the base recomputes its own ``grad_fn`` from the base the next time it is asked
  (``Tensor.grad_fn``).

The rules PyTorch enforces, enforced here with its messages: no in-place op on a leaf that
requires grad (or a view of one) while gradients are recorded (wrap optimizer-style updates in
``no_grad()``); no in-place op, with recording on, on a view made under ``no_grad``; no write
into a tensor whose elements share memory (``expand``); the result must fit the tensor's shape
and dtype (``int_tensor += 0.5`` raises).
"""
from . import dtypes
from .autograd import Function, gradient_edge, is_grad_enabled
from .backend import array_module, is_array, memory_owner

_NO_GRAD_VIEW = ("A view was created in no_grad mode and is being modified inplace with grad mode "
                 "enabled. Given that this use case is ambiguous and error-prone, it is forbidden. "
                 "Move both the view and the in-place operation inside the no_grad block, or both "
                 "outside it.")


def apply_inplace(tensor, op, compute):
    """Write ``compute()`` (the out-of-place result, a fresh Tensor) into ``tensor``; see above."""
    check_inplace_allowed(tensor, op)
    result = compute()
    if result.shape != tensor.shape:
        raise RuntimeError(f"{op}: output with shape {list(tensor.shape)} doesn't match the broadcast "
                           f"shape {list(result.shape)}")
    if not dtypes.can_cast(result.dtype, tensor.dtype):
        raise RuntimeError(f"{op}: result type {dtypes.torch_name(result.dtype)} can't be cast to the "
                           f"desired output type {dtypes.torch_name(tensor.dtype)}")
    node = result._grad_fn
    if node is not None:
        _keep_private_copies(node, tensor)
        if result.dtype != tensor.dtype:
            result = result.type(tensor.dtype)  # the graph sees the value the tensor holds
    tensor._data[...] = result._data
    tensor._version_counter.bump()
    if node is None:
        return tensor
    if result._grad_fn is node:
        _saved_output_now_in(node, result._data, tensor)
    if tensor._view is None:
        tensor._grad_fn, tensor._output_nr, tensor._requires_grad = result._grad_fn, 0, True
    else:
        _record_copy_slices(tensor, result)
    return tensor


def check_inplace_allowed(tensor, op):
    """Raise (PyTorch's message) if ``tensor`` must not be changed in place right now."""
    view = tensor._view
    if is_grad_enabled():
        if tensor.is_leaf and tensor.requires_grad and view is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an in-place "
                               "operation. (Update parameters inside `with minidl.no_grad():`.)")
        if view is not None and view.base.requires_grad:
            if not view.grad_mode:
                raise RuntimeError(f"{op}: {_NO_GRAD_VIEW}")
            if view.base.is_leaf:
                raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being used "
                                   "in an in-place operation.")
    data = tensor._data
    if any(stride == 0 and n > 1 for stride, n in zip(data.strides, data.shape)):  # expand()
        raise RuntimeError(f"{op}: unsupported operation: more than one element of the written-to "
                           "tensor refers to a single memory location. Please clone() the tensor "
                           "before performing the operation.")
    flags = getattr(data, "flags", None)
    if flags is not None and hasattr(flags, "writeable") and not flags.writeable:
        raise RuntimeError(f"{op}: the tensor's memory is read-only (a NumPy array that cannot be "
                           "written to); clone() it first")


def _keep_private_copies(node, tensor):
    """Saved arrays of ``node`` that share ``tensor``'s memory become copies (they are about to be
    overwritten); they no longer need a version check."""
    root = memory_owner(tensor._data)
    copied = set()
    for name, value in node._saved_values.items():
        if is_array(value) and memory_owner(value) is root:
            node._saved_values[name] = value.copy()
            copied.add(name)
    if copied:
        node._saved_versions = [v for v in node._saved_versions if v[0] not in copied]


def _saved_output_now_in(node, output, tensor):
    """``node`` saved its output array, whose values now live in ``tensor``: save ``tensor``'s
    memory instead (the output array can be freed) and check it at ``tensor``'s version."""
    names = [name for name, value in node._saved_values.items() if value is output]
    if not names:
        return
    node._saved_versions = [v for v in node._saved_versions if v[0] not in names]
    counter = tensor._version_counter
    for name in names:
        node._saved_values[name] = tensor._data
        node._saved_versions.append((name, "the output", counter, counter.value))


class CopySlices(Function):
    r"""The base tensor after an in-place op wrote ``result`` into one of its views.

    Forward (already done, in place):  base[region] = result, the rest of base unchanged,
    where ``region`` is the view, reached from base by the view ops in ``view_ops``.
    Backward:
        dresult = dy[region]                    (the view ops applied to dy)
        dbase   = dy, with 0 in the region      (the old values there no longer matter)
    The region's mask is the view of ones taken back through each view op's backward.
    """

    def __init__(self, view_ops):
        super().__init__()
        self.view_ops = view_ops  # ((FunctionClass, extra args), ...) from base to the view

    def backward(self, dy):
        region, steps = dy, []
        for cls, extra in self.view_ops:
            step = cls()
            region = step.forward(region, *extra)
            steps.append(step)
        mask = region * 0 + 1  # ones of the region's shape, dtype and array module
        for step in reversed(steps):
            mask = step.backward(mask)[0]
        return array_module(dy).where(mask != 0, 0, dy).astype(dy.dtype, copy=False), region


def _record_copy_slices(view_tensor, result):
    """``view_tensor`` (a view of a base) was overwritten by ``result``: the base's graph node
    becomes CopySlices(old base, result); the view's own grad_fn is recomputed from the base."""
    info = view_tensor._view
    base = info.base
    node = CopySlices(info.ops)
    node.needs_input_grad = (base.requires_grad, True)
    node.next_functions = (gradient_edge(base) if base.requires_grad else None, gradient_edge(result))
    node.input_meta = ((base.shape, base.dtype), (result.shape, result.dtype))
    base._grad_fn, base._output_nr, base._requires_grad = node, 0, True
