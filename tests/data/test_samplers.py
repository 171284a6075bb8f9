"""minidl.utils.data samplers against PyTorch's: lengths, index sets, replacement, weights,
reproducibility with a generator, and the errors for bad arguments."""
import numpy as np
import pytest

import minidl
from minidl.utils.data import (BatchSampler, RandomSampler, SequentialSampler, SubsetRandomSampler,
                               WeightedRandomSampler)


def test_sequential_sampler(torch):
    data = list(range(7))
    assert list(SequentialSampler(data)) == list(torch.utils.data.SequentialSampler(data)) == data
    assert len(SequentialSampler(data)) == 7


@pytest.mark.parametrize("n, num_samples", [(10, None), (10, 4), (10, 25), (1, 3)])
def test_random_sampler_without_replacement_is_whole_permutations(torch, n, num_samples):
    data = range(n)
    ours = list(RandomSampler(data, num_samples=num_samples, generator=minidl.Generator().manual_seed(0)))
    theirs = list(torch.utils.data.RandomSampler(data, num_samples=num_samples))
    assert len(ours) == len(theirs) == (num_samples or n)
    whole, rest = divmod(len(ours), n)
    for k in range(whole):  # each block of n is a permutation
        assert sorted(ours[k * n:(k + 1) * n]) == list(range(n))
    assert len(set(ours[whole * n:])) == rest  # then distinct indices
    for sample in (ours, theirs):  # PyTorch's too: every index whole or whole + 1 times
        assert set(np.bincount(sample, minlength=n).tolist()) <= {whole, whole + 1}


def test_random_sampler_with_replacement(torch):
    ours = list(RandomSampler(range(5), replacement=True, num_samples=70))
    theirs = list(torch.utils.data.RandomSampler(range(5), replacement=True, num_samples=70))
    assert len(ours) == len(theirs) == 70
    assert set(ours) == set(range(5))  # 70 draws of 5: every index, with repeats
    assert len(RandomSampler(range(5), replacement=True)) == 5
    draws = list(RandomSampler(range(40), replacement=True, generator=minidl.Generator().manual_seed(0)))
    assert len(draws) == 40 and len(set(draws)) < 40  # repeats (all distinct: chance 40!/40**40)


def test_random_sampler_is_reproducible():
    g = minidl.Generator().manual_seed(42)
    first, second = list(RandomSampler(range(30), generator=g)), list(RandomSampler(range(30), generator=g))
    assert first != second  # the generator moves on
    g.manual_seed(42)
    assert list(RandomSampler(range(30), generator=g)) == first
    minidl.manual_seed(1)  # without a generator: the global one seeds each epoch
    a, b = list(RandomSampler(range(30))), list(RandomSampler(range(30)))
    minidl.manual_seed(1)
    assert [list(RandomSampler(range(30))), list(RandomSampler(range(30)))] == [a, b]
    assert a != b


@pytest.mark.parametrize("args, kwargs", [
    ((range(3),), dict(replacement=1)),
    ((range(3),), dict(num_samples=0)),
    ((range(3),), dict(num_samples=2.0)),
    ((range(0),), {}),
])
def test_random_sampler_errors_as_pytorch(torch, args, kwargs):
    with pytest.raises(Exception) as theirs:
        torch.utils.data.RandomSampler(*args, **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        RandomSampler(*args, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_subset_random_sampler(torch):
    indices = [3, 9, 4, 12]
    ours = list(SubsetRandomSampler(indices, generator=minidl.Generator().manual_seed(1)))
    assert sorted(ours) == sorted(torch.utils.data.SubsetRandomSampler(indices)) == sorted(indices)
    assert len(SubsetRandomSampler(indices)) == 4
    orders = {tuple(SubsetRandomSampler(indices)) for _ in range(20)}
    assert len(orders) > 1  # a new order each epoch


def test_weighted_random_sampler_follows_the_weights(torch):
    weights = [0.1, 0.0, 0.6, 0.3]
    n = 20000
    ours = np.bincount(list(WeightedRandomSampler(weights, n, generator=minidl.Generator().manual_seed(0))),
                       minlength=4) / n
    theirs = np.bincount(list(torch.utils.data.WeightedRandomSampler(weights, n)), minlength=4) / n
    assert ours[1] == theirs[1] == 0
    np.testing.assert_allclose(ours, weights, atol=0.02)
    np.testing.assert_allclose(ours, theirs, atol=0.03)


def test_weighted_random_sampler_without_replacement(torch):
    weights = minidl.tensor([5.0, 1.0, 0.0, 3.0, 1.0])
    minidl.manual_seed(0)  # the frequencies below are checked with a tolerance: no flaky draws
    draws = [list(WeightedRandomSampler(weights, 4, replacement=False)) for _ in range(300)]
    assert all(len(set(d)) == 4 for d in draws)
    assert all(2 not in d for d in draws)  # the zero weight only when nothing else is left
    first = np.bincount([d[0] for d in draws], minlength=5) / 300
    np.testing.assert_allclose(first, [0.5, 0.1, 0.0, 0.3, 0.1], atol=0.1)  # first pick ~ weights
    everything = list(WeightedRandomSampler(weights, 5, replacement=False))
    assert sorted(everything) == [0, 1, 2, 3, 4] and everything[-1] == 2
    assert sorted(torch.utils.data.WeightedRandomSampler([5.0, 1, 0, 3, 1], 5, replacement=False)) == \
        sorted(everything)
    assert isinstance(WeightedRandomSampler([1, 2], 3).weights, minidl.Tensor)
    assert WeightedRandomSampler([1, 2], 3).weights.dtype == minidl.float64


@pytest.mark.parametrize("args, kwargs", [
    (([1.0, 2.0], 0), {}),
    (([1.0, 2.0], True), {}),
    (([1.0, 2.0], 2), dict(replacement=0)),
    (([[1.0, 2.0]], 2), {}),
])
def test_weighted_random_sampler_argument_errors_as_pytorch(torch, args, kwargs):
    with pytest.raises(Exception) as theirs:
        torch.utils.data.WeightedRandomSampler(*args, **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        WeightedRandomSampler(*args, **kwargs)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("weights, num_samples, replacement", [
    ([1.0, -1.0], 1, True), ([0.0, 0.0], 1, True), ([1.0, float("nan")], 1, True), ([1.0, 2.0], 3, False),
    ([1.0, float("inf")], 1, True), ([1.0, float("inf")], 1, False), ([1.0, -1.0], 1, False),
    ([0.0, 0.0], 1, False), ([1.0, -1.0], 2, True), ([1.0, float("nan")], 2, True), ([1.0, float("inf")], 2, True),
    ([0.0, 0.0], 2, True)])
def test_weighted_random_sampler_bad_weights_raise_on_iteration_as_pytorch(torch, weights, num_samples,
                                                                            replacement):
    with pytest.raises(RuntimeError) as theirs:
        list(torch.utils.data.WeightedRandomSampler(weights, num_samples, replacement))
    with pytest.raises(RuntimeError) as ours:
        list(WeightedRandomSampler(weights, num_samples, replacement))
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("n, batch_size, drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False),
                                                      (2, 5, True)])
def test_batch_sampler_matches_pytorch(torch, n, batch_size, drop_last):
    ours = BatchSampler(SequentialSampler(range(n)), batch_size, drop_last)
    theirs = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(n)), batch_size, drop_last)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


@pytest.mark.parametrize("batch_size, drop_last", [(0, False), (2.0, False), (True, False), (2, 1)])
def test_batch_sampler_errors_as_pytorch(torch, batch_size, drop_last):
    with pytest.raises(ValueError) as theirs:
        torch.utils.data.BatchSampler(range(4), batch_size, drop_last)
    with pytest.raises(ValueError) as ours:
        BatchSampler(range(4), batch_size, drop_last)
    assert str(ours.value) == str(theirs.value)
