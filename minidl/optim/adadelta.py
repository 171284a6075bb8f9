r"""Adadelta: a step size from the ratio of running RMS of updates and of gradients."""

import numbers

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), as ``torch.optim.Adadelta``.

    For each parameter ``p`` with gradient ``grad``, at step ``t = 1, 2, ...``
    (``v_0 = u_0 = 0``)::

        g     = -grad if maximize else grad
        g     = g + weight_decay * p                 (L2 penalty, if weight_decay != 0)
        v_t   = rho * v_{t-1} + (1 - rho) * g * g    (running mean of squared gradients)
        delta = sqrt(u_{t-1} + eps) / sqrt(v_t + eps) * g
        u_t   = rho * u_{t-1} + (1 - rho) * delta * delta   (running mean of squared updates)
        p     = p - lr * delta

    The ratio of the two RMS values gives each coordinate a step with the units
    of ``p``; ``lr`` (default 1) only rescales it.

    State per parameter: ``'step'`` (t, a float), ``'square_avg'`` (v), ``'acc_delta'`` (u).

    Args:
        params: iterable of Tensors or of dicts defining parameter groups.
        lr (float): scale of the update (default 1.0).
        rho (float): decay rate of both running means, in [0, 1] (default 0.9).
        eps (float): added inside both square roots (default 1e-6).
        weight_decay (float): L2 penalty (default 0).
        maximize (bool): ascend the objective instead of descending it.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        rho = options["rho"]
        if isinstance(rho, bool) or not isinstance(rho, numbers.Real):
            raise TypeError(f"Adadelta{where}: rho must be a real number, got {type(rho).__name__}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta{where}: Invalid rho value: {rho} (rho must be in [0, 1])")
        self._check_nonnegative(options, "eps", "epsilon value", where)
        self._check_nonnegative(options, "weight_decay", "weight_decay value", where)

    def _required_state(self, group):
        return ("step", "square_avg", "acc_delta")

    def step(self, closure=None):
        r"""Perform one update of every parameter that has a gradient; return ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group, pairs in self._params_with_grads():
            lr, rho, eps = group["lr"], group["rho"], group["eps"]
            for p, grad in pairs:
                param = p._data
                xp = array_module(param)
                state = self.state[p]
                if not state:                                    # lazy initialisation
                    state["step"] = 0.0
                    state["square_avg"] = xp.zeros_like(param)
                    state["acc_delta"] = xp.zeros_like(param)
                state["step"] += 1
                v, u = state["square_avg"], state["acc_delta"]
                work = self._work(param, "work")
                delta = self._work(param, "delta")
                g = self._effective_grad(grad, param, group["weight_decay"], group["maximize"])

                v *= rho
                v += xp.multiply(xp.multiply(g, 1 - rho, out=work), g, out=work)
                std = xp.sqrt(xp.add(v, eps, out=work), out=work)          # sqrt(v_t + eps)
                xp.sqrt(xp.add(u, eps, out=delta), out=delta)              # sqrt(u_{t-1} + eps)
                delta /= std
                delta *= g
                u *= rho
                u += xp.multiply(xp.multiply(delta, 1 - rho, out=work), delta, out=work)
                param -= xp.multiply(delta, lr, out=work)                  # p = p - lr * delta
        return loss
