"""DistributedSampler against PyTorch's: the shards without shuffling (every small case, even and
uneven, padded or dropped), lengths, errors; with shuffling (minidl's permutation is not
PyTorch's): what the shards of all ranks make together, and how the order follows seed and epoch."""
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.utils.data
from minidl.utils.data import DataLoader, DistributedSampler


def shards(n, replicas, **kwargs):
    """Every rank's list of indices, rank 0 first."""
    return [list(DistributedSampler(range(n), num_replicas=replicas, rank=r, **kwargs)) for r in range(replicas)]


def interleave(lists):
    """The global list the shards were cut from: position i * p + r holds rank r's i-th index."""
    return [index for column in zip(*lists) for index in column]


def test_exported_where_pytorch_has_it():
    assert minidl.utils.data.DistributedSampler is minidl.utils.data.distributed.DistributedSampler
    assert issubclass(DistributedSampler, minidl.utils.data.Sampler)


@pytest.mark.parametrize("drop_last", [False, True])
def test_shards_without_shuffle_equal_pytorchs(torch, drop_last):
    for n in range(0, 14):
        for replicas in range(1, 7):
            for rank in range(replicas):
                ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False,
                                          drop_last=drop_last)
                theirs = torch.utils.data.DistributedSampler(range(n), num_replicas=replicas, rank=rank,
                                                             shuffle=False, drop_last=drop_last)
                case = (n, replicas, rank, drop_last)
                assert list(ours) == list(theirs), case
                assert (len(ours), ours.num_samples, ours.total_size) == \
                    (len(theirs), theirs.num_samples, theirs.total_size), case
                assert (ours.epoch, ours.seed, ours.shuffle) == (theirs.epoch, theirs.seed, theirs.shuffle)


def test_uneven_by_hand():
    # 7 indices over 3 ranks: padded with the first two indices, or index 6 dropped
    assert shards(7, 3, shuffle=False) == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]
    assert shards(7, 3, shuffle=False, drop_last=True) == [[0, 3], [1, 4], [2, 5]]
    # fewer indices than ranks: the list is repeated until every rank has one
    assert shards(2, 5, shuffle=False) == [[0], [1], [0], [1], [0]]
    assert shards(2, 5, shuffle=False, drop_last=True) == [[]] * 5


@pytest.mark.parametrize("num_replicas, rank", [(2, 2), (2, -1), (3, 7), (0, 0)])
def test_invalid_rank_as_pytorch(torch, num_replicas, rank):
    with pytest.raises(ValueError) as theirs:
        torch.utils.data.DistributedSampler(range(5), num_replicas=num_replicas, rank=rank)
    with pytest.raises(ValueError) as ours:
        DistributedSampler(range(5), num_replicas=num_replicas, rank=rank)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("n, replicas", [(10, 2), (11, 3), (3, 5), (1, 4), (64, 8)])
def test_shuffled_shards_cover_one_permutation_plus_padding(n, replicas):
    padded = interleave(shards(n, replicas, seed=3))
    total = replicas * -(-n // replicas)
    assert len(padded) == total
    assert sorted(padded[:n]) == list(range(n))  # one permutation of the dataset ...
    assert padded[n:] == (padded[:n] * total)[:total - n]  # ... then its start again
    dropped = interleave(shards(n, replicas, seed=3, drop_last=True))
    assert len(dropped) == replicas * (n // replicas) == len(set(dropped))  # distinct: a prefix
    assert dropped == padded[:len(dropped)]  # of the same permutation


def test_shuffle_follows_seed_plus_epoch():
    n, replicas = 23, 3
    first = shards(n, replicas, seed=5)
    assert shards(n, replicas, seed=5) == first  # deterministic: every rank rebuilds the same order
    assert interleave(first)[:n] != list(range(n))  # shuffled
    assert shards(n, replicas, seed=6) != first

    def epoch_shards(seed, epoch):
        samplers = [DistributedSampler(range(n), num_replicas=replicas, rank=r, seed=seed) for r in range(replicas)]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        return [list(sampler) for sampler in samplers]

    assert epoch_shards(5, 0) == first
    assert epoch_shards(5, 1) != first  # a new order each epoch ...
    assert epoch_shards(5, 1) == shards(n, replicas, seed=6)  # ... from the seed seed + epoch, as PyTorch
    sampler = DistributedSampler(range(n), num_replicas=replicas, rank=1, seed=5)
    assert list(sampler) == list(sampler) == first[1]  # iterating again without set_epoch: same order
    sampler.set_epoch(4)
    assert sampler.epoch == 4 and list(sampler) == epoch_shards(5, 4)[1]


def test_without_shuffle_the_epoch_changes_nothing():
    sampler = DistributedSampler(range(9), num_replicas=2, rank=1, shuffle=False)
    before = list(sampler)
    sampler.set_epoch(3)
    assert list(sampler) == before == [1, 3, 5, 7, 0]


@given(n=st.integers(0, 120), replicas=st.integers(1, 12), drop_last=st.booleans(), shuffle=st.booleans(),
       seed=st.integers(0, 2**31))
def test_shape_rules(n, replicas, drop_last, shuffle, seed):
    lists = shards(n, replicas, drop_last=drop_last, shuffle=shuffle, seed=seed)
    per_rank = n // replicas if drop_last else -(-n // replicas)  # floor or ceil of n / p
    for rank, shard in enumerate(lists):
        sampler = DistributedSampler(range(n), num_replicas=replicas, rank=rank, drop_last=drop_last,
                                     shuffle=shuffle, seed=seed)
        assert len(shard) == len(sampler) == sampler.num_samples == per_rank
        assert sampler.total_size == per_rank * replicas
    everything = interleave(lists)
    if n == 0:
        assert everything == []
        return
    counts = np.bincount(everything, minlength=n)  # how often each index is read, over all ranks
    assert len(counts) == n  # no index outside the dataset
    if drop_last:  # disjoint shards; fewer than p indices are never read
        assert counts.max() <= 1 and 0 <= n - counts.sum() < replicas
    else:  # every index read, and the padded ones once more than the others (or n < p: several times)
        assert counts.min() >= 1 and counts.max() - counts.min() <= 1
        assert 0 <= counts.sum() - n < replicas


@given(n=st.integers(0, 60), replicas=st.integers(1, 9), data=st.data())
def test_shape_rules_against_pytorch(torch, n, replicas, data):
    rank = data.draw(st.integers(0, replicas - 1))
    drop_last = data.draw(st.booleans())
    theirs = torch.utils.data.DistributedSampler(range(n), num_replicas=replicas, rank=rank, drop_last=drop_last)
    ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, drop_last=drop_last)
    assert len(list(ours)) == len(ours) == len(theirs) == len(list(theirs))
    assert ours.total_size == theirs.total_size


def test_with_a_dataloader():
    dataset = minidl.utils.data.TensorDataset(minidl.arange(10))
    loader = DataLoader(dataset, batch_size=2, sampler=DistributedSampler(dataset, num_replicas=3, rank=2,
                                                                          shuffle=False))
    assert [batch[0].tolist() for batch in loader] == [[2, 5], [8, 1]]


class FakeDistributed:
    """Stands for ``minidl.distributed`` in a job of 4 processes, seen from rank 3."""
    @staticmethod
    def is_available():
        return True

    @staticmethod
    def get_world_size(group=None):
        return 4

    @staticmethod
    def get_rank(group=None):
        return 3


def test_rank_and_replicas_come_from_minidl_distributed(monkeypatch):
    monkeypatch.setattr(minidl, "distributed", FakeDistributed, raising=False)
    sampler = DistributedSampler(range(10), shuffle=False)
    assert (sampler.num_replicas, sampler.rank, list(sampler)) == (4, 3, [3, 7, 1])
    sampler = DistributedSampler(range(10), num_replicas=5, shuffle=False)  # only the one not given is asked
    assert (sampler.num_replicas, sampler.rank) == (5, 3)
    sampler = DistributedSampler(range(10), rank=0, shuffle=False)
    assert (sampler.num_replicas, sampler.rank) == (4, 0)


def test_without_the_distributed_package(monkeypatch):
    monkeypatch.delattr(minidl, "distributed", raising=False)
    monkeypatch.setitem(sys.modules, "minidl.distributed", None)  # `import` raises ImportError
    for kwargs in ({}, dict(num_replicas=2), dict(rank=0)):
        with pytest.raises(RuntimeError, match="^Requires distributed package to be available$"):
            DistributedSampler(range(10), **kwargs)
    assert len(DistributedSampler(range(10), num_replicas=2, rank=0)) == 5  # both given: not needed


def test_uninitialised_process_group_as_pytorch(torch):
    dist = pytest.importorskip("minidl.distributed")
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    with pytest.raises(ValueError) as theirs:  # torch.distributed without init_process_group
        torch.utils.data.DistributedSampler(range(5))
    with pytest.raises(ValueError) as ours:
        DistributedSampler(range(5))
    assert str(ours.value) == str(theirs.value)
    dist.init_process_group()  # outside mpiexec: a job of one process
    try:
        sampler = DistributedSampler(range(5), shuffle=False)
        assert (sampler.num_replicas, sampler.rank, list(sampler)) == (1, 0, [0, 1, 2, 3, 4])
    finally:
        dist.destroy_process_group()
