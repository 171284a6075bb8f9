"""Small work on the calling thread: the serial twins of the Numba backend's parallel kernels
(minidl/backend/numba_cpu.py, "one thread or all"). That every kernel computes the same in both
ways is the rest of this folder's business: each of its tests runs once per way (conftest.py)."""
import inspect
import re

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from minidl.backend import kernel_module  # noqa: E402

numba_cpu = kernel_module("numba")


def parallel_kernels():
    return {name: kernel for name, kernel in vars(numba_cpu).items()
            if isinstance(kernel, numba.core.registry.CPUDispatcher) and kernel.targetoptions.get("parallel")}


def test_every_parallel_kernel_is_called_through_the_choice():
    """No wrapper calls a parallel kernel directly: each call is _by_values(kernel, ...)(...),
    _by_flops(kernel, ...)(...) or _by_window_cells(kernel, ...)(...), or goes through
    _run_elementwise, which calls _by_values; so small work never pays for the threads."""
    source = inspect.getsource(numba_cpu)
    assert re.search(r"_by_values\(kernel, ", inspect.getsource(numba_cpu._run_elementwise))
    for name in parallel_kernels():
        direct = re.findall(rf"^.*(?<!def )\b{name}\(.*$", source, flags=re.MULTILINE)
        assert not direct, f"{name} is called directly: {direct}"
        assert re.search(rf"(_by_(values|flops|window_cells)|_run_elementwise)\({name},", source), \
            f"{name} is never called"


def test_the_twin_is_the_same_function_compiled_without_parallel():
    for name, kernel in parallel_kernels().items():
        twin = numba_cpu._serial_twin(kernel)
        assert twin is numba_cpu._serial_twin(kernel)  # made once
        assert twin.py_func.__code__ is kernel.py_func.__code__, name
        assert not twin.targetoptions.get("parallel"), name
        assert twin.py_func.__qualname__ != kernel.py_func.__qualname__, name  # its own cache entries


@pytest.fixture
def choices(monkeypatch):
    """'twin' for every serial twin the wrappers chose (spying on _serial_twin); the threads leave
    no mark."""
    ran = []
    real_twin = numba_cpu._serial_twin

    def spy(kernel):
        ran.append("twin")
        return real_twin(kernel)
    monkeypatch.setattr(numba_cpu, "_serial_twin", spy)
    return ran


def test_small_work_runs_the_twin_and_large_work_the_threads(monkeypatch, choices):
    monkeypatch.setattr(numba_cpu, "SERIAL_VALUES", 1000)
    x = np.random.default_rng(0).standard_normal(999).astype(np.float32)
    out = np.empty_like(x)
    assert numba_cpu.relu(x, out) and choices == ["twin"]
    np.testing.assert_array_equal(out, np.where(x < 0, 0, x))
    big = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    out = np.empty_like(big)
    assert numba_cpu.relu(big, out) and choices == ["twin"]  # no twin asked for
    np.testing.assert_array_equal(out, np.where(big < 0, 0, big))


def test_the_direct_convolution_chooses_by_its_arithmetic(monkeypatch, choices):
    """2x3x5x5 input, 4 filters: 18 * 2*5*5 * 3 * 4 = 10800 floating-point operations."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    monkeypatch.setattr(numba_cpu, "SERIAL_FLOPS", 10801)
    small = numba_cpu.direct_conv2d(x, w, 1, 1, 1, 1, 1, 5, 5)
    assert choices == ["twin"]
    monkeypatch.setattr(numba_cpu, "SERIAL_FLOPS", 10800)
    large = numba_cpu.direct_conv2d(x, w, 1, 1, 1, 1, 1, 5, 5)
    assert choices == ["twin"]
    np.testing.assert_array_equal(small, large)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooling_chooses_by_its_window_cells(monkeypatch, choices, pool):
    """2x3x9x9 input, 3x3 windows at stride 2: 2*3*4*4 outputs * 9 cells = 864 cells, far below
    SERIAL_VALUES' values: a pooling cell costs ~5 ns, so pooling counts cells, not values."""
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    monkeypatch.setattr(numba_cpu, "SERIAL_VALUES", 2**62)  # by values, everything would be small
    if pool == "max":
        def run():
            return numba_cpu.maxpool2d_forward(x, 3, 3, 2, 2, 0, 0, 1, 1, 4, 4)
    else:
        def run():
            y = numba_cpu.avgpool2d_forward(x, 3, 3, 2, 2, 0, 0, 4, 4, True, None)
            return y, numba_cpu.avgpool2d_backward(y, x.shape, 3, 3, 2, 2, 0, 0, 4, 4, True, None)
    monkeypatch.setattr(numba_cpu, "SERIAL_WINDOW_CELLS", 865)
    small = run()
    assert choices == ["twin"] * (1 if pool == "max" else 2)
    monkeypatch.setattr(numba_cpu, "SERIAL_WINDOW_CELLS", 864)
    large = run()
    assert choices == ["twin"] * (1 if pool == "max" else 2)  # none added: the threads ran
    for a, b in zip(small, large):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stride", [1, 2])
def test_the_depthwise_convolution_chooses_by_its_window_cells(monkeypatch, choices, stride):
    """2x3x9x9 input, 3x3 kernel, padding 1: 2*3*OH*OW outputs * 9 taps (4374 cells at stride 1,
    1350 at stride 2), far below SERIAL_VALUES' values: the depthwise kernels' threads win from
    ~2**14 cells, so forward, dx and dweight count cells, as pooling does."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    OH = (9 + 2 - 3) // stride + 1
    dy = rng.standard_normal((2, 3, OH, OH)).astype(np.float32)
    cells = 2 * 3 * OH * OH * 9
    monkeypatch.setattr(numba_cpu, "SERIAL_VALUES", 2**62)  # by values, everything would be small
    geometry = (stride, stride, 1, 1, 1, 1)  # SH, SW, PH, PW, DH, DW

    def run():
        return (numba_cpu.depthwise_conv2d(x, w, *geometry, OH, OH),
                numba_cpu.depthwise_conv2d_dx(dy, w, x.shape, *geometry),
                numba_cpu.depthwise_conv2d_dweight(dy, x, 3, 3, *geometry))
    monkeypatch.setattr(numba_cpu, "SERIAL_WINDOW_CELLS", cells + 1)
    small = run()
    assert choices == ["twin"] * 3
    monkeypatch.setattr(numba_cpu, "SERIAL_WINDOW_CELLS", cells)
    large = run()
    assert choices == ["twin"] * 3  # none added: the threads ran
    for a, b in zip(small, large):
        np.testing.assert_array_equal(a, b)
