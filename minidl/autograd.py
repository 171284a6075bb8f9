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
``grad_fn`` is the Function object, which remembers where each input came from
(the ``grad_fn`` of an intermediate tensor, or the leaf tensor itself).

``Tensor.backward()`` then walks that graph once, from the output towards the
leaves, in reverse topological order (iteratively: a chain of 100,000 ops is
fine), and applies the chain rule at each node:

    dL/dx = backward(dL/dy)          for every input x of every node.

Two things happen in exactly one place, :func:`run_backward`:

* **Broadcasting is undone.** If ``x`` of shape ``(3, 1)`` was broadcast
  against ``(2, 3, 4)``, then ``x`` was used many times and its gradient is the
  *sum* of the gradients of its copies: :func:`sum_to_shape` sums over the
  broadcast axes. Ops may therefore return gradients in the broadcast shape.
* **Gradients of a tensor used several times add up** (the multivariate chain
  rule), both inside the graph and in a leaf's ``.grad``, which *accumulates*
  across calls to ``backward()`` exactly as in PyTorch.

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
"""
import functools

import numpy as np

from .backend import array_module, buffers

_grad_enabled = True


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


class Function:
    """Base class of every differentiable op (see the module docstring).

    Contract of ``backward``: each gradient it returns is a new array, ``dy`` itself, or a
    view of ``dy``; never an array that something else keeps (a saved input, a constant,
    a cache), because the engine may add into a new-looking array in place or make it a
    leaf's ``.grad`` without copying it (:func:`run_backward`).

    Attributes set by :meth:`apply`:
        needs_input_grad  tuple of bools, one per forward argument (available in
                          ``forward`` so an op can skip saving what no one needs)
        next_functions    where each input's gradient goes: the input's
                          ``grad_fn``, the leaf Tensor itself, or None
        input_meta        (shape, dtype) of each input, to shape its gradient
    """

    # Set by run_backward just before ``backward``: True when only the engine holds ``dy``,
    # so ``backward`` may write its result into ``dy`` instead of a new array.
    dy_owned = False

    def __init__(self):
        self._saved_values = {}
        self._freed = False

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
        self.next_functions = ()
        self._freed = True

    # --- graph recording -------------------------------------------------------
    @classmethod
    def apply(cls, *args):
        """Run ``forward`` on the arrays of ``args`` and record the call if needed."""
        from .tensor import Tensor  # tensor.py imports this module; import here, not at the top

        fn = cls()
        record = _grad_enabled
        needs = tuple(record and isinstance(a, Tensor) and a.requires_grad for a in args)
        fn.needs_input_grad = needs
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        y = fn.forward(*arrays)
        if not any(needs):
            return Tensor(y)  # nothing to differentiate: fn and its saved arrays die here
        fn.next_functions = tuple(
            (a.grad_fn if a.grad_fn is not None else a) if need else None for a, need in zip(args, needs)
        )
        fn.input_meta = tuple((a.shape, a.dtype) if need else None for a, need in zip(args, needs))
        out = Tensor(y, requires_grad=True)
        out.grad_fn = fn
        return out

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"


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
        for nxt in fn.next_functions:
            if isinstance(nxt, Function) and nxt not in visited:
                stack.append((nxt, False))
    order.reverse()
    return order


def _owned_gradients(input_grads, dy, dy_owned):
    """For each gradient a ``backward`` returned: may the engine write into it?

    Yes ("owned") when the array was made by that backward for this input alone: it owns
    its memory (``base is None``, or it is the only view of a cached buffer: so it is no
    view of ``dy`` or of anything else), it is
    not ``dy`` itself passed through (unless ``dy`` was owned: ``Relu`` may return ``dy``
    written in place), and no other input got the same array (``Add`` returns ``dy, dy``).
    Everything else is *borrowed* and copied before any write.
    This relies on the contract in :class:`Function`: ``backward`` never returns an array
    that something else keeps (a saved input, a constant).
    """
    ids = [id(g) for g in input_grads if g is not None]
    return tuple(
        g is not None and (g is not dy or dy_owned) and _owns_its_memory(g) and ids.count(id(g)) == 1
        for g in input_grads
    )


def _owns_its_memory(g):
    """A writable array that is nobody's view, or the only view of a buffer of minidl's cache
    (minidl/backend/buffers.py), which is as much its own (NumPy scalars, read-only arrays: no)."""
    return ((getattr(g, "base", True) is None or buffers.is_only_view(g)) and not isinstance(g, np.generic)
            and getattr(g.flags, "writeable", True))


def run_backward(root_fn, gradient, retain_graph=False):
    """Backpropagate ``gradient`` (dL/d output of ``root_fn``) to every leaf.

    Gradients of a node used several times are summed as they arrive. The first one is
    kept as it is (no copy); a later one is added IN PLACE into whichever of the two is an
    array that only the engine holds (see :func:`_owned_gradients`); only when neither is
    does ``first + g`` make a new array (which the engine then owns). A leaf's ``.grad`` likewise takes an
    owned first gradient without copying it (as PyTorch's AccumulateGrad "steals" an
    unshared gradient) and copies a borrowed one.
    """
    from .tensor import Tensor

    order = _topological_order(root_fn)  # raises before any gradient is written
    grads = {root_fn: gradient}  # Function -> dL/d(its output), summed over uses
    owned = {root_fn: False}  # Function -> may its summed gradient be written into?
    for fn in order:
        dy = grads.pop(fn)
        fn.dy_owned = owned.pop(fn)
        input_grads = fn.backward(dy)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(fn.next_functions):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(input_grads)} gradients "
                f"but forward had {len(fn.next_functions)} inputs"
            )
        fresh = _owned_gradients(input_grads, dy, fn.dy_owned)
        del dy  # the node's gradient is no longer needed: free it as soon as its users let go
        for target, meta, g, g_owned in zip(fn.next_functions, fn.input_meta, input_grads, fresh):
            if target is None or g is None:
                continue
            shape, dtype = meta
            summed = sum_to_shape(g, shape)  # the ONE place where broadcasting is undone
            if summed is not g:
                g, g_owned = summed, _owns_its_memory(summed)  # a new sum (or a view of one)
            if g.dtype != dtype:
                g = g.astype(dtype)
                g_owned = _owns_its_memory(g)
            if isinstance(target, Function):
                previous = grads.get(target)
                if previous is None:
                    grads[target], owned[target] = g, g_owned
                elif owned[target]:
                    previous += g  # only the engine holds `previous`: add in place
                elif g_owned:
                    g += previous  # `previous` is borrowed, but g is ours: add into g
                    grads[target], owned[target] = g, True
                else:
                    total = previous + g
                    grads[target], owned[target] = total, _owns_its_memory(total)
            elif target.grad is None:
                # a borrowed g may be shared (Add returns dy twice, a view of dy): copy it
                target.grad = Tensor(g if g_owned else array_module(g).array(g, copy=True))
            else:
                target.grad.data += g
        input_grads = g = summed = previous = total = None  # hold no gradient while the next node runs
        if not retain_graph:
            fn.free()
