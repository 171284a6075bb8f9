"""Encoder weights by name (unet/encoders.py): torchvision's ResNet34 and VGG16 state dicts,
built here from torchvision's documented structure (names and shapes), never imported."""
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from unet import FCN
from unet.encoders import load_encoder_weights, load_vgg16_weights, read_state_dict
from unet.resnet34_unet import ResNet34Encoder, ResNet34UNet


def _ch(c, width):
    return max(1, int(round(c * width)))


def _bn(state, prefix, c, rng):
    state[f"{prefix}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    state[f"{prefix}.bias"] = rng.standard_normal(c).astype(np.float32)
    state[f"{prefix}.running_mean"] = rng.standard_normal(c).astype(np.float32)
    state[f"{prefix}.running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
    state[f"{prefix}.num_batches_tracked"] = np.array(int(rng.integers(1, 1000)), dtype=np.int64)


def torchvision_resnet34_state(width=1.0, in_channels=3, seed=0):
    """torchvision.models.resnet34().state_dict()'s keys, in its order, and shapes (at a width)."""
    rng = np.random.default_rng(seed)
    state = OrderedDict()
    c = _ch(64, width)
    state["conv1.weight"] = rng.standard_normal((c, in_channels, 7, 7)).astype(np.float32)
    _bn(state, "bn1", c, rng)
    for layer, (n_blocks, channels) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        out = _ch(channels, width)
        for b in range(n_blocks):
            p = f"layer{layer}.{b}"
            state[f"{p}.conv1.weight"] = rng.standard_normal((out, c, 3, 3)).astype(np.float32)
            _bn(state, f"{p}.bn1", out, rng)
            state[f"{p}.conv2.weight"] = rng.standard_normal((out, out, 3, 3)).astype(np.float32)
            _bn(state, f"{p}.bn2", out, rng)
            if b == 0 and layer > 1:
                state[f"{p}.downsample.0.weight"] = rng.standard_normal((out, c, 1, 1)).astype(np.float32)
                _bn(state, f"{p}.downsample.1", out, rng)
            c = out
    state["fc.weight"] = rng.standard_normal((1000, c)).astype(np.float32)
    state["fc.bias"] = rng.standard_normal(1000).astype(np.float32)
    return state


VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)     # torchvision's features.N
VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
OUR_CONVS = ("block1.conv1_1", "block1.conv1_2", "block2.conv2_1", "block2.conv2_2", "block3.conv3_1",
             "block3.conv3_2", "block3.conv3_3", "block4.conv4_1", "block4.conv4_2", "block4.conv4_3",
             "block5.conv5_1", "block5.conv5_2", "block5.conv5_3")


def torchvision_vgg16_state(width=1.0, seed=0):
    """torchvision.models.vgg16().state_dict()'s keys and shapes (at a width)."""
    rng = np.random.default_rng(seed)
    state, c = OrderedDict(), 3
    for index, channels in zip(VGG16_CONVS, VGG16_CHANNELS):
        out = _ch(channels, width)
        state[f"features.{index}.weight"] = rng.standard_normal((out, c, 3, 3)).astype(np.float32)
        state[f"features.{index}.bias"] = rng.standard_normal(out).astype(np.float32)
        c = out
    fc = _ch(4096, width)
    for index, (n_out, n_in) in ((0, (fc, c * 7 * 7)), (3, (fc, fc)), (6, (1000, fc))):
        state[f"classifier.{index}.weight"] = rng.standard_normal((n_out, n_in)).astype(np.float32)
        state[f"classifier.{index}.bias"] = rng.standard_normal(n_out).astype(np.float32)
    return state


def _state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


# ----------------------------------------------------------------------------- ResNet34
def test_full_size_resnet34_state_dict_loads_every_key():
    state = torchvision_resnet34_state()
    model = ResNet34UNet()
    decoder_before = {k: v for k, v in _state(model).items() if not k.startswith("encoder.")}
    loaded, ignored = load_encoder_weights(model, state)
    assert ignored == ["fc.weight", "fc.bias"]
    assert loaded == [k for k in state if not k.startswith("fc.")]
    assert len(loaded) == len(model.encoder.state_dict())
    after = _state(model.encoder)
    for key in loaded:
        np.testing.assert_array_equal(after[key], state[key], err_msg=key)
    for key, value in _state(model).items():                   # the decoder is untouched
        if not key.startswith("encoder."):
            np.testing.assert_array_equal(value, decoder_before[key], err_msg=key)


@pytest.mark.parametrize("kind", ["pth", "npz", "minidl"])
def test_resnet34_from_files(kind, tmp_path, request):
    state = torchvision_resnet34_state(width=1 / 16, in_channels=1, seed=3)
    path = tmp_path / f"resnet34.{'npz' if kind != 'pth' else 'pth'}"
    if kind == "pth":
        torch = request.getfixturevalue("torch")
        torch.save(OrderedDict((k, torch.from_numpy(v)) for k, v in state.items()), path)
    elif kind == "npz":
        np.savez(path, **state)
    else:
        minidl.save({k: minidl.tensor(v) for k, v in state.items()}, path)
    encoder = ResNet34Encoder(in_channels=1, width=1 / 16)
    load_encoder_weights(encoder, str(path))
    after = _state(encoder)
    for key in after:
        np.testing.assert_array_equal(after[key], state[key], err_msg=key)


def test_resnet34_without_num_batches_tracked_loads():
    """torchvision's original resnet34 file predates num_batches_tracked."""
    state = {k: v for k, v in torchvision_resnet34_state(width=1 / 16).items()
             if not k.endswith("num_batches_tracked")}
    encoder = ResNet34Encoder(width=1 / 16)
    loaded, _ = load_encoder_weights(encoder, state)
    assert len(loaded) == len(encoder.state_dict()) - 36      # 36 BatchNorms
    np.testing.assert_array_equal(encoder.layer4[2].bn2.running_var.numpy(), state["layer4.2.bn2.running_var"])


def test_resnet34_mismatches_fail_listing_keys_and_change_nothing():
    model = ResNet34UNet(width=1 / 16)
    before = _state(model)
    good = torchvision_resnet34_state(width=1 / 16)
    missing = {k: v for k, v in good.items() if k != "layer3.2.conv1.weight"}
    with pytest.raises(RuntimeError, match=r"missing: \['layer3.2.conv1.weight'\]"):
        load_encoder_weights(model, missing)
    extra = dict(good, **{"layer3.6.conv1.weight": good["layer3.5.conv1.weight"], "head.bias": np.ones(3)})
    with pytest.raises(RuntimeError, match=r"unexpected: \['layer3.6.conv1.weight', 'head.bias'\]"):
        load_encoder_weights(model, extra)
    wrong = dict(good, **{"conv1.weight": np.zeros((4, 3, 3, 3), np.float32)})
    with pytest.raises(RuntimeError, match=r"wrong shape: \['conv1.weight: expected \(4, 3, 7, 7\), "
                                           r"got \(4, 3, 3, 3\)'\]"):
        load_encoder_weights(model, wrong)
    full = torchvision_resnet34_state()                     # the full-size file into a small model
    with pytest.raises(RuntimeError, match="wrong shape"):
        load_encoder_weights(model, full)
    for key, value in _state(model).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    with pytest.raises(TypeError, match="must be a ResNet34UNet or a ResNet34Encoder"):
        load_encoder_weights(FCN(width=1 / 32), good)
    with pytest.raises(TypeError, match="not an array"):
        load_encoder_weights(model, dict(good, **{"conv1.weight": [1.0]}))
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_encoder_weights(model, "/nonexistent/resnet34.pth")


# ----------------------------------------------------------------------------- VGG16
def test_vgg16_state_dict_lands_in_fcn_by_name():
    width = 1 / 16
    state = torchvision_vgg16_state(width)
    model = FCN(n_classes=3, variant="8s", width=width)
    scores_before = {k: v for k, v in _state(model).items() if k.startswith(("score", "upscore"))}
    loaded, ignored = load_vgg16_weights(model, state)
    assert ignored == ["classifier.6.weight", "classifier.6.bias"]
    assert len(loaded) == 26 + 4
    after = _state(model)
    for index, ours in zip(VGG16_CONVS, OUR_CONVS):
        for suffix in ("weight", "bias"):
            np.testing.assert_array_equal(after[f"{ours}.{suffix}"], state[f"features.{index}.{suffix}"])
    fc = _ch(4096, width)
    np.testing.assert_array_equal(after["fc.fc6.weight"], state["classifier.0.weight"].reshape(fc, 32, 7, 7))
    np.testing.assert_array_equal(after["fc.fc7.weight"][:, :, 0, 0], state["classifier.3.weight"])
    np.testing.assert_array_equal(after["fc.fc6.bias"], state["classifier.0.bias"])
    np.testing.assert_array_equal(after["fc.fc7.bias"], state["classifier.3.bias"])
    for key, value in scores_before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_vgg16_classifier_becomes_the_same_function(torch):
    """On a 7x7 pool5 map, fc6/fc7 as convolutions compute exactly torchvision's classifier[:5]
    (Linear, ReLU, Dropout, Linear, ReLU; eval mode) on the flattened map."""
    width = 1 / 16
    state = torchvision_vgg16_state(width, seed=5)
    fc, c5 = _ch(4096, width), _ch(512, width)
    classifier = torch.nn.Sequential(torch.nn.Linear(c5 * 49, fc), torch.nn.ReLU(), torch.nn.Dropout(),
                                     torch.nn.Linear(fc, fc), torch.nn.ReLU(), torch.nn.Dropout(),
                                     torch.nn.Linear(fc, 1000)).double().eval()
    classifier.load_state_dict({k.removeprefix("classifier."): torch.from_numpy(v)
                                for k, v in state.items() if k.startswith("classifier.")})
    model = FCN(n_classes=2, width=width).double().eval()
    load_vgg16_weights(model, {k: torch.from_numpy(v) for k, v in state.items()})   # torch Tensors
    pool5 = np.random.default_rng(6).standard_normal((2, c5, 7, 7))
    ours = model.fc(minidl.tensor(pool5)).detach().numpy()                          # (2, fc, 1, 1)
    theirs = classifier[:5](torch.from_numpy(pool5).flatten(1)).detach().numpy()      # (2, fc)
    np.testing.assert_allclose(ours[:, :, 0, 0], theirs, rtol=1e-12, atol=1e-12)


def test_full_size_vgg16_shapes_fit_fcn():
    state = torchvision_vgg16_state(seed=1)
    state = {k: (v if v.size < 1_000_000 else np.broadcast_to(np.float32(0.5), v.shape)) for k, v in state.items()}
    model = FCN(n_classes=21, variant="32s")
    loaded, ignored = load_vgg16_weights(model, state)
    assert len(loaded) == 30 and len(ignored) == 2
    assert model.fc.fc6.weight.shape == (4096, 512, 7, 7) and float(model.fc.fc6.weight[0, 0, 0, 0]) == 0.5


def test_vgg16_mismatches_fail_listing_keys_and_change_nothing(tmp_path):
    model = FCN(n_classes=2, width=1 / 16)
    before = _state(model)
    good = torchvision_vgg16_state(1 / 16)
    missing = {k: v for k, v in good.items() if not k.startswith("features.28.")}
    with pytest.raises(RuntimeError, match=r"missing: \['features.28.weight', 'features.28.bias'\]"):
        load_vgg16_weights(model, missing)
    extra = dict(good, **{"features.30.weight": np.zeros(1)})
    with pytest.raises(RuntimeError, match=r"unexpected: \['features.30.weight'\]"):
        load_vgg16_weights(model, extra)
    wrong = dict(good, **{"classifier.3.weight": np.zeros((256, 255), np.float32)})
    with pytest.raises(RuntimeError, match=r"classifier.3.weight: expected \(256, 256\), got \(256, 255\)"):
        load_vgg16_weights(model, wrong)
    with pytest.raises(RuntimeError, match="wrong shape"):
        load_vgg16_weights(FCN(n_classes=2, in_channels=1, width=1 / 16), good)
    for key, value in _state(model).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    with pytest.raises(TypeError, match="must be an FCN"):
        load_vgg16_weights(ResNet34UNet(width=1 / 32), good)
    path = tmp_path / "vgg16.npz"
    np.savez(path, **good)
    load_vgg16_weights(model, path)
    np.testing.assert_array_equal(model.block5.conv5_3.bias.detach().numpy(), good["features.28.bias"])


def test_read_state_dict_errors(tmp_path):
    with pytest.raises(TypeError, match="expected a state dict"):
        read_state_dict([1, 2])
    path = tmp_path / "list.pth"
    minidl.save([minidl.tensor([1.0])], path)
    with pytest.raises(TypeError, match="not a state dict"):
        read_state_dict(path)
