r"""``mpiexec -n N unet train ...``: one training run shared by N processes (data parallelism).

Every rank builds the same model (same seed) and, for every step, knows the same *global* batch
of ``batch_size`` samples (``BatchMaker.batch_at``: it depends only on seed, epoch and place);
rank ``r`` makes only its contiguous share of it, rows :meth:`Job.share` (shares differ by one
sample when ``batch_size % N != 0``; the other rows' random draws are made and thrown away,
``Augmenter.skip``, so each sample is the one-process run's), computes the loss (a mean over its
``n_r`` samples) and its gradients; ``minidl.nn.parallel.DistributedDataParallel`` then
averages the gradients weighted by ``n_r / batch_size``:

    global loss  L = sum_r (n_r / B) L_r          (every loss of compute_loss is a mean over
    gradient    dL = sum_r (n_r / B) dL_r          samples of equal size, so this is exact)

so every replica takes the step a one-process run takes on the whole batch (up to float32
rounding of the sums). Models with BatchNorm use SyncBatchNorm (statistics of the global batch).

Once per step the ranks also agree, in one small collective (:meth:`Job.agree`), on the batch's
loss (for the log and the divergence check) and on whether a signal asked any rank to stop; so
all ranks stop after the same step. Rank 0 alone writes files and prints.

Outside ``mpiexec`` (or with ``-n 1``) :func:`join` returns a job of one and nothing changes.
"""
import numpy as np

import minidl

__all__ = ["Job", "join", "data_parallel"]


class Job:
    """This process's place in the run: ``rank`` of ``size`` (a job of one by default)."""

    def __init__(self, rank=0, size=1):
        self.rank, self.size = rank, size

    @property
    def main(self):
        """Rank 0: the one that writes files, logs and the progress bar."""
        return self.rank == 0

    @property
    def parallel(self):
        return self.size > 1

    def share(self, total, rank=None):
        """``(start, stop)``: rank ``rank``'s contiguous share of ``total`` samples; the first
        ``total % size`` ranks take one sample more."""
        rank = self.rank if rank is None else rank
        base, extra = divmod(total, self.size)
        start = rank * base + min(rank, extra)
        return start, start + base + (rank < extra)

    def agree(self, loss, count, total, signum):
        """``(loss of the global batch, signal number or None)`` from every rank's ``loss``
        (the mean over its ``count`` of the ``total`` samples) and ``signum`` (the signal that
        asked this rank to stop, or None): the weighted sum of the losses (NaN when any is NaN)
        and the largest signal number any rank has seen. One ``all_gather`` of 2 numbers."""
        if not self.parallel:
            return loss, signum
        import minidl.distributed as dist
        mine = minidl.tensor(np.array([loss * count / total, signum or 0], dtype=np.float64))
        everyone = [minidl.zeros(2, dtype=minidl.float64) for _ in range(self.size)]
        dist.all_gather(everyone, mine)
        rows = np.stack([t.numpy() for t in everyone])                      # (size, 2)
        total_loss = float(sum(rows[:, 0]))      # in rank order: the same number on every rank
        stop = int(rows[:, 1].max())
        return total_loss, (stop or None)

    def gather(self, obj):
        """Every rank's ``obj``, in rank order (a list of one outside a job)."""
        if not self.parallel:
            return [obj]
        import minidl.distributed as dist
        everyone = [None] * self.size
        dist.all_gather_object(everyone, obj)
        return everyone

    def barrier(self):
        if self.parallel:
            import minidl.distributed as dist
            dist.barrier()


def join():
    """The :class:`Job` of this process: joins the MPI job when ``mpiexec`` (or another MPI
    launcher) started it, else a job of one (no MPI needed)."""
    from minidl.distributed.communicator import launched_by_mpi
    if not launched_by_mpi():
        return Job()
    import minidl.distributed as dist
    dist.init()
    job = Job(dist.get_rank(), dist.get_world_size())
    launched = _launched_size()
    if launched is not None and launched != job.size:
        from .config import ConfigError
        raise ConfigError(f"train: the launcher started {launched} processes but MPI sees a job of "
                           f"{job.size}: mpi4py is built against another MPI library than this "
                           "mpiexec's (use the mpiexec of the MPI mpi4py was built with)")
    return job


def _launched_size():
    """How many processes the launcher says it started, or None if it does not say."""
    import os
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return None


def data_parallel(model, job):
    """The model each rank trains: ``model`` itself for a job of one, else
    ``DistributedDataParallel(model)`` (rank 0's weights broadcast; after each backward the
    gradients are averaged weighted by each rank's sample count, the first dimension of the
    input); its ``.module`` is ``model``, whose state is what checkpoints hold. BatchNorm layers
    become SyncBatchNorm (statistics of the global batch)."""
    if not job.parallel:
        return model
    from minidl.nn.norm import _BatchNorm
    if any(isinstance(m, _BatchNorm) for m in model.modules()):
        model = minidl.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    from minidl.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, find_unused_parameters=True)
