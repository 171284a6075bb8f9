"""``minidl.utils``: helpers outside the engine (as ``torch.utils``); so far ``data``."""
from . import data

__all__ = ["data"]
