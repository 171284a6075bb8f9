"""Every test in this folder runs once per device (the ``device`` fixture, tests/conftest.py)."""
import pytest


@pytest.fixture(autouse=True)
def _on_every_device(device):
    """Asks for ``device``, so that each test here is parametrized over the devices."""
