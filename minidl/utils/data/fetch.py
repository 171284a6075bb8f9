"""Fetchers: one batch of samples from a dataset, in the main process or in a worker.

Given what the (batch) sampler produced, a fetcher reads the samples and calls
``collate_fn`` on them:

* map-style: the indices of one batch -> ``dataset.__getitems__(indices)`` if the dataset has
  it, else ``[dataset[i] for i in indices]``; without auto-batching a single index;
* iterable: the "indices" only say how many samples to take from ``iter(dataset)``; an
  exhausted (or, with ``drop_last``, too short) batch raises ``StopIteration``.
"""


class MapDatasetFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset, self.auto_collation, self.collate_fn = dataset, auto_collation, collate_fn

    def fetch(self, index):
        if not self.auto_collation:
            return self.collate_fn(self.dataset[index])
        get_many = getattr(self.dataset, "__getitems__", None)
        samples = get_many(index) if callable(get_many) else [self.dataset[i] for i in index]
        return self.collate_fn(samples)


class IterableDatasetFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.samples = iter(dataset)
        self.auto_collation, self.collate_fn, self.drop_last = auto_collation, collate_fn, drop_last
        self.ended = False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.samples))
        batch = []
        for _ in index:  # as many samples as the batch has places
            try:
                batch.append(next(self.samples))
            except StopIteration:
                self.ended = True
                break
        if len(batch) == 0 or (self.drop_last and len(batch) < len(index)):
            raise StopIteration
        return self.collate_fn(batch)


def create_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last):
    kind = IterableDatasetFetcher if iterable else MapDatasetFetcher
    return kind(dataset, auto_collation, collate_fn, drop_last)
