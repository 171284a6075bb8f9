"""minidl.utils.data.DataLoader: batching, shuffling, argument errors (against PyTorch's), and
worker processes: same batches as without them, seeds, errors, clean shutdown."""
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import minidl
from minidl.utils.data import (BatchSampler, DataLoader, Dataset, IterableDataset, SequentialSampler,
                               TensorDataset, get_worker_info)


class Squares(Dataset):
    """Sample i: (i, i*i as float32 array); optionally raises at ``bad``."""

    def __init__(self, n=10, bad=None):
        self.n, self.bad = n, bad

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.bad:
            raise ValueError(f"sample {i} is bad")
        return i, np.full(3, i * i, dtype=np.float32)


class Noisy(Dataset):
    """Random augmentation from the global generators (minidl and NumPy), as real code does."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return float(minidl.rand(1).item()) + i, float(np.random.rand())


class WhoAmI(Dataset):
    """Sample i: the process that loaded it, its worker id and what worker_init_fn left."""

    def __init__(self):
        self.mark = None

    def __len__(self):
        return 6

    def __getitem__(self, i):
        info = get_worker_info()
        return os.getpid(), -1 if info is None else info.id, self.mark or ""


class Stream(IterableDataset):
    """0..n-1; with ``shard=True`` each worker yields only its share (worker_id::num_workers)."""

    def __init__(self, n, shard):
        self.n, self.shard = n, shard

    def __iter__(self):
        info = get_worker_info()
        if not self.shard or info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))

    def __len__(self):
        return self.n


class Slow(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(3)
        return i


class Dies(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        os._exit(3)


def _set_mark(worker_id):
    get_worker_info().dataset.mark = f"init {worker_id}"


def _child_pids():
    """Processes whose parent is this one (running or zombie), read from /proc on Linux."""
    if not os.path.isdir("/proc"):
        return [p.pid for p in multiprocessing.active_children()]
    me, children = os.getpid(), []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and not _is_multiprocessing_helper(name):
                children.append(int(name))
    return children


def _is_multiprocessing_helper(pid):
    """Python's resource tracker and forkserver: started once per process by spawn/forkserver, not workers."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
    except OSError:
        return False
    return b"resource_tracker" in command or b"forkserver" in command


def _assert_no_children():
    deadline = time.time() + 5
    while _child_pids() and time.time() < deadline:  # give a worker that was told to stop time to go
        time.sleep(0.05)
    assert multiprocessing.active_children() == []
    assert _child_pids() == []


def _as_lists(batches):
    return [[x.tolist() if isinstance(x, minidl.Tensor) else x for x in b] for b in batches]


# ---- in this process ------------------------------------------------------------------------

def test_batches_in_order_with_the_last_one_short():
    batches = list(DataLoader(Squares(10), batch_size=4))
    assert len(batches) == 3
    assert [b[0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[2][1].shape == (2, 3) and batches[2][1].dtype == minidl.float32
    assert batches[2][1].numpy().tolist() == [[64.0] * 3, [81.0] * 3]
    assert batches[0][0].dtype == minidl.int64


@pytest.mark.parametrize("n, batch_size, drop_last", [(10, 4, False), (10, 4, True), (8, 4, True), (3, 5, True)])
def test_len_and_drop_last(n, batch_size, drop_last):
    loader = DataLoader(Squares(n), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(batches) == (n // batch_size if drop_last else -(-n // batch_size))
    assert all(len(b[0]) == batch_size for b in batches[:-1 if not drop_last else None])


def test_batch_size_none_gives_samples_unbatched():
    samples = list(DataLoader(Squares(3), batch_size=None))
    assert [s[0] for s in samples] == [0, 1, 2]  # ints stay ints (default_convert)
    assert isinstance(samples[1][1], minidl.Tensor) and samples[1][1].tolist() == [1.0] * 3
    assert isinstance(samples[1], list)  # the tuple became a list, as in PyTorch


def test_collate_fn_and_batch_sampler():
    seen = []

    def collate(batch):
        seen.append(len(batch))
        return [i for i, _ in batch]
    loader = DataLoader(Squares(7), batch_sampler=BatchSampler(SequentialSampler(range(7)), 3, False),
                        collate_fn=collate)
    assert list(loader) == [[0, 1, 2], [3, 4, 5], [6]]
    assert seen == [3, 3, 1] and len(loader) == 3


def test_tensor_dataset_batches():
    x, y = minidl.randn(5, 2), minidl.arange(5)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=2))
    assert np.array_equal(batches[1][0].numpy(), x.numpy()[2:4])
    assert batches[2][1].tolist() == [4]


def test_shuffle_is_reproducible_with_manual_seed_and_with_a_generator():
    def epoch(**kwargs):
        return [b[0].tolist() for b in DataLoader(Squares(20), batch_size=5, shuffle=True, **kwargs)]
    minidl.manual_seed(3)
    first, second = epoch(), epoch()
    minidl.manual_seed(3)
    assert epoch() == first and epoch() == second
    assert first != second  # each epoch is a new order
    assert sorted(sum(first, [])) == list(range(20))
    g = minidl.Generator().manual_seed(5)
    with_generator = epoch(generator=g)
    minidl.manual_seed(99)  # the global generator plays no part
    assert epoch(generator=minidl.Generator().manual_seed(5)) == with_generator


def test_loader_with_a_generator_leaves_the_global_generator_alone():
    state = minidl.get_rng_state()
    list(DataLoader(Squares(6), shuffle=True, generator=minidl.Generator().manual_seed(1)))
    assert minidl.get_rng_state() == state


def test_iterable_dataset_batches_and_len():
    loader = DataLoader(Stream(7, shard=False), batch_size=3)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(loader) == 3
    assert len(DataLoader(Stream(7, shard=False), batch_size=3, drop_last=True)) == 2
    assert [b.tolist() for b in DataLoader(Stream(7, shard=False), batch_size=3, drop_last=True)] == \
        [[0, 1, 2], [3, 4, 5]]


def test_attributes_cannot_be_set_after_init(torch):
    for name in ("batch_size", "sampler", "drop_last", "dataset"):
        with pytest.raises(ValueError, match=f"{name} attribute should not be set"):
            setattr(DataLoader(Squares()), name, 2)
        with pytest.raises(ValueError, match=f"{name} attribute should not be set"):
            setattr(torch.utils.data.DataLoader(Squares()), name, 2)


@pytest.mark.parametrize("kwargs", [
    dict(shuffle=True, sampler=[0, 1]),
    dict(batch_sampler=[[0]], batch_size=2),
    dict(batch_sampler=[[0]], shuffle=True),
    dict(batch_sampler=[[0]], drop_last=True),
    dict(batch_size=None, drop_last=True),
    dict(num_workers=-1),
    dict(timeout=-1),
    dict(prefetch_factor=2),
    dict(persistent_workers=True),
    dict(multiprocessing_context="fork"),
    dict(num_workers=1, multiprocessing_context="no-such-method"),
    dict(num_workers=1, multiprocessing_context=3),
    dict(batch_size=0),
    dict(batch_size=True),
])
def test_argument_conflicts_raise_as_in_pytorch(torch, kwargs):
    with pytest.raises(Exception) as theirs:
        torch.utils.data.DataLoader(Squares(), **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        DataLoader(Squares(), **kwargs)
    if "multiprocessing_context" not in kwargs:
        assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("kwargs", [dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])])
def test_iterable_dataset_refuses_order_arguments_as_pytorch(torch, kwargs):
    class TorchStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3))
    with pytest.raises(ValueError) as theirs:
        torch.utils.data.DataLoader(TorchStream(), **kwargs)
    with pytest.raises(ValueError) as ours:
        DataLoader(Stream(3, shard=False), **kwargs)
    assert str(ours.value).split(", but got")[0] == str(theirs.value).split(", but got")[0]


def test_pin_memory_is_accepted_and_gives_the_same_batches():
    plain = _as_lists(DataLoader(Squares(5), batch_size=2))
    with pytest.warns(UserWarning, match="pin_memory"):
        pinned = _as_lists(DataLoader(Squares(5), batch_size=2, pin_memory=True))
    assert pinned == [[b[0], b[1]] for b in plain]


def test_timeout_needs_workers():
    with pytest.raises(AssertionError, match="timeout"):
        iter(DataLoader(Squares(), timeout=1))


# ---- worker processes ---------------------------------------------------------------------

def test_workers_give_the_same_batches_as_the_main_process():
    def run(num_workers):
        loader = DataLoader(Squares(23), batch_size=4, shuffle=True, num_workers=num_workers,
                            generator=minidl.Generator().manual_seed(7))
        return [(b[0].tolist(), b[1].numpy().tolist()) for b in loader]
    baseline = run(0)
    assert run(1) == baseline
    assert run(2) == baseline
    assert sorted(sum((b[0] for b in baseline), [])) == list(range(23))
    _assert_no_children()


def test_workers_with_manual_seed_follow_the_global_generator():
    def run(num_workers):
        minidl.manual_seed(11)
        return [b[0].tolist() for b in DataLoader(Squares(12), batch_size=5, shuffle=True,
                                                  num_workers=num_workers)]
    assert run(2) == run(0)


def test_random_augmentation_in_workers_is_reproducible():
    def run():
        loader = DataLoader(Noisy(), batch_size=2, num_workers=2, generator=minidl.Generator().manual_seed(3))
        return [[t.tolist() for t in b] for b in loader]
    first, again = run(), run()
    assert first == again
    values = [v for b in first for v in b[0]]
    assert len(set(np.round(np.array(values) - np.arange(8), 12))) == 8  # workers draw different numbers
    assert len({v for b in first for v in b[1]}) == 8  # from NumPy's global generator too
    other = DataLoader(Noisy(), batch_size=2, num_workers=2, generator=minidl.Generator().manual_seed(4))
    assert [[t.tolist() for t in b] for b in other] != first


def test_worker_seeds_follow_base_seed_plus_worker_id():
    class Seeds(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            info = get_worker_info()
            return info.seed, info.id, info.num_workers
    loader = DataLoader(Seeds(), batch_size=1, num_workers=2)
    rows = [[t.item() for t in b] for b in loader]
    seeds = {worker: seed for seed, worker, _ in rows}
    assert seeds[1] == seeds[0] + 1 and all(n == 2 for _, _, n in rows)
    assert [w for _, w, _ in rows] == [0, 1, 0, 1]  # round-robin, delivered in order


def test_worker_error_is_raised_with_the_worker_traceback():
    loader = DataLoader(Squares(8, bad=5), batch_size=2, num_workers=2)
    with pytest.raises(ValueError) as error:
        for _ in loader:
            pass
    message = str(error.value)
    assert "Caught ValueError in DataLoader worker process 0." in message  # batch [4, 5] is worker 0's
    assert "Original Traceback (most recent call last)" in message
    assert "in __getitem__" in message and "sample 5 is bad" in message
    _assert_no_children()


class TwoArgumentError(Exception):
    def __init__(self, a, b):
        super().__init__(a, b)


class MessageKeywordError(Exception):
    message = "set by the class"

    def __init__(self, *, message):
        super().__init__(message)


class RaisesThis(Dataset):
    def __init__(self, error):
        self.error = error

    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise self.error


@pytest.mark.parametrize("error, expected", [(TwoArgumentError(1, 2), RuntimeError),
                                             (MessageKeywordError(message="m"), MessageKeywordError)])
def test_worker_errors_of_unusual_classes_are_raised_as_pytorch(torch, error, expected):
    try:  # PyTorch's workers send this wrapper; raising it again decides the type (no worker needed)
        raise error
    except Exception:
        from torch._utils import ExceptionWrapper  # what PyTorch's workers send
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(Exception) as theirs:
        wrapped.reraise()
    with pytest.raises(Exception) as ours:
        list(DataLoader(RaisesThis(error), num_workers=1))
    assert type(ours.value) is type(theirs.value) is expected
    assert f"Caught {type(error).__name__} in DataLoader worker process 0." in str(ours.value)
    _assert_no_children()


def test_error_in_worker_init_fn_is_raised():
    def init(worker_id):
        raise KeyError(f"no {worker_id}")
    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker process"):
        list(DataLoader(Squares(4), num_workers=2, worker_init_fn=init))
    _assert_no_children()


def test_worker_init_fn_runs_in_each_worker():
    rows = list(DataLoader(WhoAmI(), batch_size=None, num_workers=2, worker_init_fn=_set_mark))
    assert [(w, mark) for _, w, mark in rows] == [(i % 2, f"init {i % 2}") for i in range(6)]
    assert {pid for pid, _, _ in rows}.isdisjoint({os.getpid()})
    assert len({pid for pid, _, _ in rows}) == 2
    main = list(DataLoader(WhoAmI(), batch_size=None))
    assert all(pid == os.getpid() and w == -1 and mark == "" for pid, w, mark in main)


def test_persistent_workers_are_reused_across_epochs():
    loader = DataLoader(WhoAmI(), batch_size=None, num_workers=2, persistent_workers=True)
    first = {pid for pid, _, _ in loader}
    second = {pid for pid, _, _ in loader}
    assert first == second and len(first) == 2
    assert set(_child_pids()) == first  # still there between epochs
    fresh = DataLoader(WhoAmI(), batch_size=None, num_workers=2)
    assert {pid for pid, _, _ in fresh}.isdisjoint({pid for pid, _, _ in fresh})  # new workers each epoch
    assert _child_pids() and set(_child_pids()) == first  # the fresh loader's workers are gone
    del loader
    _assert_no_children()


def test_persistent_workers_restart_an_iterable_dataset_each_epoch():
    loader = DataLoader(Stream(6, shard=True), batch_size=2, num_workers=2, persistent_workers=True)
    for _ in range(2):
        assert sorted(sum((b.tolist() for b in loader), [])) == list(range(6))
    del loader
    _assert_no_children()


def test_iterable_dataset_each_worker_iterates_its_own_copy():
    unsharded = sum((b.tolist() for b in DataLoader(Stream(5, shard=False), batch_size=2, num_workers=2)), [])
    assert sorted(unsharded) == sorted(list(range(5)) * 2)  # each worker yields everything
    sharded = [b.tolist() for b in DataLoader(Stream(7, shard=True), batch_size=2, num_workers=2)]
    assert sharded == [[0, 2], [1, 3], [4, 6], [5]]  # worker 0: 0 2 4 6, worker 1: 1 3 5, interleaved
    _assert_no_children()


def test_in_order_false_gives_the_same_batches():
    loader = DataLoader(Squares(9), batch_size=2, num_workers=2, in_order=False)
    assert sorted(b[0].tolist() for b in loader) == [[0, 1], [2, 3], [4, 5], [6, 7], [8]]


def test_prefetching_keeps_prefetch_factor_tasks_per_worker_outstanding():
    loader = DataLoader(Squares(40), batch_size=1, num_workers=2, prefetch_factor=3)
    it = iter(loader)
    assert it._tasks_outstanding == 6 and it._send_idx == 6
    next(it)
    assert it._send_idx == 7 and it._tasks_outstanding <= 6
    del it
    _assert_no_children()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # PyTorch's __del__ then fails
def test_prefetch_factor_zero_is_refused_when_iterating_as_pytorch(torch):
    with pytest.raises(AssertionError):
        iter(torch.utils.data.DataLoader(Squares(4), num_workers=1, prefetch_factor=0))
    with pytest.raises(AssertionError, match="prefetch_factor must be greater than 0"):
        iter(DataLoader(Squares(4), num_workers=1, prefetch_factor=0))
    _assert_no_children()


def test_no_workers_left_after_exhaustion():
    it = iter(DataLoader(Squares(5), batch_size=2, num_workers=2))
    assert len(list(it)) == 3
    _assert_no_children()  # while the iterator still exists
    with pytest.raises(StopIteration):
        next(it)


def test_no_workers_left_after_break_and_del():
    loader = DataLoader(Squares(50), batch_size=2, num_workers=2)
    it = iter(loader)
    next(it)
    assert len(_child_pids()) == 2
    del it
    _assert_no_children()
    for _ in loader:
        break
    _assert_no_children()


def test_no_workers_left_after_an_exception_in_the_loop_body():
    def train():
        for _ in DataLoader(Squares(50), batch_size=2, num_workers=2):
            raise ZeroDivisionError("in the training step")
    with pytest.raises(ZeroDivisionError):
        train()
    _assert_no_children()


def test_ctrl_c_while_waiting_stops_the_workers():
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))  # only this process, as a test can
    it = iter(DataLoader(Slow(), num_workers=2))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        next(it)
    timer.join()
    assert it._shutdown
    _assert_no_children()


def test_an_explicit_sampler_gives_the_order():
    loader = DataLoader(Squares(6), batch_size=2, sampler=[5, 0, 3, 1])
    assert [b[0].tolist() for b in loader] == [[5, 0], [3, 1]] and len(loader) == 2


def test_timeout_raises():
    loader = DataLoader(Slow(), num_workers=1, timeout=0.3)
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.3 seconds"):
        next(iter(loader))
    _assert_no_children()


def test_a_worker_that_dies_is_reported():
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly"):
        list(DataLoader(Dies(), num_workers=1))
    _assert_no_children()


def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(textwrap.dedent("""
        import os, signal, sys, time
        sys.path.insert(0, sys.argv[1])
        import minidl
        from minidl.utils.data import DataLoader
        class Data:
            def __len__(self): return 100
            def __getitem__(self, i): return i
        it = iter(DataLoader(Data(), num_workers=2))
        next(it)
        print(" ".join(str(w.pid) for w in it._workers), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind
    """))
    root = os.path.dirname(os.path.dirname(minidl.__file__))
    out = tmp_path / "pids.txt"
    with open(out, "w") as stdout:  # a file, not a pipe: orphans holding a pipe would block reading it
        subprocess.run([sys.executable, str(script), root], stdout=stdout, stderr=subprocess.DEVNULL, timeout=60)
    pids = [int(p) for p in out.read_text().split()]
    assert len(pids) == 2

    def running(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    deadline = time.time() + 10
    while any(running(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    survivors = [p for p in pids if running(p)]
    for pid in survivors:  # never leave orphans behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


def test_fork_is_the_default_start_method_on_linux():
    from minidl.utils.data.dataloader import default_context
    if sys.platform == "linux":
        assert default_context().get_start_method() == "fork"


class Convolved(Dataset):
    """Sample i: a 3x3 convolution of 8x32x32x32 values (a kernel large enough for Numba's threads)."""

    def __init__(self, x, w):
        self.x, self.w = x, w

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return minidl.functional.conv2d(self.x * (i + 1), self.w, padding=1).numpy()


def test_forked_workers_compute_kernels_after_the_parent_used_the_threads(monkeypatch):
    """A thread pool may not survive a fork (GNU OpenMP's does not): a worker forked after the
    parent ran a parallel kernel must compute on its own thread, not die or hang."""
    if sys.platform != "linux":
        pytest.skip("fork is the default start method on Linux only")
    numba_cpu = pytest.importorskip("minidl.backend.numba_cpu")
    monkeypatch.setattr(numba_cpu, "SERIAL_VALUES", 0)  # every kernel large enough for the threads
    monkeypatch.setattr(numba_cpu, "SERIAL_FLOPS", 0)
    monkeypatch.setattr(numba_cpu, "SERIAL_WINDOW_CELLS", 0)
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((8, 32, 32, 32)).astype(np.float32))
    w = minidl.tensor(rng.standard_normal((32, 32, 3, 3)).astype(np.float32))
    dataset = Convolved(x, w)
    expected = [dataset[i] for i in range(2)]  # the parent starts the pool
    got = list(DataLoader(dataset, batch_size=None, num_workers=1, timeout=60))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.numpy(), b)


def test_spawned_workers_give_the_same_batches():
    """Another start method: everything the workers need travels pickled."""
    loader = DataLoader(Squares(9), batch_size=4, shuffle=True, num_workers=1, multiprocessing_context="spawn",
                        generator=minidl.Generator().manual_seed(2))
    expected = [b[0].tolist() for b in DataLoader(Squares(9), batch_size=4, shuffle=True,
                                                  generator=minidl.Generator().manual_seed(2))]
    assert [b[0].tolist() for b in loader] == expected
    _assert_no_children()


def test_worker_info_is_read_only():
    from minidl.utils.data import WorkerInfo
    info = WorkerInfo(id=0, num_workers=2, seed=5, dataset=None)
    assert (info.id, info.num_workers, info.seed) == (0, 2, 5) and get_worker_info() is None
    with pytest.raises(RuntimeError, match="Cannot assign attributes to WorkerInfo objects"):
        info.id = 1


def test_persistent_workers_first_epoch_matches_and_later_ones_draw_no_base_seed():
    def epochs(**kwargs):
        loader = DataLoader(Squares(12), batch_size=4, shuffle=True, generator=minidl.Generator().manual_seed(8),
                            **kwargs)
        return [[b[0].tolist() for b in loader] for _ in range(2)]
    plain, persistent = epochs(), epochs(num_workers=2, persistent_workers=True)
    assert persistent[0] == plain[0]
    assert persistent[1] != plain[1]  # PyTorch too: no new base seed per epoch, so the stream shifts
    assert sorted(sum(persistent[1], [])) == list(range(12))
    _assert_no_children()
