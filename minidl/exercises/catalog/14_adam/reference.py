"""Adam: one update with bias correction, as torch.optim.Adam (the reference solution)."""
import numpy as np


def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
    """One Adam step at step t = 1, 2, ...: param, grad, m, v all of one shape (any).

    Returns NEW arrays (param, m, v) of that shape and dtype; the arguments are not changed.
    """
    g = grad + weight_decay * param  # L2 penalty: part of the gradient (Adam, not AdamW)
    m = beta1 * m + (1 - beta1) * g  # running mean of g
    v = beta2 * v + (1 - beta2) * g * g  # running mean of g**2
    m_hat = m / (1 - beta1 ** t)  # bias corrections: m and v start at 0, so
    v_hat = v / (1 - beta2 ** t)  # early averages are too small
    param = param - lr * m_hat / (np.sqrt(v_hat) + eps)
    return param, m, v
