r"""Synchronised batch normalisation: the batch statistics of EVERY rank's samples.

Batch norm (minidl/ops/norm.py) normalises each channel with the mean and variance of the
batch. Under data parallelism each rank holds only its shard, so plain batch norm would use the
shard's statistics; ``SyncBatchNorm`` uses those of the whole global batch, as one process on the
concatenated batch would. The math is batch norm's, with the sums over the batch taken over all
ranks: one all-gather in forward, one all-reduce in backward. The communicator (minidl/distributed/
communicator.py) is an argument, so this op imports nothing of ``minidl.distributed``.
"""
from ..autograd import Function
from ..backend import array_module
from ..backend.devices import to_host
from .norm import channel_shape, normalization_backward, normalize_channels, update_running_stats


class SyncBatchNorm(Function):
    r"""Batch norm in training with the statistics of every rank's samples.

    Shapes: x (N_r,C,*) this rank's shard    weight, bias (C,) or None    running_mean/var (C,) or None
            axes = every axis but 1           m_r = N_r * prod(*): this rank's values per channel
            R ranks, M = m_0 + ... + m_{R-1}: the values per channel of the global batch
    Forward:
        each rank: m_r, its own mean_r[c] and M2_r[c] = sum over axes of (x[:,c] - mean_r[c])^2
        all-gather the (3, C) arrays -> (R, 3, C), combined identically on every rank
        (the parallel-variance formula of Chan et al., stable where E[x^2] - E[x]^2 is not):
            mean = sum_r m_r mean_r / M
            M2   = sum_r (M2_r + m_r (mean_r - mean)^2)          var = M2 / M   (biased)
        y, x_hat, inv_std as batch norm (``normalize_channels``) with these mean and var;
        running_mean/var updated with mean and the unbiased M2 / (M - 1) (``update_running_stats``).
    Backward, dx_hat = dy * weight:
        dbias   = sum over axes of dy              (this rank's: DistributedDataParallel
        dweight = sum over axes of dy * x_hat       averages them like any parameter's gradient)
        dx      = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
    where the means run over the GLOBAL batch (``normalization_backward`` with given means).
    Each rank's dy is the gradient of its own loss L_r (a mean over its N_r samples), and
    DistributedDataParallel combines the ranks' gradients as sum_r N_r g_r / sum_r N_r, i.e. it
    trains L = sum_r (N_r / N) L_r. For that L the global sums must weigh rank s's dy by N_s,
    and rank r's dx is then expressed per unit of its own loss (divided by N_r):
        S1 = sum_s N_s sum_{axes} dy_s,    S2 = sum_s N_s sum_{axes} dy_s * x_hat_s   (all-reduce)
        mean(dx_hat) = weight * S1 / (N_r M),    mean(dx_hat * x_hat) = weight * S2 / (N_r M)
    With equal N_r this is PyTorch's SyncBatchNorm (S / M); see docs/gradients/batch_norm.md.
    """

    def forward(self, x, weight, bias, running_mean, running_var, momentum, eps, communicator):
        xp = array_module(x)
        C = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))  # every axis but C
        shape = channel_shape(x.ndim, C)
        m_r = x.size // C  # this rank's values per channel
        if m_r > 0:
            mean_r = x.mean(axis=axes)  # (C,)
            deviation = x - mean_r.reshape(shape)  # (N_r,C,*)
            m2_r = (deviation * deviation).sum(axis=axes)  # (C,)
        else:  # an empty shard contributes nothing
            mean_r = m2_r = xp.zeros(C, dtype=x.dtype)
        mine = xp.stack([xp.full(C, m_r, dtype=x.dtype), mean_r, m2_r])  # (3, C)
        everyone = communicator.all_gather(mine)  # (R, 3, C), rank order
        counts, means, m2s = everyone[:, 0], everyone[:, 1], everyone[:, 2]  # (R, C) each
        M = int(to_host(counts[:, 0]).sum())  # values per channel in the global batch
        if M <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel when training, "
                             f"got {M} over all ranks (input size {tuple(x.shape)} on this rank)")
        mean = (counts * means).sum(axis=0) / M  # (C,)
        var = (m2s + counts * (means - mean) ** 2).sum(axis=0) / M  # (C,) biased
        if running_mean is not None:
            update_running_stats(running_mean, running_var, mean, var, M, momentum)
        y, x_hat, inv_std = normalize_channels(x - mean.reshape(shape), var, weight, bias, eps, shape)
        self.save(x_hat=x_hat, inv_std=inv_std, weight=weight, axes=axes, shape=shape, M=M,
                  n_r=x.shape[0], communicator=communicator)
        return y

    def backward(self, dy):
        s = self.saved
        xp = array_module(dy)
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        sum_dy = dy.sum(axis=s.axes)  # (C,)
        sum_dy_x_hat = (dy * s.x_hat).sum(axis=s.axes)  # (C,)
        dx = None
        if needs_x:
            sums = xp.stack([sum_dy, sum_dy_x_hat]) * s.n_r  # (2, C): N_r * this rank's sums
            s.communicator.all_reduce(sums, "sum")  # (2, C): S1, S2 over every rank
            weight = 1 if s.weight is None else s.weight  # (C,) or 1
            dx_hat = dy * (weight if s.weight is None else weight.reshape(s.shape))  # (N_r,C,*)
            if dy.size == 0:  # an empty shard: nothing to give back
                dx = dx_hat
            else:
                means = tuple((weight * row / (s.n_r * s.M)).reshape(s.shape) for row in sums)  # 2 x (1,C,1,..)
                dx = normalization_backward(dx_hat, s.x_hat, s.inv_std.reshape(s.shape), s.axes, means)
        return (dx, sum_dy_x_hat if needs_weight else None, sum_dy if needs_bias else None,
                None, None, None, None, None)
