r"""NAdam: Adam with Nesterov momentum."""

import numpy as np

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["NAdam"]


class NAdam(Optimizer):
    r"""NAdam (Dozat, 2016), as ``torch.optim.NAdam``.

    For each parameter ``p`` with gradient ``grad``, at step ``t = 1, 2, ...``
    (``m_0 = v_0 = 0``, ``P_0 = 1``)::

        g       = -grad if maximize else grad
        p       = p * (1 - lr * weight_decay)    if decoupled_weight_decay   (AdamW-style)
        g       = g + weight_decay * p           otherwise                   (L2 penalty)
        mu_t    = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))        (momentum schedule)
        mu_t+1  = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        P_t     = P_{t-1} * mu_t                                          (product of the mu's)
        m_t     = m_{t-1} + (1 - beta1) * (g - m_{t-1})
        v_t     = beta2 * v_{t-1} + (1 - beta2) * g * g
        denom   = sqrt(v_t / (1 - beta2**t)) + eps
        p       = p - lr * (1 - mu_t) / (1 - P_t) * g / denom
                    - lr * mu_t+1 / (1 - P_t * mu_t+1) * m_t / denom

    The second term looks one step ahead along the momentum (Nesterov).

    State per parameter: ``'step'`` (t), ``'mu_product'`` (P_t; both Python floats,
    0-d float32 tensors in PyTorch: P_t is rounded to float32 after each product, as
    there), ``'exp_avg'`` (m), ``'exp_avg_sq'`` (v).

    Args:
        params: iterable of Tensors or of dicts defining parameter groups.
        lr (float): learning rate (default 2e-3).
        betas (tuple[float, float]): decay rates of m and v (default (0.9, 0.999)).
        eps (float): added to the denominator for stability (default 1e-8).
        weight_decay (float): weight decay (default 0).
        momentum_decay (float): how fast mu_t grows towards beta1 (default 4e-3).
        decoupled_weight_decay (bool): shrink p directly (as AdamW) instead of adding to g.
        maximize (bool): ascend the objective instead of descending it.
    """

    _scalar_state = ("step", "mu_product")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        self._check_nonnegative(options, "eps", "epsilon value", where)
        self._check_betas(options, where)
        self._check_nonnegative(options, "weight_decay", "weight_decay value", where)
        self._check_nonnegative(options, "momentum_decay", "momentum_decay value", where)

    def _required_state(self, group):
        return ("step", "mu_product", "exp_avg", "exp_avg_sq")

    def step(self, closure=None):
        r"""Perform one update of every parameter that has a gradient; return ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group, pairs in self._params_with_grads():
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            momentum_decay = group["momentum_decay"]
            for p, grad in pairs:
                param = p._data
                xp = array_module(param)
                state = self.state[p]
                if not state:                                    # lazy initialisation
                    state["step"] = 0.0
                    state["mu_product"] = 1.0
                    state["exp_avg"] = xp.zeros_like(param)
                    state["exp_avg_sq"] = xp.zeros_like(param)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                work = self._work(param, "work")
                denom = self._work(param, "denom")

                if group["decoupled_weight_decay"]:
                    if wd != 0:
                        param *= 1 - lr * wd                     # p = p - lr * wd * p
                    g = self._effective_grad(grad, param, 0, group["maximize"])
                else:
                    g = self._effective_grad(grad, param, wd, group["maximize"])

                mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
                mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
                # PyTorch keeps P_t as a float32 0-d tensor: round as it does, to match it exactly
                state["mu_product"] = float(np.float32(state["mu_product"]) * np.float32(mu))
                mu_product = state["mu_product"]
                mu_product_next = mu_product * mu_next

                m += xp.multiply(xp.subtract(g, m, out=work), 1 - beta1, out=work)
                v *= beta2
                v += xp.multiply(xp.multiply(g, 1 - beta2, out=work), g, out=work)
                xp.sqrt(xp.divide(v, 1 - beta2 ** t, out=denom), out=denom)
                denom += eps
                update = xp.divide(g, denom, out=work)
                update *= lr * (1.0 - mu) / (1.0 - mu_product)
                param -= update                                  # the gradient term
                update = xp.divide(m, denom, out=work)
                update *= lr * mu_next / (1.0 - mu_product_next)
                param -= update                                  # the look-ahead momentum term
        return loss
