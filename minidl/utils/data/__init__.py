"""``minidl.utils.data``: datasets, samplers and the DataLoader (as ``torch.utils.data``).

    dataset.py     Dataset, IterableDataset, TensorDataset, ConcatDataset, ChainDataset, Subset,
                   random_split
    sampler.py     the orders of indices: Sequential, Random, SubsetRandom, WeightedRandom, Batch
    collate.py     a list of samples -> one batch (default_collate, default_convert)
    fetch.py       one batch from a dataset (shared by the main process and the workers)
    worker.py      the worker processes' loop, seeds, and what crosses between processes
    dataloader.py  DataLoader and its two iterators (in this process / in workers)
    distributed.py DistributedSampler: one shard of the indices per rank of a data-parallel job

How it fits together, and what is reproducible: docs/dataloader.md.
"""
from .collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from .distributed import DistributedSampler
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)
from .worker import WorkerInfo, get_worker_info

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
           "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
           "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "default_collate", "default_convert",
           "get_worker_info", "random_split"]
