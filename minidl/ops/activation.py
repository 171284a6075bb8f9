r"""Activation functions (elementwise nonlinearities).

Each gradient is written in terms of what is cheapest to keep: ReLU keeps a
mask, sigmoid and tanh keep their output y because their derivatives are
functions of y alone.
"""
import math

from ..autograd import Function
from ..backend import allocator, array_module, kernels_for


class Relu(Function):
    r"""y = max(x, 0).   dL/dx = dy * [x > 0]   (the gradient at exactly 0 is 0, as in PyTorch).

    As PyTorch computes them: y = (0 if x < 0 else x), so NaN stays NaN and -0.0 stays -0.0;
    dx = (0 if y <= 0 else dy), so a NaN input passes its gradient on, and a NaN upstream
    gradient at a negative input gives 0. [x > 0] = [y > 0] except at NaN, so the saved y
    (which the next layer usually keeps anyway) gives the mask. The NumPy lines are the
    specification; the Numba backend's ``relu`` and ``relu_backward`` compute the same values,
    bit for bit, in one pass on every core into memory from the allocator
    (minidl/backend/allocator.py: large fresh arrays are slow to touch the first time).
    """

    def forward(self, x):
        kernel = getattr(kernels_for(x), "relu", None)
        y = allocator.empty_like(x) if kernel is not None else None
        if kernel is None or not kernel(x, y):  # no kernel, or arrays it does not take
            y = array_module(x).where(x < 0, 0, x)  # (ints keep their type; bools become int64)
        self.save(y=y)
        return y

    def backward(self, dy):
        y = self.saved.y
        kernel = getattr(kernels_for(dy), "relu_backward", None)
        dx = allocator.empty_like(dy) if kernel is not None else None
        if kernel is None or not kernel(dy, y, dx):
            dx = array_module(dy).where(y <= 0, 0, dy)
        return dx


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


class Hardtanh(Function):
    r"""y = min(max(x, min_val), max_val)   (``relu6`` is min_val = 0, max_val = 6).

    dy/dx = 1 strictly inside (min_val, max_val), 0 outside AND at the two corners (PyTorch's
    choice), so dL/dx = dy * [min_val < x < max_val].
    """

    def forward(self, x, min_val, max_val):
        xp = array_module(x)
        self.save(inside=(x > min_val) & (x < max_val))
        return xp.minimum(xp.maximum(x, min_val), max_val).astype(x.dtype, copy=False)

    def backward(self, dy):
        return array_module(dy).where(self.saved.inside, dy, 0).astype(dy.dtype, copy=False), None, None


class Elu(Function):
    r"""y = x for x > 0, alpha * (exp(x) - 1) otherwise.

    dy/dx = 1 for x > 0, alpha * exp(x) otherwise (at exactly 0: alpha, as in PyTorch), so
    dL/dx = dy * where(x > 0, 1, alpha * exp(x)).
    """

    def forward(self, x, alpha):
        xp = array_module(x)
        positive = x > 0
        alpha_exp = alpha * xp.exp(xp.minimum(x, 0))  # alpha e^x on the negative side (no overflow)
        self.save(positive=positive, alpha_exp=alpha_exp)
        return xp.where(positive, x, alpha_exp - alpha).astype(x.dtype, copy=False)

    def backward(self, dy):
        s = self.saved
        return array_module(dy).where(s.positive, dy, dy * s.alpha_exp).astype(dy.dtype, copy=False), None


def erf(x):
    r"""The error function erf(x) = (2/sqrt(pi)) \int_0^x e^{-t^2} dt, elementwise, to float64 accuracy.

    On NumPy arrays SciPy's ``scipy.special.erf``; on other array modules (the strict device,
    CuPy) plain array code, accurate to a few units in the last place of float64:
        |x| < 3:   erf(x) = (2/sqrt(pi)) e^{-x^2} sum_{n>=0} 2^n x^{2n+1} / (1*3*...*(2n+1))
                   (every term positive: no cancellation; term ratio 2x^2/(2n+3))
        |x| >= 3:  erf(x) = sign(x) (1 - erfc(|x|)),  with the continued fraction
                   erfc(x) = e^{-x^2}/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
                   evaluated from the inside out (60 levels suffice for x >= 3).
    """
    xp = array_module(x)
    if xp.__name__ == "numpy":
        from scipy.special import erf as scipy_erf
        return scipy_erf(x)
    a = xp.abs(x)
    small = xp.minimum(a, 3.0)  # series part, on |x| < 3 (clamped elsewhere, result discarded)
    term = small
    total = small
    for n in range(150):  # 2 * 9 / (2n + 3) < 1e-17 relative well before n = 150
        term = term * (2 * small * small) / (2 * n + 3)
        total = total + term
    series = (2 / math.sqrt(math.pi)) * xp.exp(-small * small) * total
    large = xp.maximum(a, 3.0)  # continued fraction part, on |x| >= 3
    fraction = large
    for k in range(60, 0, -1):
        fraction = large + (k / 2) / fraction
    erfc = xp.exp(-large * large) / (math.sqrt(math.pi) * fraction)
    result = xp.where(a < 3.0, series, 1 - erfc)
    return (xp.sign(x) * result).astype(x.dtype, copy=False)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class Gelu(Function):
    r"""GELU: y = x * Phi(x), Phi the standard normal CDF.

    approximate='none':  Phi(x) = (1 + erf(x / sqrt 2)) / 2
        dy/dx = Phi(x) + x * phi(x),    phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    approximate='tanh':  y = x (1 + t) / 2,   t = tanh(u),   u = sqrt(2/pi) (x + 0.044715 x^3)
        dy/dx = (1 + t) / 2 + x (1 - t^2) / 2 * sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    dL/dx = dy * dy/dx.
    """

    def forward(self, x, approximate):
        xp = array_module(x)
        if approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
            slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            y = 0.5 * x * (1 + t)
        else:
            cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
            slope = cdf + x * xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
            y = x * cdf
        self.save(slope=slope.astype(x.dtype, copy=False))
        return y.astype(x.dtype, copy=False)

    def backward(self, dy):
        return dy * self.saved.slope, None


class Silu(Function):
    r"""SiLU (swish): y = x * sigmoid(x).

    With s = sigmoid(x): dy/dx = s + x s (1 - s) = s (1 + x (1 - s)),  dL/dx = dy * dy/dx.
    """

    def forward(self, x):
        xp = array_module(x)
        e = xp.exp(-xp.abs(x))  # the overflow-free sigmoid of Sigmoid above
        s = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        self.save(x=x, s=s)
        return x * s

    def backward(self, dy):
        x, s = self.saved.x, self.saved.s
        return dy * (s * (1 + x * (1 - s)))


class Softplus(Function):
    r"""y = log(1 + exp(beta x)) / beta, or y = x where beta x > threshold (there the two
    agree to float precision, and exp would overflow).

    dy/dx = exp(beta x) / (1 + exp(beta x)) = sigmoid(beta x), or 1 where beta x > threshold.
    """

    def forward(self, x, beta, threshold):
        xp = array_module(x)
        bx = x * beta
        linear = bx > threshold
        z = xp.exp(xp.minimum(bx, threshold))  # never overflows: beta x <= threshold where used
        self.save(linear=linear, z=z)
        return xp.where(linear, x, xp.log1p(z) / beta).astype(x.dtype, copy=False)

    def backward(self, dy):
        s = self.saved
        return array_module(dy).where(s.linear, dy, dy * s.z / (s.z + 1)).astype(dy.dtype, copy=False), None, None


class Prelu(Function):
    r"""PReLU: y = x where x > 0, weight[c] * x otherwise; c the channel (axis 1), or one weight
    for every entry.

    Shapes: x (N, C, *) or any shape for a single weight   weight (C,) or (1,)   y like x
    ``shape`` is the weight's broadcast shape against x ((1, C, 1, ...) or (1,)*ndim).
        dL/dx      = dy * where(x > 0, 1, weight)
        dL/dweight = sum over every axis but the channel of dy * where(x > 0, 0, x)
    """

    def forward(self, x, weight, shape):
        xp = array_module(x)
        w = weight.reshape(shape)  # broadcasts against x
        positive = x > 0
        self.save(x=x, positive=positive, weight=weight, shape=shape)
        return xp.where(positive, x, w * x).astype(x.dtype, copy=False)

    def backward(self, dy):
        s = self.saved
        xp = array_module(dy)
        dx = dweight = None
        if self.needs_input_grad[0]:
            dx = xp.where(s.positive, dy, dy * s.weight.reshape(s.shape)).astype(dy.dtype, copy=False)
        if self.needs_input_grad[1]:
            per_entry = xp.where(s.positive, 0, dy * s.x)  # (N, C, *)
            axes = tuple(i for i, n in enumerate(s.shape) if n == 1)  # every axis the weight was broadcast on
            dweight = per_entry.sum(axis=axes).reshape(s.weight.shape).astype(dy.dtype, copy=False)
        return dx, dweight, None
