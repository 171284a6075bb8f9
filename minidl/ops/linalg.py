r"""Matrix products.

MatMul follows NumPy/PyTorch ``@``: 2-D operands are matrices, extra leading
dimensions are batch dimensions that broadcast, and a 1-D operand is a vector
(a row on the left, a column on the right) whose added dimension is removed
from the result.

For Y = A @ B (matrices),  Y[i,j] = sum_k A[i,k] B[k,j], so
    dL/dA[i,k] = sum_j dY[i,j] B[k,j]   i.e.  dA = dY @ B^T
    dL/dB[k,j] = sum_i A[i,k] dY[i,j]   i.e.  dB = A^T @ dY
With batch dimensions the same holds per batch entry, and a batch dimension
that was broadcast is summed by the engine (``autograd.sum_to_shape``).
"""
import numpy as np

from .. import dtypes
from ..autograd import Function


def check_same_dtype(op, a, b):
    """Matrix products do not promote (PyTorch): float32 @ float64 is an error, not a float64."""
    if a.dtype != b.dtype:
        raise RuntimeError(f"{op}: expected m1 and m2 to have the same dtype, but got: "
                           f"{dtypes.c_name(a.dtype)} != {dtypes.c_name(b.dtype)}")


def check_matmul(op, a, b):
    """Raise a clear error when ``a @ b`` is undefined (before any work)."""
    a_shape, b_shape = tuple(a.shape), tuple(b.shape)
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise ValueError(f"{op}: both operands must have at least 1 dimension, got shapes {a_shape} and {b_shape}")
    k_a = a_shape[-1]
    k_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if k_a != k_b:
        raise ValueError(
            f"{op}: shapes {tuple(a_shape)} and {tuple(b_shape)} cannot be multiplied "
            f"(inner dimensions {k_a} != {k_b})"
        )
    try:  # the batch dimensions (all but the last two) broadcast
        np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ValueError(f"{op}: the batch dimensions {a_shape[:-2]} of {a_shape} and {b_shape[:-2]} of "
                         f"{b_shape} cannot be broadcast together") from None
    check_same_dtype(op, a, b)


def _swap(m):
    return m.swapaxes(-1, -2)


class MatMul(Function):
    """y = a @ b.   da = dy @ b^T,  db = a^T @ dy   (see the module docstring)."""

    def forward(self, a, b):
        self.save(a=a, b=b)
        return a @ b

    def backward(self, dy):
        a, b = self.saved.a, self.saved.b
        if a.ndim == 1 and b.ndim == 1:  # dot product: y = sum_k a[k] b[k]
            return dy * b, dy * a
        # Treat vectors as matrices: a (K,) is a row (1,K), b (K,) is a column (K,1).
        a2 = a[None, :] if a.ndim == 1 else a  # (..., M, K)
        b2 = b[:, None] if b.ndim == 1 else b  # (..., K, N)
        if a.ndim == 1:
            dy = dy[..., None, :]  # restore the removed M=1 axis
        if b.ndim == 1:
            dy = dy[..., None]  # restore the removed N=1 axis
        da = db = None
        if self.needs_input_grad[0]:
            da = dy @ _swap(b2)  # (..., M, K)
            if a.ndim == 1:
                da = da.reshape(-1, a.shape[0]).sum(0) if da.ndim > 2 else da[0]
        if self.needs_input_grad[1]:
            db = _swap(a2) @ dy  # (..., K, N)
            if b.ndim == 1:
                db = db[..., 0]
        return da, db


class Linear(Function):
    r"""y = x @ weight^T + bias, the affine map of ``nn.Linear``.

    Shapes: x (..., IN)  weight (OUT, IN)  bias (OUT,)  y (..., OUT)
    Index form:  y[n,o] = bias[o] + sum_i x[n,i] weight[o,i]
    Backward, with the leading dimensions flattened into one (N rows):
        dx      = dy @ weight          (N, IN)
        dweight = dy^T @ x             (OUT, IN)   sum over the rows n
        dbias   = dy.sum(0)            (OUT,)      bias is added to every row
    One fused op instead of matmul + transpose + add: fewer graph nodes and
    temporaries on the hot path of every MLP.
    """

    def forward(self, x, weight, bias):
        self.save(x=x, weight=weight)
        y = x @ weight.T  # (..., OUT)
        if bias is not None:
            y += bias
        return y

    def backward(self, dy):
        x, weight = self.saved.x, self.saved.weight
        needs_x, needs_w, needs_b = self.needs_input_grad
        dy2 = dy.reshape(-1, dy.shape[-1])  # (N, OUT)
        dx = (dy @ weight) if needs_x else None  # (..., IN)
        dweight = (dy2.T @ x.reshape(-1, x.shape[-1])) if needs_w else None  # (OUT, IN)
        dbias = dy2.sum(0) if needs_b else None  # (OUT,)
        return dx, dweight, dbias
