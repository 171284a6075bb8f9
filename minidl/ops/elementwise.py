r"""Elementwise arithmetic: y = f(a, b) or y = f(x), applied entry by entry.

Binary ops broadcast their inputs the NumPy way. Their ``backward`` returns
gradients in the *broadcast* shape; the autograd engine sums them back to each
input's shape (``autograd.sum_to_shape``), so no op repeats that logic.

Notation: ``dy`` is dL/dy (y's shape), a backward returns dL/d(each input).
"""
import numpy as np

from ..autograd import Function
from ..backend import array_module, device_of, to_device


def check_broadcast(op, a_shape, b_shape):
    """Raise a clear error if two shapes do not broadcast (before any work)."""
    if a_shape != b_shape:
        try:
            np.broadcast_shapes(a_shape, b_shape)
        except ValueError:
            raise ValueError(
                f"{op}: shapes {tuple(a_shape)} and {tuple(b_shape)} cannot be broadcast together "
                "(trailing dimensions must be equal or 1)"
            ) from None


class Add(Function):
    """y = a + b.   dL/da = dy,  dL/db = dy."""

    def forward(self, a, b):
        return a + b

    def backward(self, dy):
        return dy, dy


class Sub(Function):
    """y = a - b.   dL/da = dy,  dL/db = -dy."""

    def forward(self, a, b):
        return a - b

    def backward(self, dy):
        return dy, (-dy if self.needs_input_grad[1] else None)


class Mul(Function):
    """y = a * b.   dL/da = dy * b,  dL/db = dy * a."""

    def forward(self, a, b):
        self.save(a=a if self.needs_input_grad[1] else None, b=b if self.needs_input_grad[0] else None)
        return a * b

    def backward(self, dy):
        a, b = self.saved.a, self.saved.b
        da = dy * b if self.needs_input_grad[0] else None
        db = dy * a if self.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """y = a / b.   dL/da = dy / b,  dL/db = -dy * a / b**2 = -(dy / b) * y."""

    def forward(self, a, b):
        y = a / b
        self.save(b=b, y=y if self.needs_input_grad[1] else None)
        return y

    def backward(self, dy):
        da = dy / self.saved.b
        db = -da * self.saved.y if self.needs_input_grad[1] else None
        return (da if self.needs_input_grad[0] else None), db


class Neg(Function):
    """y = -x.   dL/dx = -dy."""

    def forward(self, x):
        return -x

    def backward(self, dy):
        return -dy


class Pow(Function):
    r"""y = a ** b (both tensors).

    dL/da = dy * b * a**(b-1)
    dL/db = dy * y * log(a)        taken as 0 where a == 0 and b >= 0 (PyTorch's
                                   convention: the limit of a**b log a as a -> 0+)
    """

    def forward(self, a, b):
        y = a ** b
        self.save(a=a, b=b, y=y)
        return y

    def backward(self, dy):
        a, b, y = self.saved.a, self.saved.b, self.saved.y
        xp = array_module(dy)
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                da = dy * b * a ** (b - 1)
            if self.needs_input_grad[1]:
                db = dy * xp.where((a == 0) & (b >= 0), 0, y * xp.log(a))
        return da, db


class PowScalar(Function):
    r"""y = x ** p for a Python number p.   dL/dx = dy * p * x**(p-1)  (0 when p == 0)."""

    def forward(self, x, p):
        self.save(x=x, p=p)
        return x ** p

    def backward(self, dy):
        x, p = self.saved.x, self.saved.p
        if p == 0:
            return dy * 0, None
        if p == 2:
            return dy * 2 * x, None  # the common case, without a second power
        return dy * p * x ** (p - 1), None


class RPowScalar(Function):
    r"""y = c ** x for a Python number c.   dL/dx = dy * y * log(c)  (0 where c == 0, x >= 0)."""

    def forward(self, c, x):
        y = array_module(x).asarray(c, dtype=x.dtype) ** x
        self.save(c=c, x=x, y=y)
        return y

    def backward(self, dy):
        c, x, y = self.saved.c, self.saved.x, self.saved.y
        xp = array_module(dy)
        if c == 0:
            return None, dy * xp.where(x >= 0, 0, y * -np.inf)
        return None, dy * y * np.log(c)


class Exp(Function):
    """y = exp(x).   dL/dx = dy * y."""

    def forward(self, x):
        y = array_module(x).exp(x)
        self.save(y=y)
        return y

    def backward(self, dy):
        return dy * self.saved.y


class Log(Function):
    """y = log(x).   dL/dx = dy / x."""

    def forward(self, x):
        self.save(x=x)
        return array_module(x).log(x)

    def backward(self, dy):
        return dy / self.saved.x


class Sqrt(Function):
    """y = sqrt(x).   dL/dx = dy / (2 y)."""

    def forward(self, x):
        y = array_module(x).sqrt(x)
        self.save(y=y)
        return y

    def backward(self, dy):
        return dy / (2 * self.saved.y)


class Abs(Function):
    """y = |x|.   dL/dx = dy * sign(x)   (0 at x == 0, as in PyTorch)."""

    def forward(self, x):
        self.save(x=x)
        return array_module(x).abs(x)

    def backward(self, dy):
        return dy * array_module(dy).sign(self.saved.x)


class Clamp(Function):
    r"""y = min(max(x, low), high); ``low``/``high`` are numbers, arrays (broadcast with x) or None.

    dL/dx    = dy where low <= x <= high, else 0   (the bounds themselves count as inside)
    dL/dlow  = dy where x < low (and low < high when both are given), else 0
    dL/dhigh = dy where x > high, or where high < low (then y == high everywhere), else 0
    PyTorch's choice at the ties: x == low sends the gradient to x, not to low.
    """

    def forward(self, x, low, high):
        xp = array_module(x)
        inside = True
        if low is not None:
            inside = inside & (x >= low)
        if high is not None:
            inside = inside & (x <= high)
        dlow = dhigh = None
        if self.needs_input_grad[1]:
            dlow = (x < low) & (low < high) if high is not None else x < low
        if self.needs_input_grad[2]:
            dhigh = (x > high) | (high < low) if low is not None else x > high
        self.save(inside=inside, dlow=dlow, dhigh=dhigh)
        y = x if low is None else xp.maximum(x, low)
        y = y if high is None else xp.minimum(y, high)
        return y.astype(x.dtype, copy=False)

    def backward(self, dy):
        s = self.saved
        dx = dy * s.inside if self.needs_input_grad[0] else None
        dlow = dy * s.dlow if s.dlow is not None else None
        dhigh = dy * s.dhigh if s.dhigh is not None else None
        return dx, dlow, dhigh


class Maximum(Function):
    r"""y = maximum(a, b) entry by entry (broadcast); ``Minimum`` the same with the roles swapped.

    dL/da = dy where a > b,   dy / 2 where a == b,   0 where a < b
    dL/db = dy where b > a,   dy / 2 where a == b,   0 where b < a
    (at a tie the gradient is split evenly, as PyTorch does)
    """

    largest = True

    def forward(self, a, b):
        xp = array_module(a)
        self.save(a=a, b=b)
        return xp.maximum(a, b) if self.largest else xp.minimum(a, b)

    def backward(self, dy):
        a, b = self.saved.a, self.saved.b
        xp = array_module(dy)
        a_wins = a > b if self.largest else a < b
        b_wins = b > a if self.largest else b < a
        half = dy / 2
        da = xp.where(a_wins, dy, xp.where(b_wins, 0, half)) if self.needs_input_grad[0] else None
        db = xp.where(b_wins, dy, xp.where(a_wins, 0, half)) if self.needs_input_grad[1] else None
        return da, db


class Minimum(Maximum):
    """y = minimum(a, b); the gradient goes to the smaller input, split evenly at ties."""

    largest = False


class Where(Function):
    r"""y = a where ``condition`` (a bool array) is True, else b; all three broadcast together.

    dL/da = dy where condition, else 0;   dL/db = dy where not condition, else 0
    (in the broadcast shape: the engine sums them back to a's and b's shapes)
    """

    def forward(self, condition, a, b):
        self.save(condition=condition)
        return array_module(a).where(condition, a, b)

    def backward(self, dy):
        xp = array_module(dy)
        condition = xp.broadcast_to(self.saved.condition, dy.shape)
        zero = xp.zeros((), dtype=dy.dtype)
        da = xp.where(condition, dy, zero) if self.needs_input_grad[1] else None
        db = xp.where(condition, zero, dy) if self.needs_input_grad[2] else None
        return None, da, db


class Cast(Function):
    """y = x converted to another dtype.   dL/dx = dy converted back (the engine casts)."""

    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, dy):
        return dy, None


class Clone(Function):
    """y = a copy of x.   dL/dx = dy."""

    def forward(self, x):
        return x.copy()

    def backward(self, dy):
        return dy


class Fill(Function):
    r"""y = value everywhere (the out-of-place half of ``fill_``/``zero_``).

    dL/dx = 0 (the old values no longer matter; zeros, as PyTorch gives, not "no gradient")
    dL/dvalue = sum(dy)   when value is a 0-dim tensor (it was copied to every entry)
    """

    def forward(self, x, value):
        return array_module(x).full(x.shape, value, dtype=x.dtype)

    def backward(self, dy):
        dx = array_module(dy).zeros_like(dy) if self.needs_input_grad[0] else None
        return dx, (dy if self.needs_input_grad[1] else None)  # the engine sums dy to value's shape


class CopyFrom(Function):
    r"""y = src, broadcast to x's shape and cast to x's dtype (the out-of-place half of ``copy_``).

    dL/dx = 0;   dL/dsrc = dy (summed over the broadcast axes by the engine, cast back by it)
    """

    def forward(self, x, src):
        xp = array_module(x)
        return xp.broadcast_to(src, x.shape).astype(x.dtype, copy=True)

    def backward(self, dy):
        dx = array_module(dy).zeros_like(dy) if self.needs_input_grad[0] else None
        return dx, (dy if self.needs_input_grad[1] else None)


class MaskedFill(Function):
    r"""y = where(mask, value, x), mask a bool array broadcast to x's shape.

    dL/dx = dy where the mask is False, 0 where it is True
    dL/dvalue = sum of dy where the mask is True   (value a 0-dim tensor)
    """

    def forward(self, x, mask, value):
        self.save(mask=mask)
        xp = array_module(x)
        return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)

    def backward(self, dy):
        xp = array_module(dy)
        mask = self.saved.mask
        dx = xp.where(mask, 0, dy).astype(dy.dtype, copy=False) if self.needs_input_grad[0] else None
        dvalue = xp.where(mask, dy, 0).astype(dy.dtype, copy=False) if self.needs_input_grad[2] else None
        return dx, None, dvalue


class ToDevice(Function):
    """y = x copied to another device (``Tensor.to``).   dL/dx = dy copied back to x's device."""

    def forward(self, x, device):
        self.save(source=device_of(x))
        return to_device(x, device)

    def backward(self, dy):
        return to_device(dy, self.saved.source), None
