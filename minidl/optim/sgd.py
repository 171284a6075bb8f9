r"""Stochastic gradient descent, optionally with (Nesterov) momentum."""

from ..backend import array_module
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    For each parameter ``p`` with gradient ``grad``, at step ``t = 1, 2, ...``::

        g   = -grad if maximize else grad
        g   = g + weight_decay * p                      (L2 penalty, if weight_decay != 0)
        if momentum != 0:
            b_1 = g                                     (first step: the buffer starts at g)
            b_t = momentum * b_{t-1} + (1 - dampening) * g
            g   = g + momentum * b_t   if nesterov      (look ahead along the buffer)
                  b_t                  otherwise
        p   = p - lr * g

    State per parameter (only when ``momentum != 0``): ``'momentum_buffer'`` = ``b_t``.

    Args:
        params: iterable of Tensors or of dicts defining parameter groups.
        lr (float): learning rate (default 1e-3).
        momentum (float): momentum factor (default 0).
        dampening (float): dampening of the gradient added to the buffer (default 0).
        weight_decay (float): L2 penalty (default 0).
        nesterov (bool): Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
        maximize (bool): ascend the objective instead of descending it.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options, where):
        self._check_nonnegative(options, "lr", "learning rate", where)
        self._check_nonnegative(options, "momentum", "momentum value", where)
        self._check_nonnegative(options, "weight_decay", "weight_decay value", where)
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError(
                f"SGD{where}: Nesterov momentum requires a momentum and zero dampening "
                f"(got nesterov=True, momentum={options['momentum']}, dampening={options['dampening']})"
            )

    def _required_state(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def step(self, closure=None):
        r"""Perform one update of every parameter that has a gradient; return ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group, pairs in self._params_with_grads():
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            for p, grad in pairs:
                param = p._data
                xp = array_module(param)
                work = self._work(param, "work")
                g = self._effective_grad(grad, param, group["weight_decay"], group["maximize"])
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = xp.array(g, dtype=param.dtype, copy=True)
                    else:
                        buf *= momentum
                        if dampening == 0:
                            buf += g
                        else:
                            buf += xp.multiply(g, 1 - dampening, out=work)
                    if group["nesterov"]:
                        xp.multiply(buf, momentum, out=work)
                        g = xp.add(g, work, out=work)
                    else:
                        g = buf
                param -= xp.multiply(g, lr, out=work)           # p = p - lr * g
        return loss
