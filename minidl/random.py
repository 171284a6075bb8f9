"""Random numbers: ``minidl.Generator`` and the global generator behind everything random.

Parameter initialisation, dropout, ``rand``/``randn``/``randint``/``randperm``, the samplers of
``minidl.utils.data`` and its worker seeds all draw from the global generator
(``minidl.default_generator``) unless a ``generator=`` is given, so ``minidl.manual_seed(s)``
makes a whole run reproducible, and :func:`get_rng_state`/:func:`set_rng_state` let a
checkpoint resume exactly where it stopped.

A ``Generator`` is a NumPy ``PCG64`` bit generator behind PyTorch's interface
(``manual_seed``, ``seed``, ``initial_seed``, ``get_state``, ``set_state``). The numbers are
reproducible for a seed, but they are NOT PyTorch's numbers for the same seed: PyTorch's CPU
generator is a Mersenne Twister and it turns bits into floats its own way.
"""
import os

import numpy as np

_DEFAULT_SEED = 67280421310721  # what a fresh torch.Generator() starts from
_SEED_RANGE = (-(1 << 63), (1 << 64) - 1)  # what PyTorch accepts; negative seeds wrap mod 2**64


def _check_seed(seed, op):
    """``seed`` as a non-negative int below 2**64 (negative ones wrap, as in PyTorch)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise RuntimeError(f"{op}: expected a long, but got {type(seed).__name__}")
    seed = int(seed)
    if not _SEED_RANGE[0] <= seed <= _SEED_RANGE[1]:
        raise ValueError(f"{op}: Overflow when unpacking long long (seed {seed} is outside "
                         f"[-2**63, 2**64 - 1])")
    return seed % (1 << 64)


class Generator:
    """A source of random numbers with its own state (like ``torch.Generator``).

    ``Generator()`` starts from PyTorch's default seed (67280421310721); ``manual_seed(s)``
    restarts it from ``s``. Pass it as ``generator=`` to ``minidl.rand``, ``randn``,
    ``randint``, ``randperm``, the ``*_like`` functions, ``nn.init``, the samplers and
    ``DataLoader``. Numbers are reproducible for a seed but differ from PyTorch's (NumPy's PCG64
    bit generator, not PyTorch's Mersenne Twister).
    """

    def __init__(self, device="cpu"):
        from .backend import devices
        self.device = devices.device(device)  # numbers are drawn on the host for every device (docs/architecture.md)
        self.manual_seed(_DEFAULT_SEED)

    def manual_seed(self, seed):
        """Restart from ``seed`` (an int in [-2**63, 2**64); negative ones wrap); returns self."""
        self._seed = _check_seed(seed, "manual_seed")
        self._numpy = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def seed(self):
        """Restart from a non-deterministic seed (from the OS); returns that seed."""
        seed = int.from_bytes(os.urandom(8), "little") >> 1  # 63 bits, as PyTorch's are
        self.manual_seed(seed)
        return seed

    def initial_seed(self):
        """The seed this generator was last (re)started from."""
        return self._seed

    def get_state(self):
        """The whole state as a ``uint8`` tensor (as PyTorch's ``ByteTensor``; not PyTorch's bytes)."""
        from .tensor import Tensor
        return Tensor(_pack_state(self._seed, self._numpy.bit_generator.state))

    def set_state(self, new_state):
        """Restore a state returned by :meth:`get_state`; returns self."""
        from .tensor import Tensor
        if not isinstance(new_state, Tensor) or new_state.dtype != np.uint8:
            got = f"{new_state.dtype} tensor" if isinstance(new_state, Tensor) else type(new_state).__name__
            raise TypeError(f"set_state: expected a minidl.uint8 tensor from get_state(), but got {got}")
        self._seed, state = _unpack_state(new_state.detach().cpu().numpy())
        self._numpy = np.random.Generator(np.random.PCG64())
        self._numpy.bit_generator.state = state
        return self

    def numpy(self):
        """The ``np.random.Generator`` that draws this generator's numbers (shared, not a copy)."""
        return self._numpy

    def __repr__(self):
        return f"<minidl.Generator object at {id(self):#x}>"


# get_state's bytes: the seed (8), PCG64's 128-bit state and increment (16 each), and its
# cached half-word (has_uint32: 1 byte, uinteger: 4), all little endian.
_STATE_BYTES = 8 + 16 + 16 + 1 + 4


def _pack_state(seed, state):
    inner = state["state"]
    parts = [seed.to_bytes(8, "little"), inner["state"].to_bytes(16, "little"),
             inner["inc"].to_bytes(16, "little"), int(state["has_uint32"]).to_bytes(1, "little"),
             int(state["uinteger"]).to_bytes(4, "little")]
    return np.frombuffer(b"".join(parts), dtype=np.uint8).copy()


def _unpack_state(array):
    if array.shape != (_STATE_BYTES,):
        raise RuntimeError(f"set_state: expected a state of {_STATE_BYTES} bytes from get_state(), "
                           f"got shape {tuple(array.shape)}")
    raw = array.tobytes()
    take = lambda start, size: int.from_bytes(raw[start:start + size], "little")  # noqa: E731
    state = {"bit_generator": "PCG64", "state": {"state": take(8, 16), "inc": take(24, 16)},
             "has_uint32": take(40, 1), "uinteger": take(41, 4)}
    return take(0, 8), state


# The global generator (``torch.default_generator``). Its first seed is 0, not PyTorch's.
default_generator = Generator().manual_seed(0)


def manual_seed(seed):
    """Reseed the global generator (like ``torch.manual_seed``); returns it."""
    return default_generator.manual_seed(seed)


def seed():
    """Reseed the global generator from the OS (like ``torch.seed``); returns the seed."""
    return default_generator.seed()


def initial_seed():
    """The seed the global generator was last started from (like ``torch.initial_seed``)."""
    return default_generator.initial_seed()


def generator(gen=None):
    """The ``np.random.Generator`` to draw from: the global one, or ``gen``'s.

    ``gen`` may be a :class:`Generator`, ``None`` (the global one) or, for code written
    before ``minidl.Generator`` existed, an ``np.random.Generator`` itself."""
    if gen is None:
        return default_generator._numpy
    if isinstance(gen, Generator):
        return gen._numpy
    if isinstance(gen, np.random.Generator):
        return gen
    raise TypeError(f"generator must be a minidl.Generator, got {type(gen).__name__}")


def get_rng_state():
    """A copy of the global generator's state (a plain dict, JSON-able)."""
    return default_generator._numpy.bit_generator.state


def set_rng_state(state):
    """Restore a state returned by :func:`get_rng_state`."""
    bit_generator = np.random.PCG64()
    bit_generator.state = state
    default_generator._numpy = np.random.Generator(bit_generator)
