r"""Adadelta: steps whose size is a running RMS of past steps over a running RMS of gradients."""

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), as ``torch.optim.Adadelta``.

    For each parameter ``p`` with gradient ``grad``, at every step (``v = u = 0`` at first)::

        g     = -grad if maximize else grad
        g     = g + weight_decay * p                   (L2 penalty, if weight_decay != 0)
        v     = rho * v + (1 - rho) * g * g            (running mean of g^2)
        delta = sqrt(u + eps) / sqrt(v + eps) * g      (units of p: RMS of past steps / RMS of g)
        u     = rho * u + (1 - rho) * delta * delta    (running mean of delta^2)
        p     = p - lr * delta

    State per parameter: ``'step'``, ``'square_avg'`` (v), ``'acc_delta'`` (u). ``lr`` defaults
    to 1.0, as in the paper. ``foreach``, ``capturable`` and ``differentiable`` are accepted
    for PyTorch's signature and change nothing.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        rho = options["rho"]
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0.0 <= rho <= 1.0:
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
                g = self._effective_grad(grad, param, group["weight_decay"], group["maximize"])
                v, u = state["square_avg"], state["acc_delta"]
                v *= rho
                v += (1 - rho) * g * g                           # v = rho v + (1 - rho) g^2
                delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * g
                u *= rho
                u += (1 - rho) * delta * delta                   # u = rho u + (1 - rho) delta^2
                param -= lr * delta
        return loss
