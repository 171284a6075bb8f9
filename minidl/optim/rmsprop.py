r"""RMSprop: divide the gradient by a running root-mean-square of past gradients."""

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), as ``torch.optim.RMSprop``.

    For each parameter ``p`` with gradient ``grad``, at step ``t = 1, 2, ...``
    (``v_0 = gbar_0 = b_0 = 0``)::

        g      = -grad if maximize else grad
        g      = g + weight_decay * p                  (L2 penalty, if weight_decay != 0)
        v_t    = alpha * v_{t-1} + (1 - alpha) * g * g
        gbar_t = gbar_{t-1} + (1 - alpha) * (g - gbar_{t-1})       (centered only)
        avg    = sqrt(v_t - gbar_t * gbar_t) + eps   if centered   (a variance estimate)
                 sqrt(v_t) + eps                     otherwise
        if momentum > 0:
            b_t = momentum * b_{t-1} + g / avg
            p   = p - lr * b_t
        else:
            p   = p - lr * g / avg

    State per parameter: ``'step'`` (t, a float), ``'square_avg'`` (v),
    ``'momentum_buffer'`` (b, when ``momentum > 0``), ``'grad_avg'`` (gbar, when centered).

    Args:
        params: iterable of Tensors or of dicts defining parameter groups.
        lr (float): learning rate (default 1e-2).
        alpha (float): smoothing constant of v (default 0.99).
        eps (float): added to the denominator for stability (default 1e-8).
        weight_decay (float): L2 penalty (default 0).
        momentum (float): momentum factor (default 0).
        centered (bool): normalise by the estimated variance instead of the raw second moment.
        maximize (bool): ascend the objective instead of descending it.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        self._check_nonnegative(options, "eps", "epsilon value", where)
        self._check_nonnegative(options, "momentum", "momentum value", where)
        self._check_nonnegative(options, "weight_decay", "weight_decay value", where)
        self._check_nonnegative(options, "alpha", "alpha value", where)

    def _required_state(self, group):
        return (("step", "square_avg")
                + (("momentum_buffer",) if group["momentum"] > 0 else ())
                + (("grad_avg",) if group["centered"] else ()))

    def step(self, closure=None):
        r"""Perform one update of every parameter that has a gradient; return ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group, pairs in self._params_with_grads():
            lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
            for p, grad in pairs:
                param = p._data
                xp = array_module(param)
                state = self.state[p]
                if not state:                                    # lazy initialisation
                    state["step"] = 0.0
                    state["square_avg"] = xp.zeros_like(param)
                    if momentum > 0:
                        state["momentum_buffer"] = xp.zeros_like(param)
                    if group["centered"]:
                        state["grad_avg"] = xp.zeros_like(param)
                state["step"] += 1
                work = self._work(param, "work")
                avg = self._work(param, "avg")
                g = self._effective_grad(grad, param, group["weight_decay"], group["maximize"])

                v = state["square_avg"]
                v *= alpha
                v += xp.multiply(xp.multiply(g, 1 - alpha, out=work), g, out=work)
                if group["centered"]:
                    gbar = state["grad_avg"]
                    gbar += xp.multiply(xp.subtract(g, gbar, out=work), 1 - alpha, out=work)
                    xp.multiply(gbar, gbar, out=work)
                    xp.sqrt(xp.subtract(v, work, out=avg), out=avg)    # sqrt(v - gbar^2)
                else:
                    xp.sqrt(v, out=avg)
                avg += eps
                if momentum > 0:
                    buf = state["momentum_buffer"]
                    buf *= momentum
                    buf += xp.divide(g, avg, out=work)
                    param -= xp.multiply(buf, lr, out=work)           # p = p - lr * b
                else:
                    update = xp.divide(g, avg, out=work)
                    update *= lr
                    param -= update                                   # p = p - lr * g / avg
        return loss
