r"""Dropout: zero random entries (or whole channels) and rescale the survivors.

In training each entry is kept with probability 1 - p and multiplied by
1 / (1 - p), so that E[y] = x: the next layer sees the same expected input in
training and in evaluation, where dropout is the identity. Channel dropout
(``dropout2d``) draws one keep/drop decision per (n, c) and applies it to the
whole feature map x[n, c, :, :], because neighbouring pixels are so correlated
that dropping single pixels hardly regularises a convolutional network.

The mask is drawn from ``minidl.random.generator()``, so ``minidl.manual_seed``
makes it reproducible. See docs/gradients/dropout.md.
"""
import numpy as np

from ..autograd import Function
from ..backend import array_module
from ..random import generator


class Dropout(Function):
    r"""y = x * mask / (1 - p), mask[i] ~ Bernoulli(1 - p) drawn once per forward.

    Shapes: x (any)   mask_shape = x.shape (dropout) or (N, C, 1, 1) (dropout2d:
            one draw per channel, broadcast over H, W)   y (x.shape)
    Forward:  scale = mask / (1 - p)   (all zeros when p == 1)     y = x * scale
    Backward: y is linear in x with the same (saved) mask, so
              dx = dy * mask / (1 - p) = dy * scale
    """

    def forward(self, x, p, mask_shape):
        xp = array_module(x)
        # P(keep) = P(u >= p) = 1 - p for u uniform on [0, 1); drawn on the host, in float32 (half
        # the random bits of float64: the draw is most of dropout's time)
        keep = generator().random(mask_shape, dtype=np.float32) >= p
        if p < 1:
            scale = xp.multiply(xp.asarray(keep), 1 / (1 - p), dtype=x.dtype)  # keep / (1 - p)
        else:
            scale = xp.zeros(mask_shape, dtype=x.dtype)
        self.save(scale=scale)
        return x * scale

    def backward(self, dy):
        return dy * self.saved.scale, None, None
