"""``BatchNorm1d`` and ``BatchNorm2d``: batch normalisation layers with running statistics."""

import warnings

from .. import dtypes
from ..creation import empty, ones, zeros
from ..autograd import no_grad
from ..functional._checks import check_tensor as _check_tensor
from ..functional.norm import batch_norm, group_norm, instance_norm, layer_norm
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "InstanceNorm2d", "LayerNorm", "SyncBatchNorm"]


class _BatchNorm(Module):
    r"""Shared code of the BatchNorm layers (PyTorch's ``_NormBase`` + ``_BatchNorm``).

    State, with the same names (and so the same ``state_dict`` keys) as PyTorch:
        weight, bias            Parameters (C,), initialised to 1 and 0 (``affine=True``;
                                ``bias=False`` keeps the weight only)
        running_mean            buffer (C,), starts at 0
        running_var             buffer (C,), starts at 1
        num_batches_tracked     buffer, int64 scalar: training batches seen so far
    (the three buffers exist only with ``track_running_stats=True``, else they are None).

    Forward:
        training, tracking      normalise with the batch statistics and update the running
                                ones with factor ``momentum``, or with 1/num_batches_tracked
                                when ``momentum=None`` (a cumulative moving average: after
                                k batches the running mean is the plain mean of the k batch means)
        training, not tracking  batch statistics, nothing stored
        eval                    running statistics (batch ones if there are none)
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        dtype = dtypes.default_float if dtype is None else dtypes.as_dtype(dtype)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(empty((num_features,), dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(empty((num_features,), dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", zeros((), dtype=dtypes.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        """running_mean = 0, running_var = 1, num_batches_tracked = 0 (in place)."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self):
        """Reset the running statistics, weight = 1 and bias = 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input):
        raise NotImplementedError

    def forward(self, input):
        _check_tensor(type(self).__name__, "input", input)
        self._check_input_dim(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        batches = None  # the new num_batches_tracked, stored once the forward has succeeded
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            batches = int(self.num_batches_tracked.item()) + 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / batches
        # Batch statistics in training, and in eval when there are no running ones.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        # Running statistics are passed only when they are to be updated or used.
        pass_running = not self.training or self.track_running_stats
        y = self._normalize(input, self.running_mean if pass_running else None,
                            self.running_var if pass_running else None, use_batch_stats, momentum)
        if batches is not None:  # in place, as fill_ would, without an in-place op per layer and step
            counter = self.num_batches_tracked
            counter._data[...] = batches
            counter._version_counter.bump()
        return y

    def _normalize(self, input, running_mean, running_var, use_batch_stats, momentum):
        """F.batch_norm with this layer's weight, bias and eps (SyncBatchNorm replaces it)."""
        return batch_norm(input, running_mean, running_var, self.weight, self.bias, use_batch_stats,
                          momentum, self.eps)

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    r"""Batch normalisation over a 2-D input (N, C) or a 3-D input (N, C, L).

    Statistics per channel over N (and L). See :class:`_BatchNorm` for the state and
    ``minidl.ops.norm.BatchNorm`` for the math and its gradient.
    """

    def _check_input_dim(self, input):
        if input.ndim not in (2, 3):
            raise ValueError(f"BatchNorm1d: expected 2D or 3D input (got {input.ndim}D input "
                             f"of shape {tuple(input.shape)})")


class BatchNorm2d(_BatchNorm):
    r"""Batch normalisation over a 4-D input (N, C, H, W).

    Statistics per channel over N, H and W. See :class:`_BatchNorm` for the state and
    ``minidl.ops.norm.BatchNorm`` for the math and its gradient.
    """

    def _check_input_dim(self, input):
        if input.ndim != 4:
            raise ValueError(f"BatchNorm2d: expected 4D input (got {input.ndim}D input "
                             f"of shape {tuple(input.shape)})")


class SyncBatchNorm(_BatchNorm):
    r"""Batch normalisation whose training statistics are those of EVERY rank's samples.

    Under ``mpiexec -n R`` with ``DistributedDataParallel``, each rank's input (N_r, C, *) is its
    shard of the global batch; in training the per-channel mean and variance are those of the
    whole global batch (one all-gather in forward, one all-reduce in backward:
    ``minidl.ops.sync_batch_norm.SyncBatchNorm``), so the result equals one process's
    ``BatchNorm`` on the concatenated batch. In evaluation, in a job of one process, or before
    ``init_process_group``: plain batch norm. Inputs of any rank >= 2 (N, C, *).
    ``convert_sync_batchnorm(module)`` replaces every BatchNorm*d of a model by one of these.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.ndim < 2:
            raise ValueError(f"SyncBatchNorm: expected at least 2D input (got {input.ndim}D input)")

    def _normalize(self, input, running_mean, running_var, use_batch_stats, momentum):
        from .. import distributed as dist  # (minidl.distributed imports minidl.tensor)
        from ..ops.sync_batch_norm import SyncBatchNorm as SyncBatchNormOp

        if not (use_batch_stats and dist.is_initialized() and dist.get_world_size() > 1):
            return super()._normalize(input, running_mean, running_var, use_batch_stats, momentum)
        for name, value in (("weight", self.weight), ("bias", self.bias),
                            ("running_mean", running_mean), ("running_var", running_var)):
            if value is not None and tuple(value.shape) != (input.shape[1],):
                raise ValueError(f"SyncBatchNorm: {name} has shape {tuple(value.shape)} but input has "
                                 f"{input.shape[1]} channels (input shape {tuple(input.shape)})")
        y = SyncBatchNormOp.apply(input, self.weight, self.bias, running_mean, running_var, momentum,
                                  self.eps, dist.communicator())
        if running_mean is not None:  # changed in place: new versions
            running_mean._version_counter.bump()
            running_var._version_counter.bump()
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm1d/2d in its tree replaced by a SyncBatchNorm that takes
        over its parameters and buffers (the same tensors) and its training mode; returns the new
        root (the module itself unless it is a batch norm)."""
        converted = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            converted.register_parameter("weight", module.weight)
            converted.register_parameter("bias", module.bias)
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                converted.register_buffer(name, getattr(module, name))
            converted.training = module.training
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted


# ----------------------------------------------------------------------------- layer, group, instance norm

def _affine_parameters(module, shape, affine, bias, dtype, device):
    """The learnable scale ``weight`` and shift ``bias`` of a normalisation layer, of ``shape``
    (None when ``affine`` is off; ``bias`` alone None when ``bias`` is off)."""
    dtype = dtypes.default_float if dtype is None else dtypes.as_dtype(dtype)
    weight = Parameter(empty(shape, dtype=dtype, device=device)) if affine else None
    module.register_parameter("weight", weight)
    module.register_parameter("bias", Parameter(empty(shape, dtype=dtype, device=device)) if affine and bias else None)


def _reset_affine(module):
    """weight = 1, bias = 0: the layer starts as the plain normalisation."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)

class LayerNorm(Module):
    r"""Normalise over the last ``len(normalized_shape)`` dimensions (an int means one), one mean
    and variance per leading index, then ``weight * x_hat + bias``.

    Parameters (``elementwise_affine=True``): weight (ones) and bias (zeros, absent with
    ``bias=False``), both of shape ``normalized_shape``. See ``F.layer_norm``.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _affine_parameters(self, self.normalized_shape, elementwise_affine, bias, dtype, device)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, input):
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    r"""Normalise each (sample, group of ``num_channels / num_groups`` consecutive channels) over
    its channels and spatial positions, then ``weight * x_hat + bias`` per channel.

    Parameters (``affine=True``): weight (ones) and bias (zeros, absent with ``bias=False``),
    both (num_channels,). See ``F.group_norm``.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _affine_parameters(self, (num_channels,), affine, bias, dtype, device)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, input):
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class InstanceNorm2d(_BatchNorm):
    r"""Normalise every (sample, channel) of a 4-D input (N, C, H, W), or a 3-D unbatched one
    (C, H, W), over its H x W positions.

    The same state as the BatchNorm layers (``_BatchNorm``), with other defaults: no affine
    parameters and no running statistics unless ``affine=True`` / ``track_running_stats=True``.
    With running statistics, training updates them (``F.instance_norm``) and evaluation
    normalises with them; ``num_batches_tracked`` is not counted (as in PyTorch).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 device=None, dtype=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def _check_input_dim(self, input):
        if input.ndim not in (3, 4):
            raise ValueError(f"InstanceNorm2d: expected 3D or 4D input (got {input.ndim}D input "
                             f"of shape {tuple(input.shape)})")

    def forward(self, input):
        _check_tensor(type(self).__name__, "input", input)
        self._check_input_dim(input)
        feature_dim = input.ndim - 3  # 0 for unbatched (C, H, W), else 1
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"InstanceNorm2d: expected input's size at dim={feature_dim} to match "
                                 f"num_features ({self.num_features}), but got: {input.shape[feature_dim]}.")
            warnings.warn(f"InstanceNorm2d: input's size at dim={feature_dim} does not match num_features. "
                          "You can silence this warning by not passing in num_features, which is not used "
                          "because affine=False", stacklevel=2)
        unbatched = input.ndim == 3
        x = input.unsqueeze(0) if unbatched else input  # (N, C, H, W)
        y = instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          self.training or not self.track_running_stats,
                          self.momentum if self.momentum is not None else 0.0, self.eps)
        return y.squeeze(0) if unbatched else y
