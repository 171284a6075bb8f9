"""Samplers: the order in which a DataLoader visits a map-style dataset's indices
(as ``torch.utils.data.sampler``).

A sampler is any iterable of indices; a :class:`BatchSampler` groups a sampler's indices into
lists, one per batch. The random ones draw from their ``generator`` (a ``minidl.Generator``);
without one, :class:`RandomSampler` draws a fresh seed from the global generator each epoch,
as PyTorch does. Orders are reproducible for a seed but are not PyTorch's orders.
"""
import itertools
import numbers
import typing

import numpy as np

from ...creation import randint, randperm
from ...random import Generator
from ...random import generator as _numpy_rng


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


T_co = typing.TypeVar("T_co", covariant=True)  # what the sampler yields, for annotations only


class Sampler(typing.Generic[T_co]):
    """Base class: subclasses define ``__iter__`` (indices) and, where known, ``__len__``.
    Generic as PyTorch's (``class MySampler(Sampler[int])``)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """Random indices: a permutation (repeated and cut to ``num_samples``) or, with
    ``replacement=True``, ``num_samples`` independent uniform draws.

    Without ``generator``, each ``iter()`` seeds a private generator from the global one (so
    ``minidl.manual_seed`` fixes every epoch's order, and every epoch differs)."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        if not _is_int(self.num_samples) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        generator = self.generator
        if generator is None:  # a new seed per epoch, from the global generator
            seed = int(_numpy_rng(None).integers(0, 1 << 63))
            generator = Generator().manual_seed(seed)
        if self.replacement:
            for _ in range(self.num_samples // 32):  # in chunks of 32, as PyTorch
                yield from randint(high=n, size=(32,), generator=generator).tolist()
            yield from randint(high=n, size=(self.num_samples % 32,), generator=generator).tolist()
        else:
            for _ in range(self.num_samples // n):  # whole permutations, then part of one
                yield from randperm(n, generator=generator).tolist()
            yield from randperm(n, generator=generator).tolist()[:self.num_samples % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order (a new one each epoch)."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in randperm(len(self.indices), generator=self.generator).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


def _multinomial(weights, num_samples, replacement, generator):
    """``num_samples`` indices drawn with probability proportional to ``weights`` (1-D float64).

    With replacement: independent draws. Without: the Efraimidis-Spirakis trick, an
    exponential key ``E_i / w_i`` per index and the ``num_samples`` smallest keys, which draws
    index after index with probability proportional to the weights left (zero weights come last).
    """
    # PyTorch's messages: its draws with replacement of more than one sample check entry by
    # entry (NaN fails ">= 0"); its other draws check the whole tensor at once.
    entrywise = replacement and num_samples > 1
    if entrywise and not np.all(weights >= 0):
        raise RuntimeError("invalid multinomial distribution (encountering probability entry < 0)")
    if entrywise and not np.all(np.isfinite(weights)):
        raise RuntimeError("invalid multinomial distribution (encountering probability entry = infinity or NaN)")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if weights.sum() <= 0:
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and num_samples > weights.size:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    rng = _numpy_rng(generator)
    if replacement:
        return rng.choice(weights.size, size=num_samples, p=weights / weights.sum())
    with np.errstate(divide="ignore"):
        keys = rng.exponential(size=weights.size) / weights  # inf where a weight is 0
    return np.argsort(keys, kind="stable")[:num_samples]


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices in ``[0, len(weights))``, index ``i`` with probability
    proportional to ``weights[i]`` (with or without replacement)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not _is_int(num_samples) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        from ...tensor import Tensor
        array = weights.detach().cpu().numpy() if isinstance(weights, Tensor) else weights
        array = np.asarray(array, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(array.shape)}")
        self.weights = Tensor(array.copy())
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        indices = _multinomial(self.weights.numpy(), self.num_samples, self.replacement, self.generator)
        yield from indices.tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler``; the last one shorter, or dropped
    with ``drop_last=True``."""

    def __init__(self, sampler, batch_size, drop_last):
        if not _is_int(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        indices = iter(self.sampler)
        while True:
            batch = list(itertools.islice(indices, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


class _InfiniteConstantSampler(Sampler):
    """``None`` forever: the "indices" of an iterable dataset (only their count matters)."""

    def __iter__(self):
        while True:
            yield None


__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]
