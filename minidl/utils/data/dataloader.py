"""``DataLoader``: batches from a dataset, in this process or in worker processes
(as ``torch.utils.data.DataLoader``; how it works, and what is reproducible: docs/dataloader.md).

Per epoch, ``iter(loader)`` makes an iterator:

* ``num_workers == 0``: each ``next()`` takes the next batch of indices from the batch
  sampler, fetches the samples and collates them (fetch.py), here.
* ``num_workers > 0``: worker processes do the fetching (worker.py). The iterator keeps
  ``prefetch_factor`` tasks per worker outstanding, handed out round-robin; results come back
  in any order and are returned in task order (``in_order=True``).

Each iterator draws a ``base_seed`` from the loader's ``generator`` (or the global one) when it
is made, with or without workers, so the samplers see the same random stream and give the
same batches for any ``num_workers``.
"""
import atexit
import itertools
import math
import multiprocessing
import os
import queue
import sys
import time
import warnings
import weakref

from . import worker as _worker
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .fetch import create_fetcher
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _InfiniteConstantSampler
from ...random import generator as _numpy_rng


def default_context():
    """The start method for workers when none is given: ``fork`` on Linux, else the platform's.

    fork starts a worker in milliseconds (spawn and forkserver import minidl again: ~0.5 s
    each) and accepts datasets and functions that cannot be pickled (lambdas, classes made
    in a function). It is safe here because a forked child runs every Numba kernel on its
    calling thread, never in the thread pool it inherited (which may not survive a fork:
    minidl/backend/numba_cpu.py), and OpenBLAS re-initialises itself in the child.
    Python 3.14 itself moved away from fork as the default for threads' sake; minidl's main
    process starts no threads of its own besides these pools."""
    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context()
    return multiprocessing.get_context("fork")


class DataLoader:
    """Batches of samples from ``dataset``, in the order of a sampler, optionally loaded by
    ``num_workers`` worker processes. Arguments, defaults and errors are PyTorch's.

    ``pin_memory`` and ``pin_memory_device`` are accepted and ignored: batches are ordinary
    CPU tensors (minidl has no pinned memory); move them with ``.to(device)``.
    """

    _initialized = False
    _fixed_after_init = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None,
                 persistent_workers=False, pin_memory_device="", in_order=True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order

        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in {False, None}:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, "
                                 f"but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, "
                                 f"but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler "
                                 f"option, but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive "
                             "with drop_last")

        if sampler is None:
            if self._iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self._iterator = None
        self._length_reported = None  # len(dataset) of an iterable dataset, once asked
        self._initialized = True
        self.check_worker_number_rationality()

    @property
    def multiprocessing_context(self):
        return self._multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, context):
        if context is not None:
            if self.num_workers == 0:
                raise ValueError(f"multiprocessing_context can only be used with multi-process loading "
                                 f"(num_workers > 0), but got num_workers={self.num_workers}")
            if isinstance(context, str):
                methods = multiprocessing.get_all_start_methods()
                if context not in methods:
                    raise ValueError(f"multiprocessing_context option should specify a valid start method in "
                                     f"{methods!r}, but got multiprocessing_context={context!r}")
                context = multiprocessing.get_context(context)
            if not isinstance(context, multiprocessing.context.BaseContext):
                raise TypeError(f"multiprocessing_context option should be a valid context object or a string "
                                f"specifying the start method, but got multiprocessing_context={context}")
        self._multiprocessing_context = context

    def __setattr__(self, name, value):
        if self._initialized and name in self._fixed_after_init:
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if not self.persistent_workers:
            return _MultiProcessIter(self)
        if self._iterator is None or self._iterator._shutdown:  # first epoch, or after an error
            self._iterator = _MultiProcessIter(self)
        else:
            self._iterator._reset(self)
        return self._iterator

    def __len__(self):
        if not self._iterable:
            return len(self._index_sampler)
        length = self._length_reported = len(self.dataset)
        if self.batch_size is not None:
            length = length // self.batch_size if self.drop_last else math.ceil(length / self.batch_size)
        return length

    def check_worker_number_rationality(self):
        """Warn when there are more workers than cores this process may use (as PyTorch)."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if self.num_workers > 0 and cores is not None and self.num_workers > cores:
            warnings.warn(f"This DataLoader will create {self.num_workers} worker processes in total. Our "
                          f"suggested max number of worker in current system is {cores}, which is smaller than "
                          "what this DataLoader is going to create. Please be aware that excessive worker "
                          "creation might get DataLoader running slow or even freeze, lower the worker number "
                          "to avoid potential slowness/freeze if necessary.", stacklevel=3)


class _BaseIter:
    def __init__(self, loader):
        self._dataset = loader.dataset
        self._iterable = loader._iterable
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._num_workers = loader.num_workers
        self._timeout = loader.timeout
        self._collate_fn = loader.collate_fn
        self._length_reported = loader._length_reported
        if loader.pin_memory:
            warnings.warn("'pin_memory' argument is set as true but minidl has no pinned memory: batches stay "
                          "in ordinary host memory (move them with .to(device))", stacklevel=3)
        self._sampler_iter = iter(self._index_sampler)
        # One draw per iterator, with or without workers (the samplers' stream stays the same).
        self._base_seed = int(_numpy_rng(loader.generator).integers(0, 1 << 63))
        self._num_yielded = 0

    def __iter__(self):
        return self

    def _reset(self, loader):
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._length_reported = loader._length_reported

    def _next_index(self):
        return next(self._sampler_iter)  # StopIteration ends the epoch

    def __next__(self):
        data = self._next_data()
        self._num_yielded += 1
        if self._iterable and self._length_reported is not None and self._num_yielded > self._length_reported:
            message = (f"Length of IterableDataset {self._dataset} was reported to be {self._length_reported} "
                       f"(when accessing len(dataloader)), but {self._num_yielded} samples have been fetched. ")
            if self._num_workers > 0:
                message += ("For multiprocessing data-loading, this could be caused by not properly configuring "
                            "the IterableDataset replica at each worker (see get_worker_info()).")
            warnings.warn(message, stacklevel=2)
        return data

    def __len__(self):
        return len(self._index_sampler)

    def __getstate__(self):
        raise NotImplementedError(f"{type(self).__name__} cannot be pickled")


class _SingleProcessIter(_BaseIter):
    """Loads each batch in this process when it is asked for."""

    def __init__(self, loader):
        super().__init__(loader)
        if self._timeout != 0:
            raise AssertionError(f"DataLoader: timeout={self._timeout} needs num_workers > 0")
        self._fetcher = create_fetcher(self._iterable, self._dataset, self._auto_collation, self._collate_fn,
                                       self._drop_last)

    def _next_data(self):
        index = self._next_index()
        return self._fetcher.fetch(index)  # an exhausted iterable dataset raises StopIteration


_live_iterators = weakref.WeakSet()  # shut down at interpreter exit, before multiprocessing's own clean-up
_exiting = False


@atexit.register
def _shut_down_all():
    global _exiting
    for iterator in list(_live_iterators):
        iterator._shutdown_workers()
    _exiting = True


class _MultiProcessIter(_BaseIter):
    """Loads batches in ``num_workers`` worker processes, ``prefetch_factor`` tasks per worker
    ahead, and returns them in order.

    Bookkeeping, as in PyTorch: task ``k`` is the ``k``-th batch of indices sent in this epoch;
    ``_task_info[k]`` is ``(worker,)`` while it is out and ``(worker, data)`` once it came back
    early; ``_rcvd_idx`` is the next task to return; ``_send_idx`` the next to send.
    """

    _shutdown = True  # until the workers exist

    def __init__(self, loader):
        super().__init__(loader)
        self._prefetch_factor = loader.prefetch_factor
        if self._prefetch_factor <= 0:  # PyTorch accepts 0 in the constructor and refuses it here
            raise AssertionError("prefetch_factor must be greater than 0 for worker processes, "
                                 f"got prefetch_factor={self._prefetch_factor}")
        self._in_order = loader.in_order
        self._persistent_workers = loader.persistent_workers
        context = loader.multiprocessing_context or default_context()
        self._result_queue = context.Queue()
        self._done_event = context.Event()
        self._index_queues, self._workers = [], []
        self._workers_status = []
        try:
            for worker_id in range(self._num_workers):
                index_queue = context.Queue()
                index_queue.cancel_join_thread()  # a worker that died must not block our exit
                process = context.Process(
                    target=_worker.worker_loop, daemon=True,
                    args=(self._iterable, self._dataset, index_queue, self._result_queue, self._done_event,
                          self._auto_collation, self._collate_fn, self._drop_last, self._base_seed,
                          loader.worker_init_fn, worker_id, self._num_workers, self._persistent_workers))
                process.start()
                self._index_queues.append(index_queue)
                self._workers.append(process)
                self._workers_status.append(True)
        finally:  # even if a start failed (a dataset that cannot be pickled for spawn), stop the others
            self._shutdown = False
            _live_iterators.add(self)
        self._reset(loader, first_iter=True)

    def _reset(self, loader, first_iter=False):
        super()._reset(loader)
        self._send_idx = 0
        self._rcvd_idx = 0
        self._task_info = {}
        self._tasks_outstanding = 0
        self._workers_status = [True] * self._num_workers
        self._workers_num_tasks = [0] * self._num_workers
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        if not first_iter:  # persistent workers: start a new epoch in each, and wait until they have
            for index_queue in self._index_queues:
                index_queue.put(_worker.ResumeIteration())
            waiting = self._num_workers
            while waiting > 0:
                task_index, _ = self._get_data()
                if isinstance(task_index, _worker.ResumeIteration):
                    waiting -= 1
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()

    # ---- talking to the workers ----

    def _try_get_data(self, timeout=_worker.MP_STATUS_CHECK_INTERVAL):
        """``(True, message)``, or ``(False, None)`` after ``timeout`` seconds; a worker that died
        raises RuntimeError."""
        try:
            return True, self._result_queue.get(timeout=timeout)
        except queue.Empty:
            failed = [w for i, w in enumerate(self._workers) if self._workers_status[i] and not w.is_alive()]
            for w in failed:
                self._mark_worker_as_unavailable(self._workers.index(w))
            if failed:
                pids = ", ".join(str(w.pid) for w in failed)
                codes = ", ".join(str(w.exitcode) for w in failed)
                raise RuntimeError(f"DataLoader worker (pid(s) {pids}) exited unexpectedly "
                                   f"(exit code(s) {codes})") from None
            return False, None

    def _get_data(self):
        if self._timeout > 0:
            received, message = self._try_get_data(self._timeout)
            if not received:
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds")
            return message
        while True:
            received, message = self._try_get_data()
            if received:
                return message

    def _try_put_index(self):
        """Send the next batch of indices to the next active worker, round-robin."""
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):
            worker_id = next(self._worker_cycle)
            if not self._workers_status[worker_id]:
                continue
            if self._in_order:
                break
            if self._workers_num_tasks[worker_id] < self._prefetch_factor * self._num_workers // sum(
                    self._workers_status):
                break
        else:
            return  # no worker is active any more
        self._index_queues[worker_id].put((self._send_idx, index))
        self._task_info[self._send_idx] = (worker_id,)
        self._workers_num_tasks[worker_id] += 1
        self._tasks_outstanding += 1
        self._send_idx += 1

    def _next_data(self):
        while True:
            # skip tasks of workers whose iterable dataset ended (their answers will not come)
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info and (len(info) == 2 or self._workers_status[info[0]]):
                    break
                self._task_info.pop(self._rcvd_idx, None)
                self._rcvd_idx += 1
            else:
                if not self._persistent_workers:
                    self._shutdown_workers()
                raise StopIteration
            if len(self._task_info[self._rcvd_idx]) == 2:  # it came back earlier
                worker_id, data = self._task_info.pop(self._rcvd_idx)
                self._rcvd_idx += 1
                return self._process_data(data, worker_id)
            task_index, payload = self._get_data()
            self._tasks_outstanding -= 1
            data = _worker.loads(payload)
            if isinstance(data, _worker.IterableDatasetStopIteration):
                if self._persistent_workers:
                    self._workers_status[data.worker_id] = False
                else:
                    self._mark_worker_as_unavailable(data.worker_id)
                self._try_put_index()
                continue
            if task_index == self._rcvd_idx or not self._in_order:
                worker_id = self._task_info.pop(task_index)[0]
                if task_index == self._rcvd_idx:
                    self._rcvd_idx += 1
                return self._process_data(data, worker_id)
            self._task_info[task_index] += (data,)  # early: keep it until its turn

    def _process_data(self, data, worker_id):
        self._workers_num_tasks[worker_id] -= 1
        self._try_put_index()
        if isinstance(data, _worker.ExceptionWrapper):
            data.reraise()
        return _worker.unpack(data)

    def _mark_worker_as_unavailable(self, worker_id):
        self._index_queues[worker_id].put(None)  # it exits after its current task
        self._workers_status[worker_id] = False

    def __next__(self):
        if self._shutdown:  # after an error (below): this epoch is over
            raise StopIteration
        try:
            return super().__next__()
        except StopIteration:
            raise
        except BaseException:
            # A worker's error, a dead worker, a timeout, Ctrl-C while waiting: stop the workers
            # now. The exception's traceback refers to this iterator and may live long (a
            # debugger, a notebook), so waiting for __del__ could leave them running. (PyTorch
            # keeps them, and a next() after a worker's error goes on with the next batch.)
            self._shutdown_workers()
            raise

    def _shutdown_workers(self):
        """Stop every worker and wait for it (no zombies): ask politely, then terminate."""
        if self._shutdown or _exiting:
            return
        self._shutdown = True
        _live_iterators.discard(self)
        try:
            self._done_event.set()
            for worker_id in range(len(self._workers)):
                if self._persistent_workers or self._workers_status[worker_id]:
                    self._mark_worker_as_unavailable(worker_id)
            deadline = time.monotonic() + _worker.MP_STATUS_CHECK_INTERVAL  # one second for all of them
            for process in self._workers:
                process.join(timeout=max(0.0, deadline - time.monotonic()))
            for index_queue in self._index_queues:
                index_queue.cancel_join_thread()
                index_queue.close()
            self._result_queue.cancel_join_thread()
            self._result_queue.close()
        finally:
            for process in self._workers:
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=_worker.MP_STATUS_CHECK_INTERVAL)
                    if process.is_alive():
                        process.kill()
                        process.join()

    def __del__(self):
        self._shutdown_workers()
