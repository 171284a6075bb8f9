r"""``DistributedDataParallel``: one replica of a model per process, gradients averaged over ranks.

Every rank (process started by ``mpiexec -n R``) holds the same parameters (rank 0's, broadcast
when the wrapper is made), runs forward and backward on its own shard of the global batch, and
after ``loss.backward()`` every rank's ``.grad`` holds the gradient of the loss on the WHOLE
global batch. The optimizer steps are then the same everywhere and the replicas stay identical.

The average is weighted by each rank's sample count. Rank r saw n_r samples; its loss is the
mean over them, so its gradient is g_r = (1/n_r) sum_{i on r} grad l_i. The gradient of the mean
loss over all N = n_0 + ... + n_{R-1} samples is

    g = (1/N) sum_i grad l_i = (sum_r n_r g_r) / (sum_r n_r)                           (1)

With equal n_r this is PyTorch's plain average (1/R) sum_r g_r (the same up to rounding); with
uneven shards (7 samples over 2 ranks: 4 + 3) only (1) is the one-process gradient.

Buckets. Gradients are not sent one parameter at a time: they are copied into a few large flat
buffers ("buckets", about ``bucket_cap_mb`` each) and each bucket is all-reduced in one call.
n_r and a per-parameter "used" flag ride along in the same buffer, so ONE all-reduce (a sum)
per bucket gives the numerator and the denominator of (1):

    on rank r:   [ n_r * g_r(p) for p in the bucket, flattened |  n_r  | used_r(p) for each p ]
    summed:      [ sum_r n_r g_r(p)                            |   N   | ranks that used p    ]
    p.grad     = (sum_r n_r g_r(p)) / N          (left alone if no rank used p)

The parameters are assigned to buckets once, in a FIXED order: in registration order, the first
bucket capped at 1 MiB and the others at ``bucket_cap_mb``, then the list of buckets reversed, so
that bucket 0 holds the last layers, whose gradients backward produces first (PyTorch's rule).
Every rank reduces the buckets in that order, once all the gradients of a bucket are ready.

When is a gradient ready? Each parameter has a ``register_post_accumulate_grad_hook``: backward
calls it once the parameter's ``.grad`` holds this pass's gradient. The first hook of a pass also
queues a callback for the end of the backward pass (``Variable._execution_engine.queue_callback``),
which deals with the parameters that got no gradient (not used in this forward).
"""

import contextlib

from ... import distributed as dist
from ...autograd import execution_engine, is_grad_enabled, no_grad
from ...backend import array_module
from ...backend.devices import to_host
from ...tensor import Tensor
from ..module import Module

FIRST_BUCKET_BYTES = 1024 * 1024  # PyTorch's dist._DEFAULT_FIRST_BUCKET_BYTES
DEFAULT_BUCKET_CAP_MB = 25


def assign_buckets(sizes_bytes, dtypes, limits_bytes):
    """Group parameters into buckets: a list of lists of parameter indices.

    ``sizes_bytes[i]``/``dtypes[i]``: parameter i's gradient size and dtype (registration order).
    Parameters of one dtype fill one open bucket in order; a bucket closes as soon as it holds at
    least the current limit (so a parameter larger than the limit gets a bucket of its own); the
    first bucket of each dtype uses ``limits_bytes[0]``, the next ``limits_bytes[1]``, and so on
    (the last limit repeats). The buckets come back sorted by their first index, then REVERSED:
    the last-registered parameters first, as their gradients arrive first in backward."""
    buckets, open_buckets = [], {}  # dtype -> [indices, bytes, which limit]
    for i, (size, dtype) in enumerate(zip(sizes_bytes, dtypes)):
        bucket = open_buckets.setdefault(dtype, [[], 0, 0])
        bucket[0].append(i)
        bucket[1] += size
        if bucket[1] >= limits_bytes[min(bucket[2], len(limits_bytes) - 1)]:
            buckets.append(bucket[0])
            open_buckets[dtype] = [[], 0, bucket[2] + 1]
    buckets += [bucket[0] for bucket in open_buckets.values() if bucket[0]]
    buckets.sort(key=lambda indices: indices[0])
    return buckets[::-1]


class _Bucket:
    """One flat buffer's worth of parameters: where each one's gradient lies in it.

    Layout (one dtype, 1-D of ``numel + 1 + len(params)`` values):
        [0, numel)              the gradients, parameter j at offsets[j] : offsets[j] + params[j].numel()
        numel                   the sample count n
        numel + 1 + j           1 if this rank used parameter j in this pass, else 0
    """

    def __init__(self, indices, params):
        self.indices = indices  # positions in the DDP's parameter list
        self.params = [params[i] for i in indices]
        self.offsets, numel = [], 0
        for p in self.params:
            self.offsets.append(numel)
            numel += p.numel()
        self.numel = numel


def _first_tensor(value):
    """The first Tensor in ``value`` (a Tensor, or nested lists/tuples/dicts), or None."""
    if isinstance(value, Tensor):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


class DistributedDataParallel(Module):
    r"""Data-parallel training of ``module`` over the ranks of ``minidl.distributed``.

    Use it as PyTorch's::

        dist.init_process_group()
        model = DistributedDataParallel(model)        # rank 0's parameters and buffers everywhere
        loss = loss_fn(model(x_shard), y_shard)       # this rank's shard of the global batch
        loss.backward()                               # .grad = the global batch's gradient (1)
        optimizer.step()

    ``module`` is kept as ``self.module`` (so ``state_dict`` keys start with ``"module."``).
    ``broadcast_buffers``: rank 0's buffers (BatchNorm's running statistics) are copied to every
    rank at the start of each forward. ``bucket_cap_mb``: bucket size (None: 25 MB).
    ``find_unused_parameters``: a parameter that gets no gradient in a backward pass counts as a
    zero gradient on this rank (its ``.grad`` is left alone if no rank used it); when False, such
    a parameter leaves the reduction unfinished and the next forward raises PyTorch's error.
    ``no_sync()``: a context for gradient accumulation; forwards inside it prepare no reduction
    (their gradients just add up in ``.grad``) and the sample counts keep adding up until the
    next forward-backward outside it, which reduces the accumulated gradients weighted by the
    accumulated counts.

    The sample count n_r of a forward is the first dimension of its first Tensor argument (1 if
    it has none); the counts of every forward run with gradients enabled since the last reduction
    add up. ``device_ids``, ``output_device``, ``dim``, ``process_group`` (the default group only),
    ``check_reduction``, ``gradient_as_bucket_view`` and ``static_graph`` are accepted for
    PyTorch programs and change nothing (``.grad`` arrays are never bucket views).
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False,
                 check_reduction=False, gradient_as_bucket_view=False, static_graph=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a minidl.nn.Module, "
                            f"got {type(module).__name__}")
        if bucket_cap_mb is not None and not (isinstance(bucket_cap_mb, (int, float)) and bucket_cap_mb > 0):
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, "
                             f"got {bucket_cap_mb!r}")
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any "
                               "parameter that requires a gradient.")
        self.module = module
        self.dim, self.device_ids, self.output_device = dim, device_ids, output_device
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view, self.static_graph = gradient_as_bucket_view, static_graph
        self.bucket_bytes_cap = int((DEFAULT_BUCKET_CAP_MB if bucket_cap_mb is None else bucket_cap_mb)
                                    * 1024 * 1024)
        self._communicator = dist.communicator()  # PyTorch's error if init_process_group was not called
        self._world_size = self._communicator.size
        self._param_names = [name for name, _ in named]
        self._params = [p for _, p in named]
        self._check_same_model_everywhere()
        self._sync_module_states()
        sizes = [p.numel() * p.dtype.itemsize for p in self._params]
        indices = assign_buckets(sizes, [p.dtype for p in self._params], [FIRST_BUCKET_BYTES, self.bucket_bytes_cap])
        self._buckets = [_Bucket(bucket, self._params) for bucket in indices]
        self._hook_handles = [p.register_post_accumulate_grad_hook(self._make_hook(i))
                              for i, p in enumerate(self._params)]
        # What one iteration tracks (reset after every reduction):
        self.require_backward_grad_sync = True  # False inside no_sync()
        self.require_forward_param_sync = True  # False after a forward that prepared no reduction
        self._samples = 0  # n_r: samples of the forwards since the last reduction
        self._expect_hooks = False  # a forward prepared a reduction for the next backward
        self._ready = set()  # indices of the parameters whose gradient this pass produced
        self._next_bucket = 0  # buckets before it have been reduced in this pass
        self._callback_queued = False
        self._locally_unused = set()  # parameters that got no gradient (find_unused_parameters=True)
        self._unfinished = []  # indices of parameters that got no gradient (find_unused_parameters=False)

    # --- construction ---------------------------------------------------------------------------
    def _check_same_model_everywhere(self):
        """Every rank must wrap the same architecture: compare (name, shape, dtype) with rank 0's."""
        mine = [(name, tuple(p.shape), str(p.dtype)) for name, p in zip(self._param_names, self._params)]
        if self._world_size == 1:
            return
        everyone = self._communicator.objects(mine)
        for rank, theirs in enumerate(everyone):
            if theirs != everyone[0]:
                raise RuntimeError(f"DistributedDataParallel: DDP expects same model across all ranks, "
                                   f"but rank {rank}'s parameters (name, shape, dtype) differ from "
                                   f"rank 0's: {theirs} vs {everyone[0]}")

    def _sync_module_states(self):
        """Rank 0's parameters and buffers to every rank (PyTorch's ``_sync_module_states``)."""
        if self._world_size == 1:
            return
        with no_grad():
            for tensor in list(self.module.parameters()) + list(self.module.buffers()):
                dist.broadcast(tensor, src=0)

    def _sync_buffers(self):
        if self._world_size == 1:
            return
        with no_grad():
            for buffer in self.module.buffers():
                dist.broadcast(buffer, src=0)

    # --- forward --------------------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        if is_grad_enabled():
            if self._unfinished:
                self._raise_unfinished_reduction()
            first = _first_tensor((inputs, kwargs))
            self._samples += first.shape[0] if first is not None and first.ndim > 0 else 1
        if self.broadcast_buffers and self.require_forward_param_sync:
            self._sync_buffers()
        output = self.module(*inputs, **kwargs)
        if is_grad_enabled() and self.require_backward_grad_sync:
            self.require_forward_param_sync = True
            self._expect_hooks = True  # prepare the reduction of the coming backward pass
            self._ready, self._next_bucket, self._callback_queued = set(), 0, False
            self._locally_unused = set()
        else:
            self.require_forward_param_sync = False
        return output

    @contextlib.contextmanager
    def no_sync(self):
        """Accumulate gradients without communication: forward/backward inside this context only
        add to ``.grad`` (and to this rank's sample count); the first forward-backward after it
        reduces everything accumulated."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    # --- backward: hooks, buckets, the end of the pass ------------------------------------------
    def _make_hook(self, index):
        def hook(param):  # param.grad now holds this pass's gradient
            if not self._expect_hooks:
                return  # a backward that no synchronised forward prepared (no_sync, or none)
            if not self._callback_queued:
                execution_engine.queue_callback(self._finish_backward)
                self._callback_queued = True
            self._ready.add(index)
            self._reduce_ready_buckets()
        return hook

    def _reduce_ready_buckets(self):
        """Reduce buckets in their fixed order while the next one has all its gradients."""
        while (self._next_bucket < len(self._buckets)
               and all(i in self._ready for i in self._buckets[self._next_bucket].indices)):
            self._reduce(self._buckets[self._next_bucket])
            self._next_bucket += 1

    def _finish_backward(self):
        """At the end of the backward pass: parameters that got no gradient are unused."""
        missing = [i for i in range(len(self._params)) if i not in self._ready]
        if missing and not self.find_unused_parameters:
            self._unfinished = missing  # the next forward raises (PyTorch's behaviour)
            self._expect_hooks = False
            return
        self._locally_unused = set(missing)  # a zero gradient in the buckets
        self._ready.update(missing)
        self._reduce_ready_buckets()
        self._expect_hooks = False
        self._samples = 0

    def _reduce(self, bucket):
        """All-reduce one bucket and write the weighted average (1) into each ``.grad``."""
        if self._world_size == 1:
            return  # the sum over one rank is this rank's gradient: nothing to do (no rounding)
        first = bucket.params[0]._data
        xp = array_module(first)
        n, P = self._samples, len(bucket.params)
        flat = xp.zeros(bucket.numel + 1 + P, dtype=first.dtype)  # (numel + 1 + P,)
        for j, (p, start) in enumerate(zip(bucket.params, bucket.offsets)):
            if p.grad is not None and not self._unused_here(bucket.indices[j]):
                flat[start:start + p.numel()] = n * p.grad._data.reshape(-1)  # (p.numel(),)
                flat[bucket.numel + 1 + j] = 1
        flat[bucket.numel] = n
        self._communicator.all_reduce(flat, "sum")  # every rank: [sum n_r g_r | N | users]
        total = flat[bucket.numel]
        users = to_host(flat[bucket.numel + 1:])  # (P,) on the host: read by Python's `if`
        for j, (p, start) in enumerate(zip(bucket.params, bucket.offsets)):
            if users[j] == 0:
                continue  # no rank used p: its .grad stays as it is (PyTorch)
            average = (flat[start:start + p.numel()] / total).reshape(p.shape)  # (p.numel(),) -> p's shape
            if p.grad is None:
                p.grad = Tensor(average)
            else:
                p.grad._data[...] = average
                p.grad._version_counter.bump()

    def _unused_here(self, index):
        """Whether parameter ``index`` got no gradient in this backward pass."""
        return index in self._locally_unused

    def _raise_unfinished_reduction(self):
        indices = " ".join(str(i) for i in self._unfinished)
        names = ", ".join(self._param_names[i] for i in self._unfinished)
        rank = self._communicator.rank
        raise RuntimeError(
            "Expected to have finished reduction in the prior iteration before starting a new one. "
            "This error indicates that your module has parameters that were not used in producing "
            "loss. You can enable unused parameter detection by passing the keyword argument "
            "`find_unused_parameters=True` to `torch.nn.parallel.DistributedDataParallel`, and by \n"
            "making sure all `forward` function outputs participate in calculating loss. \n"
            "If you already have done the above, then the distributed data parallel module wasn't "
            "able to locate the output tensors in the return value of your module's `forward` "
            "function. Please include the loss function and the structure of the return value of "
            "`forward` of your module when reporting this issue (e.g. list, dict, iterable).\n"
            f"Parameter indices which did not receive grad for rank {rank}: {indices}\n"
            f"Parameters which did not receive grad for rank {rank}: {names}")

