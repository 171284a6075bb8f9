r"""Adam and AdamW: per-coordinate step sizes from running moments of the gradient."""

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``.

    For each parameter ``p`` with gradient ``grad``, at step ``t = 1, 2, ...``
    (``m_0 = v_0 = vmax_0 = 0``)::

        g      = -grad if maximize else grad
        g      = g + weight_decay * p                   (L2 penalty, if weight_decay != 0)
        m_t    = m_{t-1} + (1 - beta1) * (g - m_{t-1})  (= beta1 m_{t-1} + (1-beta1) g, a lerp)
        v_t    = beta2 * v_{t-1} + (1 - beta2) * g * g
        bc1    = 1 - beta1**t                           (bias corrections: m_t and v_t start
        bc2    = 1 - beta2**t                            at 0, so early averages are too small)
        vmax_t = max(vmax_{t-1}, v_t)                   (amsgrad only; then v_t := vmax_t below)
        denom  = sqrt(v_t) / sqrt(bc2) + eps
        p      = p - (lr / bc1) * m_t / denom

    So each coordinate moves by about ``lr`` times the sign-consistency of its
    gradient, ``m / sqrt(v)``, whatever the gradient's scale.

    State per parameter: ``'step'`` (t, a float as in PyTorch), ``'exp_avg'`` (m),
    ``'exp_avg_sq'`` (v) and, with ``amsgrad``, ``'max_exp_avg_sq'`` (vmax).

    Args:
        params: iterable of Tensors or of dicts defining parameter groups.
        lr (float): learning rate (default 1e-3).
        betas (tuple[float, float]): decay rates of m and v (default (0.9, 0.999)).
        eps (float): added to the denominator for stability (default 1e-8).
        weight_decay (float): L2 penalty added to the gradient (default 0).
        amsgrad (bool): use the running maximum of v (Reddi et al., 2018).
        maximize (bool): ascend the objective instead of descending it.
    """

    # AdamW sets this: weight decay shrinks p directly instead of entering g.
    _decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        self._check_nonnegative(options, "eps", "epsilon value", where)
        self._check_betas(options, where)
        self._check_nonnegative(options, "weight_decay", "weight_decay value", where)

    def _required_state(self, group):
        return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def step(self, closure=None):
        r"""Perform one update of every parameter that has a gradient; return ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group, pairs in self._params_with_grads():
            for p, grad in pairs:
                self._update(p._data, grad, self.state[p], group)
        return loss

    def _update(self, param, grad, state, group):
        """The class docstring's update of one parameter array, in place (and of its state)."""
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        amsgrad, maximize = group["amsgrad"], group["maximize"]
        xp = array_module(param)
        if not state:                                    # lazy initialisation
            state["step"] = 0.0
            state["exp_avg"] = xp.zeros_like(param)
            state["exp_avg_sq"] = xp.zeros_like(param)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        work = self._work(param, "work")
        state["step"] += 1
        t = state["step"]

        if self._decoupled_weight_decay:
            if wd != 0:
                param *= 1 - lr * wd                     # p = p - lr * wd * p
            g = self._effective_grad(grad, param, 0, maximize)
        else:
            g = self._effective_grad(grad, param, wd, maximize)

        m += xp.multiply(xp.subtract(g, m, out=work), 1 - beta1, out=work)
        v *= beta2
        v += xp.multiply(xp.multiply(g, 1 - beta2, out=work), g, out=work)

        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        if amsgrad:
            if "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = xp.zeros_like(param)
            vmax = state["max_exp_avg_sq"]
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        denom = xp.sqrt(v, out=work)
        denom /= bias_correction2_sqrt
        denom += eps
        update = xp.divide(m, denom, out=work)
        update *= step_size
        param -= update                                  # p = p - step_size * m / denom


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Identical to :class:`Adam` except for the weight decay, which shrinks the
    parameter itself first instead of being added to the gradient (so it is
    not rescaled by ``1/sqrt(v)``)::

        p      = p * (1 - lr * weight_decay)            (before everything else)
        g      = -grad if maximize else grad
        m_t    = m_{t-1} + (1 - beta1) * (g - m_{t-1})
        v_t    = beta2 * v_{t-1} + (1 - beta2) * g * g
        vmax_t = max(vmax_{t-1}, v_t)                   (amsgrad only; then v_t := vmax_t below)
        p      = p - (lr / (1 - beta1**t)) * m_t / (sqrt(v_t) / sqrt(1 - beta2**t) + eps)

    Same state and arguments as :class:`Adam`; ``weight_decay`` defaults to 1e-2.
    """

    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
