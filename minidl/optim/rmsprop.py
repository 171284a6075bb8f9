r"""RMSprop: each coordinate's step divided by a running root-mean-square of its gradient."""

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), as ``torch.optim.RMSprop``.

    For each parameter ``p`` with gradient ``grad``, at every step (``v = b = gbar = 0`` at first)::

        g    = -grad if maximize else grad
        g    = g + weight_decay * p                    (L2 penalty, if weight_decay != 0)
        v    = alpha * v + (1 - alpha) * g * g         (running mean of g^2)
        gbar = alpha * gbar + (1 - alpha) * g          (centered only: running mean of g)
        d    = sqrt(v - gbar**2) + eps  if centered    (an estimate of g's standard deviation)
               sqrt(v) + eps            otherwise
        b    = momentum * b + g / d                    (momentum > 0 only)
        p    = p - lr * b          if momentum > 0
               p - lr * g / d      otherwise

    State per parameter: ``'step'``, ``'square_avg'`` (v), and ``'grad_avg'`` (gbar, centered)
    and ``'momentum_buffer'`` (b, momentum > 0). ``foreach``, ``capturable`` and
    ``differentiable`` are accepted for PyTorch's signature and change nothing.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False, differentiable=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        self._check_nonnegative(options, "eps", "epsilon value", where)
        self._check_nonnegative(options, "momentum", "momentum value", where)
        self._check_nonnegative(options, "weight_decay", "weight_decay value", where)
        self._check_nonnegative(options, "alpha", "alpha value", where)

    def _required_state(self, group):
        return (("step", "square_avg") + (("momentum_buffer",) if group["momentum"] > 0 else ())
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
                g = self._effective_grad(grad, param, group["weight_decay"], group["maximize"])
                v = state["square_avg"]
                v *= alpha
                v += (1 - alpha) * g * g                         # v = alpha v + (1 - alpha) g^2
                if group["centered"]:
                    gbar = state["grad_avg"]
                    gbar += (1 - alpha) * (g - gbar)             # gbar = alpha gbar + (1 - alpha) g
                    d = xp.sqrt(v - gbar * gbar) + eps
                else:
                    d = xp.sqrt(v) + eps
                if momentum > 0:
                    b = state["momentum_buffer"]
                    b *= momentum
                    b += g / d                                   # b = momentum b + g / d
                    param -= lr * b
                else:
                    param -= lr * (g / d)
        return loss
