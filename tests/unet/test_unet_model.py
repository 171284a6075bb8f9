"""U-Net: the paper's shapes, the shape planner, the parts, initialisation, errors, overfitting."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from unet import UNet
from unet.parts import DoubleConv, Down, OutConv, Up
from unet.planner import SizeError, _try_plan, nearest_unet_input_sizes, plan_unet


def _input(*shape):
    return minidl.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


# ----------------------------------------------------------------------------- the paper's shapes
def test_paper_unet_plans_572_to_388_with_the_papers_crops():
    model = UNet()                                  # the paper: 1 channel in, 2 classes, 64..1024
    assert model.output_size(572) == 388
    assert model.output_size((572, 572)) == (388, 388)
    plan = model.plan(572)
    assert [lv.skip for lv in plan.levels] == [568, 280, 136, 64]     # Fig. 1, the grey arrows
    assert [lv.up for lv in plan.levels] == [392, 200, 104, 56]
    assert model.crop_offsets(572) == [88, 40, 16, 4]                 # (skip - up) // 2
    assert (plan.bottleneck_in, plan.bottleneck_out) == (32, 28)


def test_unet_forward_572_gives_388():
    """The paper's geometry (depth 5, valid) run for real, with 2 channels at the top to keep it fast."""
    model = UNet(in_channels=1, n_classes=2, base_channels=2)
    y = model(_input(1, 1, 572, 572))
    assert y.shape == (1, 2, 388, 388)


def test_same_padding_keeps_256():
    model = UNet(in_channels=3, n_classes=4, base_channels=2, padding="same")
    assert model.output_size(256) == 256
    assert model.crop_offsets(256) == [0, 0, 0, 0]
    assert model(_input(1, 3, 256, 256)).shape == (1, 4, 256, 256)


def test_bilinear_up_mode_has_the_same_shapes_and_halves_channels():
    model = UNet(base_channels=2, up_mode="bilinear")
    assert model(_input(1, 1, 572, 572)).shape == (1, 2, 388, 388)
    up = model.up1.up
    assert isinstance(up[0], nn.Upsample) and up[0].mode == "bilinear" and up[0].align_corners
    assert tuple(up[1].weight.shape) == (16, 32, 1, 1)           # 1x1 conv: 32 -> 16 channels


def test_rectangular_input_and_pair_planner():
    model = UNet(base_channels=2, depth=3)
    size = model.valid_input_size((50, 61))
    assert size == (52, 64)
    out = model.output_size(size)
    assert model(_input(1, 1, *size)).shape == (1, 2, *out)
    assert model.crop_offsets(size) == list(zip(model.crop_offsets(52), model.crop_offsets(64)))


# ----------------------------------------------------------------------------- the planner
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_valid_input_size_is_the_smallest_that_fits(depth, padding):
    for min_size in (1, 37, 100, 571):
        n = UNet(depth=depth, padding=padding, base_channels=1).valid_input_size(min_size)
        assert n >= min_size
        plan = plan_unet(n, depth, padding)
        # every max-pool saw an even size; every smaller size >= min_size fails
        assert all(lv.skip % 2 == 0 for lv in plan.levels)
        for smaller in range(min_size, n):
            with pytest.raises(SizeError):
                plan_unet(smaller, depth, padding)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_nearest_sizes_below_and_above_by_brute_force(depth, padding):
    fits = [n for n in range(1, 800) if not isinstance(_try_plan(n, depth, padding), str)]
    for n in (1, 5, 187, 188, 189, 400, 571, 572, 573):
        below = [m for m in fits if m < n]
        above = next(m for m in fits if m >= n)
        assert nearest_unet_input_sizes(n, depth, padding) == (below[-1] if below else None, above)


def test_sizes_of_a_very_deep_unet_come_at_once():
    """Only every 2**(depth-1)-th size can fit: the search must not walk through the others."""
    below, above = nearest_unet_input_sizes(572, 40, "valid")
    assert below is None and above == 2 ** 39 * 8 + 4 * (2 ** 39 - 1)
    assert plan_unet(above, 40, "valid").output_size == 4


def test_valid_sizes_repeat_every_2_to_the_depth_minus_1():
    model = UNet(base_channels=1)
    sizes = [n for n in range(188, 700) if _fits(model, n)]
    assert sizes[0] == 188 and 572 in sizes
    assert set(np.diff(sizes)) == {16}


def _fits(model, n):
    try:
        model.output_size(n)
    except SizeError:
        return False
    return True


def test_same_mode_sizes_are_multiples_of_2_to_the_depth_minus_1():
    model = UNet(base_channels=1, depth=4, padding="same")
    assert [n for n in range(1, 50) if _fits(model, n)] == [8, 16, 24, 32, 40, 48]
    assert model.valid_input_size(17) == 24


# ----------------------------------------------------------------------------- parts
def test_parts_shapes():
    x = _input(2, 3, 20, 22)
    assert DoubleConv(3, 5)(x).shape == (2, 5, 16, 18)
    assert DoubleConv(3, 5, padding="same")(x).shape == (2, 5, 20, 22)
    assert Down(3, 6)(x).shape == (2, 6, 6, 7)
    assert OutConv(3, 7)(x).shape == (2, 7, 20, 22)
    up = Up(8, 4)
    assert up(_input(2, 8, 5, 6), _input(2, 4, 16, 18)).shape == (2, 4, 6, 8)


def test_up_valid_crops_the_skip_centre_and_puts_it_first():
    """Channel 0 of the joined tensor is the centre window of the skip tensor."""
    up = Up(2, 1)
    skip = minidl.tensor(np.arange(2 * 1 * 9 * 9, dtype=np.float32).reshape(2, 1, 9, 9))
    x = _input(2, 2, 3, 3)
    joined = minidl.cat([F.center_crop(skip, (6, 6)), up.up(x)], dim=1)
    # the crop starts at (9 - 6) // 2 = 1
    np.testing.assert_array_equal(joined.detach().numpy()[:, 0], skip.numpy()[:, 0, 1:7, 1:7])
    np.testing.assert_allclose(up(x, skip).detach().numpy(), up.conv(joined).detach().numpy(), rtol=1e-6)


def test_up_same_pads_a_smaller_upsampled_tensor():
    up = Up(4, 2, padding="same")
    assert up(_input(1, 4, 3, 3), _input(1, 2, 7, 8)).shape == (1, 2, 7, 8)
    with pytest.raises(ValueError, match="smaller than the up-sampled"):
        up(_input(1, 4, 4, 4), _input(1, 2, 7, 8))


def test_batch_norm_convs_have_no_bias():
    model = UNet(base_channels=2, depth=2, batch_norm=True)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs if c.kernel_size == (3, 3))
    # two per DoubleConv: inc, down1, up1
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 6


def test_module_names_follow_the_figure():
    names = [name for name, _ in UNet(depth=5, base_channels=1).named_children()]
    assert names == ["inc", "down1", "down2", "down3", "down4", "dropout",
                     "up1", "up2", "up3", "up4", "outc"]


# ----------------------------------------------------------------------------- initialisation
def test_he_normal_initialisation():
    model = UNet(in_channels=3, base_channels=32, depth=3)
    for conv in (model.inc.double_conv[0], model.down2.maxpool_conv[1].double_conv[2]):
        C, (KH, KW) = conv.in_channels, conv.kernel_size
        std = conv.weight.detach().numpy().std()
        assert abs(std / math.sqrt(2 / (KH * KW * C)) - 1) < 0.1, (C, std)
        assert not conv.bias.detach().numpy().any()
    upconv = model.up1.up                       # 2x2 stride 2: one tap per input channel
    assert abs(upconv.weight.detach().numpy().std() / math.sqrt(2 / upconv.in_channels) - 1) < 0.1
    assert not upconv.bias.detach().numpy().any()


# ----------------------------------------------------------------------------- dropout
def test_dropout_sits_at_the_end_of_the_contracting_path():
    model = UNet(base_channels=2, depth=3, padding="same", dropout=0.5)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.5
    assert isinstance(UNet(base_channels=1, depth=2).dropout, nn.Identity)
    seen = []
    original = model.dropout.forward
    model.dropout.forward = lambda x: seen.append(tuple(x.shape)) or original(x)
    x = _input(1, 1, 16, 16)
    model(x)
    assert seen == [(1, 8, 4, 4)]                     # the bottom level's output
    model.eval()
    np.testing.assert_array_equal(model(x).detach().numpy(), model(x).detach().numpy())


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=0), "depth must be an int >= 1"),
    (dict(depth=2.5), "depth must be an int >= 1"),
    (dict(n_classes=0), "n_classes must be an int >= 1"),
    (dict(in_channels=0), "in_channels must be an int >= 1"),
    (dict(base_channels=0), "base_channels must be an int >= 1"),
    (dict(padding="full"), "padding must be 'valid'"),
    (dict(up_mode="nearest"), "up_mode must be"),
    (dict(dropout=1.0), "dropout must be a probability"),
])
def test_bad_configuration_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


def test_input_too_small_names_the_smallest_size():
    model = UNet(base_channels=1)
    with pytest.raises(ValueError, match="smallest size it takes is 188"):
        model.output_size(100)
    with pytest.raises(ValueError, match="input height of 60"):
        model(_input(1, 1, 60, 60))


def test_odd_size_in_same_mode_names_the_nearest_sizes():
    model = UNet(base_channels=1, padding="same")
    with pytest.raises(ValueError, match=r"divisible by 2\*\*\(depth-1\) = 16.*240 and 256"):
        model.output_size(250)
    with pytest.raises(ValueError, match="input width of 33"):
        model(_input(1, 1, 32, 33))


def test_valid_mode_odd_pooling_names_the_nearest_sizes():
    with pytest.raises(ValueError, match="odd size 279.*556 and 572"):
        UNet(base_channels=1).output_size(570)


def test_wrong_input_channels():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        UNet(in_channels=3, base_channels=1, depth=2, padding="same")(_input(1, 1, 8, 8))


# ----------------------------------------------------------------------------- learning
def test_tiny_unet_overfits_one_image():
    """Adam drives the per-pixel cross-entropy on one image and mask to near zero."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    mask = ((yy - 7.5) ** 2 + (xx - 6) ** 2 < 20).astype(np.int64)        # a disc
    image = mask + 0.3 * rng.standard_normal((16, 16))
    x = minidl.tensor(image[None, None].astype(np.float32))
    target = minidl.tensor(mask[None])
    model = UNet(in_channels=1, n_classes=2, base_channels=8, depth=3, padding="same")
    optimizer = minidl.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.01, losses[::25]       # from ~0.7; seeds 0-5 end below 0.003
    assert (model(x).detach().numpy().argmax(1) == mask).all()
