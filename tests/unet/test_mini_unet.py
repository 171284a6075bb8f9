"""MiniUNet (keras-segmentation's unet_mini): a PyTorch twin in float64, Keras's default
initialisation, the size rule, a short training run."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
import minidl.functional as F
from seed_model_checks import (cells_batch, compare_with_twin, count_parameters, fix_dropout_masks,
                               standard_losses, train_steps)
from benchmarks.torch_twins import torch_mini_unet
from unet.mini_unet import MiniUNet
from unet.planner import SizeError


def test_matches_torch_twin_float64(torch):
    """Outputs, cross-entropy, every gradient, two Adam steps (lr 1e-3, the recipe) with
    Dropout(0.2) on fixed masks, then eval mode: all to 1e-10."""
    ours = MiniUNet(in_channels=3, n_classes=4, width=3)
    theirs = torch_mini_unet(torch, 3, 4, 3, 0.2)
    assert fix_dropout_masks(torch, ours, theirs) == [f"conv{i}.2" for i in range(1, 6)]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 20, 28))
    target = rng.integers(0, 4, (2, 20, 28))
    compare_with_twin(torch, ours, theirs, x, target, MiniUNet.RECIPE, standard_losses(torch, "ce"))


def test_default_is_unet_mini():
    """unet_mini(n_classes=2, channels=3): per block 9*c_in*c + 9*c*c + 2c; up blocks take
    the up-sampled and the skip channels (128 + 64, 64 + 32); output 32*2 + 2."""
    model = MiniUNet()
    blocks = [(3, 32), (32, 64), (64, 128), (192, 64), (96, 32)]
    assert count_parameters(model) == sum(9 * ci * c + 9 * c * c + 2 * c for ci, c in blocks) + 66 == 471_586
    assert (model.in_channels, model.n_classes, model.LOSS) == (3, 2, "ce")
    assert model.RECIPE == dict(optimizer="adam", lr=1e-3, weight_decay=0.0)
    assert [m.p for m in model.modules() if isinstance(m, minidl.nn.Dropout)] == [0.2] * 5


def test_keras_default_initialisation():
    """glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (std l / sqrt(3)); bias 0."""
    model = MiniUNet(width=32)
    for conv in (model.conv1[0], model.conv3[3], model.conv4[0], model.out):
        (KH, KW), w = conv.kernel_size, conv.weight.detach().numpy()
        limit = math.sqrt(6 / (KH * KW * (conv.in_channels + conv.out_channels)))
        assert np.abs(w).max() <= limit
        if w.size > 1000:
            assert abs(w.std() / (limit / math.sqrt(3)) - 1) < 0.05
        assert not conv.bias.detach().numpy().any()


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 60), w=st.integers(1, 60))
def test_sizes_agree_with_the_forward(h, w):
    model = MiniUNet(in_channels=1, width=1).eval()
    valid = model.valid_input_size((h, w))
    assert valid == (-(-h // 4) * 4, -(-w // 4) * 4)
    assert model(minidl.zeros(1, 1, *valid)).shape == (1, 2, *valid) and model.output_size(valid) == valid
    if w % 4:
        with pytest.raises(SizeError, match=f"input width of {w}"):
            model(minidl.zeros(1, 1, valid[0], w))


def test_bad_arguments():
    with pytest.raises(ValueError, match="dropout must be a probability"):
        MiniUNet(dropout=-0.1)
    with pytest.raises(ValueError, match="n_classes must be an int >= 1"):
        MiniUNet(n_classes=0)
    with pytest.raises(ValueError, match="nearest sizes it takes are 8 and 12"):
        MiniUNet(width=1).output_size(10)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        MiniUNet(width=1)(minidl.zeros(1, 1, 8, 8))


def test_learns_synthetic_cells():
    """60 Adam steps (lr 3e-3 at this tiny width) on two 32x32 synthetic cell images, width 8,
    no dropout: the cross-entropy falls from ~0.69 below 0.35 (0.56: best constant)."""
    x, mask = cells_batch(2, (32, 32))
    minidl.manual_seed(0)
    model = MiniUNet(in_channels=1, n_classes=2, width=8, dropout=0.0)
    losses = train_steps(model, x, mask, lambda y, t: F.cross_entropy(y, t), lr=3e-3, steps=60)
    assert losses[-1] < 0.35, losses[::10]
