r"""Tensor hooks: ``x.register_hook(fn)`` and ``x.retain_grad()``, as in PyTorch.

A hook is called with dL/dx (a Tensor) when backward has computed it, and may return a
replacement (a Tensor of the same shape and dtype) that then flows on instead:

* for an intermediate result x = f(...), the hooks live on x's ``grad_fn`` (``fn._tensor_hooks``,
  one dict per output); ``run_backward`` runs them on the node's summed gradient just before
  the node's ``backward``, so the replacement is what reaches f's inputs;
* for a leaf, the hooks live on the tensor (``x._hooks``); the engine sums every gradient that
  reaches the leaf in one backward pass first, then runs them once, then accumulates the
  result into ``x.grad`` (PyTorch: before ``AccumulateGrad``).

``retain_grad()`` on an intermediate x is a hook that runs after all others and keeps the
(final) gradient in ``x.grad``, accumulating across backward passes as a leaf's does.
Removing a hook: ``handle = x.register_hook(fn); handle.remove()``.

``x.register_post_accumulate_grad_hook(fn)`` (a leaf only, PyTorch 2.1's API) calls ``fn(x)`` once
per backward pass, after the pass has added its gradient into ``x.grad``; its return value is
ignored. ``run_backward`` treats such a leaf like one with ``register_hook`` hooks: it sums the
gradients of all its uses first, accumulates once, then calls these hooks.
"""
import itertools
import weakref

from .backend import device_of

_ids = itertools.count()


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook out again (also as a context
    manager: the hook is removed on exit)."""

    def __init__(self, hooks, extra=()):
        self._hooks = weakref.ref(hooks)  # the handle does not keep the tensor's hooks alive
        self._extra = tuple(weakref.ref(d) for d in extra)  # flags kept beside the hook (modules)
        self.id = next(_ids)

    def remove(self):
        for ref in (self._hooks,) + self._extra:
            hooks = ref()
            if hooks is not None:
                hooks.pop(self.id, None)

    # copy.deepcopy / pickle (as PyTorch's handle): the copy refers to the COPIED hook dicts,
    # so that removing a hook of a deep-copied module leaves the original's hooks alone.
    def __getstate__(self):
        return (self._hooks(), self.id, tuple(ref() for ref in self._extra))

    def __setstate__(self, state):
        hooks, self.id, extra = state
        self._hooks = weakref.ref(hooks if hooks is not None else HookDict())  # None: a dead handle
        self._extra = tuple(weakref.ref(d) for d in extra if d is not None)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()


class HookDict(dict):
    """An ordered ``{handle id: hook}`` (a dict subclass, so that a handle can refer to it weakly)."""


def add_hook(hooks, fn, prepend=False, extra=()):
    """Register ``fn`` in ``hooks`` (a :class:`HookDict`), last or (``prepend``) first; return its
    handle, which also removes the hook's entries from the ``extra`` dicts."""
    handle = RemovableHandle(hooks, extra)
    if prepend:
        rest = list(hooks.items())
        hooks.clear()
        hooks[handle.id] = fn
        hooks.update(rest)
    else:
        hooks[handle.id] = fn
    return handle


def run_hooks(hooks, grad, retained=None):
    """Call every hook in ``hooks`` (registration order) on ``grad`` (an array); a hook's
    non-None return value replaces the gradient for the next hook and for the graph. Then keep
    the result in ``retained().grad`` if given (``retain_grad``). Returns the final array."""
    from .tensor import Tensor  # tensor.py imports the engine, which imports this module

    for hook in list(hooks.values()) if hooks else ():
        new = hook(Tensor(grad))
        if new is None:
            continue
        name = getattr(hook, "__name__", repr(hook))
        if not isinstance(new, Tensor):
            raise TypeError(f"register_hook: hook '{name}' returned {type(new).__name__}; a hook must "
                            "return a Tensor or None")
        if new.shape != grad.shape:
            raise RuntimeError(f"register_hook: hook '{name}' has changed the size of value (was "
                               f"{tuple(grad.shape)}, got {tuple(new.shape)})")
        if new.dtype != grad.dtype:
            raise RuntimeError(f"register_hook: hook '{name}' has changed the type of value (was "
                               f"{grad.dtype}, got {new.dtype})")
        if device_of(new._data) != device_of(grad):  # (a leaf's .grad is then set unchecked)
            raise RuntimeError(f"register_hook: hook '{name}' has changed the type of value (was "
                               f"{device_of(grad)}, got {device_of(new._data)})")
        grad = new._data
    tensor = retained() if retained is not None else None
    if tensor is not None:
        keep = grad.copy() if tensor._grad is None else tensor._grad._data + grad
        tensor._grad = Tensor(keep)
    return grad


def run_post_accumulate_hooks(leaf):
    """Call the leaf's post-accumulate hooks (registration order) with the leaf itself."""
    for hook in list(leaf._post_accumulate_hooks.values()) if leaf._post_accumulate_hooks else ():
        hook(leaf)


def node_hooks(fn, output_nr, create=False):
    """The hooks of output ``output_nr`` of node ``fn`` (None if it has none and not ``create``)."""
    table = getattr(fn, "_tensor_hooks", None)
    if table is None:
        if not create:
            return None
        table = fn._tensor_hooks = {}
    if create:
        return table.setdefault(output_nr, HookDict())
    return table.get(output_nr)


def node_retained(fn, output_nr):
    """The weak reference to the tensor whose ``retain_grad`` keeps this output's gradient."""
    table = getattr(fn, "_retained_grads", None)
    return None if table is None else table.get(output_nr)


def retain(fn, output_nr, tensor):
    if getattr(fn, "_retained_grads", None) is None:
        fn._retained_grads = {}
    fn._retained_grads[output_nr] = weakref.ref(tensor)


def has_node_hooks(fn):
    return bool(getattr(fn, "_tensor_hooks", None)) or bool(getattr(fn, "_retained_grads", None))
