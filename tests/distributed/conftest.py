"""The ``mpirun`` fixture: tests/mpi_helpers.py's ``run_mpi``, skipped with the reason when
mpiexec or mpi4py is missing (``pip install -e '.[dist]'`` brings both)."""

import pytest

from mpi_helpers import run_mpi, why_no_mpi


@pytest.fixture
def mpirun():
    reason = why_no_mpi()
    if reason:
        pytest.skip(reason)
    return run_mpi
