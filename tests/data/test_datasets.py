"""minidl.utils.data datasets, random_split, default_collate and default_convert, compared
with PyTorch's on the same inputs."""
import collections

import numpy as np
import pytest

import minidl
from minidl.utils.data import (ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset,
                               default_collate, default_convert, random_split)

Point = collections.namedtuple("Point", ["x", "y"])


class Range(Dataset):
    def __init__(self, start, stop):
        self.values = list(range(start, stop))

    def __len__(self):
        return len(self.values)

    def __getitem__(self, i):
        return self.values[i]


class Stream(IterableDataset):
    def __init__(self, values):
        self.values = values

    def __iter__(self):
        return iter(self.values)

    def __len__(self):
        return len(self.values)


def test_tensor_dataset():
    x, y = minidl.randn(4, 3), minidl.arange(4)
    ds = TensorDataset(x, y)
    assert len(ds) == 4
    xi, yi = ds[2]
    assert np.array_equal(xi.numpy(), x.numpy()[2]) and yi.item() == 2
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(x, minidl.arange(5))


def test_concat_dataset_and_add():
    ds = Range(0, 3) + Range(10, 12) + Range(20, 24)
    assert isinstance(ds, ConcatDataset)
    assert len(ds) == 9 and ds.cumulative_sizes[-1] == 9
    assert [ds[i] for i in range(9)] == [0, 1, 2, 10, 11, 20, 21, 22, 23]
    assert ds[-1] == 23 and ds[-9] == 0
    with pytest.raises(ValueError, match="absolute value of index"):
        ds[-10]
    with pytest.raises(AssertionError, match="empty"):
        ConcatDataset([])
    with pytest.raises(AssertionError, match="does not support IterableDataset"):
        ConcatDataset([Stream([1])])


def test_chain_dataset():
    chained = Stream([1, 2]) + Stream([3])
    assert isinstance(chained, ChainDataset)
    assert list(chained) == [1, 2, 3] and len(chained) == 3


def test_subset():
    sub = Subset(Range(100, 110), [7, 2, 5])
    assert len(sub) == 3 and [sub[i] for i in range(3)] == [107, 102, 105]
    assert sub.__getitems__([2, 0]) == [105, 107]


def test_subset_subclass_must_override_getitems_too_as_pytorch(torch):
    def subclass(base):
        class Doubled(base):
            def __getitem__(self, i):
                return 2 * self.dataset[self.indices[i]]
        return Doubled
    with pytest.raises(NotImplementedError) as theirs:
        subclass(torch.utils.data.Subset)(range(3), [0])
    with pytest.raises(NotImplementedError) as ours:
        subclass(Subset)(Range(0, 3), [0])
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("n, fractions", [(10, [0.3, 0.3, 0.4]), (11, [0.5, 0.5]), (7, [0.2, 0.2, 0.6]),
                                          (5, [1.0])])
def test_random_split_fraction_lengths_match_pytorch(torch, n, fractions):
    ours = random_split(Range(0, n), fractions, generator=minidl.Generator().manual_seed(0))
    theirs = torch.utils.data.random_split(range(n), fractions)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    everything = sorted(i for s in ours for i in (s[j] for j in range(len(s))))
    assert everything == list(range(n))  # disjoint, and together the whole dataset


def test_random_split_is_reproducible_and_checks_lengths():
    def split(seed):
        return [list(s.indices) for s in random_split(Range(0, 20), [5, 15],
                                                      generator=minidl.Generator().manual_seed(seed))]
    assert split(1) == split(1) and split(1) != split(2)
    assert [len(s) for s in split(1)] == [5, 15]
    minidl.manual_seed(4)
    default = [list(s.indices) for s in random_split(Range(0, 20), [10, 10])]
    minidl.manual_seed(4)
    assert [list(s.indices) for s in random_split(Range(0, 20), [10, 10])] == default
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        random_split(Range(0, 20), [5, 5])
    with pytest.raises(ValueError, match="Fraction at index 1 is not between 0 and 1"):
        random_split(Range(0, 20), [0.6, -0.2, 0.6])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(Range(0, 2), [0.9, 0.1])


# ---- default_collate against PyTorch's ---------------------------------------------------------

def _to_torch(torch, value):
    """The same structure with minidl tensors turned into PyTorch's."""
    if isinstance(value, minidl.Tensor):
        return torch.from_numpy(value.numpy().copy())
    if isinstance(value, dict):
        return {k: _to_torch(torch, v) for k, v in value.items()}
    if isinstance(value, Point):
        return Point(*(_to_torch(torch, v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_to_torch(torch, v) for v in value)
    return value


def _assert_same(torch, ours, theirs):
    """Same structure and types, same tensors (shape, dtype, values)."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, minidl.Tensor), type(ours)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        return
    assert type(ours) is type(theirs), (type(ours), type(theirs))
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs)
        for key in theirs:
            _assert_same(torch, ours[key], theirs[key])
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_same(torch, a, b)
    else:
        assert ours == theirs


def _samples():
    rng = np.random.default_rng(0)
    return {
        "tensors": [minidl.randn(2, 3), minidl.randn(2, 3)],
        "int tensors": [minidl.arange(3), minidl.arange(3)],
        "float32 arrays": [rng.standard_normal((2, 2)).astype(np.float32) for _ in range(3)],
        "int32 arrays": [np.arange(4, dtype=np.int32) for _ in range(2)],
        "uint8 arrays": [np.arange(4, dtype=np.uint8) for _ in range(2)],
        "bool arrays": [np.array([True, False]) for _ in range(2)],
        "floats": [1.5, 2.0, -3.25],
        "ints": [1, 2, 3],
        "bools": [True, False],
        "numpy float32 scalars": [np.float32(1.5), np.float32(2)],
        "numpy float64 scalars": [np.float64(1.5), np.float64(2)],
        "numpy int32 scalars": [np.int32(1), np.int32(2)],
        "numpy 0-d arrays": [np.array(1.5), np.array(2.5)],
        "strings": ["a", "bc"],
        "bytes": [b"a", b"bc"],
        "tuples": [(1, 2.0, "x"), (3, 4.0, "y")],
        "lists": [[1, np.float32(2.0)], [3, np.float32(4.0)]],
        "dicts": [{"image": np.ones((2, 2)), "label": 3, "name": "a"},
                  {"image": np.zeros((2, 2)), "label": 4, "name": "b"}],
        "namedtuples": [Point(1, 2.0), Point(3, 4.0)],
        "nested": [{"pair": (np.ones(2, dtype=np.float32), [1, 2]), "p": Point(1.0, {"k": 2})},
                   {"pair": (np.zeros(2, dtype=np.float32), [3, 4]), "p": Point(2.0, {"k": 5})}],
    }


@pytest.mark.parametrize("name", list(_samples()))
def test_default_collate_matches_pytorch(torch, name):
    batch = _samples()[name]
    ours = default_collate(batch)
    theirs = torch.utils.data.default_collate(_to_torch(torch, batch))
    _assert_same(torch, ours, theirs)


@pytest.mark.parametrize("name", list(_samples()))
def test_default_convert_matches_pytorch(torch, name):
    sample = _samples()[name][0]
    _assert_same(torch, default_convert(sample), torch.utils.data.default_convert(_to_torch(torch, sample)))


def test_default_collate_keeps_the_kind_of_mapping():
    ours = default_collate([collections.OrderedDict(a=1), collections.OrderedDict(a=2)])
    assert type(ours) is collections.OrderedDict and ours["a"].tolist() == [1, 2]


@pytest.mark.parametrize("batch", [[np.array(["a"]), np.array(["b"])], [object(), object()],
                                   [[1, 2], [3]]])
def test_default_collate_errors_as_pytorch(torch, batch):
    with pytest.raises(Exception) as theirs:
        torch.utils.data.default_collate(batch)
    with pytest.raises(type(theirs.value)) as ours:
        default_collate(batch)
    assert str(ours.value).split(";")[0] == str(theirs.value).split(";")[0]


def test_iterable_dataset_without_iter_cannot_be_made_as_pytorch(torch):
    class NoIter(IterableDataset):
        pass

    class TorchNoIter(torch.utils.data.IterableDataset):
        pass
    with pytest.raises(TypeError) as theirs:
        TorchNoIter()
    with pytest.raises(TypeError) as ours:
        NoIter()
    assert "abstract" in str(theirs.value) and "abstract" in str(ours.value)
    assert isinstance(Stream(3), IterableDataset) and not isinstance([1], IterableDataset)


def test_dataset_and_sampler_classes_are_generic_as_pytorch(torch):
    from minidl.utils.data import Sampler

    class Pairs(Dataset[tuple]):
        def __getitem__(self, i):
            return i, -i

        def __len__(self):
            return 3

    class Evens(Sampler[int]):
        def __iter__(self):
            return iter([0, 2])

    class Numbers(IterableDataset[int]):
        def __iter__(self):
            return iter([7, 8])
    for name in ("Dataset", "IterableDataset", "Sampler"):
        ours, theirs = getattr(minidl.utils.data, name), getattr(torch.utils.data, name)
        assert isinstance(ours, type) and ours[int] is not None and theirs[int] is not None
    assert Pairs()[2] == (2, -2) and list(Evens()) == [0, 2] and list(Numbers()) == [7, 8]
