"""FCN-32s/16s/8s: output size = input size, offsets from the geometry, bilinear up-sampling."""
from fractions import Fraction

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from unet import FCN
from unet.fcn import bilinear_kernel
from unet.planner import CoordMap

WIDTH = 1 / 32          # channels 2, 4, 8, 16, 16 and 128 in fc6/fc7: fast on a CPU


def _image(*shape, seed=0):
    return minidl.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _randomise(model, seed=0):
    """Non-zero score layers, so that every branch shows up in the output (frozen ones stay)."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        if p.requires_grad:
            p.data[...] = rng.standard_normal(p.shape) * 0.3


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
@pytest.mark.parametrize("size", [(1, 1), (7, 10), (16, 16), (31, 33), (64, 50)])
def test_output_size_equals_input_size(variant, size):
    model = FCN(n_classes=3, variant=variant, width=WIDTH)
    assert model(_image(2, 3, *size)).shape == (2, 3, *size)
    assert model.output_size(size) == size


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_planner_accepts_every_size(variant):
    model = FCN(n_classes=2, variant=variant, width=WIDTH)
    assert all(model.output_size(n) == n for n in range(1, 700))


def test_offsets_are_the_papers():
    assert FCN(variant="32s", width=WIDTH).offsets == {"output": 19}
    assert FCN(variant="16s", width=WIDTH).offsets == {"score_pool4": 5, "output": 27}
    assert FCN(variant="8s", width=WIDTH).offsets == {"score_pool4": 5, "score_pool3": 9, "output": 31}


def test_coord_maps_compose_layer_by_layer():
    model = FCN(variant="8s", width=WIDTH)
    pool4 = CoordMap().through(model.block1, model.block2, model.block3, model.block4)
    assert pool4 == CoordMap(Fraction(16), Fraction(-183, 2))          # (16, -91.5)
    fc7 = pool4.through(model.block5, model.fc)
    assert fc7 == CoordMap(Fraction(32), Fraction(25, 2))              # (32, 12.5)
    assert CoordMap().through(nn.Conv2d(1, 1, 3, padding=100)) == CoordMap(1, -99)
    assert CoordMap(2, 0).through(nn.ConvTranspose2d(1, 1, 4, stride=2)) == CoordMap(1, Fraction(-3, 2))


def test_offsets_follow_the_geometry_not_constants():
    """Pad conv1_1 by 132 instead of 100: the maps move 32 pixels, the final crop follows, and
    the skip crops (pool4 and pool3 move with fc7) stay. Too little padding cannot be cropped."""
    model = FCN(n_classes=2, variant="8s", width=WIDTH)
    _randomise(model)
    model.block1.conv1_1.padding = (132, 132)
    model.offsets = model._crop_offsets()
    assert model.offsets == {"score_pool4": 5, "score_pool3": 9, "output": 63}
    assert model(_image(1, 3, 13, 20)).shape == (1, 2, 13, 20)
    model.block1.conv1_1.padding = (68, 68)
    with pytest.raises(ValueError, match="non-negative"):
        model._crop_offsets()


def _interpolated(x, stride):
    """Bilinear x``stride`` (align_corners=False), the reference for the transposed conv."""
    return F.interpolate(x, scale_factor=stride, mode="bilinear", align_corners=False)


@pytest.mark.parametrize("stride", [2, 8, 16, 32])
def test_bilinear_kernel_reproduces_bilinear_interpolation(stride):
    """conv_transpose2d with the kernel (2S x 2S, stride S, padding S/2) equals bilinear
    interpolation exactly wherever interpolation does not clamp at the border."""
    x = minidl.tensor(np.random.default_rng(1).standard_normal((2, 3, 5, 4)))
    weight = minidl.tensor(bilinear_kernel(3, 2 * stride))
    y = F.conv_transpose2d(x, weight, stride=stride, padding=stride // 2)
    ref = _interpolated(x, stride)
    assert y.shape == ref.shape == (2, 3, 5 * stride, 4 * stride)
    inner = (slice(None), slice(None), slice(stride // 2, -(stride // 2)), slice(stride // 2, -(stride // 2)))
    np.testing.assert_allclose(y.numpy()[inner], ref.numpy()[inner], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, stride", [("upscore2", 2), ("upscore_pool4", 2), ("upscore8", 8)])
def test_fcn_upsampling_layers_start_as_bilinear_interpolation(name, stride):
    """The model's own layers (no padding: shifted by S/2 pixels) on a smooth test image."""
    model = FCN(n_classes=3, variant="8s", width=WIDTH)
    yy, xx = np.mgrid[:6, :7]
    image = np.stack([np.sin(yy / 2.0) * np.cos(xx / 3.0), yy * 0.1 + xx * xx * 0.01, (yy - xx) ** 2 * 0.05])
    x = minidl.tensor(image[None].astype(np.float32))
    y = getattr(model, name)(x).detach().numpy()
    ref = _interpolated(x, stride).numpy()
    h = slice(stride // 2, 6 * stride - stride // 2)
    w = slice(stride // 2, 7 * stride - stride // 2)
    shifted = (slice(None), slice(None), slice(h.start + stride // 2, h.stop + stride // 2),
               slice(w.start + stride // 2, w.stop + stride // 2))
    np.testing.assert_allclose(y[shifted], ref[:, :, h, w], rtol=1e-6, atol=1e-6)


def test_bilinear_kernel_values():
    k4 = bilinear_kernel(2, 4)
    np.testing.assert_allclose(k4[0, 0, 1], [0.1875, 0.5625, 0.5625, 0.1875])   # 0.75*[.25 .75 .75 .25]
    assert not k4[0, 1].any() and not k4[1, 0].any()                            # channels stay apart
    np.testing.assert_allclose(bilinear_kernel(1, 3)[0, 0], np.outer([.5, 1, .5], [.5, 1, .5]))


def test_initial_model_scores_zero_and_upsampling_can_be_frozen():
    model = FCN(n_classes=4, variant="16s", width=WIDTH)
    assert not model(_image(1, 3, 9, 9)).detach().numpy().any()         # zero score layers
    frozen = FCN(n_classes=4, variant="8s", width=WIDTH, freeze_upsampling=True)
    _randomise(frozen)
    frozen(_image(1, 3, 9, 9)).sum().backward()
    for name in ("upscore2", "upscore_pool4", "upscore8"):
        weight = getattr(frozen, name).weight
        assert not weight.requires_grad and weight.grad is None
        np.testing.assert_array_equal(weight.detach().numpy(), bilinear_kernel(4, weight.shape[-1]))
    assert frozen.score_pool3.weight.grad is not None


def test_width_scales_every_channel_count():
    model = FCN(n_classes=5, variant="8s", in_channels=1, width=1 / 16)
    assert model.block1.conv1_1.weight.shape == (4, 1, 3, 3)
    assert model.block5.conv5_3.weight.shape == (32, 32, 3, 3)
    assert model.fc.fc6.weight.shape == (256, 32, 7, 7)
    assert model.score_pool3.weight.shape == (5, 16, 1, 1)
    assert model.upscore8.weight.shape == (5, 5, 16, 16)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_classes=0), "n_classes must be an int >= 1"),
    (dict(variant="4s"), "variant must be one of"),
    (dict(in_channels=0), "in_channels must be an int >= 1"),
    (dict(width=0), "width must be a positive number"),
])
def test_bad_configuration_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FCN(**kwargs)


def test_wrong_input_is_a_clear_error():
    model = FCN(n_classes=2, width=WIDTH)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        model(_image(1, 1, 8, 8))
    with pytest.raises(ValueError, match="positive"):
        model.output_size(0)
