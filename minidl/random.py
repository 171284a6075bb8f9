"""One global random generator for everything random in minidl.

Parameter initialisation, dropout and ``rand``/``randn``/``randint`` all draw
from :func:`generator`, so ``minidl.manual_seed(s)`` makes a whole run
reproducible, and :func:`get_rng_state`/:func:`set_rng_state` let a checkpoint
resume exactly where it stopped.
"""
import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed the global generator (like ``torch.manual_seed``)."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator():
    """The global ``np.random.Generator``."""
    return _generator


def get_rng_state():
    """A copy of the generator's state (a plain dict, JSON-able)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    """Restore a state returned by :func:`get_rng_state`."""
    bit_generator = np.random.PCG64()
    bit_generator.state = state
    global _generator
    _generator = np.random.Generator(bit_generator)
