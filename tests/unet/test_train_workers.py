"""The trainer's batches made in worker processes (``TrainConfig.workers``, ``--workers``).

A batch's randomness depends only on the seed and its place in the run (epoch, batch), so
any number of workers gives the same batches, the same weights and exact resumes.
"""
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import assert_same_state, state_arrays
from unet.checkpoint import load_checkpoint
from unet.config import ConfigError
from unet.train import BatchMaker, BatchStream, TrainConfig, _places, load_data, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Elastic deformation, border weights, dropout and a step schedule; 2 epochs of 3 steps.
TINY = dict(synthetic=6, synthetic_size=(40, 40), depth=2, base_channels=4, batch_size=2,
            epochs=2, steps_per_epoch=3, crop_size=32, val_fraction=0.34, dropout=0.3,
            schedule="step", lr_step=1, lr_gamma=0.5, lr=3e-3, border_weight=True)


def _config(out_dir, **changes):
    return TrainConfig(**{**TINY, "out_dir": str(out_dir), **changes})


def _children():
    return multiprocessing.active_children()


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """A straight run with the batches made in the main process."""
    result = train(_config(tmp_path_factory.mktemp("serial")), progress=False)
    return state_arrays(result.model), result.history


def test_two_workers_give_the_same_weights_as_the_main_process(serial, tmp_path):
    result = train(_config(tmp_path, workers=2), progress=False)
    assert result.step == 6
    assert_same_state(state_arrays(result.model), serial[0])
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in serial[1]]
    assert _children() == []


def test_the_stream_gives_the_same_arrays_for_any_number_of_workers(tmp_path):
    config = _config(tmp_path)
    data, _ = load_data(config)
    maker = BatchMaker(data, config, 32, 32)
    places = _places(0, 1, 3, 5)           # from batch 1 of epoch 0, across the epoch boundary
    assert places == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    expected = [maker.batch_at(e, b, maker.order_of_epoch(e)) for e, b in places]
    for workers in (0, 1, 2):
        stream = BatchStream(maker, places, {}, workers)
        got = list(stream)
        stream.close()
        assert len(got) == len(expected)
        for (gi, gm, gw), (ei, em, ew) in zip(got, expected):
            np.testing.assert_array_equal(gi, ei)
            np.testing.assert_array_equal(gm, em)
            np.testing.assert_array_equal(gw, ew)
    # the batches differ from place to place (the per-batch generators are not all the same)
    assert not np.array_equal(expected[0][0], expected[1][0])
    assert not np.array_equal(expected[0][0], expected[2][0])
    assert _children() == []


def test_resume_mid_epoch_with_workers_equals_the_straight_run(serial, tmp_path):
    def interrupt(info):                  # Ctrl-C after the 2nd of 3 steps of epoch 1
        if info["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path, workers=2), progress=False, callback=interrupt)
    assert _children() == []
    saved = load_checkpoint(tmp_path / "last.npz")
    assert saved["step"] == 2 and saved["epoch"] == 0
    # resumed with another number of workers: still the straight run, bit for bit
    resumed = train(_config(tmp_path, workers=1, resume=str(tmp_path / "last.npz")), progress=False)
    assert resumed.step == 6
    assert_same_state(state_arrays(resumed.model), serial[0])


def test_sigint_with_workers_finishes_the_step_then_saves(tmp_path):
    def send_sigint(info):
        if info["step"] == 4:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path, workers=2), progress=False, callback=send_sigint)
    saved = load_checkpoint(tmp_path / "last.npz")
    assert saved["step"] == 4 and saved["epoch"] == 1
    assert _children() == []


def test_an_error_in_a_worker_is_raised_with_its_traceback(tmp_path, monkeypatch):
    real = BatchMaker.batch_at

    def broken(self, epoch, b, order):
        if (epoch, b) == (0, 2):
            raise ValueError("planted augmentation failure")
        return real(self, epoch, b, order)

    monkeypatch.setattr(BatchMaker, "batch_at", broken)   # inherited by the forked workers
    with pytest.raises(ValueError) as info:
        train(_config(tmp_path, workers=2), progress=False)
    message = str(info.value)
    assert "DataLoader worker process" in message and "Original Traceback" in message
    assert "planted augmentation failure" in message and "in broken" in message
    assert _children() == []
    assert not (tmp_path / ".unet.lock").exists()


def test_workers_must_be_a_count():
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="workers must be an int >= 0"):
            TrainConfig(workers=bad)


def _group_members(pgid):
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(name))
    return members


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals and /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_process_group_stops_cleanly_with_workers(signum, tmp_path):
    """As Ctrl-C in a terminal: the signal reaches the trainer and its workers at once."""
    out = tmp_path / "run"
    path = os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    child = subprocess.Popen([sys.executable, "-m", "unet", "train", "--synthetic", "6",
                              "--synthetic-size", "32", "--depth", "2", "--base-channels", "4",
                              "--steps-per-epoch", "2", "--border-weight", "--workers", "2",
                              "--no-progress", "--epochs", "100000", "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": path}, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out / "last.npz").exists():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    os.killpg(child.pid, signum)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 128 + signum, stderr
    assert f"stopped by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr
    assert "saved" in stdout
    # the trainer announced it once; the workers left the signal to it
    assert (stdout + stderr).count("finishing this step") == 1, stdout + stderr
    saved = load_checkpoint(str(out / "last.npz"))
    assert saved["step"] >= 2
    deadline = time.monotonic() + 10
    while _group_members(child.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_members(child.pid) == []       # no worker outlived the run
