"""``mpiexec -n 2 unet train``: the same run as one process on the same global batches, files
from rank 0 only, a signal to one rank stopping both, resuming with another number of ranks,
and an error on one rank ending the job in seconds.

The one-process runs are made here, in this process, through the command line's ``main``; the
two-rank runs through tests/distributed/scripts/unet_train.py (which calls the same ``main``)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minidl
from unet.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tests", "distributed", "scripts", "unet_train.py")
# Tiny and quick: depth 2, base 4, 64-pixel synthetic images; a global batch of 3 is shared
# 2 + 1 between two ranks (uneven shares), and so are the 3 validation images; border weights
# and the elastic deformation on.
RECIPE = ["--synthetic", "9", "--val-fraction", "0.34", "--synthetic-size", "64", "--depth", "2", "--base-channels", "4",
          "--batch-size", "3", "--steps-per-epoch", "2", "--border-weight", "--no-progress"]
FILES = {"last.npz", "best.npz", "history.csv", "training.png"}


def _weights(path):
    return {k: v.numpy() for k, v in minidl.load(str(path))["model"].items()}


def assert_close_weights(a, b):
    """Two checkpoints' weights equal up to float32 rounding."""
    a, b = _weights(a), _weights(b)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def _environment():
    return dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                PYTHONPATH=ROOT)


def _command(n, *args):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return [mpiexec, "-n", str(n), sys.executable, SCRIPT, "train", *args]


def one_process(*args):
    assert main(["train", *RECIPE, *args]) == 0


def test_two_ranks_train_the_one_process_run_and_only_rank_0_writes(mpirun, tmp_path, capsys):
    one_process("--epochs", "2", "--out", str(tmp_path / "one"))
    capsys.readouterr()
    done = mpirun("unet_train", "train", *RECIPE, "--epochs", "2", "--out", tmp_path / "two",
                  timeout=120)
    assert_close_weights(tmp_path / "one" / "last.npz", tmp_path / "two" / "last.npz")
    # rank 0 alone wrote and printed; rank 1 said nothing
    assert set(os.listdir(tmp_path / "two")) == FILES
    history = (tmp_path / "two" / "history.csv").read_text().splitlines()
    assert len(history) == 3, history
    for line in ("epoch 1/2", "epoch 2/2", "best dice", "train: 6 training images, 3 validation"):
        assert done.stdout.count(line) == 1, done.stdout
    assert done.stderr == ""
    # the logged losses and validation scores are the one-process run's
    one = (tmp_path / "one" / "history.csv").read_text().splitlines()
    for mine, theirs in zip(history[1:], one[1:]):
        a = np.array(mine.split(",")[:-1], dtype=float)       # all but the seconds
        b = np.array(theirs.split(",")[:-1], dtype=float)
        np.testing.assert_allclose(a, b, rtol=1e-4)

    # the other way round: a one-process checkpoint continued by two ranks
    done = mpirun("unet_train", "train", "--resume", tmp_path / "one" / "last.npz", "--epochs", "3",
                  "--out", tmp_path / "one_then_two", "--no-progress", timeout=120)
    one_process("--epochs", "3", "--out", str(tmp_path / "straight"))
    assert_close_weights(tmp_path / "straight" / "last.npz", tmp_path / "one_then_two" / "last.npz")


def _rank_pid(job, rank):
    """The process id of ``rank`` of the job whose ``mpiexec`` is ``job``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as fh:
                    environ = fh.read().split(b"\0")
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    cmdline = fh.read()
            except OSError:
                continue
            if (b"unet_train.py" in cmdline and f"PMI_RANK={rank}".encode() in environ
                    and _descends_from(int(name), job.pid)):
                return int(name)
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} of mpiexec {job.pid}")


def _descends_from(pid, ancestor):
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
        if pid == ancestor:
            return True
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals and /proc")
@pytest.mark.parametrize("target", ["SIGTERM to rank 1", "SIGINT to mpiexec"])
def test_a_signal_to_one_process_stops_every_rank_and_saves_once(mpirun, tmp_path, target):
    out = tmp_path / "run"
    job = subprocess.Popen(_command(2, *RECIPE, "--epochs", "100000", "--out", str(out)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=_environment(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not (out / "last.npz").exists():      # one epoch done: training is under way
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.05)
        if target == "SIGTERM to rank 1":
            signum = signal.SIGTERM
            os.kill(_rank_pid(job, 1), signum)
        else:                                      # Ctrl-C: mpiexec passes it to every rank
            signum = signal.SIGINT
            job.send_signal(signum)
        stdout, stderr = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    assert stderr.count(f"stopped by {name}") == 1, stderr      # said once, by rank 0
    assert stdout.count("saved") == 1 and stdout.count("finishing this step") == 1, stdout
    assert "Traceback" not in stderr and "Abort" not in stderr
    assert set(os.listdir(out)) == FILES
    saved = minidl.load(str(out / "last.npz"))
    assert int(saved["step"]) >= 2
    if target != "SIGTERM to rank 1":
        return
    # one process continues the two ranks' checkpoint to the weights of a straight run
    total = str(int(saved["step"]) + 3)
    assert main(["train", "--resume", str(out / "last.npz"), "--steps", total, "--no-progress"]) == 0
    one_process("--steps", total, "--out", str(tmp_path / "straight"))
    assert_close_weights(tmp_path / "straight" / "last.npz", out / "last.npz")


@pytest.mark.parametrize("kind", ["RuntimeError", "DataError"])
def test_an_error_on_one_rank_ends_the_job_within_ten_seconds(mpirun, tmp_path, kind):
    done = mpirun("unet_train", "train", *RECIPE, "--epochs", "100000", "--out", tmp_path / "run",
                  check=False, timeout=60, env={"FAIL_ON_RANK": "1", "FAIL_WITH": kind})
    ended = time.time()
    assert done.returncode != 0
    failing = re.search(r"failing at ([0-9.]+)", done.stderr)
    assert failing, f"rank 1's message did not reach mpiexec's output:\n{done.stderr}"
    failed_at = float(failing.group(1))
    assert ended - failed_at < 10, f"the job took {ended - failed_at:.1f} s to end after the failure"
    assert "injected failure on rank 1" in done.stderr, done.stderr
    if kind == "DataError":            # reported by the command line, which then ends the job
        assert done.returncode == 2
        assert "unet train (rank 1 of 2): error: injected failure on rank 1" in done.stderr


def test_a_batchnorm_model_trains_with_global_batch_statistics(mpirun, tmp_path):
    one_process("--batch-norm", "--epochs", "1", "--out", str(tmp_path / "one"))
    mpirun("unet_train", "train", *RECIPE, "--batch-norm", "--epochs", "1", "--out", tmp_path / "two",
           timeout=120)
    # the weights and BatchNorm's running statistics (buffers) are the one-process run's
    assert_close_weights(tmp_path / "one" / "last.npz", tmp_path / "two" / "last.npz")


def test_a_launcher_whose_job_mpi_does_not_see_is_an_error(mpirun, tmp_path):
    """An mpiexec of another MPI library starts N processes that each see a job of one: as if
    PMI_SIZE said 2 to a process MPI calls a singleton."""
    env = dict(_environment(), PMI_SIZE="2", PMI_RANK="0")
    done = subprocess.run([sys.executable, SCRIPT, "train", *RECIPE, "--epochs", "1", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the launcher started 2 processes but MPI sees a job of 1" in done.stderr
    assert not (tmp_path / "run" / "last.npz").exists()
