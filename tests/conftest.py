"""Shared fixtures: fixed seeds, and helpers that compare minidl with PyTorch."""
import numpy as np
import pytest

import minidl


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test starts from the same random state."""
    minidl.manual_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
