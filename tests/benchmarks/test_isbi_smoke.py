"""benchmarks/isbi.py on a tiny synthetic stand-in for the ISBI folder (the real slices are not needed).

The folder is written here in ISBI's layout (image/N.png, label/N.png with 255 = cell,
0 = membrane) from unet.synthetic.make_cells; a few training steps of a tiny U-Net run in
both libraries. The scores of such a run mean nothing; the test checks the plumbing: same
batches, same initial weights (the first losses agree), the PyTorch net predicted through
the same overlap-tile code, and the result files.
"""
import argparse
import time
import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import minidl  # noqa: E402
from benchmarks import isbi  # noqa: E402
from benchmarks._torch_unet import torch_twin  # noqa: E402
from unet import UNet  # noqa: E402
from unet.augment import Augmenter  # noqa: E402
from unet.predict import predict_probabilities  # noqa: E402
from unet.synthetic import make_cells  # noqa: E402


def write_isbi_like(folder, n, size=32, seed=0):
    """folder/image/N.png (8-bit gray) and folder/label/N.png (255 cell, 0 membrane)."""
    rng = np.random.default_rng(seed)
    (folder / "image").mkdir(parents=True)
    (folder / "label").mkdir()
    for i in range(n):
        image, mask = make_cells((size, size), rng)
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(folder / "image" / f"{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "label" / f"{i}.png")


def test_slices_from_png_folders_and_from_the_challenges_tif_stacks(tmp_path):
    """The same five slices, as image/N.png + label/N.png or as one multi-page .tif each."""
    write_isbi_like(tmp_path / "png", 5, size=16)
    stack = tmp_path / "tif"
    for sub in ("image", "label"):
        (stack / sub).mkdir(parents=True)
        pages = [Image.open(tmp_path / "png" / sub / f"{i}.png") for i in range(5)]
        pages[0].save(stack / sub / "train.tif", save_all=True, append_images=pages[1:])
    from_png = isbi.load_slices(tmp_path / "png", [0, 1, 2], [3, 4])
    from_tif = isbi.load_slices(stack, [0, 1, 2], [3, 4])
    for a, b in zip(from_png, from_tif):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match=r"slices \[7\] are not in"):
        isbi.load_slices(stack, [0, 7], [3])


def test_parse_and_format_slices():
    assert isbi.parse_slices("0-3,7") == [0, 1, 2, 3, 7]
    assert isbi.parse_slices("20-24") == [20, 21, 22, 23, 24]
    assert isbi.format_slices([0, 1, 2, 3, 7, 9, 10]) == "0-3, 7, 9-10"
    for bad in ("a-b", "5-2", "-1", "1,,2"):
        with pytest.raises(argparse.ArgumentTypeError):
            isbi.parse_slices(bad)


def test_batches_repeat_for_the_same_seed():
    """Both libraries must see identical batches: the generator depends on the seed only."""
    rng = np.random.default_rng(3)
    images = [rng.random((1, 24, 24), dtype=np.float32) for _ in range(3)]
    masks = [(rng.random((24, 24)) > 0.3).astype(np.int64) for _ in range(3)]
    weights = [rng.random((24, 24), dtype=np.float32) for _ in range(3)]
    augment = Augmenter(crop_size=16, jitter=0.1, elastic=False)
    first = list(isbi.batches(images, masks, weights, 3, 2, augment, seed=5))
    again = list(isbi.batches(images, masks, weights, 3, 2, augment, seed=5))
    other = list(isbi.batches(images, masks, weights, 3, 2, augment, seed=6))
    assert len(first) == 3
    x, y, w = first[0]
    assert x.shape == (2, 1, 16, 16) and x.dtype == np.float32
    assert y.shape == (2, 16, 16) and y.dtype == np.int64
    assert w.shape == (2, 16, 16)
    for a, b in zip(first, again):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    assert not np.array_equal(first[0][0], other[0][0])
    x, y, w = next(isbi.batches(images, masks, None, 1, 2, augment, seed=5))
    assert w is None


def test_torch_model_predicts_through_the_same_tiling():
    """TorchAsUNet runs the PyTorch twin inside unet.predict: with the same weights, the same
    probabilities as the minidl model, with tiles (tile 112 < image 240) and without."""
    minidl.manual_seed(1)
    model = UNet(1, 2, base_channels=4, depth=3, padding="same")
    wrapped = isbi.TorchAsUNet(model, torch_twin(model))
    image = np.random.default_rng(2).random((1, 240, 228), dtype=np.float32)
    for tile in (None, 112):      # 112: the smallest tile above twice the context margin
        ours = predict_probabilities(model, image, tile_size=tile)
        theirs = predict_probabilities(wrapped, image, tile_size=tile)
        assert theirs.shape == (2, 240, 228)
        np.testing.assert_allclose(theirs, ours, atol=1e-5)
    # the wrapper really runs the torch net: change the twin and the prediction changes
    with torch.no_grad():
        wrapped.twin.outc.conv.bias += torch.tensor([5.0, -5.0])
    assert np.abs(predict_probabilities(wrapped, image) - ours).max() > 0.5


def test_smoke_run_writes_results(tmp_path):
    data = tmp_path / "isbi"
    write_isbi_like(data, 6)
    out = tmp_path / "out"
    rc = isbi.main(["--data", str(data), "--train", "0-3", "--test", "4-5", "--steps", "2",
                    "--batch-size", "2", "--crop", "16", "--depth", "3", "--base-channels", "4",
                    "--loss", "weighted", "--runs", "2", "--seed", "7", "--out", str(out),
                    "--no-progress"])
    assert rc == 0
    result = json.loads((out / "isbi.json").read_text())
    assert result["parity_ok"]
    runs = result["runs"]
    assert [run["seed"] for run in runs] == [7, 8]
    for run in runs:
        assert run["parity"]["loss_minidl"] == pytest.approx(run["parity"]["loss_torch"], rel=1e-4)
        for lib in ("minidl", "torch"):
            assert len(run["losses"][lib]) == 2
            for key in ("pixel_accuracy", "dice_0", "v_rand"):
                assert 0.0 <= run["scores"][lib][key] <= 1.0
    # different seeds: different initial weights, so different first losses
    assert runs[0]["parity"]["loss_minidl"] != runs[1]["parity"]["loss_minidl"]
    for key in ("pixel_accuracy", "dice_0", "v_rand"):
        for lib in ("minidl", "torch"):
            per_run = [run["scores"][lib][key] for run in runs]
            assert result["scores"][lib][key] == pytest.approx(np.mean(per_run))
            assert result["spread"][lib][key] == pytest.approx(np.std(per_run, ddof=1))
        expected = result["scores"]["minidl"][key] - result["scores"]["torch"][key]
        assert result["differences"][key] == pytest.approx(expected)
    assert result["target_met"] == all(abs(v) <= 0.01 for v in result["differences"].values())
    report = (out / "isbi.md").read_text()
    assert "python -m benchmarks.isbi --data" in report and "membrane Dice" in report
    assert "slices 0-3, scored on slices 4-5" in report
    assert "2 runs with seeds 7, 8" in report
    with Image.open(out / "isbi_prediction.png") as picture:
        width, height = picture.size
    assert width > 3 * height  # four panels side by side


def test_bad_data_folder_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        isbi.main(["--data", str(tmp_path / "missing")])
    assert "missing is not a folder" in capsys.readouterr().err
    (tmp_path / "only_images" / "image").mkdir(parents=True)
    with pytest.raises(SystemExit):
        isbi.main(["--data", str(tmp_path / "only_images")])
    assert "has no 'label' folder" in capsys.readouterr().err


def test_missing_slice_is_named(tmp_path):
    data = tmp_path / "isbi"
    write_isbi_like(data, 3)
    with pytest.raises(ValueError, match=r"slices \[5\] are not in"):
        isbi.main(["--data", str(data), "--train", "0-1", "--test", "5", "--steps", "1",
                   "--no-save", "--no-progress"])


# ---------------------------------------------------------------------- budget mode (--minutes)
def _tiny_arrays(seed=3):
    rng = np.random.default_rng(seed)
    images = [rng.random((1, 24, 24), dtype=np.float32) for _ in range(3)]
    masks = [(rng.random((24, 24)) > 0.3).astype(np.int64) for _ in range(3)]
    weights = [rng.random((24, 24), dtype=np.float32) for _ in range(3)]
    return images, masks, weights


def test_budget_batches_are_the_same_in_every_process_and_library():
    images, masks, weights = _tiny_arrays()
    augment = Augmenter(crop_size=16, jitter=0.1, elastic=True)
    dataset = isbi.BudgetBatches(images, masks, weights, 2, augment, seed=5)
    expected = [dataset[k] for k in range(5)]
    assert expected[0][0].shape == (2, 1, 16, 16) and expected[0][2].shape == (2, 16, 16)
    assert not np.array_equal(expected[0][0], expected[1][0])          # batch k depends on k
    other = isbi.BudgetBatches(images, masks, weights, 2, augment, seed=6)
    assert not np.array_equal(expected[0][0], other[0][0])              # ... and on the seed
    for library, workers in (("minidl", 0), ("minidl", 2), ("torch", 2)):
        loader = isbi.budget_loader(library, dataset, workers)
        got = [next(loader) for _ in range(5)]
        getattr(loader, "_shutdown_workers", lambda: None)()
        for g, e in zip(got, expected):
            for u, v in zip(g, e):
                np.testing.assert_array_equal(np.asarray(u), v)


def test_train_for_stops_at_the_budget_and_anneals_the_rate():
    rates, calls = [], []

    def step(x, y, w):
        calls.append(x)
        time.sleep(0.01)
        return 1.0

    batches = iter(range(10 ** 6))
    losses, elapsed, waited = isbi.train_for(0.2, lambda x, y, w: step(x, y, w),
                                             ((k, None, None) for k in batches), 1e-3, "cosine",
                                             rates.append)
    assert 5 <= len(losses) <= 25 and 0.2 <= elapsed < 0.4 and waited < 0.1
    assert calls == list(range(len(losses)))                 # batches in order, none skipped
    assert rates[0] == pytest.approx(1e-3, rel=0.05) and rates[-1] < 0.2e-3
    assert all(a >= b for a, b in zip(rates, rates[1:]))     # the cosine only goes down
    rates.clear()
    isbi.train_for(0.05, lambda x, y, w: 1.0, ((k, None, None) for k in batches), 1e-3, "constant",
                   rates.append)
    assert set(rates) == {1e-3}


@pytest.mark.parametrize("workers", [0, 2])
def test_budget_run_writes_steps_and_scores(tmp_path, workers):
    data = tmp_path / "isbi"
    write_isbi_like(data, 6)
    out = tmp_path / "out"
    rc = isbi.main(["--data", str(data), "--train", "0-3", "--test", "4-5", "--minutes", "0.03",
                    "--batch-size", "2", "--crop", "16", "--depth", "3", "--base-channels", "4",
                    "--elastic", "--workers", str(workers), "--runs", "2", "--out", str(out),
                    "--no-progress"])
    assert rc == 0
    result = json.loads((out / "isbi_budget.json").read_text())
    assert result["config"]["minutes"] == 0.03 and result["config"]["workers"] == workers
    assert [run["order"][0] for run in result["runs"]] == ["minidl", "torch"]  # alternating
    for run in result["runs"]:
        for lib in ("minidl", "torch"):
            assert run["steps"][lib] == len(run["losses"][lib]) >= 1
            assert 1.8 <= run["seconds"][lib] < 10          # 0.03 minutes, plus the last step
            for key in ("pixel_accuracy", "dice_0", "v_rand"):
                assert 0.0 <= run["scores"][lib][key] <= 1.0
        assert run["steps_ratio"] == pytest.approx(run["steps"]["minidl"] / run["steps"]["torch"])
    ratio = np.mean([run["steps_ratio"] for run in result["runs"]])
    assert result["steps_ratio"] == pytest.approx(ratio)
    assert result["steps_target_met"] == (ratio >= 0.9)
    report = (out / "isbi_budget.md").read_text()
    assert "trained for 0.03 minutes each" in report and "steps minidl / PyTorch" in report
    assert (out / "isbi_budget_prediction.png").exists() and not (out / "isbi.json").exists()


def test_bad_budget_is_refused(tmp_path, capsys):
    data = tmp_path / "isbi"
    write_isbi_like(data, 3)
    for flag, value, message in (("--minutes", "0", "--minutes must be > 0"),
                                 ("--minutes", "nan", "--minutes must be > 0"),
                                 ("--workers", "-1", "--workers must be >= 0")):
        with pytest.raises(SystemExit):
            isbi.main(["--data", str(data), flag, value])
        assert message in capsys.readouterr().err
