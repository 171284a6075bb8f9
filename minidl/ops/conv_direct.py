r"""A conv2d computed pixel by pixel: no columns, no matrix product.

im2col (minidl/ops/conv.py) and shifted rows (conv_shifted.py) turn a convolution into matrix
products. With few channels those products are thin (16 channels: inner dimension 9*16 = 144,
16 output rows) and run far below the machine's matrix-product peak, after copying the input
KH*KW (or KH) times. This route sums the taps directly, as the index form says:

    y[n, f, i, j] = bias[f] + sum_{c, p, q} weight[f, c, p, q] * xpad[n, c, S*i + D*p, S*j + D*q]

(groups: c runs over filter f's group). The backend kernel ``direct_conv2d`` does the loops
(minidl/backend/numba_cpu.py: a band of the padded input per thread, each block of filters one
vectorised loop over the band's pixels, a strided input split into S*S phase planes so that
every tap is a unit-stride shift; reference.py: one product over the channels per tap).

Gradients, with dy (N, F, OH, OW) (docs/gradients/conv2d.md gives the index forms):

    dbias[f]            = sum_{n, i, j} dy[n, f, i, j]
    dweight[f, c, p, q] = sum_{n, i, j} dy[n, f, i, j] * xpad[n, c, S*i + D*p, S*j + D*q]   (``direct_conv2d_dweight``)
    dx, stride 1        = the stride-1 conv2d of dy with the kernel rotated by 180 degrees, filters
                          and channels swapped, dy padded by D*(K-1) - P on top and left
                          (minidl/ops/conv_rotated.py): the same ``direct_conv2d`` kernel
    dx, stride S > 1    = phase by phase: the pixels dx[S*u + a, S*v + b] are the stride-1 conv2d
                          of dy with the taps that reach them, weight[:, :, pa::S, pb::S] rotated
                          (_dx_phases derives which), S*S calls of the same kernel

so forward and dx are one kernel and dweight the other. It takes 3x3 kernels at stride 1 (any
dilation, padding at most D*(K-1) on top and left: every 'same' convolution, which dx as a conv2d
of dy needs) and any kernel at stride > 1 with dilation 1 (a ResNet's 7x7 stem, a U-Net's strided
3x3 downsampling), any groups. Why it pays, and where: docs/performance.md.
"""
from ..autograd import Function
from ..backend import allocator, array_module, kernels_for
from .conv import Lowering
from .conv_rotated import rotated_lowering, rotated_weight


class Conv2dDirect(Function):
    r"""conv2d by the direct kernels (module docstring).

    Shapes: x (N, C, H, W)   weight (F, C/G, KH, KW)   bias (F,) or None   y (N, F, OH, OW)
    Forward: y[n, f, i, j] = bias[f] + sum_{c,p,q} weight[f, c, p, q] * xpad[n, c, S*i + D*p, S*j + D*q]
    Backward: dbias = dy summed over (n, i, j);
              dweight[f, c, p, q] = sum_{n,i,j} dy[n, f, i, j] * xpad[n, c, S*i + D*p, S*j + D*q];
              dx, stride 1 = conv2d(dy, wrot) with wrot[c, f, p, q] = weight[f, c, 2-p, 2-q] (per group),
              padding D*2 - P on top and left; stride S > 1 = the same per phase of dx (_dx_phases):
              the adjoint of forward in x.
    """

    @staticmethod
    def why_not(x_shape, weight_shape, stride, padding, dilation, groups):
        """None when this route can take the convolution, else why not."""
        lowering = Lowering.of_conv2d(x_shape, weight_shape, stride, padding, dilation)
        if lowering.stride == (1, 1):
            if lowering.kernel != (3, 3):
                return "at stride 1 it needs a 3x3 kernel"
            if rotated_lowering(lowering) is None:
                return "its dx needs padding at most D*(K-1)"
            return None
        if lowering.dilation != (1, 1):
            return "at stride > 1 it needs dilation 1"
        return None

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        lowering = Lowering.of_conv2d(x.shape, weight.shape, stride, padding, dilation)
        kern, xp = kernels_for(x), array_module(x)
        x = xp.ascontiguousarray(x)
        y = kern.direct_conv2d(x, weight, *lowering.top_left, *lowering.dilation, groups,
                               *lowering.out_size, stride=lowering.stride)  # (N, F, OH, OW)
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
        if needs_x and s.lowering.stride == (1, 1):
            rotated = rotated_lowering(s.lowering)  # dx's geometry as a conv2d of dy
            weight_rot = rotated_weight(s.weight, G).reshape(C, F // G, KH, KW)  # (C, F/G, KH, KW)
            dx = kern.direct_conv2d(dy, weight_rot, *rotated.top_left, *rotated.dilation, G, *rotated.out_size,
                                    out=allocator.empty(s.x_shape, dy.dtype, xp))  # cached: fresh memory is slow
        elif needs_x:
            dx = allocator.empty(s.x_shape, dy.dtype, xp)
            SH, SW = s.lowering.stride
            for (a, b), (pa, pb), (Ma, Mb), (top, left) in _dx_phases(s.lowering):
                phase = dx[:, :, a::SH, b::SW]  # (N, C, Ua, Vb), a view
                if min(Ma, Mb, *phase.shape[2:]) == 0:
                    phase[...] = 0  # no tap reaches these pixels (a kernel smaller than the stride)
                    continue
                sub = s.weight[:, :, pa::SH, pb::SW]  # (F, C/G, Ma, Mb): the taps that reach them
                weight_rot = rotated_weight(sub, G).reshape(C, F // G, Ma, Mb)  # (C, F/G, Ma, Mb)
                cropped = dy[:, :, max(0, -top):, max(0, -left):]  # padding below 0: rows of dy dropped
                phase[...] = kern.direct_conv2d(cropped, weight_rot, max(0, top), max(0, left), 1, 1, G,
                                                *phase.shape[2:])
        dweight = kern.direct_conv2d_dweight(dy, s.x, KH, KW, *s.lowering.top_left, *s.lowering.dilation, G,
                                             stride=s.lowering.stride) if needs_weight else None
        return dx, dweight, dbias, None, None, None, None


def _dx_phases(lowering):
    """dx of a strided convolution phase by phase: [((a, b), (pa, pb), (Ma, Mb), (top, left))] for the
    pixels dx[SH*u + a, SW*v + b]. Padded row h + PT = SH*u + a + PT is read by the Ma taps
    p = pa + SH*m (pa = (a + PT) % SH) of the windows i = u + (a + PT) // SH - m, so that phase of
    dx is the stride-1 conv2d of dy with weight[:, :, pa::SH, pb::SW] rotated (filters and channels
    swapped), dy padded by top = Ma - 1 - (a + PT) // SH rows; columns likewise."""
    (SH, SW), (PT, PL), (KH, KW) = lowering.stride, lowering.top_left, lowering.kernel
    phases = []
    for a in range(SH):
        for b in range(SW):
            pa, pb = (a + PT) % SH, (b + PL) % SW
            Ma, Mb = len(range(pa, KH, SH)), len(range(pb, KW, SW))
            phases.append(((a, b), (pa, pb), (Ma, Mb), (Ma - 1 - (a + PT) // SH, Mb - 1 - (b + PL) // SW)))
    return phases
