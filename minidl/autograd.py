r"""Reverse-mode automatic differentiation.

Every differentiable operation is a :class:`Function` with two methods that
work on raw arrays (NumPy now, CuPy later):

* ``forward(self, *inputs)`` computes the output and ``save``\ s what the
  gradient will need;
* ``backward(self, dy)`` receives ``dy = dL/dy`` (same shape as the output) and
  returns ``dL/dx`` for every input, in order (``None`` for inputs that need no
  gradient).

Calling ``MyFunction.apply(*tensors)`` runs ``forward`` and, when any input
requires a gradient, records the call in the graph: the output tensor's
``grad_fn`` is the Function object, whose ``next_functions`` say where each
input came from: ``(node, output_nr)`` for an input made by another Function,
``(leaf tensor, 0)`` for a leaf, ``None`` for an input that needs no gradient.

``Tensor.backward()`` then walks that graph once, from the output towards the
leaves, in reverse topological order (iteratively: a chain of 100,000 ops is
fine), and applies the chain rule at each node:

    dL/dx = backward(dL/dy)          for every input x of every node.

Three things happen in exactly one place, :func:`run_backward`:

* **Gradients of a tensor used several times add up** (the multivariate chain
  rule), both inside the graph and in a leaf's ``.grad``, which *accumulates*
  across calls to ``backward()`` exactly as in PyTorch.
* **Broadcasting is undone.** If ``x`` of shape ``(3, 1)`` was broadcast
  against ``(2, 3, 4)``, then ``x`` was used many times and its gradient is the
  *sum* of the gradients of its copies: :func:`sum_to_shape` sums over the
  broadcast axes. Ops may therefore return gradients in the broadcast shape.
* **Saved arrays are checked before they are used.** Every tensor's memory has a
  version counter that each in-place change increments (``x.add_(1)``, ``x += 1``,
  ``x[0] = 5``, a write through ``x.data``, an optimizer step; views of ``x`` share
  ``x``'s counter). When a node saves an input or its output, it notes the version;
  if the version differs at backward time, the saved values are not the ones the
  gradient formula needs, and backward raises (naming the node, the saved value and
  both versions) before writing any gradient. A wrong gradient is never returned.

Why the engine copies what it does not own: a ``backward`` may return ``dy``
itself, a view of it, or an array it keeps. Adding a second gradient into such an
array in place would change someone else's numbers, so the engine only ever writes
into arrays it allocated itself (minidl/accumulate.py).

Worked example: a user-defined op
---------------------------------
``y = x ** 3`` has ``dy/dx = 3 x**2``, so ``dL/dx = dL/dy * 3 x**2``::

    import minidl
    from minidl.autograd import Function

    class Cube(Function):
        def forward(self, x):
            self.save(x=x)            # backward needs x; name it explicitly
            return x ** 3

        def backward(self, dy):
            x = self.saved.x
            return dy * 3 * x ** 2    # one gradient per forward input

    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    Cube.apply(x).sum().backward()
    x.grad                            # tensor([ 3., 12.])

``minidl.gradcheck(Cube.apply, (x64,))`` then checks the backward against
central differences. Non-tensor arguments (an exponent, an axis) can be passed
to ``apply`` as well; ``backward`` returns ``None`` for them.

PyTorch's form of the same op (static ``forward(ctx, ...)``/``backward(ctx, ...)`` on
tensors, ``ctx.save_for_backward``, ``ctx.saved_tensors``, ``ctx.mark_dirty``, ...) is
accepted unchanged; minidl/custom_function.py runs it, and docs/custom_functions.md
shows both forms side by side.
"""
import functools

import numpy as np

from .accumulate import GradientSums, accumulate_into_leaf
from .backend import device_of, is_array, memory_owner
from .custom_function import CtxMethods, apply_with_ctx, backward_with_ctx
from .hooks import has_node_hooks, node_hooks, node_retained, run_hooks, run_post_accumulate_hooks

_grad_enabled = True

# minidl.tensor.Tensor: tensor.py imports this module, so it hands the class over once it is
# defined (tensor.py, after the class) rather than every op importing it again.
Tensor = None


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return _grad_enabled


class set_grad_enabled:
    """Context manager / decorator that sets gradient recording on or off."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self._previous = []

    def __enter__(self):
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = self.mode
        return self

    def __exit__(self, *exc_info):
        global _grad_enabled
        _grad_enabled = self._previous.pop()
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(self.mode):  # a fresh context per call: safe under recursion
                return func(*args, **kwargs)

        return wrapper


class no_grad(set_grad_enabled):
    """Do not record operations (evaluation, optimizer steps).

    Use as ``with minidl.no_grad(): ...`` or as a decorator ``@minidl.no_grad()``.
    """

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record operations again inside a ``no_grad`` block."""

    def __init__(self):
        super().__init__(True)


_inference_mode = False


def is_inference_mode_enabled():
    """True inside ``inference_mode()`` (``torch.is_inference_mode_enabled``)."""
    return _inference_mode


class inference_mode(set_grad_enabled):
    """``no_grad`` for code that will never need gradients (PyTorch's ``inference_mode``): a
    context manager, ``@inference_mode()`` or ``@inference_mode`` as a decorator.
    ``inference_mode(False)`` turns it off again, and turns gradient recording on, as in PyTorch.

    minidl records no graph inside, exactly as under ``no_grad``; it has no "inference tensors"
    (PyTorch refuses to use tensors made in inference mode in autograd later; minidl allows it).
    """

    def __new__(cls, mode=True):
        if callable(mode):  # @inference_mode without parentheses
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        super().__init__(not mode)
        self.inference = bool(mode)
        self._previous_inference = []

    def __enter__(self):
        global _inference_mode
        self._previous_inference.append(_inference_mode)
        _inference_mode = self.inference
        return super().__enter__()

    def __exit__(self, *exc_info):
        global _inference_mode
        _inference_mode = self._previous_inference.pop()
        return super().__exit__(*exc_info)

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with inference_mode(self.inference):  # a fresh context per call: safe under recursion
                return func(*args, **kwargs)

        return wrapper


# --- versions: has a saved array been changed in place? -------------------------------

class VersionCounter:
    """How many in-place changes a tensor's memory has seen; shared by every tensor that views
    that memory (slices, reshapes, ``detach()``, ``.data``)."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def bump(self):
        self.value += 1


def gradient_edge(tensor):
    """Where a gradient for ``tensor`` goes: ``(its grad_fn, output_nr)``, or ``(tensor, 0)``
    for a leaf."""
    fn = tensor.grad_fn
    return (fn, tensor._output_nr) if fn is not None else (tensor, 0)


class _Saved:
    """Read-only view of what ``Function.save`` stored: ``self.saved.x``."""

    __slots__ = ("_values", "_owner")

    def __init__(self, values, owner):
        self._values = values
        self._owner = owner

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"{self._owner}: nothing was saved under {name!r} "
                f"(saved: {sorted(self._values)})"
            ) from None


class Function(CtxMethods):
    """Base class of every differentiable op (see the module docstring).

    ``backward`` may return anything as a gradient (``dy`` itself, a view of it, an array it
    keeps): the engine never writes into an array it did not allocate (minidl/accumulate.py).
    It must not write into ``dy``, which may be another node's gradient too.

    Attributes set by :meth:`apply`:
        needs_input_grad  tuple of bools, one per forward argument (available in
                          ``forward`` so an op can skip saving what no one needs)
        next_functions    where each input's gradient goes (see :func:`gradient_edge`)
        input_meta        (shape, dtype) of each input, to shape its gradient
        n_outputs         1 (several only for PyTorch-style functions that return a tuple)
    """

    # View ops (reshape, permute, expand, basic indexing) set this: their output may share
    # its input's memory. Any other op's output that shares an input's memory is copied.
    is_view = False
    n_outputs = 1
    _ctx_style = False  # PyTorch's static forward(ctx, ...) form (minidl/custom_function.py)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        forward = next(k.__dict__["forward"] for k in cls.__mro__ if "forward" in k.__dict__)
        cls._ctx_style = isinstance(forward, staticmethod)

    def __init__(self):
        self._saved_values = {}
        self._saved_versions = []  # (name, what it is, VersionCounter, version when saved)
        self._freed = False
        self.next_functions = ()

    # --- what subclasses write -------------------------------------------------
    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must define forward(self, *arrays)")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} must define backward(self, dy)")

    def save(self, **values):
        """Keep ``values`` (arrays, shapes, ...) for ``backward``; freed after it."""
        self._saved_values.update(values)

    @property
    def saved(self):
        if self._freed:
            raise RuntimeError(
                f"{type(self).__name__}: trying to backward through the graph a second time "
                "(or to read saved values after they were freed). Its saved arrays were freed "
                "by the first backward; pass retain_graph=True to the first backward() to keep them."
            )
        return _Saved(self._saved_values, type(self).__name__)

    def free(self):
        """Drop the saved arrays and the links to the inputs (after backward)."""
        self._saved_values = {}
        self._saved_versions = []
        self.next_functions = ()
        self._freed = True

    # --- graph recording -------------------------------------------------------
    @classmethod
    def apply(cls, *args):
        """Run ``forward`` on the arrays of ``args`` and record the call if needed."""
        if cls._ctx_style:
            return apply_with_ctx(cls, args)
        _check_one_device(cls, args)
        fn = cls()
        needs = tuple(_grad_enabled and isinstance(a, Tensor) and a.requires_grad for a in args)
        fn.needs_input_grad = needs
        y = fn.forward(*[a._data if isinstance(a, Tensor) else a for a in args])
        source = _input_sharing_memory(y, args)
        if source is not None and not cls.is_view:
            y, source = y.copy(), None  # only a view op may hand out its input's memory
        out = Tensor(y, requires_grad=any(needs))
        if source is not None:
            out._become_view_of(source, (cls, args[1:]))
        if any(needs):
            fn.next_functions = tuple(gradient_edge(a) if need else None for a, need in zip(args, needs))
            fn.input_meta = tuple((a.shape, a.dtype) if need else None for a, need in zip(args, needs))
            fn._note_saved_versions(args, (out,))
            out._grad_fn = fn
        return out  # when nothing needs a gradient, fn and its saved arrays die here

    def _note_saved_versions(self, inputs, outputs):
        """For every saved array that shares memory with an input or an output tensor, remember
        that tensor's version counter and its current value (checked before backward)."""
        if not self._saved_values:
            return
        owners = [(memory_owner(t._data), t, "input", i) for i, t in enumerate(inputs) if isinstance(t, Tensor)]
        owners += [(memory_owner(t._data), t, "output", i) for i, t in enumerate(outputs)]
        for name, value in self._saved_values.items():
            if not is_array(value):  # a shape, a dtype, a number, None
                continue
            root = memory_owner(value)
            for owner_root, tensor, kind, i in owners:
                if owner_root is root:
                    what = f"{kind} {i}" if kind == "input" or len(outputs) > 1 else "the output"
                    counter = tensor._version_counter
                    self._saved_versions.append((name, what, counter, counter.value))
                    break

    def check_saved_versions(self):
        """Raise if an array this node saved was changed in place since it was saved."""
        for name, what, counter, version in self._saved_versions:
            if counter.value != version:
                op = type(self).__name__
                value = self._saved_values[name]
                raise RuntimeError(
                    f"{op}.backward: one of the variables needed for gradient computation has been "
                    f"modified by an inplace operation: {what} of {op} (saved as {name!r}, shape "
                    f"{tuple(value.shape)}, {value.dtype}) was saved at version {version} and is now "
                    f"at version {counter.value}. Its backward would use the new values and give a "
                    "wrong gradient. Change a copy instead (y = y.clone() before the in-place op), "
                    "or use the out-of-place op (y = y + 1 instead of y += 1)."
                )

    def _backward_arrays(self, dys):
        """Call ``backward`` with one gradient per output; return one gradient per input."""
        if self._ctx_style:
            return backward_with_ctx(self, dys)
        grads = self.backward(dys[0])
        return grads if isinstance(grads, tuple) else (grads,)

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"


def _check_one_device(cls, args):
    """All tensor arguments of an op live on one device (PyTorch's message otherwise)."""
    first = None
    for a in args:
        if isinstance(a, Tensor):
            if first is None:
                first = a._data
            elif type(a._data) is not type(first) and device_of(a._data) != device_of(first):
                raise RuntimeError(f"{cls.__name__}: Expected all tensors to be on the same device, but "
                                   f"found at least two devices, {device_of(first)} and "
                                   f"{device_of(a._data)}! (move one with .to(device))")


def _input_sharing_memory(y, args):
    """The first input Tensor whose memory the array ``y`` shares, or None."""
    if not is_array(y):
        return None
    root = memory_owner(y)
    if root is y:  # y owns its memory: the usual case
        return None
    for a in args:
        if isinstance(a, Tensor) and memory_owner(a._data) is root:
            return a
    return None


def sum_to_shape(grad, shape):
    """Undo broadcasting: sum ``grad`` down to ``shape``.

    Broadcasting copies an input along new leading axes and along axes of size
    1; every copy contributes to the loss, so the gradient of the input is the
    sum of the gradients of its copies over exactly those axes.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    if lead < 0:
        raise RuntimeError(f"autograd: gradient of shape {grad.shape} cannot be summed to shape {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape[lead:] != tuple(shape) and grad.size != 0:
        raise RuntimeError(f"autograd: gradient of shape {grad.shape} does not broadcast to shape {shape}")
    return grad.reshape(shape)


def _topological_order(root):
    """Functions reachable from ``root``, each before all of its inputs.

    Depth-first search with an explicit stack (no recursion, so graph depth is
    not limited by Python's recursion limit); a node is appended once all its
    inputs are done (post-order), and the reversed post-order is a topological
    order from the output back to the leaves.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        fn, inputs_done = stack.pop()
        if inputs_done:
            order.append(fn)
            continue
        if fn in visited:
            continue
        if fn._freed:
            raise RuntimeError(
                f"backward: {type(fn).__name__} was already backpropagated through and its saved "
                "arrays were freed; to backward through the graph a second time, pass "
                "retain_graph=True to the first backward()"
            )
        visited.add(fn)
        stack.append((fn, True))
        for edge in fn.next_functions:
            if edge is not None and isinstance(edge[0], Function) and edge[0] not in visited:
                stack.append((edge[0], False))
    order.reverse()
    return order


class _ExecutionEngine:
    """PyTorch's ``Variable._execution_engine``: here only ``queue_callback``.

    ``queue_callback(fn)``, called during a backward pass (from a hook), runs ``fn()`` once that
    pass has finished, after every gradient has been accumulated into the leaves' ``.grad``
    (DistributedDataParallel uses it to find the parameters that got no gradient)."""

    def __init__(self):
        self._passes = []  # one list of queued callbacks per backward pass in progress (nested)

    def queue_callback(self, callback):
        if not self._passes:
            raise RuntimeError("Final callbacks can only be installed during backward pass.")
        self._passes[-1].append(callback)

    def _run_pass(self, walk):
        """Run ``walk()`` (one backward pass), then the callbacks queued during it, in order
        (a callback may queue more)."""
        callbacks = []
        self._passes.append(callbacks)
        try:
            walk()
            while callbacks:
                callbacks.pop(0)()
        finally:
            self._passes.pop()


execution_engine = _ExecutionEngine()


def run_backward(root_fn, root_output_nr, gradient, retain_graph=False):
    """Backpropagate ``gradient`` (dL/d output ``root_output_nr`` of ``root_fn``) to every leaf,
    then run the callbacks queued during the pass (``execution_engine.queue_callback``)."""
    execution_engine._run_pass(lambda: _walk_graph(root_fn, root_output_nr, gradient, retain_graph))


def _walk_graph(root_fn, root_output_nr, gradient, retain_graph):
    """The backward pass itself: every node once, in topological order."""
    order = _topological_order(root_fn)
    for fn in order:  # both raise before any gradient is written
        fn.check_saved_versions()

    sums = GradientSums()  # (node, output_nr) -> dL/d(that output), summed over its uses
    sums.add((root_fn, root_output_nr), gradient)
    hooked_leaves = GradientSums()  # leaves with hooks: their hooks see the sum over all uses
    for fn in order:
        dys = [_read_only(sums.pop((fn, i))) for i in range(fn.n_outputs)]
        if has_node_hooks(fn):  # register_hook / retain_grad on an output of fn (minidl/hooks.py)
            dys = [dy if dy is None else _read_only(run_hooks(node_hooks(fn, i), dy, node_retained(fn, i)))
                   for i, dy in enumerate(dys)]
        if all(dy is None for dy in dys):
            input_grads = ()  # no gradient reached this node (a backward returned None for it)
        else:
            input_grads = fn._backward_arrays(dys)
            _check_gradient_count(fn, input_grads)
        del dys  # the node's gradient is no longer needed: free it as soon as its users let go
        for edge, meta, g in zip(fn.next_functions, fn.input_meta, input_grads):
            if edge is None or g is None:
                continue
            shape, dtype = meta
            g = sum_to_shape(g, shape)  # the ONE place where broadcasting is undone
            if g.dtype != dtype:
                g = g.astype(dtype)
            target, output_nr = edge
            if isinstance(target, Function):
                sums.add((target, output_nr), g)  # the multivariate chain rule: gradients add up
            elif target._hooks or target._post_accumulate_hooks:
                hooked_leaves.add((target, 0), g)  # summed over all uses first (minidl/hooks.py)
            else:
                accumulate_into_leaf(target, g)
        input_grads = g = None  # hold no gradient while the next node runs
        if not retain_graph:
            fn.free()
    for leaf, _ in hooked_leaves.keys():
        accumulate_into_leaf(leaf, run_hooks(leaf._hooks, _read_only(hooked_leaves.pop((leaf, 0)))))
        run_post_accumulate_hooks(leaf)


def _read_only(dy):
    """A read-only view of ``dy``: a backward that writes into its ``dy`` (which may be another
    node's gradient too) fails at once instead of changing that node's numbers."""
    if isinstance(dy, np.generic) or not hasattr(getattr(dy, "flags", None), "writeable"):
        return dy  # None, a NumPy scalar, or a CuPy array (which has no read-only flag)
    dy = dy.view()
    dy.flags.writeable = False
    return dy


def _check_gradient_count(fn, input_grads):
    """A backward returns one gradient per forward input (extra trailing Nones are ignored)."""
    expected = len(fn.next_functions)
    if len(input_grads) < expected or any(g is not None for g in input_grads[expected:]):
        raise RuntimeError(
            f"function {type(fn).__name__}.backward returned an incorrect number of gradients "
            f"(expected {expected}, got {len(input_grads)})"
        )


def __getattr__(name):
    """``minidl.autograd.gradcheck`` and ``minidl.autograd.Variable``, as PyTorch's (imported on
    first use: their modules import this one)."""
    if name == "gradcheck":
        from .gradcheck import gradcheck

        return gradcheck
    if name == "Variable":  # (variable.py imports Tensor, which imports this module)
        from .variable import Variable

        return Variable
    raise AttributeError(f"module 'minidl.autograd' has no attribute {name!r}")
