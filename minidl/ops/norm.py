r"""Batch normalisation: normalise every channel, then scale and shift it.

For an input x of shape (N, C, *) (``*`` = the spatial axes: none, L, or H, W)
each channel c is normalised with one mean and one variance taken over every
axis but C, i.e. over the m = N * prod(*) values x[:, c, ...]:

    mean[c]  = (1/m) sum_{n,h,w} x[n,c,h,w]
    var[c]   = (1/m) sum_{n,h,w} (x[n,c,h,w] - mean[c])^2        (biased: divide by m)
    x_hat    = (x - mean[c]) / sqrt(var[c] + eps)
    y        = weight[c] * x_hat + bias[c]

In training the statistics are those of the batch, so every x_hat depends on
every x of its channel; that is what makes the gradient interesting (see
:class:`BatchNorm`). In evaluation they are fixed running averages and the op
is a plain per-channel affine map. The full derivation is in
docs/gradients/batch_norm.md.
"""
from ..autograd import Function
from ..backend import array_module, kernels_for


def channel_shape(ndim, C):
    """``(1, C, 1, 1)`` for a 4-D input: a per-channel vector (C,) that broadcasts against x."""
    return (1, C) + (1,) * (ndim - 2)


def normalization_backward(dx_hat, x_hat, inv_std, axes, means=None):
    r"""dx for x_hat = (x - mean) * inv_std with mean and (biased) var taken over ``axes``.

    The one backward shared by batch norm (training), ``SyncBatchNorm`` and ``Normalize``
    (layer, group, instance norm); means over ``axes``, one per group
    (docs/gradients/batch_norm.md):
        dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
    Shapes: dx_hat, x_hat like x; inv_std broadcasts against x (1 on ``axes``); dx like x.
    ``means``: the pair (mean(dx_hat), mean(dx_hat * x_hat)), shaped like inv_std, when the
    statistics cover more values than this array holds (SyncBatchNorm: every rank's samples).
    """
    if means is None:
        means = (dx_hat.mean(axis=axes, keepdims=True), (dx_hat * x_hat).mean(axis=axes, keepdims=True))
    mean_dx_hat, mean_dx_hat_x_hat = means
    return inv_std * (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat)


def normalize_channels(centred, var, weight, bias, eps, shape):
    """y = weight * x_hat + bias with x_hat = centred / sqrt(var + eps), per channel.

    Shapes: centred (N,C,*) = x - mean; var, weight, bias (C,) (weight/bias may be None);
    shape = channel_shape(...). Returns y (N,C,*), x_hat (N,C,*), inv_std (C,)."""
    inv_std = 1 / array_module(centred).sqrt(var + eps)  # (C,)
    x_hat = centred * inv_std.reshape(shape)  # (N,C,*)
    y = x_hat if weight is None else x_hat * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y, x_hat, inv_std


def update_running_stats(running_mean, running_var, mean, var, m, momentum):
    """The running averages, in place: the mean's, and the UNBIASED variance's (var * m/(m-1))."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (m / (m - 1))


def _fused_kernels(x, *params):
    """The kernel module of ``x`` if it fuses batch norm's passes (``batch_norm_train`` and
    ``batch_norm_backward``: the Numba backend) and every array shares x's float dtype; else None:
    the array code below runs (the reference, the strict device, CuPy)."""
    kern = kernels_for(x)
    if not hasattr(kern, "batch_norm_train") or x.dtype.kind != "f" or x.dtype.itemsize < 4:
        return None
    return kern if all(p is None or p.dtype == x.dtype for p in params) else None


class BatchNorm(Function):
    r"""y = weight * (x - mean) / sqrt(var + eps) + bias, one mean and var per channel.

    Shapes: x (N,C,*)  weight (C,) or None (= 1)  bias (C,) or None (= 0)
            running_mean, running_var (C,) arrays or None   y (N,C,*)
            axes = every axis but 1 (N and the spatial axes)   m = N * prod(*)
    Forward (training):
        mean[c] = mean over axes of x[:,c]        var[c] = mean over axes of (x[:,c] - mean[c])^2
        x_hat   = (x - mean) * inv_std            inv_std[c] = 1 / sqrt(var[c] + eps)
        y       = weight * x_hat + bias
        running_mean = (1 - momentum) * running_mean + momentum * mean             (in place,
        running_var  = (1 - momentum) * running_var  + momentum * var * m/(m-1)     not in the graph:
                                                  the running variance is the UNBIASED one)
    Forward (evaluation): the same with mean, var = running_mean, running_var.
    Backward, with dx_hat = dy * weight and means over axes (per channel):
        dbias   = sum over axes of dy
        dweight = sum over axes of dy * x_hat
        dx (evaluation) = dx_hat * inv_std                          (mean, var are constants)
        dx (training)   = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
    The two subtracted terms are the gradient that flows through mean and var:
    moving every x of a channel by the same amount changes nothing (x_hat is
    shift invariant), so dx has zero mean; scaling them all changes nothing
    either (x_hat is scale invariant), so dx is orthogonal to x_hat.
    """

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps):
        xp = array_module(x)
        C = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))  # every axis but C
        shape = channel_shape(x.ndim, C)
        fused = _fused_kernels(x, weight, bias) if training and x.size > 0 else None
        if fused is not None:  # the same formulas in three passes (minidl/backend/numba_cpu.py)
            y, x_hat, mean, var, inv_std = fused.batch_norm_train(x, weight, bias, eps)
            if running_mean is not None:
                update_running_stats(running_mean, running_var, mean, var, x.size // C, momentum)
            self.save(x_hat=x_hat, inv_std=inv_std, weight=weight, training=training, axes=axes, shape=shape)
            return y
        if training:
            m = x.size // C  # values per channel (> 1, or 0 for an empty batch: checked by the caller)
            if m == 0:  # an empty batch: no statistics, nothing to update (PyTorch's behaviour)
                mean = var = xp.zeros(C, dtype=x.dtype)
            else:
                mean = x.mean(axis=axes)  # (C,)
            centred = x - mean.reshape(shape)  # (N,C,*)
            if m > 0:
                var = (centred * centred).mean(axis=axes)  # (C,) biased
            if running_mean is not None and m > 0:
                update_running_stats(running_mean, running_var, mean, var, m, momentum)
        else:
            var = running_var
            centred = x - running_mean.reshape(shape)
        y, x_hat, inv_std = normalize_channels(centred, var, weight, bias, eps, shape)
        self.save(x_hat=x_hat, inv_std=inv_std, weight=weight, training=training, axes=axes, shape=shape)
        return y

    def backward(self, dy):
        s = self.saved
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        fused = _fused_kernels(dy, s.weight) if s.training and dy.size > 0 else None
        if fused is not None:  # the same formulas in two passes (minidl/backend/numba_cpu.py)
            dx, dweight, dbias = fused.batch_norm_backward(dy, s.x_hat, s.weight, s.inv_std, needs_x)
            return dx, (dweight if needs_weight else None), (dbias if needs_bias else None), \
                None, None, None, None, None
        dbias = dy.sum(axis=s.axes) if needs_bias else None  # (C,)
        dweight = (dy * s.x_hat).sum(axis=s.axes) if needs_weight else None  # (C,)
        dx = None
        if needs_x:
            dx_hat = dy if s.weight is None else dy * s.weight.reshape(s.shape)  # (N,C,*)
            if s.training and dx_hat.size > 0:  # (an empty batch has nothing to centre)
                dx = normalization_backward(dx_hat, s.x_hat, s.inv_std.reshape(s.shape), s.axes)
            else:  # mean and var are constants
                dx = dx_hat * s.inv_std.reshape(s.shape)
        return dx, dweight, dbias, None, None, None, None, None


class Normalize(Function):
    r"""x_hat = (x - mean) / sqrt(var + eps), mean and (biased) var taken over ``axes``.

    The one normalisation behind LayerNorm, GroupNorm and InstanceNorm; they differ only in
    which axes one group of statistics covers (docs/gradients/layer_norm.md):
        layer_norm     the last len(normalized_shape) axes        one group per leading index
        group_norm     x reshaped (N, G, C/G * prod(*)), axis 2   one group per (n, g)
        instance_norm  the spatial axes 2, 3, ...                 one group per (n, c)
    Their weight and bias are applied afterwards by ordinary (broadcasting) multiply and add.

    Shapes: x any   axes a tuple of axes   x_hat like x   mean, var, inv_std: x's shape with
            1 on ``axes`` (keepdims)       m = number of values in one group
    Forward:
        mean    = (1/m) sum_axes x            var = (1/m) sum_axes (x - mean)^2
        inv_std = 1 / sqrt(var + eps)         x_hat = (x - mean) * inv_std
    Backward (``normalization_backward``, shared with batch norm; means over ``axes``, per group):
        dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
    The subtracted terms are the gradient through mean and var: shifting a whole group changes
    no x_hat (so dx sums to 0 over each group), and with eps = 0 neither does scaling it (so dx
    is then orthogonal to x_hat over each group).
    """

    def forward(self, x, axes, eps):
        xp = array_module(x)
        mean = x.mean(axis=axes, keepdims=True)  # (.., 1 on axes, ..)
        centred = x - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)  # biased
        inv_std = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        x_hat = centred * inv_std  # like x
        self.save(x_hat=x_hat, inv_std=inv_std, axes=axes)
        return x_hat

    def backward(self, dy):
        s = self.saved
        if dy.size == 0:  # no groups, nothing to centre
            return dy * s.inv_std, None, None
        return normalization_backward(dy, s.x_hat, s.inv_std, s.axes), None, None
