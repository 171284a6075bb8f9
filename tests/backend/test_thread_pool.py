"""Numba's thread pool (minidl/backend/numba_cpu.py, "Threads"): TBB where the tbb package is
installed, else workqueue, never OpenMP unless asked; the user's choice kept; and a forked child
never touches the pool it inherited."""
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from minidl.backend import kernel_module  # noqa: E402

numba_cpu = kernel_module("numba")
REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER = "import numba, minidl.backend as b; b.kernel_module('numba'); print(numba.threading_layer())"


def _python(code, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY", "MINIDL_BACKEND")}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, env={**environment, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_pool_is_tbb_where_the_package_is_installed_else_workqueue():
    try:
        metadata.version("tbb")
        expected = "tbb"
    except metadata.PackageNotFoundError:
        expected = "workqueue"
    assert _python(LAYER) == expected


def test_without_tbb_the_pool_is_workqueue_not_openmp():
    """GNU OpenMP's runtime is shared with PyTorch's wheel: a wait policy set by whichever loads
    first (docs/performance.md, "Threads")."""
    hide_tbb = ("import sys, importlib.metadata as m; m.files = lambda name: None; "
                "sys.modules['numba.np.ufunc.tbbpool'] = None; ")  # no tbb package, no TBB layer
    assert _python(hide_tbb + LAYER) == "workqueue"


def test_the_users_choice_of_layer_is_kept():
    assert _python(LAYER, NUMBA_THREADING_LAYER="workqueue") == "workqueue"
    assert _python(LAYER, NUMBA_THREADING_LAYER_PRIORITY="workqueue omp tbb") == "workqueue"


def test_the_wait_policy_asked_of_openmp_is_not_left_in_the_environment():
    """OpenMP reads OMP_WAIT_POLICY=passive when the pool starts; libraries loaded later keep their default."""
    assert _python(LAYER.replace("print(numba.threading_layer())",
                                 "import os; print(os.environ.get('OMP_WAIT_POLICY'))")) == "None"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_every_kernel_on_its_calling_thread(monkeypatch):
    """A pool may not survive a fork (GNU OpenMP's does not: Numba ends a child that launches a
    parallel loop in it): after the parent used the pool, a forked child computes the same on the
    serial twins."""
    monkeypatch.setattr(numba_cpu, "SERIAL_VALUES", 0)  # every kernel large enough for the threads
    x = np.random.default_rng(0).standard_normal((4, 64, 64)).astype(np.float32)
    expected = np.empty_like(x)
    assert numba_cpu.relu(x, expected)  # the parent starts (and uses) the pool
    assert numba_cpu._by_values(numba_cpu._relu, x) is numba_cpu._relu
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the choice and the values, never return into pytest
        status = 1
        try:
            out = np.empty_like(x)
            chose_twin = numba_cpu._by_values(numba_cpu._relu, x) is numba_cpu._serial_twin(numba_cpu._relu)
            numba_cpu.relu(x, out)
            os.write(write, bytes([chose_twin]) + out.tobytes())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"the child ended with status {status}"
    assert message[0] == 1, "the child chose the thread pool"
    np.testing.assert_array_equal(np.frombuffer(message[1:], dtype=np.float32).reshape(x.shape), expected)
