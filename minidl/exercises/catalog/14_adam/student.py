"""Adam: one update with bias correction, as torch.optim.Adam (your solution)."""
import numpy as np


def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
    """One Adam step at step t = 1, 2, ...: param, grad, m, v all of one shape (any).

    Returns NEW arrays (param, m, v) of that shape and dtype; the arguments are not changed.
    """
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
