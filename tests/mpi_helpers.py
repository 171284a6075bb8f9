"""Running a script under ``mpiexec -n N`` from a test.

``run_mpi`` (and the ``mpirun`` fixture of tests/distributed/conftest.py) runs
tests/distributed/scripts/<name>.py (or any path) on N ranks and returns the finished process;
``why_no_mpi`` says why it cannot (no mpiexec or mpi4py: ``pip install -e '.[dist]'``). Each script writes what it computed to the
folder given as its first argument, and the test compares that with one process's result.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).parent / "distributed" / "scripts"
ROOT = Path(__file__).parents[1]


def find_mpiexec():
    """mpiexec beside this Python (the mpich wheel puts it there), else on PATH."""
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))


def why_no_mpi():
    if find_mpiexec() is None:
        return "mpiexec is not installed (pip install -e '.[dist]')"
    try:
        import mpi4py
        del mpi4py
    except ImportError:
        return "mpi4py is not installed (pip install -e '.[dist]')"
    return None


def run_mpi(script, *args, n=2, timeout=120, env=None, check=True):
    """``mpiexec -n n python script args...`` with one thread per rank; the finished process."""
    script = SCRIPTS / f"{script}.py" if "/" not in str(script) else Path(script)
    environment = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
                       OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT), **(env or {}))
    command = [find_mpiexec(), "-n", str(n), sys.executable, str(script), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment,
                          cwd=str(ROOT))
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited with {done.returncode}\n"
                             f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done
