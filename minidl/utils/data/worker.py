"""What runs inside a DataLoader worker process, and what crosses between the processes.

A worker (:func:`worker_loop`) is a loop: take a task ``(task_index, sampler_output)`` from its
own index queue, fetch and collate that batch, send ``(task_index, result)`` back on the
result queue that all workers share. The main process (dataloader.py) hands out the tasks
round-robin and puts the results back in order.

What crosses: tasks are small (lists of indices). A result is the collated batch with every
``Tensor`` replaced by its NumPy array (:func:`pack`), pickled in the worker, so that a batch
that cannot be pickled becomes an error there, with its traceback, instead of a silent hang;
the main process unpickles it and makes the arrays tensors again (:func:`unpack`). An error
in a worker travels as an :class:`ExceptionWrapper` holding the worker's traceback text, and
is raised again in the main process.

Seeds (PyTorch's scheme): the main process draws one ``base_seed`` per iterator from the
loader's generator (or the global one); worker ``i`` seeds Python's ``random`` and
``minidl`` with ``base_seed + i`` and NumPy's global generator with
``SeedSequence(base_seed + i)``, then calls ``worker_init_fn(i)``.

Staying alive: a worker exits when it is sent ``None``, and also when its parent process is
gone (:class:`ParentWatchdog`: checked at least every ``MP_STATUS_CHECK_INTERVAL`` seconds),
so a killed training script leaves no orphan workers behind.
"""
import os
import pickle
import queue
import random
import sys
import traceback
from multiprocessing.reduction import ForkingPickler

import numpy as np

MP_STATUS_CHECK_INTERVAL = 1.0  # seconds between liveness checks (PyTorch: 5.0)


class WorkerInfo:
    """Inside a worker: ``id``, ``num_workers``, ``seed`` and this worker's copy of ``dataset``."""

    __initialized = False

    def __init__(self, **kwargs):
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.__keys = tuple(kwargs)
        self.__initialized = True

    def __setattr__(self, key, value):
        if self.__initialized:
            raise RuntimeError(f"Cannot assign attributes to {type(self).__name__} objects")
        super().__setattr__(key, value)

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)}" for k in self.__keys)
        return f"{type(self).__name__}({fields})"


_worker_info = None


def get_worker_info():
    """In a DataLoader worker: its :class:`WorkerInfo`; in the main process: ``None``.

    An :class:`IterableDataset` uses it to give each worker its own share of the stream."""
    return _worker_info


class ExceptionWrapper:
    """An exception caught in a worker, with its traceback as text (tracebacks do not pickle)."""

    def __init__(self, where):
        kind, error, _ = sys.exc_info()
        self.exc_type = kind
        self.exc_msg = "".join(traceback.format_exception(kind, error, error.__traceback__))
        self.where = where

    def reraise(self):
        """Raise the same type of exception in this process, its message holding the worker's
        traceback (a type that cannot be built from one message becomes a RuntimeError)."""
        message = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:  # KeyError shows its message with repr(): keep the newlines
            message = _KeyErrorMessage(message)
        elif getattr(self.exc_type, "message", None):  # a class built as Error(message=...), as PyTorch
            raise self.exc_type(message=message)
        try:
            error = self.exc_type(message)
        except Exception:
            raise RuntimeError(message) from None
        raise error


class _KeyErrorMessage(str):
    def __repr__(self):
        return self


class IterableDatasetStopIteration:
    """A worker's answer once its copy of an iterable dataset is exhausted."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


class ResumeIteration:
    """Sent to persistent workers at the start of each new epoch; they echo it back."""


# ---- what crosses between the processes ---------------------------------------------------

class _SentTensor:
    """A tensor on its way from a worker: its array and whether it required a gradient."""

    def __init__(self, array, requires_grad):
        self.array, self.requires_grad = array, requires_grad


def _map_structure(value, leaf):
    """``value`` with ``leaf(x)`` applied to every item inside dicts, lists and tuples."""
    replaced = leaf(value)
    if replaced is not value:
        return replaced
    if isinstance(value, dict):
        clone = value.copy()  # keeps an OrderedDict / defaultdict its kind
        for key in clone:
            clone[key] = _map_structure(value[key], leaf)
        return clone
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return type(value)(*(_map_structure(v, leaf) for v in value))
    if type(value) in (tuple, list):
        return type(value)(_map_structure(v, leaf) for v in value)
    return value  # anything else is pickled as it is


def pack(batch):
    """``batch`` with each Tensor replaced by a :class:`_SentTensor` holding a host array."""
    from ...backend import devices
    from ...tensor import Tensor

    def leaf(x):
        if isinstance(x, Tensor):
            return _SentTensor(devices.to_host(x._data), x.requires_grad)
        return x
    return _map_structure(batch, leaf)


def unpack(batch):
    """The inverse of :func:`pack`: the arrays become (CPU) tensors of this process."""
    from ...tensor import Tensor

    def leaf(x):
        if isinstance(x, _SentTensor):
            return Tensor(x.array, requires_grad=x.requires_grad)
        return x
    return _map_structure(batch, leaf)


def dumps(obj):
    return bytes(ForkingPickler.dumps(obj))


def loads(data):
    return pickle.loads(data)


# ---- the worker process -------------------------------------------------------------------

class ParentWatchdog:
    """True while the process that started this worker still runs (its pid is our parent's)."""

    def __init__(self):
        self.parent_pid = os.getppid()
        self.parent_alive = True

    def is_alive(self):
        if self.parent_alive:
            self.parent_alive = os.getppid() == self.parent_pid
        return self.parent_alive


def _pickled(result, where):
    """``result`` pickled; what cannot be pickled becomes an error to re-raise in the main process."""
    try:
        return dumps(result)
    except Exception:
        if isinstance(result, ExceptionWrapper):  # an exception class that cannot be pickled
            result.exc_type = RuntimeError
            return dumps(result)
        return dumps(ExceptionWrapper(f"{where} (its batch could not be pickled)"))


def _seed_this_process(base_seed, worker_id):
    """Seed Python's, minidl's and NumPy's global generators for worker ``worker_id``."""
    from ... import random as minidl_random
    seed = base_seed + worker_id
    random.seed(seed)
    minidl_random.manual_seed(seed)
    np.random.seed(np.random.SeedSequence(seed).generate_state(4))
    return seed


def _one_thread_for_numba():
    """Workers share the cores: if Numba's thread pool already runs here (inherited through
    fork), use one thread per worker, as PyTorch calls ``torch.set_num_threads(1)``."""
    numba = sys.modules.get("numba")
    if numba is None:
        return
    try:
        numba.threading_layer()  # raises ValueError when the pool has not been started
    except ValueError:
        return
    numba.set_num_threads(1)


def worker_loop(iterable, dataset, index_queue, data_queue, done_event, auto_collation, collate_fn,
                drop_last, base_seed, init_fn, worker_id, num_workers, persistent_workers):
    """The body of worker process ``worker_id`` (module docstring)."""
    from ... import creation
    from .fetch import create_fetcher
    global _worker_info
    watchdog = ParentWatchdog()
    where = f"in DataLoader worker process {worker_id}"
    try:
        creation.set_default_device(None)  # tensors made here are CPU tensors (they are sent as arrays)
        _one_thread_for_numba()
        seed = _seed_this_process(base_seed, worker_id)
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)
        init_error, fetcher = None, None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = create_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last)
        except Exception:
            init_error = ExceptionWrapper(where)  # answers the first task
        iteration_end = False
        while watchdog.is_alive():
            try:
                task = index_queue.get(timeout=MP_STATUS_CHECK_INTERVAL)
            except queue.Empty:
                continue
            if isinstance(task, ResumeIteration):  # a new epoch for a persistent worker
                data_queue.put((task, None))
                iteration_end = False
                if init_error is None:
                    fetcher = create_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last)
                continue
            if task is None:  # shut down
                break
            if done_event.is_set() or iteration_end:
                continue  # the main process is shutting down, or this worker's stream ended
            task_index, sampler_output = task
            if init_error is not None:
                result, init_error = init_error, None
            else:
                try:
                    result = pack(fetcher.fetch(sampler_output))
                except StopIteration:
                    if not iterable:
                        result = ExceptionWrapper(where)
                    else:
                        result, iteration_end = IterableDatasetStopIteration(worker_id), True
                except Exception:
                    result = ExceptionWrapper(where)
            payload = _pickled(result, where)
            data_queue.put((task_index, payload))
            del result, payload, task, sampler_output
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches the whole process group; the main process handles it
    if done_event.is_set() or not watchdog.is_alive():
        # Nobody may read what is still queued: exit without waiting for the queue's thread.
        data_queue.cancel_join_thread()
        data_queue.close()
