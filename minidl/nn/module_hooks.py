r"""Module hooks, as PyTorch's: what ``Module.__call__`` runs around ``forward``.

    model(*args)  =  pre-hooks(module, args)            -> may replace args
                     [backward hooks: inputs pass through an identity node]
                     output = forward(*args)
                     forward hooks(module, args, output) -> may replace output
                     [backward hooks: outputs pass through an identity node]

Full backward hooks see the gradients of a module call without changing its graph: two
identity nodes (``_BackwardHookIdentity``) bracket the call. In backward the node on the
outputs runs first and records ``grad_output`` (after the backward pre-hooks, which may replace
it); the gradients then flow through the module's own graph to the node on the inputs, which
calls ``hook(module, grad_input, grad_output)`` and passes on the ``grad_input`` it returns.
``grad_input`` has one entry per positional argument (None for a non-tensor, zeros for a tensor
that needs no gradient while another does, as PyTorch); ``grad_output`` one per output (None
where no gradient came).
Unlike PyTorch, an in-place op on an input inside a hooked module (``ReLU(inplace=True)``) is
not refused: it is recorded as on any non-leaf tensor and its gradient is correct.
"""
import warnings

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor


class _BackwardHookIdentity(Function):
    """y_i = x_i for every tensor given; backward hands the gradients to ``on_backward``, which
    may replace them: dL/dx_i = on_backward(dL/dy)_i.  A tensor that needs no gradient passes
    through as a non-differentiable output.  ``materialize``: an output that received no
    gradient reaches ``on_backward`` as zeros (the node on the inputs) or as None (the node on
    the outputs), as in PyTorch."""

    @staticmethod
    def forward(ctx, on_backward, materialize, *tensors):
        ctx.on_backward = on_backward
        ctx.set_materialize_grads(materialize)
        outputs = tuple(t.detach() for t in tensors)  # the same memory, new tensors
        ctx.mark_non_differentiable(*[o for o, t in zip(outputs, tensors) if not t.requires_grad])
        return outputs

    @staticmethod
    def backward(ctx, *grads):
        return (None, None) + tuple(ctx.on_backward(grads))


class _BackwardHookCall:
    """The full backward hooks of one call of ``module`` with ``n_args`` positional arguments."""

    def __init__(self, module, n_args, input_positions):
        self.module, self.n_args, self.input_positions = module, n_args, input_positions
        self.grad_output = None
        self.n_outputs, self.output_positions = 1, []

    def on_output_grads(self, grads):
        module = self.module
        packed = [None] * self.n_outputs  # one entry per output: None where no gradient came
        for position, g in zip(self.output_positions, grads):
            packed[position] = g
        grads = tuple(packed)
        for hook in list(module._backward_pre_hooks.values()):
            new = hook(module, grads)
            if new is not None:
                new = new if isinstance(new, tuple) else (new,)
                if len(new) != len(grads):
                    raise RuntimeError(f"Backward pre hook returned an invalid number of grad_output, "
                                       f"got {len(new)}, but expected {len(grads)}")
                grads = new
        self.grad_output = grads
        if not self.input_positions and module._backward_hooks:  # the hooks run now, as PyTorch's
            warnings.warn("Full backward hook is firing when gradients are computed with respect to "
                          "module outputs since no inputs require gradients.", UserWarning)
            none = (None,) * self.n_args
            for hook in list(module._backward_hooks.values()):
                res = hook(module, none, grads)
                if res is not None and not (isinstance(res, tuple) and all(r is None for r in res)):
                    raise RuntimeError("Backward hook for Modules where no input requires gradient "
                                       "should always return None or None for all gradients.")
        return tuple(grads[p] for p in self.output_positions)

    def on_input_grads(self, grads):
        module = self.module
        grad_input = [None] * self.n_args
        for position, g in zip(self.input_positions, grads):
            grad_input[position] = g
        grad_input = tuple(grad_input)
        for hook in list(module._backward_hooks.values()):
            new = hook(module, grad_input, self.grad_output)
            if new is None:
                continue
            new = new if isinstance(new, tuple) else (new,)
            if len(new) != self.n_args:
                raise RuntimeError(f"Backward hook returned an invalid number of grad_input, got "
                                   f"{len(new)}, but expected {self.n_args}")
            grad_input = new
        return tuple(grad_input[p] for p in self.input_positions)


def _wrap(on_backward, values, materialize):
    """Pass the tensors among ``values`` through an identity node when one of them needs a
    gradient (PyTorch wraps them all; those that need none get a zero gradient in backward)."""
    positions = [i for i, v in enumerate(values) if isinstance(v, Tensor)]
    if not any(values[i].requires_grad for i in positions):
        return values, []
    out = _BackwardHookIdentity.apply(on_backward, materialize, *[values[i] for i in positions])
    values = list(values)
    for i, o in zip(positions, out):
        values[i] = o
    return tuple(values), positions


def _run_pre_hooks(module, args, kwargs):
    for hook_id, hook in list(module._forward_pre_hooks.items()):
        if hook_id in module._forward_pre_hooks_with_kwargs:
            result = hook(module, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError("forward pre-hook must return None or a tuple of (new_args, "
                                       f"new_kwargs), but got {result}.")
                args, kwargs = result
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    return args, kwargs


def _run_forward_hooks(module, args, kwargs, result, called):
    for hook_id, hook in list(module._forward_hooks.items()):
        called.add(hook_id)
        if hook_id in module._forward_hooks_with_kwargs:
            new = hook(module, args, kwargs, result)
        else:
            new = hook(module, args, result)
        if new is not None:
            result = new
    return result


def call_with_hooks(module, args, kwargs):
    """``module(*args, **kwargs)`` when the module has hooks (see the module docstring)."""
    args, kwargs = _run_pre_hooks(module, args, kwargs)
    call = None
    if (module._backward_hooks or module._backward_pre_hooks) and is_grad_enabled():
        call = _BackwardHookCall(module, len(args), [])
        args, call.input_positions = _wrap(call.on_input_grads, args, True)
    called, result = set(), None
    try:
        result = module.forward(*args, **kwargs)
        result = _run_forward_hooks(module, args, kwargs, result, called)
    except Exception:
        for hook_id, hook in list(module._forward_hooks.items()):  # always_call hooks still run
            if hook_id in module._forward_hooks_always_called and hook_id not in called:
                try:
                    if hook_id in module._forward_hooks_with_kwargs:
                        new = hook(module, args, kwargs, result)
                    else:
                        new = hook(module, args, result)
                    result = new if new is not None else result
                except Exception as e:
                    warnings.warn("module forward hook with ``always_call=True`` raised an exception "
                                  f"that was silenced as another error was raised in forward: {e}")
        raise
    if call is not None:
        if isinstance(result, Tensor):
            call.n_outputs = 1
            (result,), call.output_positions = _wrap(call.on_output_grads, (result,), False)
        elif isinstance(result, tuple):
            call.n_outputs = len(result)
            result, call.output_positions = _wrap(call.on_output_grads, result, False)
    return result
