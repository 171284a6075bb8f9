r"""Adamax: Adam with the infinity norm in place of the second moment."""

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["Adamax"]


class Adamax(Optimizer):
    r"""Adamax (Kingma & Ba, 2015, section 7), as ``torch.optim.Adamax``.

    For each parameter ``p`` with gradient ``grad``, at step ``t = 1, 2, ...``
    (``m_0 = u_0 = 0``)::

        g   = -grad if maximize else grad
        g   = g + weight_decay * p                       (L2 penalty, if weight_decay != 0)
        m_t = m_{t-1} + (1 - beta1) * (g - m_{t-1})      (= beta1 m_{t-1} + (1-beta1) g)
        u_t = max(beta2 * u_{t-1}, |g| + eps)            (a decaying running max of |g|)
        p   = p - (lr / (1 - beta1**t)) * m_t / u_t

    State per parameter: ``'step'`` (t, a float), ``'exp_avg'`` (m), ``'exp_inf'`` (u).

    Args:
        params: iterable of Tensors or of dicts defining parameter groups.
        lr (float): learning rate (default 2e-3).
        betas (tuple[float, float]): decay rates of m and u (default (0.9, 0.999)).
        eps (float): added to |g| for stability (default 1e-8).
        weight_decay (float): L2 penalty (default 0).
        maximize (bool): ascend the objective instead of descending it.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *,
                 maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        self._check_nonnegative(options, "eps", "epsilon value", where)
        self._check_betas(options, where)
        self._check_nonnegative(options, "weight_decay", "weight_decay value", where)

    def _required_state(self, group):
        return ("step", "exp_avg", "exp_inf")

    def step(self, closure=None):
        r"""Perform one update of every parameter that has a gradient; return ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group, pairs in self._params_with_grads():
            lr, eps = group["lr"], group["eps"]
            beta1, beta2 = group["betas"]
            for p, grad in pairs:
                param = p._data
                xp = array_module(param)
                state = self.state[p]
                if not state:                                    # lazy initialisation
                    state["step"] = 0.0
                    state["exp_avg"] = xp.zeros_like(param)
                    state["exp_inf"] = xp.zeros_like(param)
                state["step"] += 1
                t = state["step"]
                m, u = state["exp_avg"], state["exp_inf"]
                work = self._work(param, "work")
                g = self._effective_grad(grad, param, group["weight_decay"], group["maximize"])

                m += xp.multiply(xp.subtract(g, m, out=work), 1 - beta1, out=work)
                u *= beta2
                abs_g = xp.abs(g, out=work)
                abs_g += eps
                xp.maximum(u, abs_g, out=u)
                clr = lr / (1 - beta1 ** t)
                update = xp.divide(m, u, out=work)
                update *= clr
                param -= update                                  # p = p - clr * m / u
        return loss
