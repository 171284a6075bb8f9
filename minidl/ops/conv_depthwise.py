r"""A depthwise conv2d (MobileNet's) computed per channel: a sum of scaled shifted views, no im2col.

A conv2d with ``groups == C`` and one input channel per group, weight (C*M, 1, KH, KW) (M, the
channel multiplier, is 1 in MobileNet), convolves every channel with its own kernels. im2col
makes it C tiny products (M, KH*KW) @ (KH*KW, OH*OW), one per group and sample, each far too
thin for a matrix-product library, and copies the input KH*KW times to feed them. Per channel
it is only KH*KW scaled copies of the input, added up:

    y[n, c*M + m] = sum_{p, q} w[c, m, p, q] * X_pq[n, c]        (OH, OW)   w = weight.reshape(C, M, KH, KW)
    X_pq[n, c][i, j] = xpad[n, c, S*i + D*p, S*j + D*q]                     tap (p, q) of every window

X_pq is a strided view of the zero-padded input plane (minidl/backend/reference.py), so forward
reads the input once per tap and writes nothing else. The gradients, with dy (N, C*M, OH, OW):

    dbias[f]            = sum_{n, i, j} dy[n, f, i, j]
    dweight[c, m, p, q] = sum_{n, i, j} dy[n, c*M + m, i, j] * X_pq[n, c][i, j]     y is linear in w
    dx[n, c]            = sum_{m, p, q} w[c, m, p, q] * X_pq^T(dy[n, c*M + m])

where X_pq^T, the adjoint of taking tap (p, q)'s view, adds an (OH, OW) array onto the cells of
the padded plane that the view reads and drops what falls on the padding (with stride 1: a
shift; where windows overlap, the cell receives the sum of their terms, as col2im). Derivation
(docs/gradients/conv2d_depthwise.md):
y is the im2col route's Y[n, g] = Wm[g] @ cols[n, g] with G = C groups of one channel
(docs/gradients/conv2d.md), whose row (p, q) of cols[n, g] is X_pq[n, c] flattened; dweight =
dY @ cols.T and dx = col2im(Wm.T @ dY) are the two sums above, tap by tap.

The backend kernels ``depthwise_conv2d``, ``depthwise_conv2d_dx`` and ``depthwise_conv2d_dweight``
do the loops (reference.py: NumPy over strided slices, the specification; numba_cpu.py: one
thread per plane, each tap one contiguous loop over a zero-padded flat copy of the plane). Any
stride, padding (also uneven, 'same') and dilation. Why it pays, measured: docs/performance.md.
"""
from ..autograd import Function
from ..backend import allocator, array_module, kernels_for
from .conv import Lowering


class Conv2dDepthwise(Function):
    r"""conv2d with groups == in_channels, per channel (module docstring).

    Shapes: x (N, C, H, W)   weight (C*M, 1, KH, KW)   bias (C*M,) or None   y (N, C*M, OH, OW)
    Forward: y[n, c*M + m, i, j] = bias[c*M + m] + sum_{p,q} weight[c*M + m, 0, p, q] * xpad[n, c, S*i + D*p, S*j + D*q]
    Backward: dbias = dy summed over (n, i, j); dweight[f, 0, p, q] = sum_{n,i,j} dy[n, f, i, j] * xpad[n, f // M, S*i + D*p, S*j + D*q];
              dx = the adjoint of forward in x: every tap's dy, scaled by its weight, added back
              onto the input cells that tap read (padding dropped).
    """

    @staticmethod
    def why_not(x_shape, weight_shape, stride, padding, dilation, groups):
        """None when this route can take the convolution, else why not."""
        if weight_shape[1] != 1 or groups != x_shape[1]:
            return "it needs groups == in_channels (one input channel per group)"
        return None

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        lowering = Lowering.of_conv2d(x.shape, weight.shape, stride, padding, dilation)
        kern, xp = kernels_for(x), array_module(x)
        x = xp.ascontiguousarray(x)
        C = x.shape[1]
        F, _, KH, KW = weight.shape
        w = weight.reshape(C, F // C, KH, KW)  # w[c, m] = weight[c*M + m, 0]
        y = kern.depthwise_conv2d(x, w, *lowering.stride, *lowering.top_left, *lowering.dilation,
                                  *lowering.out_size, bias=bias)  # (N, C*M, OH, OW), the bias added
        self.save(x=x if self.needs_input_grad[1] else None, weight=weight, x_shape=x.shape,
                  lowering=lowering)
        return y

    def backward(self, dy):
        s = self.saved
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        kern, xp = kernels_for(dy), array_module(dy)
        dy = xp.ascontiguousarray(dy)
        C = s.x_shape[1]
        F, _, KH, KW = s.weight.shape
        geometry = (*s.lowering.stride, *s.lowering.top_left, *s.lowering.dilation)  # SH, SW, PH, PW, DH, DW
        dx = kern.depthwise_conv2d_dx(dy, s.weight.reshape(C, F // C, KH, KW), s.x_shape, *geometry,
                                      out=allocator.empty(s.x_shape, dy.dtype, xp)) \
            if needs_x else None  # a cached buffer: fresh memory is slow to touch (allocator.py)
        dbias = xp.empty(F, dtype=dy.dtype) if needs_bias else None
        dweight = None
        if needs_weight:  # dbias summed by the same pass over dy
            dweight = kern.depthwise_conv2d_dweight(dy, s.x, KH, KW, *geometry, dbias=dbias).reshape(s.weight.shape)
        elif needs_bias:
            dbias = dy.sum(axis=(0, 2, 3))
        return dx, dweight, dbias, None, None, None, None
