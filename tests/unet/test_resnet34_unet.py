"""resnet34_unet (fast.ai's Unet34): a PyTorch twin built from the article's recipe
(benchmarks/torch_twins.py), weights copied across by name; the forward hooks; the shape
rules; a short training run."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
import minidl.functional as F
from seed_model_checks import compare_with_twin, standard_losses

from benchmarks.torch_twins import torch_unet34
from unet.interop import export_torch_state_dict
from unet.resnet34_unet import BasicBlock, ResNet34Encoder, ResNet34UNet, UnetBlock
from unet.synthetic import make_cells

WIDTH = 1 / 16          # channels 4, 8, 16, 32 in the encoder, 16 in the decoder


# ----------------------------------------------------------------------------- the twin's weights
def _randomise(model, seed=0):
    """Non-trivial BatchNorm affine parameters and running statistics (the defaults 1/0 would
    hide a swapped weight and bias)."""
    rng = np.random.default_rng(seed)
    for name, value in model.state_dict().items():
        if name.endswith(("bn.weight", "bn1.weight", "bn2.weight", "downsample.1.weight")):
            value.data[...] = rng.uniform(0.5, 1.5, value.shape)
        elif name.endswith(("bn.bias", "bn1.bias", "bn2.bias", "downsample.1.bias")):
            value.data[...] = rng.uniform(-0.3, 0.3, value.shape)
        elif name.endswith("running_mean"):
            value.data[...] = rng.uniform(-0.2, 0.2, value.shape)
        elif name.endswith("running_var"):
            value.data[...] = rng.uniform(0.5, 2.0, value.shape)


def _close(ours, theirs, what, rtol=1e-10):
    theirs = np.asarray(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * max(np.abs(theirs).max(), 1e-300),
                               err_msg=what)


def _pair(torch, **kwargs):
    minidl.manual_seed(0)
    ours = ResNet34UNet(width=WIDTH, **kwargs)
    _randomise(ours)
    ours.double()
    theirs = torch_unet34(torch, width=WIDTH, in_channels=ours.in_channels, n_classes=ours.n_classes,
                          dropout=ours.dropout_p).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in export_torch_state_dict(ours).items()})
    return ours, theirs


# ----------------------------------------------------------------------------- the twin tests
def test_matches_torch_twin_forward_loss_gradients_adam_step_and_eval(torch):
    ours, theirs = _pair(torch, dropout=0.0)       # train-mode dropout draws differ between libraries
    assert list(dict(ours.named_parameters())) == list(dict(theirs.named_parameters()))  # torchvision's
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 64, 96))
    target = (rng.random((2, 1, 64, 96)) < 0.4).astype(np.float64)
    recipe = dict(optimizer="adam", lr=1e-3, weight_decay=ResNet34UNet.RECIPE["weight_decay"])
    compare_with_twin(torch, ours, theirs, x, target, recipe, standard_losses(torch, "bce"))


def test_dropout_is_on_the_encoder_output_and_off_in_eval(torch):
    ours, theirs = _pair(torch, dropout=0.2)
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64))
    ours.eval()
    theirs.eval()
    _close(ours(minidl.tensor(x)).detach().numpy(), theirs(torch.from_numpy(x)).detach().numpy(), "eval")
    ours.train()
    seen = {}
    ours.dropout.register_forward_hook(lambda m, args, out: seen.update(x=args[0], y=out))
    with minidl.no_grad():
        ours(minidl.tensor(x))
    before, after = seen["x"].numpy(), seen["y"].numpy()
    kept = after != 0
    assert 0 < (~kept & (before != 0)).sum()                        # some units dropped
    np.testing.assert_allclose(after[kept], before[kept] / 0.8, rtol=1e-12)


# ----------------------------------------------------------------------------- structure
def test_encoder_has_torchvision_names_and_resnet34_size():
    encoder = ResNet34Encoder()
    names = list(encoder.state_dict())
    for key in ("conv1.weight", "bn1.running_var", "bn1.num_batches_tracked",
                "layer1.0.conv1.weight", "layer1.2.bn2.bias", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_mean", "layer3.5.conv2.weight",
                "layer4.0.downsample.1.weight", "layer4.2.bn2.running_var"):
        assert key in names
    assert "conv1.bias" not in names and "layer1.0.downsample.0.weight" not in names
    assert "layer3.6.conv1.weight" not in names and "layer2.1.downsample.0.weight" not in names
    # torchvision's resnet34 has 21,797,672 parameters; its fc (512*1000 + 1000) is not here
    assert sum(p.numel() for p in encoder.parameters()) == 21_797_672 - 513_000
    assert sum(p.numel() for p in ResNet34UNet().parameters()) == 22_009_665
    assert [len(getattr(encoder, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert encoder.layer2[0].conv1.stride == (2, 2) and encoder.layer2[0].downsample[0].stride == (2, 2)
    assert encoder.maxpool.padding == 1 and encoder.conv1.kernel_size == (7, 7)


@minidl.no_grad()
def test_basic_block_shortcut():
    block = BasicBlock(2, 2).eval()
    x = minidl.tensor(np.random.default_rng(3).standard_normal((1, 2, 5, 5)))
    block.double()
    for p in (block.conv1.weight, block.conv2.weight):
        p.data[...] = 0.0
    # the residual branch gives bn2's bias (0) after zero convolutions: out = relu(x)
    np.testing.assert_allclose(block(x).numpy(), np.maximum(x.numpy(), 0), rtol=0, atol=0)
    assert BasicBlock(2, 4, stride=2)(minidl.randn(1, 2, 7, 7)).shape == (1, 4, 4, 4)


def test_hooks_hold_the_features_at_four_depths_and_close_removes_them():
    model = ResNet34UNet(in_channels=2, width=WIDTH)
    model(minidl.randn(2, 2, 64, 96))
    shapes = [tuple(sf.features.shape) for sf in model.sfs]
    assert shapes == [(2, 4, 32, 48), (2, 4, 16, 24), (2, 8, 8, 12), (2, 16, 4, 6)]
    assert all(len(getattr(model.encoder, name)._forward_hooks) == 1 for name in ResNet34UNet.HOOKED)
    model.close()
    assert all(len(getattr(model.encoder, name)._forward_hooks) == 0 for name in ResNet34UNet.HOOKED)
    with pytest.raises(RuntimeError, match="removed by close"):
        model(minidl.randn(1, 2, 32, 32))


@minidl.no_grad()
def test_unet_block_concatenates_up_path_first():
    block = UnetBlock(4, 3, 6).double().eval()
    up, skip = minidl.randn(1, 4, 2, 3).double(), minidl.randn(1, 3, 4, 6).double()
    out = block(up, skip).numpy()
    bn = block.bn
    scale = (bn.weight / (bn.running_var + bn.eps).sqrt()).numpy()[None, :, None, None]
    pre = (out - bn.bias.detach().numpy()[None, :, None, None]) / scale    # relu(cat(...)) recovered
    np.testing.assert_allclose(pre[:, :3], np.maximum(block.tr_conv(up).numpy(), 0), atol=1e-12)
    np.testing.assert_allclose(pre[:, 3:], np.maximum(block.x_conv(skip).numpy(), 0), atol=1e-12)
    with pytest.raises(ValueError, match="n_out must be even"):
        UnetBlock(4, 3, 5)


# ----------------------------------------------------------------------------- sizes
@settings(max_examples=15, deadline=None)
@given(st.integers(1, 200), st.integers(1, 200))
def test_valid_input_size_and_output_size(h, w):
    model = ResNet34UNet(width=1 / 64)
    vh, vw = model.valid_input_size((h, w))
    assert vh % 32 == 0 and vw % 32 == 0 and h <= vh < h + 32 and w <= vw < w + 32
    assert model.output_size((vh, vw)) == (vh, vw)
    assert model.valid_input_size(h) == vh
    if h % 32:
        with pytest.raises(ValueError, match="not a multiple of 32.*nearest usable sizes are"):
            model.output_size((h, vw))


@pytest.mark.parametrize("size", [(32, 32), (64, 32), (96, 160)])
def test_forward_gives_the_planned_size(size):
    model = ResNet34UNet(n_classes=2, width=1 / 32)
    assert model(minidl.randn(2, 3, *size)).shape == (2, 2, *model.output_size(size))


def test_bad_input_is_a_clear_error():
    model = ResNet34UNet(width=1 / 32)
    with pytest.raises(ValueError, match="nearest usable sizes are 32 or 64"):
        model(minidl.randn(1, 3, 48, 32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        model(minidl.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="width must be a positive number"):
        ResNet34UNet(width=0)
    with pytest.raises(ValueError, match="dropout must be a probability"):
        ResNet34UNet(dropout=1.0)


# ----------------------------------------------------------------------------- training
def test_short_training_run_on_synthetic_cells_reaches_a_loss_bound():
    minidl.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = [make_cells((32, 32), rng) for _ in range(4)]
    x = minidl.tensor(np.stack([s[0] for s in samples]))                         # (4, 1, 32, 32)
    y = minidl.tensor(np.stack([s[1] for s in samples])[:, None].astype(np.float32))
    model = ResNet34UNet(in_channels=1, width=1 / 16, dropout=0.0)
    opt = minidl.optim.Adam(model.parameters(), lr=1e-2, weight_decay=ResNet34UNet.RECIPE["weight_decay"])
    losses = []
    for _ in range(30):
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 0.5 and min(losses[-5:]) < 0.35, losses


def test_a_deep_copy_has_its_own_hooks():
    import copy
    model = ResNet34UNet(width=1 / 32)
    twin = copy.deepcopy(model)
    twin(minidl.randn(2, 3, 32, 32))
    assert twin.sfs[0].features is not None and model.sfs[0].features is None
    twin.close()
    assert len(model.encoder.layer1._forward_hooks) == 1
