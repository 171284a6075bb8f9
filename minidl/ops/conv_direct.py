r"""A stride-1 3x3 conv2d computed pixel by pixel: no columns, no matrix product.

im2col (minidl/ops/conv.py) and shifted rows (conv_shifted.py) turn a convolution into matrix
products. With few channels those products are thin (16 channels: inner dimension 9*16 = 144,
16 output rows) and run far below the machine's matrix-product peak, after copying the input
KH*KW (or KH) times. This route sums the taps directly, as the index form says:

    y[n, f, i, j] = bias[f] + sum_{c, p, q} weight[f, c, p, q] * xpad[n, c, i + D*p, j + D*q]

(groups: c runs over filter f's group). The backend kernel ``direct_conv2d`` does the loops
(minidl/backend/numba_cpu.py: a band of the padded input per thread, each pair of filters one
vectorised loop over the band's pixels; reference.py: one product over the channels per tap).

Gradients, with dy (N, F, OH, OW) (docs/gradients/conv2d.md gives the index forms):

    dbias[f]            = sum_{n, i, j} dy[n, f, i, j]
    dweight[f, c, p, q] = sum_{n, i, j} dy[n, f, i, j] * xpad[n, c, i + D*p, j + D*q]   (``direct_conv2d_dweight``)
    dx                  = the stride-1 conv2d of dy with the kernel rotated by 180 degrees, filters
                          and channels swapped, dy padded by D*(K-1) - P on top and left
                          (minidl/ops/conv_rotated.py): the same ``direct_conv2d`` kernel

so forward and dx are one kernel and dweight the other. It takes stride-1 convolutions with
3x3 kernels (the Numba kernel is written for nine taps), any dilation and groups, and padding at
most D*(K-1) on top and left (every 'same' convolution), which dx as a conv2d of dy needs.
Why it pays, and where: docs/performance.md.
"""
from ..autograd import Function
from ..backend import allocator, array_module, kernels_for
from .conv import Lowering
from .conv_rotated import rotated_lowering, rotated_weight


class Conv2dDirect(Function):
    r"""conv2d by the direct 3x3 kernels (module docstring).

    Shapes: x (N, C, H, W)   weight (F, C/G, 3, 3)   bias (F,) or None   y (N, F, OH, OW)
    Forward: y[n, f, i, j] = bias[f] + sum_{c,p,q} weight[f, c, p, q] * xpad[n, c, i + D*p, j + D*q]
    Backward: dbias = dy summed over (n, i, j);
              dweight[f, c, p, q] = sum_{n,i,j} dy[n, f, i, j] * xpad[n, c, i + D*p, j + D*q];
              dx = conv2d(dy, wrot) with wrot[c, f, p, q] = weight[f, c, 2-p, 2-q] (per group), stride 1,
              padding D*2 - P on top and left: the adjoint of forward in x.
    """

    @staticmethod
    def why_not(x_shape, weight_shape, stride, padding, dilation, groups):
        """None when this route can take the convolution, else why not."""
        lowering = Lowering.of_conv2d(x_shape, weight_shape, stride, padding, dilation)
        if lowering.kernel != (3, 3):
            return "it needs a 3x3 kernel"
        if lowering.stride != (1, 1):
            return "it needs stride 1"
        if rotated_lowering(lowering) is None:
            return "its dx needs padding at most D*(K-1)"
        return None

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        lowering = Lowering.of_conv2d(x.shape, weight.shape, stride, padding, dilation)
        kern, xp = kernels_for(x), array_module(x)
        x = xp.ascontiguousarray(x)
        y = kern.direct_conv2d(x, weight, *lowering.top_left, *lowering.dilation, groups,
                               *lowering.out_size)  # (N, F, OH, OW)
        if bias is not None:
            y += bias.reshape(-1, 1, 1)
        self.save(x=x if self.needs_input_grad[1] else None, weight=weight, x_shape=x.shape,
                  lowering=lowering, groups=groups)
        return y

    def backward(self, dy):
        s = self.saved
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        kern, xp, G = kernels_for(dy), array_module(dy), s.groups
        dy = xp.ascontiguousarray(dy)
        C = s.x_shape[1]
        F, Cg, KH, KW = s.weight.shape
        dbias = dy.sum(axis=(0, 2, 3)) if needs_bias else None
        dx = None
        if needs_x:
            rotated = rotated_lowering(s.lowering)  # dx's geometry as a conv2d of dy
            weight_rot = rotated_weight(s.weight, G).reshape(C, F // G, KH, KW)  # (C, F/G, KH, KW)
            dx = kern.direct_conv2d(dy, weight_rot, *rotated.top_left, *rotated.dilation, G, *rotated.out_size,
                                    out=allocator.empty(s.x_shape, dy.dtype, xp))  # cached: fresh memory is slow
        dweight = kern.direct_conv2d_dweight(dy, s.x, KH, KW, *s.lowering.top_left, *s.lowering.dilation, G) \
            if needs_weight else None
        return dx, dweight, dbias, None, None, None, None
