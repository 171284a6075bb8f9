"""The command line (unet/__main__.py): help, demo, train/predict/evaluate chain, plan, weights."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from unet.__main__ import main
from unet.synthetic import write_synthetic_folder

COMMANDS = ["demo", "train", "predict", "evaluate", "plan", "weights"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: unet {command}")


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_demo_quick_end_to_end(tmp_path):
    """The real entry point, in a fresh process, as CI runs it."""
    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.environ.get("PYTHONPATH", ""), REPO]).strip(os.pathsep)}
    proc = subprocess.run([sys.executable, "-m", "unet", "demo", "--quick", "--no-progress",
                           "--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "validation mean Dice" in proc.stdout and "over both classes (membrane" in proc.stdout
    assert (out / "validation.png").stat().st_size > 0
    for name in ("training.png", "weight_map.png", "history.csv", "last.npz", "best.npz"):
        assert (out / name).stat().st_size > 0, name
    predictions = sorted(os.listdir(out / "predictions"))
    assert any(p.endswith("_overlay.png") for p in predictions)
    assert any(p.endswith("_mask.png") for p in predictions)
    assert any(p.endswith("_prob.png") for p in predictions)


def test_plan_prints_the_papers_numbers(capsys):
    # The paper's Fig. 1: 572 -> 388, skip crops 568->392, 280->200, 136->104, 64->56.
    assert main(["plan", "--size", "572", "--depth", "5", "--padding", "valid"]) == 0
    out = capsys.readouterr().out
    assert "output 388" in out and "margin 92" in out
    assert "crop offsets (top level first): [88, 40, 16, 4]" in out
    assert "bottom level 5: 32 -> 28" in out
    assert "572 -> 388" in out                     # in the list of valid sizes


def test_plan_same_padding_and_a_size_that_does_not_fit(capsys):
    assert main(["plan", "--size", "64", "--depth", "3", "--padding", "same"]) == 0
    out = capsys.readouterr().out
    assert "output 64" in out and "[0, 0]" in out
    # valid, depth 5: sizes that fit are 16k + 12 ... 570 is not one; 556 and 572 are
    assert main(["plan", "--size", "570", "--depth", "5", "--padding", "valid"]) == 2
    captured = capsys.readouterr()
    assert "cannot take" in captured.err
    assert "nearest valid input sizes: 556 and 572" in captured.out


def test_plan_fcn(capsys):
    assert main(["plan", "--model", "fcn", "--size", "100", "--fcn-variant", "32s",
                 "--fcn-width", "0.0625"]) == 0
    out = capsys.readouterr().out
    assert "output 100" in out and "output 19" in out     # FCN-32s crops 19 (the paper's Caffe net)


def test_missing_mask_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    code = main(["train", "--images", str(tmp_path / "images"), "--masks",
                 str(tmp_path / "no_such_masks"), "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--masks" in err and "no_such_masks" in err and "does not exist" in err
    assert not (tmp_path / "run").exists()


def test_weights_writes_a_png(tmp_path, capsys):
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[5:20, 5:35] = 255            # two cells separated by a 2-pixel membrane
    mask[22:35, 5:35] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert main(["weights", "--mask", str(tmp_path / "m.png"), "--out", str(tmp_path / "w.png")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["weights", "--mask", str(tmp_path / "nope.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "nope.png" in capsys.readouterr().err


def test_evaluate_predicted_masks_by_hand(tmp_path, capsys):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    t = np.zeros((4, 4), dtype=np.uint8)
    t[:, 2:] = 255                                  # 8 cell pixels, 8 membrane pixels
    p = t.copy()
    p[0, 0] = 255                                   # one membrane pixel called cell
    Image.fromarray(t).save(truth / "a.png")
    Image.fromarray(p).save(pred / "a_mask.png")    # the name unet predict writes
    assert main(["evaluate", "--masks", str(truth), "--pred", str(pred),
                 "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["pixel_accuracy"] == pytest.approx(15 / 16)
    # cell class: TP 8, FP 1, FN 0 -> Dice 16/17, IoU 8/9
    assert metrics["dice_1"] == pytest.approx(16 / 17)
    assert metrics["iou_1"] == pytest.approx(8 / 9)
    assert "pixel_accuracy" in capsys.readouterr().out


def test_train_predict_evaluate_chain(tmp_path, capsys):
    write_synthetic_folder(tmp_path / "data", 4, size=(32, 32), seed=1)
    images, masks, run = tmp_path / "data" / "images", tmp_path / "data" / "masks", tmp_path / "run"
    code = main(["train", "--images", str(images), "--masks", str(masks), "--out", str(run),
                 "--depth", "2", "--base-channels", "4", "--epochs", "1", "--batch-size", "2",
                 "--val-fraction", "0.25", "--no-progress", "--no-elastic"])
    assert code == 0, capsys.readouterr().err
    assert (run / "last.npz").exists()
    # resume for one more epoch with only --resume and --epochs
    assert main(["train", "--resume", str(run / "last.npz"), "--epochs", "2", "--no-progress"]) == 0
    assert len((run / "history.csv").read_text().splitlines()) == 3
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "last.npz"), "--input", str(images),
                 "--out", str(out)]) == 0
    names = sorted(os.listdir(out))
    assert len([n for n in names if n.endswith("_mask.png")]) == 4
    capsys.readouterr()
    assert main(["evaluate", "--masks", str(masks), "--pred", str(out)]) == 0
    assert "4 predicted masks" in capsys.readouterr().out
    assert main(["evaluate", "--masks", str(masks), "--images", str(images),
                 "--checkpoint", str(run / "last.npz")]) == 0
    assert "on 4 images" in capsys.readouterr().out


def test_no_progress_bar_fragments_in_a_log(tmp_path):
    """With output to a file or pipe (not a terminal), the bar stays away: no '\\r' lines."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.environ.get("PYTHONPATH", ""), REPO]).strip(os.pathsep)}
    proc = subprocess.run([sys.executable, "-m", "unet", "train", "--synthetic", "6",
                           "--synthetic-size", "32", "--depth", "2", "--base-channels", "4",
                           "--epochs", "2", "--steps-per-epoch", "3", "--no-elastic",
                           "--out", str(tmp_path / "run")], capture_output=True, timeout=300,
                          env=env)                         # bytes: text mode would turn \r into \n
    assert proc.returncode == 0, proc.stderr
    assert b"\r" not in proc.stdout + proc.stderr
    assert b"epoch 2/2" in proc.stdout                    # the per-epoch lines still come
