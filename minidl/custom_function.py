r"""PyTorch's form of a custom op, run by minidl's engine.

PyTorch writes a custom op with static methods on tensors and a context object ``ctx``::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):                  # x is a Tensor; runs without recording
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, dy):                # dy is a Tensor
            y, = ctx.saved_tensors            # checked: y must not have changed in place
            return dy * y

    y = Exp.apply(x)

minidl accepts it unchanged (``from minidl.autograd import Function``). The node of the graph
is the ``ctx`` itself: ``Function.apply`` sees that ``forward`` is a static method and calls
:func:`apply_with_ctx`; the engine calls :func:`backward_with_ctx` where it would call a
minidl-style ``backward``. Also supported: a separate ``setup_context(ctx, inputs, output)``,
several outputs (a missing gradient reaches ``backward`` as zeros, as in PyTorch),
``ctx.needs_input_grad``, ``ctx.mark_dirty`` (forward changed an input in place and returns
it), ``ctx.mark_non_differentiable`` and ``ctx.set_materialize_grads``.
docs/custom_functions.md shows this form next to minidl's own (``self.save``/``self.saved``).
"""


class CtxMethods:
    """What ``ctx`` offers in PyTorch's form (a base class of :class:`minidl.autograd.Function`)."""

    def save_for_backward(self, *tensors):
        """Keep input or output tensors (or None) for ``backward``; read them as ``ctx.saved_tensors``."""
        self._to_save = tensors

    @property
    def saved_tensors(self):
        self.saved  # noqa: B018  (raises if the graph was freed by an earlier backward)
        self.check_saved_versions()
        return self._saved_values["saved_tensors"]

    def mark_dirty(self, *tensors):
        """Say that forward changed these inputs in place (and returns them)."""
        self._dirty = tensors

    def mark_non_differentiable(self, *tensors):
        """Say that these outputs have no gradient (indices, masks)."""
        self._non_differentiable = tensors

    def set_materialize_grads(self, value):
        """False: ``backward`` gets None, not zeros, for outputs that received no gradient."""
        self._materialize_grads = bool(value)


def _uses_setup_context(cls):
    """True when forward takes no ctx and a ``setup_context`` fills it (PyTorch 2's second form)."""
    from .autograd import Function

    for klass in cls.__mro__:
        if klass is Function:
            return False
        if "setup_context" in klass.__dict__:
            return True
    return False


def _ctx_for(cls, args):
    from .autograd import is_grad_enabled
    from .tensor import Tensor

    ctx = cls()
    ctx._to_save, ctx._dirty, ctx._non_differentiable, ctx._materialize_grads = (), (), (), True
    ctx.needs_input_grad = tuple(is_grad_enabled() and isinstance(a, Tensor) and a.requires_grad for a in args)
    return ctx


def _take_dirty_inputs(cls, ctx, args):
    """Inputs that forward changed in place: checked as an in-place op is, then versioned."""
    from .autograd import is_grad_enabled

    for t in ctx._dirty:
        if not any(t is a for a in args):
            raise RuntimeError(f"{cls.__name__}.forward: mark_dirty must be given inputs of forward")
        if is_grad_enabled() and t.is_leaf and t.requires_grad:
            raise RuntimeError(f"{cls.__name__}: a leaf Variable that requires grad is being used in "
                               "an in-place operation (mark_dirty).")
        if is_grad_enabled() and t._view is not None and any(ctx.needs_input_grad):
            raise RuntimeError(f"{cls.__name__}: mark_dirty on a view of another tensor is not "
                               "supported; pass a clone() of it")
    for t in ctx._dirty:
        t._version_counter.bump()


def apply_with_ctx(cls, args):
    """``cls.apply(*args)`` for PyTorch's form: run forward on tensors, then record the node."""
    from .autograd import gradient_edge, no_grad
    from .backend import array_module
    from .tensor import Tensor

    ctx = _ctx_for(cls, args)
    needs = ctx.needs_input_grad
    edges = tuple(gradient_edge(a) if need else None for a, need in zip(args, needs))  # before dirty inputs move
    with no_grad():
        if _uses_setup_context(cls):
            output = cls.forward(*args)
            cls.setup_context(ctx, args, output)
        else:
            output = cls.forward(ctx, *args)
    _take_dirty_inputs(cls, ctx, args)

    outputs = list(output) if isinstance(output, tuple) else [output]
    for i, o in enumerate(outputs):
        if isinstance(o, Tensor) and not any(o is d for d in ctx._dirty) and any(o is a for a in args):
            outputs[i] = o.detach()  # an input returned as it is: a new tensor on the same memory
    tensors_out = [o for o in outputs if isinstance(o, Tensor)]
    saved = tuple(ctx._to_save)
    ctx._saved_values["saved_tensors"] = saved
    if any(needs):
        ctx.n_outputs = len(tensors_out)
        ctx.next_functions = edges
        ctx.input_meta = tuple((a.shape, a.dtype) if need else None for a, need in zip(args, needs))
        ctx.output_meta = tuple((o.shape, o.dtype, array_module(o._data)) for o in tensors_out)
        non_differentiable = ctx._non_differentiable
        for nr, o in enumerate(tensors_out):
            if any(o is t for t in non_differentiable):
                o._requires_grad = False
            else:
                o._grad_fn, o._output_nr, o._requires_grad = ctx, nr, True
                o._view = None  # its gradient goes to ctx, even if it shares an input's memory
        for i, t in enumerate(saved):  # versions of the saved tensors, checked by saved_tensors
            if t is not None:
                ctx._saved_values[f"saved_tensors[{i}]"] = t
                ctx._saved_versions.append((f"saved_tensors[{i}]", f"saved tensor {i}",
                                            t._version_counter, t._version_counter.value))
    return tuple(outputs) if isinstance(output, tuple) else outputs[0]


def backward_with_ctx(ctx, dys):
    """Call the static ``backward(ctx, *grads)`` with Tensors; return arrays, one per input."""
    from .autograd import no_grad
    from .tensor import Tensor

    grads = []
    for dy, (shape, dtype, xp) in zip(dys, ctx.output_meta):
        if dy is None and ctx._materialize_grads:
            dy = xp.zeros(shape, dtype=dtype)
        grads.append(None if dy is None else Tensor(dy))
    with no_grad():
        out = type(ctx).backward(ctx, *grads)
    out = out if isinstance(out, tuple) else (out,)
    return tuple(g._data if isinstance(g, Tensor) else g for g in out)
