"""``DistributedSampler``: each process of a data-parallel job reads its own shard of a dataset
(as ``torch.utils.data.distributed``).

Every rank builds the same list of ``len(dataset)`` indices (in order, or one permutation seeded
by ``seed + epoch``), makes it divisible by the number of ranks, and keeps every
``num_replicas``-th index from position ``rank`` on::

    dataset indices       0 1 2 3 4 5 6        (n = 7, num_replicas = 3, shuffle=False)
    padded (drop_last=False)  0 1 2 3 4 5 6 0 1  (repeats the first indices: total_size = 9)
    rank 0 / 1 / 2        0 3 6 / 1 4 0 / 2 5 1  (num_samples = 3 each)
    dropped (drop_last=True)  0 1 2 3 4 5        (total_size = 6; index 6 is never read)

So the shards are disjoint except for the padding, and together they cover the dataset. Call
``set_epoch(epoch)`` before each epoch: with ``shuffle=True`` the permutation depends on
``seed + epoch`` only, so all ranks agree on it without talking to each other.

The permutation is minidl's (``randperm`` with a ``Generator`` seeded ``seed + epoch``): it is
reproducible and the same on every rank, but it is not the permutation PyTorch draws for the same
seed (the generators differ). Without shuffling the shards are exactly PyTorch's.
"""
import math

from ...creation import randperm
from ...random import Generator
from .sampler import Sampler


class DistributedSampler(Sampler):
    """The indices of ``dataset`` that this rank reads: ``num_samples = ceil(n / num_replicas)``
    of them (``floor`` with ``drop_last=True``), the same count on every rank.

    Args: ``num_replicas`` and ``rank`` default to ``minidl.distributed.get_world_size()`` and
    ``get_rank()``; ``shuffle`` permutes the indices each epoch with the seed ``seed + epoch``
    (``seed`` must be the same on all ranks); ``drop_last`` drops the tail instead of padding
    with repeated indices when ``n`` is not a multiple of ``num_replicas``."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            dist = _distributed_package()
            if num_replicas is None:
                num_replicas = dist.get_world_size()  # raises ValueError if not initialised, as PyTorch
            if rank is None:
                rank = dist.get_rank()
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            # the largest multiple of num_replicas below n, per rank; written as PyTorch's
            # ceil((n - p) / p), which is floor(n / p) when p does not divide n, and 0 when n < p
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:  # the same permutation on every rank: it depends on seed + epoch only
            generator = Generator().manual_seed(self.seed + self.epoch)
            indices = randperm(n, generator=generator).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:  # pad by repeating the list from its start (several times if short)
            padding = self.total_size - n
            repeats = math.ceil(padding / n) if n else 0
            indices += (indices * repeats)[:padding]
        else:  # drop the tail
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size, (len(indices), self.total_size)
        shard = indices[self.rank:self.total_size:self.num_replicas]  # every p-th, from this rank on
        assert len(shard) == self.num_samples, (len(shard), self.num_samples)
        return iter(shard)

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Use ``epoch``'s permutation from the next ``iter()`` on (call it on every rank before
        each epoch; without it every epoch has the same order)."""
        self.epoch = epoch


def _distributed_package():
    """``minidl.distributed``, imported on first use (the sampler works without it when
    ``num_replicas`` and ``rank`` are given)."""
    try:
        from ... import distributed
    except ImportError:
        distributed = None
    if distributed is None or not distributed.is_available():
        raise RuntimeError("Requires distributed package to be available")
    return distributed
