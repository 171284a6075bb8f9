r"""RAdam: Adam whose adaptive step is switched on once its variance is tractable."""

import math

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["RAdam"]


class RAdam(Optimizer):
    r"""RAdam (Liu et al., 2020), as ``torch.optim.RAdam``.

    For each parameter ``p`` with gradient ``grad``, at step ``t = 1, 2, ...``
    (``m_0 = v_0 = 0``)::

        g       = -grad if maximize else grad
        p       = p * (1 - lr * weight_decay)    if decoupled_weight_decay   (AdamW-style)
        g       = g + weight_decay * p           otherwise                   (L2 penalty)
        m_t     = m_{t-1} + (1 - beta1) * (g - m_{t-1})
        v_t     = beta2 * v_{t-1} + (1 - beta2) * g * g
        mhat    = m_t / (1 - beta1**t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t   = rho_inf - 2 t beta2**t / (1 - beta2**t)    (length of the SMA of v)
        if rho_t > 5:
            r   = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            p   = p - lr * mhat * r * sqrt(1 - beta2**t) / (sqrt(v_t) + eps)
        else:                                                 (early steps: plain momentum SGD)
            p   = p - lr * mhat

    State per parameter: ``'step'`` (t, a float), ``'exp_avg'`` (m), ``'exp_avg_sq'`` (v).

    Args:
        params: iterable of Tensors or of dicts defining parameter groups.
        lr (float): learning rate (default 1e-3).
        betas (tuple[float, float]): decay rates of m and v (default (0.9, 0.999)).
        eps (float): added to the denominator for stability (default 1e-8).
        weight_decay (float): weight decay (default 0).
        decoupled_weight_decay (bool): shrink p directly (as AdamW) instead of adding to g.
        maximize (bool): ascend the objective instead of descending it.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        self._check_nonnegative(options, "eps", "epsilon value", where)
        self._check_betas(options, where)
        self._check_nonnegative(options, "weight_decay", "weight_decay value", where)

    def _required_state(self, group):
        return ("step", "exp_avg", "exp_avg_sq")

    def step(self, closure=None):
        r"""Perform one update of every parameter that has a gradient; return ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group, pairs in self._params_with_grads():
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p, grad in pairs:
                param = p._data
                xp = array_module(param)
                state = self.state[p]
                if not state:                                    # lazy initialisation
                    state["step"] = 0.0
                    state["exp_avg"] = xp.zeros_like(param)
                    state["exp_avg_sq"] = xp.zeros_like(param)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                work = self._work(param, "work")

                if group["decoupled_weight_decay"]:
                    if wd != 0:
                        param *= 1 - lr * wd                     # p = p - lr * wd * p
                    g = self._effective_grad(grad, param, 0, group["maximize"])
                else:
                    g = self._effective_grad(grad, param, wd, group["maximize"])

                m += xp.multiply(xp.subtract(g, m, out=work), 1 - beta1, out=work)
                v *= beta2
                v += xp.multiply(xp.multiply(g, 1 - beta2, out=work), g, out=work)
                bias_correction1 = 1 - beta1 ** t
                bias_correction2 = 1 - beta2 ** t
                rho_inf = 2 / (1 - beta2) - 1
                rho_t = rho_inf - 2 * t * beta2 ** t / bias_correction2
                if rho_t > 5.0:
                    rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                                     / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                    denom = xp.sqrt(v, out=work)
                    denom += eps
                    update = xp.divide(m, denom, out=work)
                    update *= lr * rect * math.sqrt(bias_correction2) / bias_correction1
                else:
                    update = xp.multiply(m, lr / bias_correction1, out=work)
                param -= update                                  # p = p - lr * mhat * ...
        return loss
