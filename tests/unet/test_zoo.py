"""`unet train --model NAME` for every network of unet/zoo.py: the CLI, the losses of one-channel
models, prediction, parameter counts, the one-cycle schedule, lr-find and encoder weights."""
import gc
import json

import numpy as np
import pytest

import minidl
import minidl.functional as F
from unet.__main__ import main
from unet.checkpoint import load_model
from unet.config import ConfigError, TrainConfig
from unet.lr_find import lr_find, suggest
from unet.predict import _probabilities, predict_probabilities
from unet.resnet34_unet import ResNet34UNet
from unet.train import compute_loss, train
from unet.zoo import MODELS, PARAMETERS, build, parameter_count

SEED_MODELS = ["zhixuhao", "tf_unet", "resnet34_unet", "bn_unet", "mini_unet", "fcn8s", "fcn16s", "fcn32s"]
TINY = ["--width", "0.0625", "--synthetic", "6", "--synthetic-size", "96", "--batch-size", "2", "--no-progress"]


@pytest.mark.parametrize("name", SEED_MODELS)
def test_unet_train_model_name_three_steps_then_predict(name, tmp_path, capsys):
    assert main(["train", "--model", name, "--steps", "3", "--out", str(tmp_path), *TINY]) == 0
    history = (tmp_path / "history.csv").read_text()
    assert "train_loss" in history
    model, _ = load_model(str(tmp_path / "last.npz"))
    assert type(model) is MODELS[name].cls
    classes = 3 if name.startswith("fcn") else 2   # fcn8s/16s/32s train on trimaps by default
    image = np.random.default_rng(0).random((3 if name.startswith("fcn") else 1, 100, 100)).astype(np.float32)
    probs = predict_probabilities(model, image)
    assert probs.shape == (classes, 100, 100)
    assert np.allclose(probs.sum(axis=0), 1, atol=1e-5)


def test_the_recipe_is_the_default_and_an_option_overrides_it(tmp_path):
    assert main(["train", "--model", "resnet34_unet", "--steps", "2", "--out", str(tmp_path / "a"), *TINY]) == 0
    config = json.loads(json.dumps(_saved_config(tmp_path / "a" / "last.npz")))
    assert (config["optimizer"], config["lr"], config["weight_decay"], config["schedule"]) == ("adam", 1e-2, 4e-4, "onecycle")
    assert main(["train", "--model", "resnet34_unet", "--steps", "2", "--lr", "0.003", "--schedule", "none",
                 "--out", str(tmp_path / "b"), *TINY]) == 0
    config = _saved_config(tmp_path / "b" / "last.npz")
    assert (config["lr"], config["schedule"], config["weight_decay"]) == (0.003, "none", 4e-4)


def _saved_config(path):
    from unet.checkpoint import load_checkpoint
    return load_checkpoint(str(path))["config"]


def test_parameter_counts_of_unet_models_are_the_built_networks():
    for name, count in PARAMETERS.items():
        if name == "unet":
            config = TrainConfig(model=name, base_channels=64, depth=5, padding="valid")
        elif name == "fcn":
            config = TrainConfig(model=name, fcn_width=1.0)
        else:
            config = TrainConfig(model=name)
        model = build(config, 1, 2)
        assert parameter_count(model) == count, name
        del model
        gc.collect()


def test_one_channel_models_train_bce_on_the_foreground_and_predict_two_classes():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((2, 1, 5, 7))
    masks = rng.integers(0, 2, (2, 5, 7))
    weights = rng.random((2, 5, 7))
    config = TrainConfig(model="zhixuhao")
    got = compute_loss(config, minidl.tensor(scores), masks, weights, 2).item()
    z, t = scores[:, 0], (masks == 1).astype(np.float64)
    want = np.mean(weights * (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))))
    assert got == pytest.approx(want, rel=1e-12)
    model = build(TrainConfig(model="mini_unet", width=0.0625), 1, 2)
    assert model.n_classes == 2                     # a softmax model keeps a channel per class
    model = build(TrainConfig(model="bn_unet", width=0.0625), 1, 2).double()
    assert model.n_classes == 1
    batch = rng.random((1, 1, 32, 32))
    model.eval()
    with minidl.no_grad():
        probs = _probabilities(model, batch)
    model.eval()
    with minidl.no_grad():
        p = F.sigmoid(model(minidl.tensor(batch))).numpy()
    np.testing.assert_allclose(probs[:, 1:], p, rtol=1e-6)
    np.testing.assert_allclose(probs[:, :1], 1 - p, rtol=1e-6, atol=1e-7)


def test_onecycle_steps_every_batch_and_cannot_be_extended(tmp_path):
    config = TrainConfig(model="mini_unet", width=0.0625, synthetic=6, synthetic_size=(32, 32), batch_size=2,
                         steps=6, schedule="onecycle", lr=0.01, out_dir=str(tmp_path), crop_size=32)
    train(config, progress=False)
    reference = minidl.optim.Adam([minidl.nn.Parameter(minidl.zeros(1))], lr=0.01)
    schedule = minidl.optim.lr_scheduler.OneCycleLR(reference, max_lr=0.01, total_steps=6)
    want = []
    for _ in range(6):
        reference.step()
        schedule.step()
        want.append(reference.param_groups[0]["lr"])
    from unet.checkpoint import load_checkpoint
    saved = load_checkpoint(str(tmp_path / "last.npz"))
    assert saved["scheduler"]["last_epoch"] == 6                  # stepped once per batch
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(want[-1])
    longer = TrainConfig(**{**config.to_dict(), "steps": 9, "resume": str(tmp_path / "last.npz"),
                            "synthetic_size": (32, 32)})
    with pytest.raises(ConfigError, match="one-cycle"):
        train(longer, progress=False)


def test_lr_find_writes_the_plot_and_suggests_the_steepest_descent(tmp_path):
    lrs = np.logspace(-5, 0, 50)
    smoothed = 1 / (1 + np.exp((np.log10(lrs) + 2.5) * 4))   # falls fastest at 10**-2.5
    assert suggest(lrs, smoothed) == pytest.approx(10 ** -2.5, rel=0.3)
    config = TrainConfig(model="mini_unet", width=0.0625, synthetic=4, synthetic_size=(32, 32), batch_size=2,
                         crop_size=32, out_dir=str(tmp_path))
    found, losses, _, suggestion = lr_find(config, start=1e-5, end=1.0, steps=12, progress=None)
    assert 2 <= len(found) <= 12 and np.all(np.diff(found) > 0)
    assert found[0] <= suggestion <= found[-1]
    assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "lr_find.csv").read_text().splitlines()[0] == "lr,loss,smoothed_loss"
    assert main(["lr-find", "--model", "mini_unet", "--width", "0.0625", "--synthetic", "4", "--synthetic-size",
                 "32", "--crop-size", "32", "--batch-size", "2", "--lr-steps", "5", "--out", str(tmp_path / "c")]) == 0


def test_encoder_weights_load_into_resnet34_unet_and_are_refused_elsewhere(tmp_path):
    encoder = ResNet34UNet(1, 1, width=0.0625).encoder
    rng = np.random.default_rng(3)
    state = {k: (rng.standard_normal(v.shape).astype(np.float32) if v.dtype == minidl.float32 else np.asarray(v.numpy()))
             for k, v in encoder.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = np.zeros((1000, 32), np.float32), np.zeros(1000, np.float32)
    path = tmp_path / "resnet34.npz"
    np.savez(path, **state)
    config = TrainConfig(model="resnet34_unet", width=0.0625, synthetic=4, synthetic_size=(32, 32), batch_size=2,
                         crop_size=32, steps=1, lr=1e-12, encoder_weights=str(path), out_dir=str(tmp_path / "run"))
    result = train(config, progress=False)
    got = result.model.encoder.conv1.weight.detach().numpy()
    np.testing.assert_allclose(got, state["conv1.weight"], rtol=1e-6, atol=1e-9)  # (one step of lr 1e-12)
    with pytest.raises(ConfigError, match="no pretrained encoder"):
        TrainConfig(model="zhixuhao", encoder_weights=str(path))
    with pytest.raises(ConfigError, match="is not a file"):
        TrainConfig(model="resnet34_unet", encoder_weights=str(tmp_path / "missing.pth"))


def test_models_lists_every_network_and_plan_knows_their_sizes(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in MODELS:
        assert f"\n{name} " in "\n" + out
    assert "multiples of 32" in out and "40 pixels smaller" in out
    assert main(["plan", "--model", "tf_unet", "--size", "100"]) == 0
    assert "output 60" in capsys.readouterr().out
    assert main(["plan", "--model", "resnet34_unet", "--size", "100"]) == 2
    assert "96 or 128" in capsys.readouterr().err


def test_bad_model_options_are_refused_before_training(tmp_path, capsys):
    assert main(["train", "--model", "nope", "--out", str(tmp_path)]) == 2
    assert "model must be one of" in capsys.readouterr().err
    assert main(["train", "--model", "unet", "--up-mode", "upsample", "--out", str(tmp_path)]) == 2
    assert "up_mode 'upsample'" in capsys.readouterr().err
    assert main(["train", "--model", "zhixuhao", "--width", "0", "--out", str(tmp_path)]) == 2
    assert "width must be a number > 0" in capsys.readouterr().err
