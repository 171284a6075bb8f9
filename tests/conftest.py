"""Shared fixtures: fixed seeds, and helpers that compare minidl with PyTorch."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minidl
from minidl.backend import available_backends, deferred_checks, use_backend

# Op tests combine hypothesis with the per-test `backend` fixture; the fixture is
# set once per test function, which is what we want (every example runs on it).
settings.register_profile("minidl", suppress_health_check=[HealthCheck.function_scoped_fixture],
                          deadline=None)
settings.load_profile("minidl")


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test starts from the same random state, and no device value check left unread by
    an earlier test (minidl/backend/deferred_checks.py) raises in it."""
    minidl.manual_seed(0)
    yield
    deferred_checks.discard_pending()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def torch():
    """PyTorch, the optional reference: a test that asks for it is skipped where it is not
    installed. Test files ask for it per test (never at module level), so that their
    gradient checks and property tests run without PyTorch too."""
    return pytest.importorskip("torch")


# The devices every op, nn and optim test runs on (their folders' conftest.py asks for the
# ``device`` fixture for every test): the CPU, the strict test device (NumPy arrays that refuse
# any implicit trip to NumPy, as CuPy's do: minidl/backend/strict.py) and a GPU where there is one.
# MINIDL_TEST_DEVICES=cuda (a comma-separated list) runs them on those devices only: the GPU suite
# (benchmarks/gpu_suite.py) runs the op suite on cuda alone that way.
def _test_devices():
    chosen = os.environ.get("MINIDL_TEST_DEVICES", "").strip()
    if not chosen:
        return ["cpu", "strict"] + (["cuda"] if minidl.cuda.is_available() else [])
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    for name in names:
        if name not in ("cpu", "strict", "cuda"):
            raise pytest.UsageError(f"MINIDL_TEST_DEVICES: unknown device {name!r} in {chosen!r}; "
                                    "expected a comma-separated list of cpu, strict, cuda")
    if "cuda" in names and not minidl.cuda.is_available():
        raise pytest.UsageError("MINIDL_TEST_DEVICES names cuda, but the cuda device is not "
                                "available here: " + minidl.backend.devices.cuda_problem())
    return names


DEVICES = _test_devices()


def pytest_generate_tests(metafunc):
    """``device`` and ``backend`` together: each CPU kernel backend on the CPU, and each other
    device once (it has its own kernels: the strict device the reference, cuda the CUDA ones)."""
    names = metafunc.fixturenames
    if "device" in names and "backend" in names:
        combos = [("cpu", b) for b in available_backends() if "cpu" in DEVICES] + \
                 [(d, "reference") for d in DEVICES if d != "cpu"]
        metafunc.parametrize(("device", "backend"), combos, indirect=True,
                             ids=[f"cpu-{b}" if d == "cpu" else d for d, b in combos])
    elif "device" in names:
        metafunc.parametrize("device", DEVICES, indirect=True)
    elif "backend" in names:
        metafunc.parametrize("backend", available_backends(), indirect=True)


@pytest.fixture
def device(request):
    """Runs a test on one device: tensors made without ``device=`` are made there."""
    minidl.set_default_device(request.param)
    yield request.param
    minidl.set_default_device(None)


@pytest.fixture
def backend(request):
    """Runs a test with one CPU kernel backend (reference, numba)."""
    with use_backend(request.param):
        yield request.param
