"""Shared fixtures: fixed seeds, and helpers that compare minidl with PyTorch."""
import numpy as np
import pytest

import minidl
from minidl.backend import available_backends, use_backend


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test starts from the same random state."""
    minidl.manual_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(params=available_backends())
def backend(request):
    """Runs a test once per kernel backend (reference, numba, cupy where available)."""
    with use_backend(request.param):
        yield request.param
