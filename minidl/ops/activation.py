r"""Activation functions (elementwise nonlinearities).

Each gradient is written in terms of what is cheapest to keep: ReLU keeps a
mask, sigmoid and tanh keep their output y because their derivatives are
functions of y alone.
"""
from ..autograd import Function
from ..backend import allocator, array_module


class Relu(Function):
    r"""y = max(x, 0).   dL/dx = dy * [x > 0]   (the gradient at exactly 0 is 0, as in PyTorch).

    [x > 0] = [y > 0], so the saved y (which the next layer usually keeps anyway) gives the
    mask. y and dx come from the allocator (minidl/backend/allocator.py): large fresh arrays are
    slow to touch the first time (docs/performance.md).
    """

    def forward(self, x):
        out = allocator.empty_like(x) if x.dtype.kind == "f" else None  # (ints and bools: NumPy's type)
        y = array_module(x).maximum(x, 0, out=out)
        self.save(y=y)
        return y

    def backward(self, dy):
        positive = self.saved.y > 0
        return array_module(dy).multiply(dy, positive, out=allocator.empty_like(dy))


class Sigmoid(Function):
    r"""y = 1 / (1 + exp(-x)).   dy/dx = y (1 - y),  so dL/dx = dy * y * (1 - y).

    Computed as exp(-|x|) based branches so that large |x| never overflows.
    """

    def forward(self, x):
        xp = array_module(x)
        e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
        y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        self.save(y=y)
        return y

    def backward(self, dy):
        y = self.saved.y
        return dy * y * (1 - y)


class Tanh(Function):
    r"""y = tanh(x).   dy/dx = 1 - y**2,  so dL/dx = dy * (1 - y**2)."""

    def forward(self, x):
        y = array_module(x).tanh(x)
        self.save(y=y)
        return y

    def backward(self, dy):
        y = self.saved.y
        return dy * (1 - y * y)


class LeakyRelu(Function):
    r"""y = x if x > 0 else negative_slope * x.

    dy/dx = 1 for x > 0, negative_slope otherwise, so
    dL/dx = dy * where(x > 0, 1, negative_slope)   (at exactly 0 the slope, as in PyTorch).
    """

    def forward(self, x, negative_slope):
        positive = x > 0
        self.save(positive=positive, negative_slope=negative_slope)
        return array_module(x).where(positive, x, x * negative_slope)

    def backward(self, dy):
        s = self.saved
        return array_module(dy).where(s.positive, dy, dy * s.negative_slope), None
