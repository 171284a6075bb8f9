"""Checks of values on a device, deferred to the program's next copy to the host.

On the CPU an op checks the values it is given (a class index out of range, say) before it
computes, and raises at once. On a device (CuPy, the strict test device) reading a value costs a
device-to-host copy and waits for the device, which a training step should not do for every
check. So there such a check keeps the device's 0-d boolean "something is wrong" with a function
that builds its error, and the next time the program copies anything to the host (``item()``,
``tolist()``, ``.cpu()``, ``numpy()``, ``bool()``) the pending flags are read, in one copy, before
that value: the first failed check raises. This is PyTorch's device-side assert on CUDA, whose
error also surfaces at the next synchronisation rather than at the op.
"""

import numpy as np

from .devices import array_module, to_host

MAX_PENDING = 64  # past this many unread checks, read them now: each holds device memory

_pending = []


def check(failed, error):
    """Raise ``error()`` if ``failed`` (a boolean array of size 1) is true: now when it is a host
    value, at the next copy to the host when it lives on a device."""
    if isinstance(failed, (bool, np.bool_, np.ndarray)):
        if bool(failed):
            raise error()
        return
    _pending.append((failed, error))
    if len(_pending) > MAX_PENDING:
        raise_pending()


def raise_pending():
    """Read every pending check in one copy per device module; raise the first that failed."""
    if not _pending:
        return
    checks = _pending[:]
    _pending.clear()
    by_module = {}
    for failed, error in checks:
        by_module.setdefault(array_module(failed), []).append((failed, error))
    for xp, group in by_module.items():
        flags = to_host(xp.stack([failed.reshape(()) for failed, _ in group]))  # (checks,)
        for flag, (_, error) in zip(flags, group):
            if flag:
                raise error()


def discard_pending():
    """Forget the pending checks (for tests, and after an error was raised)."""
    _pending.clear()
