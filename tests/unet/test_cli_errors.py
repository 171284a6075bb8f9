"""Bad input to the command line: one line naming the problem, exit status 2, no traceback,
and nothing written. Plus the commands' answers to unusual but valid requests."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from unet.__main__ import main
from unet.synthetic import write_synthetic_folder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--depth", "2", "--base-channels", "4", "--epochs", "1", "--batch-size", "2",
        "--no-progress", "--no-elastic"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Four synthetic 32x32 samples and a tiny U-Net trained on them for one epoch."""
    root = tmp_path_factory.mktemp("cli")
    write_synthetic_folder(root / "data", 4, size=(32, 32), seed=1)
    images, masks = root / "data" / "images", root / "data" / "masks"
    assert main(["train", "--images", str(images), "--masks", str(masks), "--out",
                 str(root / "run"), "--val-fraction", "0.25", *TINY]) == 0
    return root, images, masks, root / "run" / "last.npz"


def _one_line_error(capsys, code, *expected):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exit_info:       # argparse rejects an argument
        return exit_info.code


@pytest.mark.parametrize("flag, value, expected", [
    ("--tile-size", "0", "must be an int >= 1, got 0"),
    ("--tile-size", "63", "the network cannot take a tile height of 63; the next size it takes is 64"),
    ("--batch-size", "0", "must be an int >= 1, got 0"),
    ("--batch-size", "-3", "must be an int >= 1, got -3"),
])
def test_predict_bad_numbers(trained, tmp_path, capsys, flag, value, expected):
    root, images, _, checkpoint = trained
    code = _run(["predict", "--checkpoint", str(checkpoint), "--input", str(images),
                 "--out", str(tmp_path / "pred"), flag, value])
    _one_line_error(capsys, code, flag, expected)
    assert not (tmp_path / "pred").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_weights_sigma_must_be_positive(trained, tmp_path, capsys, value):
    _, _, masks, _ = trained
    code = _run(["weights", "--mask", str(masks / "000.png"), "--out", str(tmp_path / "w.png"),
                 "--sigma", value])
    _one_line_error(capsys, code, "--sigma", f"must be a number > 0, got {value}")
    assert not (tmp_path / "w.png").exists()


def test_weights_writes_the_raw_map_to_npy_and_refuses_other_formats(trained, tmp_path, capsys):
    _, _, masks, _ = trained
    assert main(["weights", "--mask", str(masks / "000.png"), "--out", str(tmp_path / "map.npy")]) == 0
    weight = np.load(tmp_path / "map.npy")
    assert weight.shape == (32, 32) and weight.dtype == np.float32
    assert weight.min() > 0 and weight.max() > weight.min()   # class balance plus border terms
    capsys.readouterr()
    code = main(["weights", "--mask", str(masks / "000.png"), "--out", str(tmp_path / "map.txt")])
    _one_line_error(capsys, code, "map.txt", ".png", ".npy")
    assert not (tmp_path / "map.txt").exists()


@pytest.mark.parametrize("argv, expected", [
    (["plan", "--size", "572", "--depth", "0"], "--depth: must be an int >= 1, got 0"),
    (["plan", "--size", "0"], "--size: must be an int >= 1, got 0"),
    (["train", "--synthetic-size", "4"], "synthetic_size must be (H, W) with ints >= 8"),
    (["train", "--synthetic-size", "0"], "synthetic_size must be (H, W) with ints >= 8"),
    (["train", "--synthetic", "0"], "synthetic must be a positive int, got 0"),
    (["train", "--val-fraction", "1.5"], "val_fraction must be in [0, 1), got 1.5"),
    (["train", "--monitor", "accuracy"], "monitor must be one of"),
    (["train", "--sigma", "0"], "sigma (the border weight's width) must be > 0"),
])
def test_options_no_run_can_use(argv, expected, tmp_path, capsys):
    code = _run(argv + (["--out", str(tmp_path / "run")] if argv[0] == "train" else []))
    _one_line_error(capsys, code, expected)
    assert not (tmp_path / "run").exists()


def test_train_out_naming_a_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code = main(["train", "--synthetic", "4", "--synthetic-size", "32", "--out",
                 str(tmp_path / "notes.txt"), *TINY])
    _one_line_error(capsys, code, "notes.txt' is a file, not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_train_out_that_cannot_be_created_fails_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code = main(["train", "--synthetic", "4", "--synthetic-size", "32", "--out",
                 str(tmp_path / "file" / "run"), *TINY])
    _one_line_error(capsys, code, "cannot create --out")


def test_plan_with_a_huge_depth_answers_at_once():
    proc = subprocess.run([sys.executable, "-m", "unet", "plan", "--size", "572", "--depth", "40"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "cannot take an input size of 572" in proc.stderr
    # 2**39 * 8 + 4 * (2**39 - 1): the smallest input whose bottom level holds 8 -> 4 pixels
    # (4 -> up 8 -> 4 on every level of the way up)
    assert f"smallest valid input size: {2 ** 39 * 8 + 4 * (2 ** 39 - 1)}" in proc.stdout


def test_plan_into_a_closed_pipe_is_quiet():
    proc = subprocess.run(f"'{sys.executable}' -m unet plan --size 572 --list 2000 | head -1",
                          shell=True, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.stdout.startswith("U-Net depth 5") and proc.stdout.count("\n") == 1
    assert proc.stderr == ""


def test_a_checkpoint_whose_config_does_not_fit_its_weights(trained, tmp_path, capsys):
    import minidl
    _, images, _, checkpoint = trained
    saved = minidl.load(str(checkpoint))
    saved["config"]["base_channels"] = 8              # the weights have 4
    minidl.save(saved, str(tmp_path / "edited.npz"))
    code = main(["predict", "--checkpoint", str(tmp_path / "edited.npz"), "--input", str(images),
                 "--out", str(tmp_path / "pred")])
    _one_line_error(capsys, code, "edited.npz", "do not fit the model its config describes")


def test_evaluate_rgb_images_on_a_grayscale_model(trained, tmp_path, capsys):
    root, images, masks, checkpoint = trained
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    for name in os.listdir(images):
        gray = np.asarray(Image.open(images / name))
        Image.fromarray(np.stack([gray] * 3, axis=-1)).save(rgb / name)
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--images", str(rgb),
                 "--masks", str(masks)])
    _one_line_error(capsys, code, "have 3 channel(s)", "takes 1")


def test_evaluate_three_class_masks_on_a_two_class_model(trained, tmp_path, capsys):
    root, images, masks, checkpoint = trained
    three = tmp_path / "masks3"
    three.mkdir()
    for name in os.listdir(masks):
        mask = np.asarray(Image.open(masks / name)).copy()
        mask[:4, :4] = 128                              # a third value
        Image.fromarray(mask).save(three / name)
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--images", str(images),
                 "--masks", str(three), "--mask-map", "0:0,255:1,128:2"])
    _one_line_error(capsys, code, "have 3 classes", "predicts 2")


def test_evaluate_scores_the_predictions_there_are_and_says_what_it_skipped(trained, tmp_path, capsys):
    _, _, masks, _ = trained
    pred = tmp_path / "pred"
    pred.mkdir()
    for name in ("000.png", "002.png"):                 # predictions for 2 of the 4 masks
        Image.open(masks / name).save(pred / name.replace(".png", "_mask.png"))
    assert main(["evaluate", "--masks", str(masks), "--pred", str(pred)]) == 0
    out = capsys.readouterr().out
    assert "2 predicted masks" in out and "skipped 2 of 4 masks without a prediction (001, 003)" in out
    assert "dice" in out and "1.0000" in out            # the predictions are the masks themselves
    (pred / "000_mask.png").unlink(), (pred / "002_mask.png").unlink()
    Image.open(masks / "000.png").save(pred / "other.png")
    code = main(["evaluate", "--masks", str(masks), "--pred", str(pred)])
    _one_line_error(capsys, code, "no prediction in", "matches a mask")


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "png"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "train"])
def test_an_unusable_checkpoint_is_one_line(trained, tmp_path, capsys, damage, command):
    _, images, masks, checkpoint = trained
    data = checkpoint.read_bytes()
    bad = tmp_path / "bad.npz"
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "truncated":
        bad.write_bytes(data[:len(data) // 2])
    elif damage == "flipped":
        flipped = bytearray(data)
        for i in range(len(flipped) // 3, len(flipped) // 3 + 64):
            flipped[i] ^= 0xFF
        bad.write_bytes(bytes(flipped))
    else:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad, format="PNG")
    argv = {"predict": ["predict", "--checkpoint", str(bad), "--input", str(images), "--out",
                        str(tmp_path / "pred")],
            "evaluate": ["evaluate", "--checkpoint", str(bad), "--images", str(images),
                         "--masks", str(masks)],
            "train": ["train", "--resume", str(bad), "--no-progress"]}[command]
    line = _one_line_error(capsys, main(argv), str(bad))
    assert "allow_pickle" not in line
