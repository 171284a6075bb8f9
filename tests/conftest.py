"""Shared fixtures: fixed seeds, and helpers that compare minidl with PyTorch."""
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minidl
from minidl.backend import available_backends, use_backend

# Op tests combine hypothesis with the per-test `backend` fixture; the fixture is
# set once per test function, which is what we want (every example runs on it).
settings.register_profile("minidl", suppress_health_check=[HealthCheck.function_scoped_fixture],
                          deadline=None)
settings.load_profile("minidl")


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test starts from the same random state."""
    minidl.manual_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def torch():
    """PyTorch, the optional reference: a test that asks for it is skipped where it is not
    installed. Test files ask for it per test (never at module level), so that their
    gradient checks and property tests run without PyTorch too."""
    return pytest.importorskip("torch")


@pytest.fixture(params=available_backends())
def backend(request):
    """Runs a test once per kernel backend (reference, numba, cupy where available)."""
    with use_backend(request.param):
        yield request.param
