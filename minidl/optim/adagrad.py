r"""Adagrad: per-coordinate step sizes shrinking with the sum of past squared gradients."""

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    For each parameter ``p`` with gradient ``grad``, at step ``t = 1, 2, ...``
    (``s_0 = initial_accumulator_value``)::

        g   = -grad if maximize else grad
        g   = g + weight_decay * p                   (L2 penalty, if weight_decay != 0)
        clr = lr / (1 + (t - 1) * lr_decay)
        s_t = s_{t-1} + g * g
        p   = p - clr * g / (sqrt(s_t) + eps)

    Coordinates that saw large gradients take small steps from then on.

    State per parameter: ``'step'`` (t, a float) and ``'sum'`` (s). As in PyTorch,
    the state of every parameter exists from construction (step 0, sum filled
    with ``initial_accumulator_value``), so ``state_dict()`` lists them all.

    Args:
        params: iterable of Tensors or of dicts defining parameter groups.
        lr (float): learning rate (default 1e-2).
        lr_decay (float): learning-rate decay per step (default 0).
        weight_decay (float): L2 penalty (default 0).
        initial_accumulator_value (float): starting value of s (default 0).
        eps (float): added to the denominator for stability (default 1e-10).
        maximize (bool): ascend the objective instead of descending it.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group):
        xp = array_module(p._data)
        state = self.state[p]
        state["step"] = 0.0
        state["sum"] = xp.full_like(p._data, group["initial_accumulator_value"])

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        self._check_nonnegative(options, "lr_decay", "lr_decay value", where)
        self._check_nonnegative(options, "weight_decay", "weight_decay value", where)
        self._check_nonnegative(options, "initial_accumulator_value",
                                "initial_accumulator_value value", where)
        self._check_nonnegative(options, "eps", "epsilon value", where)

    def _required_state(self, group):
        return ("step", "sum")

    def step(self, closure=None):
        r"""Perform one update of every parameter that has a gradient; return ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group, pairs in self._params_with_grads():
            lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
            for p, grad in pairs:
                param = p._data
                xp = array_module(param)
                state = self.state[p]
                if not state:                 # a parameter added by add_param_group
                    self._init_state(p, group)
                state["step"] += 1
                t = state["step"]
                s = state["sum"]
                work = self._work(param, "work")
                g = self._effective_grad(grad, param, group["weight_decay"], group["maximize"])

                clr = lr / (1 + (t - 1) * lr_decay)
                s += xp.multiply(g, g, out=work)
                std = xp.sqrt(s, out=work)
                std += eps
                update = xp.divide(g, std, out=work)
                update *= clr
                param -= update                                  # p = p - clr * g / std
        return loss
