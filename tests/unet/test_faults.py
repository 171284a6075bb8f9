"""Faults a training run survives: signals, kill -9 between the two checkpoint writes, a
second run on the same folder, temporary files left by a killed write, resuming from
another folder. The signal and kill tests run the real command line in a child process."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import minidl
from unet.__main__ import main
from unet.checkpoint import load_checkpoint
from unet.files import RunLock, RunLockError, atomic_write, remove_orphans
from unet.train import TrainConfig, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["--synthetic", "6", "--synthetic-size", "32", "--depth", "2", "--base-channels", "4",
         "--steps-per-epoch", "2", "--no-elastic", "--no-progress"]


def _env():
    path = os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path}


def _config(out, **changes):
    values = dict(synthetic=6, synthetic_size=(32, 32), depth=2, base_channels=4,
                  steps_per_epoch=2, elastic=False, out_dir=str(out), epochs=4)
    values.update(changes)
    return TrainConfig(**values)


def _temporaries(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


# ---------------------------------------------------------------------------------- signals
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_saves_last_npz_and_exits_with_128_plus_the_signal(signum, tmp_path):
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-m", "unet", "train", *SMALL, "--epochs", "100000",
                              "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 120
    while not (out / "last.npz").exists():       # at least one epoch done: training is under way
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    child.send_signal(signum)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 128 + signum, stderr
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    assert "saved" in stdout and "--resume" in stdout
    saved = load_checkpoint(str(out / "last.npz"))
    assert saved["step"] >= 2 and saved["epoch"] == len(saved["history"]) >= 1
    assert _temporaries(out) == [] and not (out / ".unet.lock").exists()


# --------------------------------------------------------------- kill -9 between the writes
_KILL_AFTER_BEST = textwrap.dedent("""
    import os, signal, sys
    import unet.train
    from unet.__main__ import main
    real_save = unet.train.save_checkpoint
    def save_then_die(path, **kwargs):
        real_save(path, **kwargs)
        if os.path.basename(path) == "best.npz" and kwargs["epoch"] == int(os.environ["DIE_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)      # before last.npz is written
    unet.train.save_checkpoint = save_then_die
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_between_best_and_last_leaves_a_pair_that_resumes_consistently(tmp_path):
    out = tmp_path / "run"
    args = ["train", *SMALL, "--epochs", "3", "--monitor", "val_loss", "--out", str(out)]
    child = subprocess.run([sys.executable, "-c", _KILL_AFTER_BEST, *args], capture_output=True,
                           text=True, env={**_env(), "DIE_AT": "2"}, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr
    best, last = load_checkpoint(str(out / "best.npz")), load_checkpoint(str(out / "last.npz"))
    assert best["epoch"] == 2 and last["epoch"] == 1       # killed between the two writes
    assert best["best"]["epoch"] == 2

    resumed = train(_config(out, epochs=3, monitor="val_loss", resume=str(out / "last.npz")),
                    progress=False)
    straight = train(_config(tmp_path / "straight", epochs=3, monitor="val_loss"), progress=False)
    # the resumed run knows the best that best.npz holds, and ends as the straight run does
    assert resumed.best == straight.best
    final_best = load_checkpoint(str(out / "best.npz"))
    assert final_best["best"] == load_checkpoint(str(tmp_path / "straight" / "best.npz"))["best"]
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


# --------------------------------------------------------------------- one run per folder
def test_a_second_run_on_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".unet.lock").write_text(str(os.getpid()))      # a live process holds it
    with pytest.raises(RunLockError, match="is in use by another run"):
        train(_config(out, epochs=1), progress=False)
    assert not (out / "last.npz").exists()
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 2
    assert "is in use by another run" in capsys.readouterr().err


def test_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / ".unet.lock").write_text(str(gone.pid))         # its process has exited
    train(_config(out, epochs=1), progress=False)
    assert (out / "last.npz").exists() and not (out / ".unet.lock").exists()


def test_lock_is_released_when_the_run_fails(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with RunLock(str(tmp_path)):
            raise RuntimeError("boom")
    assert not (tmp_path / ".unet.lock").exists()
    train(_config(out, epochs=1), progress=False)          # and the folder is usable again


# ------------------------------------------------------------------------- temporary files
def test_orphaned_temporaries_are_removed_and_others_kept(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    orphans = [f".last.npz.{'a' * 32}.tmp", f".history.csv.{'0123456789abcdef' * 2}.tmp"]
    for name in orphans + ["notes.tmp", ".hidden.tmp"]:
        (out / name).write_bytes(b"half a file")
    train(_config(out, epochs=1), progress=False)
    assert sorted(_temporaries(out)) == [".hidden.tmp", "notes.tmp"]
    assert remove_orphans(str(tmp_path / "missing")) == []


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "history.csv"
    target.write_text("old")

    def fail(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(target), fail)
    assert target.read_text() == "old" and _temporaries(tmp_path) == []
    atomic_write(str(target), lambda fh: fh.write(b"new"))
    assert target.read_text() == "new" and _temporaries(tmp_path) == []


def test_checkpoint_temporaries_have_unique_names(tmp_path, monkeypatch):
    names = []
    real_open = open

    def spy(path, mode="r", *args, **kwargs):
        if str(path).endswith(".tmp"):
            names.append(os.path.basename(str(path)))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    for _ in range(3):
        minidl.save({"w": minidl.zeros(2)}, str(tmp_path / "same.npz"))
        atomic_write(str(tmp_path / "same.csv"), lambda fh: fh.write(b"x"))
    assert len(names) == 6 and len(set(names)) == 6


# ----------------------------------------------------------------- resuming from elsewhere
def test_resume_writes_next_to_its_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *SMALL, "--epochs", "1", "--out", "run"]) == 0   # a relative --out
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--resume", str(tmp_path / "run" / "last.npz"), "--epochs", "2",
                 "--no-progress"]) == 0
    assert not (elsewhere / "run").exists()
    assert load_checkpoint(str(tmp_path / "run" / "last.npz"))["epoch"] == 2
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 3
    # with --out, a resumed run writes there instead
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run" / "last.npz"), "--epochs", "3",
                 "--out", str(tmp_path / "copy"), "--no-progress"]) == 0
    assert load_checkpoint(str(tmp_path / "copy" / "last.npz"))["epoch"] == 3
    assert load_checkpoint(str(tmp_path / "run" / "last.npz"))["epoch"] == 2


def test_no_best_npz_is_announced_when_none_was_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--steps", "1", "--out", str(out)]) == 0   # inside epoch 1
    printed = capsys.readouterr().out
    assert not (out / "best.npz").exists()
    assert "best.npz" in printed and "no epoch finished" in printed
    assert "best dice" not in printed
