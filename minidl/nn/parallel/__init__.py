"""``minidl.nn.parallel``: data-parallel training (PyTorch's names)."""

from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
