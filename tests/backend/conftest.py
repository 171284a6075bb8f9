"""Every test in this folder that can run a Numba kernel runs twice: the parallel kernels on Numba's
threads, and their serial twins on the calling thread (minidl/backend/numba_cpu.py, "one thread or
all"), whatever the size of the test's arrays."""
import pytest

# run once: the CUDA kernels' tests (no Numba kernel runs there) and the thread pool's (its kernels
# run in subprocesses, or with thresholds the test sets itself)
ONCE = {"test_cupy_kernels", "test_cuda_sources", "test_thread_pool"}


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__.rsplit(".", 1)[-1] not in ONCE:
        metafunc.parametrize("numba_threads_or_not", ["threads", "one thread"], indirect=True)


@pytest.fixture(autouse=True)
def numba_threads_or_not(request, monkeypatch):
    """'threads': every kernel through Numba's threads (no work is small); 'one thread': every
    kernel's serial twin (no work is large); None for the modules run once. Nothing to set without Numba."""
    way = getattr(request, "param", None)
    try:
        from minidl.backend import numba_cpu
    except ImportError:
        return way
    if way is not None:
        small = 0 if way == "threads" else 2**62
        monkeypatch.setattr(numba_cpu, "SERIAL_VALUES", small)
        monkeypatch.setattr(numba_cpu, "SERIAL_FLOPS", small)
        monkeypatch.setattr(numba_cpu, "SERIAL_WINDOW_CELLS", small)
    return way
