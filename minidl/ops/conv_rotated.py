r"""A stride-1 conv2d whose dx is a conv2d of dy with the kernel rotated by 180 degrees.

Forward is the textbook's (minidl/ops/conv.py, :class:`Conv2d`). Backward, with stride 1, the
index form of dx (docs/gradients/conv2d.md) is, for p' = KH-1-p, q' = KW-1-q,

    dx[n,c,h,w] = sum_{f,p',q'} weight[f,c,KH-1-p',KW-1-q'] * dypad[n, f, h + D*p', w + D*q']

with dy padded by D*(KH-1) - PT rows on top (D*(KW-1) - PL columns on the left): a conv2d of dy
whose weight is ``weight`` rotated 180 degrees, filters and channels swapped,
wrot[c,f,p',q'] = weight[f,c,KH-1-p',KW-1-q']. So col2im(Wm.T @ dY) equals

    dX[n]  = Wrot @ dcols[n]        (C, F*KH*KW) @ (F*KH*KW, H*W),   dcols = im2col(dy)

the same products as forward, with inner dimension F*KH*KW instead of F and no overlapping sums;
and the weight gradient, read off the same index form (x is 0 in the padding),

    dweight[f,c,KH-1-p',KW-1-q'] = sum_{n,h,w} x[n,c,h,w] * dypad[n, f, h + D*p', w + D*q']
    i.e. dWrot = sum_n X[n] @ dcols[n].T     (C, H*W) @ (H*W, F*KH*KW)

so one im2col of dy per block serves both. It applies with stride 1 and at most D*(K-1)
padding on the top and left (every 'same' convolution).
"""
from ..backend import allocator, array_module, kernels_for
from .conv import Conv2d, Lowering, _pixels, split_groups


def rotated_lowering(lowering):
    """The Lowering of dx as a stride-1 conv2d of dy, or None where that does not exist:
    stride > 1, or padding above D*(K-1) on top/left."""
    (KH, KW), (DH, DW), (PT, PL) = lowering.kernel, lowering.dilation, lowering.top_left
    top, left = DH * (KH - 1) - PT, DW * (KW - 1) - PL
    if lowering.stride != (1, 1) or top < 0 or left < 0:
        return None
    return Lowering(lowering.out_size, lowering.in_size, (KH, KW), (1, 1), (top, left), (DH, DW))


def rotated_weight(weight, G):
    """wrot (G, C/G, F/G, KH, KW): wrot[g][c, f, p', q'] = weight[g*F/G + f, c, KH-1-p', KW-1-q']."""
    F, Cg, KH, KW = weight.shape
    rotated = weight.reshape(G, F // G, Cg, KH, KW)[:, :, :, ::-1, ::-1]  # (G, F/G, C/G, KH, KW)
    return array_module(weight).ascontiguousarray(rotated.transpose(0, 2, 1, 3, 4))  # (G, C/G, F/G, KH, KW)


def unrotate(dweight_rot, weight_shape, G):
    """dweight from dWrot, (G, C/G, F/G*KH*KW) or (C, F/G, KH, KW) (the same values in the same
    order): dweight[g*F/G + f, c, p, q] = dWrot[g, c, (f, KH-1-p, KW-1-q)]."""
    F, Cg, KH, KW = weight_shape
    dweight_rot = dweight_rot.reshape(G, Cg, F // G, KH, KW)[:, :, :, ::-1, ::-1]
    dweight = dweight_rot.transpose(0, 2, 1, 3, 4)  # (G, F/G, C/G, KH, KW)
    return array_module(dweight_rot).ascontiguousarray(dweight).reshape(F, Cg, KH, KW)


class Conv2dRotatedKernel(Conv2d):
    """conv2d with the textbook forward and the rotated-kernel backward (module docstring)."""

    keeps_columns = False  # its dweight is X @ dcols(dy).T: no columns of x

    @staticmethod
    def why_not(x_shape, weight_shape, stride, padding, dilation, groups):
        """None when this route can take the convolution, else why not."""
        lowering = Lowering.of_conv2d(x_shape, weight_shape, stride, padding, dilation)
        if rotated_lowering(lowering) is None:
            return "its dx is a conv2d of dy only with stride 1 and padding at most D*(K-1)"
        return None

    def backward(self, dy):
        s = self.saved
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        if not needs_x:  # dweight alone: the textbook's, from the columns of x
            return Conv2d.backward(self, dy)
        xp = array_module(dy)
        dy = xp.ascontiguousarray(dy)
        dbias = dy.sum(axis=(0, 2, 3)) if needs_bias else None
        dx, dweight = self._dx_and_dweight(dy, rotated_lowering(s.lowering), needs_weight)
        return dx, dweight, dbias, None, None, None, None

    def _dx_and_dweight(self, dy, lowering, needs_weight):
        """dx by im2col of dy and the rotated kernel; dweight from the same columns of dy."""
        s = self.saved
        xp, kern, G = array_module(dy), kernels_for(dy), s.groups
        N, C, H, W = s.x_shape
        F, Cg, KH, KW = s.weight.shape
        weight_rot = rotated_weight(s.weight, G).reshape(G, Cg, -1)  # (G, C/G, F/G*KH*KW)
        dweight_rot = xp.zeros(weight_rot.shape, dtype=dy.dtype) if needs_weight else None
        x_g = split_groups(s.x, G) if needs_weight else None  # (N, G, C/G, H*W)
        dx = allocator.empty(s.x_shape, dy.dtype, xp)
        dx_g = split_groups(dx, G)  # (N, G, C/G, H*W), a view of dx
        for samples, rows in Conv2d._blocks(lowering, N, F, dy.itemsize, xp):  # over dx's pixels
            dcols = split_groups(lowering.im2col_rows(kern, dy[samples], rows), G)  # (n, G, F/G*KH*KW, p)
            # dX[n, g][:, block] = Wrot[g] @ dcols[n, g]: (G, C/G, F/G*KH*KW) @ (n, G, F/G*KH*KW, p)
            xp.matmul(weight_rot, dcols, out=_pixels(dx_g[samples], rows, H, W))
            if needs_weight:
                # dWrot[g] += sum_n X[n, g][:, block] @ dcols[n, g].T: (n, G, C/G, p) @ (n, G, p, F/G*KH*KW)
                x_block = _pixels(x_g[samples], rows, H, W)
                for i in range(x_block.shape[0]):  # sample by sample: no (n, G, C/G, F/G*KH*KW) temporary
                    dweight_rot += x_block[i] @ dcols[i].swapaxes(-1, -2)
        return dx, unrotate(dweight_rot, s.weight.shape, G) if needs_weight else None
