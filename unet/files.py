"""Files a training run writes: atomically, without leftovers, and one run per folder at a time.

* :func:`atomic_write` writes through a uniquely named temporary file in the same folder,
  flushed to disk and renamed over the target: a reader (or a crash) sees the old file or the
  new one, never half of one. Checkpoints go through ``minidl.save``, which does the same.
* :func:`remove_orphans` deletes the temporary files that a killed process left behind
  (``.<name>.<hex>.tmp``: the names both writers use).
* :class:`RunLock` holds ``<out>/.unet.lock`` (the process id inside) while a run writes to the
  folder; a second run on the same folder fails at once with a clear message. A lock whose
  process is gone (``kill -9``) is taken over.
"""
import os
import re
import uuid

__all__ = ["atomic_write", "remove_orphans", "RunLock", "RunLockError"]

_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


def atomic_write(path, write):
    """Call ``write(file)`` on a new binary file that then replaces ``path`` in one step."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_orphans(directory):
    """Delete the temporary files of interrupted writes in ``directory``; return their names."""
    removed = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if _TEMPORARY.match(name):
                os.remove(os.path.join(directory, name))
                removed.append(name)
    return removed


class RunLockError(RuntimeError):
    """Another run is writing to the same output folder."""


class RunLock:
    """``with RunLock(out_dir):`` while a run writes there (see the module docstring)."""

    def __init__(self, directory):
        self.path = os.path.join(directory, ".unet.lock")
        self.held = False

    def __enter__(self):
        for _ in range(2):  # a stale lock is removed once, then taken
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and _alive(owner):
                    raise RunLockError(f"'{os.path.dirname(self.path)}' is in use by another run "
                                       f"(process {owner}, lock file {self.path}); wait for it, or "
                                       "give another --out") from None
                os.remove(self.path)  # its process is gone: the lock is stale
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self.held = True
            return self
        raise RunLockError(f"could not take the lock {self.path}")

    def _owner(self):
        try:
            with open(self.path) as fh:
                return int(fh.read().strip() or -1)
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc_info):
        if self.held and self._owner() == os.getpid():
            os.remove(self.path)
        self.held = False
        return False


def _alive(pid):
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
