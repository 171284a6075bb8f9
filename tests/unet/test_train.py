"""The trainer (unet/train.py) and its checkpoints (unet/checkpoint.py).

Runs use tiny networks on tiny synthetic images so that every test takes seconds.
"""
import math
import signal

import numpy as np
import pytest

import minidl
from unet.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from unet.data import SegmentationData
from unet.config import ConfigError
from helpers import assert_same_state, state_arrays
from unet.train import (BatchMaker, TrainConfig, TrainingDiverged, build_model, choose_tile,
                        compute_loss, train)

# Dropout, elastic augmentation and a step schedule: every random generator and every piece
# of state that a resume must restore is in use.
TINY = dict(synthetic=6, synthetic_size=(40, 40), depth=2, base_channels=4, batch_size=2,
            epochs=2, steps_per_epoch=3, crop_size=32, val_fraction=0.34, dropout=0.3,
            schedule="step", lr_step=1, lr_gamma=0.5, lr=3e-3)


def _config(out_dir, **changes):
    return TrainConfig(**{**TINY, "out_dir": str(out_dir), **changes})


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 2-epoch run: weights and history."""
    out = tmp_path_factory.mktemp("straight")
    result = train(_config(out), progress=False)
    return state_arrays(result.model), result.history


def test_resume_after_one_epoch_equals_uninterrupted_run(straight, tmp_path):
    first = train(_config(tmp_path, epochs=1), progress=False)
    assert first.epoch == 1 and first.step == 3
    resumed = train(_config(tmp_path, epochs=2, resume=str(tmp_path / "last.npz")), progress=False)
    assert resumed.step == 6
    assert_same_state(state_arrays(resumed.model), straight[0])
    assert [row["train_loss"] for row in resumed.history] == [row["train_loss"] for row in straight[1]]
    # the run really trained: the weights moved away from the initialisation
    minidl.manual_seed(TINY.get("seed", 0))
    init = state_arrays(build_model(_config(tmp_path), 1, 2))
    assert any(not np.array_equal(init[k], straight[0][k]) for k in init)


def test_ctrl_c_mid_epoch_saves_and_resume_is_exact(straight, tmp_path):
    def interrupt(info):                  # Ctrl-C after the 2nd of 3 steps of epoch 1
        if info["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path), progress=False, callback=interrupt)
    saved = load_checkpoint(tmp_path / "last.npz")
    assert saved["step"] == 2 and saved["epoch"] == 0
    assert len(saved["epoch_order"]) == 3 * 2 and len(saved["epoch_losses"]) == 2
    resumed = train(_config(tmp_path, resume=str(tmp_path / "last.npz")), progress=False)
    assert_same_state(state_arrays(resumed.model), straight[0])


def test_sigint_finishes_the_step_then_saves(tmp_path):
    """A real SIGINT: the handler lets the current step finish, then the run saves and stops."""
    def send_sigint(info):
        if info["step"] == 4:
            # to this thread: os.kill(os.getpid(), ...) lets the system pick any thread of the
            # process (Numba's and BLAS's workers too); with it, this test once saw no
            # KeyboardInterrupt in a full test run
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path), progress=False, callback=send_sigint)
    saved = load_checkpoint(tmp_path / "last.npz")
    assert saved["step"] == 4 and saved["epoch"] == 1       # epoch 1 done, 1 step of epoch 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handler restored


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    seen = {}

    def poison(info):                      # in epoch 2, put a NaN into a weight
        if info["step"] == 4:
            seen["good"] = state_arrays(load_model(tmp_path / "last.npz")[0])
            next(iter(info["model"].parameters())).data[...] = np.nan

    with pytest.raises(TrainingDiverged, match=r"loss is nan.*last good checkpoint"):
        train(_config(tmp_path), progress=False, callback=poison)
    saved = load_checkpoint(tmp_path / "last.npz")
    assert saved["epoch"] == 1 and saved["step"] == 3
    after = state_arrays(load_model(tmp_path / "last.npz")[0])
    assert_same_state(after, seen["good"])
    assert all(np.isfinite(v).all() for v in after.values())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # numpy's overflow warnings
def test_nan_in_first_epoch_says_no_checkpoint_yet(tmp_path):
    def poison(info):
        next(iter(info["model"].parameters())).data[...] = np.inf

    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet"):
        train(_config(tmp_path), progress=False, callback=poison)
    assert not (tmp_path / "last.npz").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_huge_learning_rate_diverges_cleanly(tmp_path):
    config = _config(tmp_path, optimizer="sgd", lr=1e12, momentum=0.99, epochs=3, dropout=0.0,
                     schedule="none")
    with pytest.raises(TrainingDiverged, match="Try a smaller --lr"):
        train(config, progress=False)


def test_outputs_and_best_checkpoint(straight, tmp_path):
    result = train(_config(tmp_path), progress=False)
    for name in ("last.npz", "best.npz", "history.csv", "training.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert len(lines) == 3 and "train_loss" in lines[0] and "dice" in lines[0]
    dices = [row["dice"] for row in result.history]
    best = load_checkpoint(tmp_path / "best.npz")
    assert best["best"]["value"] == max(dices)
    assert best["epoch"] == 1 + int(np.argmax(dices))
    with open(tmp_path / "training.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_round_trip(tmp_path):
    config = _config(tmp_path)
    minidl.manual_seed(3)
    model = build_model(config, 1, 2)
    optimizer = minidl.optim.Adam(model.parameters(), lr=0.01)
    data_rng = np.random.default_rng(7)
    data_rng.random(5)
    history = [{"epoch": 1, "train_loss": 0.5, "dice": float("nan")}]
    path = tmp_path / "c.npz"
    save_checkpoint(path, model=model, optimizer=optimizer, scheduler=None, data_rng=data_rng,
                    epoch=1, step=3, config=config.to_dict(), history=history,
                    best={"metric": "dice", "value": 0.8, "epoch": 1},
                    epoch_order=[2, 0, 1], epoch_losses=[0.25], data_info={"in_channels": 1,
                                                                          "num_classes": 2})
    back = load_checkpoint(path)
    assert back["epoch"] == 1 and back["step"] == 3 and back["scheduler"] is None
    assert back["epoch_order"].tolist() == [2, 0, 1] and back["epoch_losses"] == [0.25]
    assert back["history"][0]["train_loss"] == 0.5 and math.isnan(back["history"][0]["dice"])
    assert TrainConfig.from_dict(back["config"]) == config
    # the generator continues with the same numbers
    again = np.random.default_rng(0)
    again.bit_generator.state = back["data_rng"]
    np.testing.assert_array_equal(again.random(4), data_rng.random(4))
    assert back["minidl_rng"] == minidl.get_rng_state()
    loaded, _ = load_model(path)
    assert_same_state(state_arrays(loaded), state_arrays(model))


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="junk.npz"):
        load_checkpoint(tmp_path / "junk.npz")
    minidl.save({"weights": np.zeros(2)}, tmp_path / "other.npz")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(tmp_path / "other.npz")


def test_resume_with_other_options_is_refused(tmp_path):
    train(_config(tmp_path, epochs=1), progress=False)
    with pytest.raises(ValueError, match="base_channels: checkpoint 4, now 8"):
        train(_config(tmp_path, base_channels=8, resume=str(tmp_path / "last.npz")), progress=False)


def test_bad_config_is_refused_before_work():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="give both image_dir and mask_dir"):
        TrainConfig(image_dir="x")


# ----------------------------------------------------------------------------- pieces
def test_choose_tile_valid_padding_by_hand():
    config = TrainConfig(depth=2, base_channels=2, padding="valid")
    model = build_model(config, 1, 2)
    # depth 2, valid: n -> n-4 -> /2 -> -4 -> x2 -> -4.  64: 60, 30, 26, 52, 48.
    assert choose_tile(model, None, 48) == (64, 48)
    # 49 would need an output <= 49: 64 -> 48 is still the largest (66 -> 50 is too big)
    assert choose_tile(model, None, 49) == (64, 48)
    assert choose_tile(model, 56, 48) == (56, 40)       # 56: 52, 26, 22, 44, 40
    with pytest.raises(ValueError, match="cannot take"):
        choose_tile(model, 57, 48)


def test_default_tile_is_at_most_256_on_large_images():
    """On 512x512 images (ISBI 2012) a whole-image tile would make every step slow."""
    same = build_model(TrainConfig(depth=4, base_channels=2, padding="same"), 1, 2)
    assert choose_tile(same, None, 512) == (256, 256)
    assert choose_tile(same, None, 100) == (96, 96)      # same padding, depth 4: multiples of 8
    valid = build_model(TrainConfig(depth=2, base_channels=2, padding="valid"), 1, 2)
    # depth 2, valid: 256 -> 252, 126, 122, 244, 240 (256 is the largest size <= 256 it takes)
    assert choose_tile(valid, None, 512) == (256, 240)
    # a network whose smallest input is above 256 gets that smallest input:
    # depth 6, valid: 380 -> 376, 188, 184, 92, 88, 44, 40, 20, 16, 8, 4 at the bottom; each of
    # the 5 ups doubles and its two convolutions take 4 (4 -> 8 -> 4), so 380 -> 4, the smallest
    # input it takes (the next is 380 + 2**5 = 412)
    deep = build_model(TrainConfig(depth=6, base_channels=2, padding="valid"), 1, 2)
    assert choose_tile(deep, None, 512) == (380, 4)


def test_valid_padding_batches_line_up_image_and_target():
    """With the image equal to its mask, the centre of every input tile must equal the target."""
    rng = np.random.default_rng(0)
    masks = [(rng.random((40, 40)) < 0.5).astype(np.int64) for _ in range(2)]
    data = SegmentationData([m[None].astype(np.float32) for m in masks], masks, ["a", "b"],
                            num_classes=2)
    config = TrainConfig(depth=2, padding="valid", batch_size=2, augment=False)
    batches = BatchMaker(data, config, 56, 40)      # margin 8: the whole image is the target
    images, targets, weights = batches.batch([0, 1], rng)
    assert images.shape == (2, 1, 56, 56) and targets.shape == (2, 40, 40) and weights is None
    np.testing.assert_array_equal(images[:, 0, 8:48, 8:48], targets)
    np.testing.assert_array_equal(targets, np.stack(masks))   # the crop covers the image
    # the margin holds the mirror image of the border rows: row 7 is row 1 of the mask
    np.testing.assert_array_equal(images[0, 0, 7, 8:48], masks[0][1])


def test_weighted_cross_entropy_by_hand():
    config = TrainConfig(loss="ce")
    scores = np.array([[[[2.0, 0.0]], [[0.0, 1.0]]]], dtype=np.float32)   # (1, 2, 1, 2)
    masks = np.array([[[0, 0]]])                                          # (1, 1, 2)
    weights = np.array([[[1.0, 3.0]]], dtype=np.float32)
    # pixel 0: -log(e^2 / (e^2 + 1)); pixel 1: -log(1 / (1 + e))
    l0, l1 = math.log(1 + math.exp(-2)), math.log(1 + math.e)
    loss = compute_loss(config, minidl.tensor(scores), masks, weights, 2)
    assert loss.item() == pytest.approx((1 * l0 + 3 * l1) / 2, rel=1e-5)
    loss = compute_loss(config, minidl.tensor(scores), masks, None, 2)
    assert loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-5)


def test_bce_loss_by_hand():
    config = TrainConfig(loss="bce")
    scores = np.array([[[[2.0]], [[-1.0]]]], dtype=np.float32)   # (1, 2, 1, 1)
    masks = np.array([[[1]]])                                     # class 1: one-hot (0, 1)
    # channel 0 target 0: log(1 + e^2); channel 1 target 1: log(1 + e^1)
    expected = (math.log(1 + math.exp(2)) + math.log(1 + math.e)) / 2
    assert compute_loss(config, minidl.tensor(scores), masks, None, 2).item() == \
        pytest.approx(expected, rel=1e-5)


def test_steps_instead_of_epochs(tmp_path):
    """steps=4 with 3 steps per epoch: one full epoch, then 1 step into the second, which stays
    unfinished: last.npz keeps its remaining batches for --resume."""
    result = train(_config(tmp_path, steps=4, dropout=0.0), progress=False)
    assert result.step == 4 and result.epoch == 1
    assert [row["step"] for row in result.history] == [3]
    saved = load_checkpoint(tmp_path / "last.npz")
    assert saved["step"] == 4 and len(saved["epoch_losses"]) == 1 and saved["epoch_order"] is not None


def test_a_run_stopped_by_steps_inside_an_epoch_resumes_to_the_straight_run(tmp_path):
    """The issue's case: stopped by --steps mid-epoch, resumed to a larger --steps, it ends where
    a straight run ends, with the same weights and history."""
    straight = train(_config(tmp_path / "straight", steps=8), progress=False)
    train(_config(tmp_path / "split", steps=4), progress=False)
    resumed = train(_config(tmp_path / "split", steps=8, resume=str(tmp_path / "split" / "last.npz")),
                    progress=False)
    assert resumed.step == straight.step == 8 and resumed.epoch == straight.epoch == 2
    assert_same_state(state_arrays(resumed.model), state_arrays(straight.model))
    assert resumed.history == [{**row, "seconds": r["seconds"]} for row, r in zip(straight.history, resumed.history)]


def _lrs(result):
    return [row["lr"] for row in result.history]


def test_a_cosine_schedule_resumed_with_more_epochs_is_replanned_over_the_new_total(tmp_path):
    """From the resume on, the learning rates of a run planned with the new total; never an epoch
    at lr 0 (the old horizon's end)."""
    cosine = dict(schedule="cosine", lr=1e-3)
    straight = train(_config(tmp_path / "straight", epochs=4, **cosine), progress=False)
    np.testing.assert_allclose(_lrs(straight), [1e-3, 1e-3 * (1 + math.cos(math.pi / 4)) / 2, 5e-4,
                                                1e-3 * (1 + math.cos(3 * math.pi / 4)) / 2])
    short = train(_config(tmp_path / "split", epochs=2, **cosine), progress=False)
    np.testing.assert_allclose(_lrs(short), [1e-3, 5e-4])
    resumed = train(_config(tmp_path / "split", epochs=4, resume=str(tmp_path / "split" / "last.npz"),
                            **cosine), progress=False)
    np.testing.assert_allclose(_lrs(resumed), _lrs(short) + _lrs(straight)[2:])
    assert min(_lrs(resumed)) > 0
    again = train(_config(tmp_path / "split", epochs=6, resume=str(tmp_path / "split" / "last.npz"),
                          **cosine), progress=False)  # and once more: the re-planned state is saved
    np.testing.assert_allclose(_lrs(again)[4:], [1e-3 * (1 + math.cos(math.pi * e / 6)) / 2 for e in (4, 5)])


def test_resuming_with_nothing_left_to_do_says_so(tmp_path):
    train(_config(tmp_path, epochs=2), progress=False)
    with pytest.raises(ConfigError, match=r"has done 2 epochs \(6 steps\); --epochs 2 leaves nothing to "
                                          r"train: ask for more"):
        train(_config(tmp_path, epochs=2, resume=str(tmp_path / "last.npz")), progress=False)


def test_training_on_everything_without_validation(tmp_path, capsys):
    result = train(_config(tmp_path, val_fraction=0.0, epochs=2), progress=False, verbose=True)
    assert "no validation images (best.npz follows the training loss)" in capsys.readouterr().out
    assert result.best["metric"] == "train_loss" and (tmp_path / "best.npz").exists()
    assert all("dice" not in row for row in result.history)


@pytest.mark.parametrize("changes", [
    dict(padding="valid", crop_size=None, border_weight=True, loss="bce", dice_weight=0.5),
    dict(border_weight=True, optimizer="sgd", lr=1e-3, schedule="plateau", monitor="val_loss"),
    dict(model="fcn", fcn_variant="8s", fcn_width=0.0625, schedule="cosine"),
], ids=["valid-bce-dice", "sgd-plateau", "fcn"])
def test_other_recipes_train_and_resume(changes, tmp_path):
    """Each recipe runs, validates on whole images, and resumes from its checkpoint."""
    config = _config(tmp_path, epochs=1, steps_per_epoch=2, dropout=0.0, **changes)
    first = train(config, progress=False)
    row = first.history[-1]
    assert math.isfinite(row["train_loss"]) and 0.0 <= row["dice"] <= 1.0
    again = train(_config(tmp_path, epochs=2, steps_per_epoch=2, dropout=0.0, **changes,
                          resume=str(tmp_path / "last.npz")), progress=False)
    assert again.step == 4 and len(again.history) == 2


def test_missing_mask_folder_in_train(tmp_path):
    (tmp_path / "images").mkdir()
    config = TrainConfig(image_dir=str(tmp_path / "images"), mask_dir=str(tmp_path / "masks"),
                         out_dir=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match=r"mask_dir '.*masks' is not a folder"):
        train(config, progress=False)
