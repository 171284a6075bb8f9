"""BNUNet (BatchNorm, stride-2 conv down, 3x3 transposed conv up): a PyTorch twin in float64
in train mode (batch statistics, running statistics) and eval mode, sizes, a training run."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
import minidl.functional as F
from seed_model_checks import (cells_batch, compare_with_twin, count_parameters, standard_losses,
                               train_steps)
from benchmarks.torch_twins import torch_bn_unet
from unet.bn_unet import BNUNet
from unet.planner import SizeError


@pytest.mark.parametrize("depth", [5, 3])
def test_matches_torch_twin_float64(torch, depth):
    """Outputs, BCE loss, every gradient, two Adam steps (lr 1e-3) in train mode (batch
    statistics), the running statistics, then eval mode: all to 1e-10."""
    ours = BNUNet(in_channels=2, n_classes=1, width=2, depth=depth)
    theirs = torch_bn_unet(torch, 2, 1, 2, depth)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 32, 48))
    target = (rng.random((2, 1, 32, 48)) < 0.4).astype(np.float64)
    compare_with_twin(torch, ours, theirs, x, target, BNUNet.RECIPE, standard_losses(torch, "bce"))


def test_default_size_and_parameters():
    """Default: 1 -> 1 channel, 64 ... 1024. Per level i (c = 64 * 2**(i-1), c_in the level
    above's): encoder 9*c_in*c + 9*c*c + 2c biases + 4c BN; stride conv 9c^2 + c + 2c; up 9*2c*c
    + c + 2c; decoder 9*2c*c + 9*c*c + 2c + 4c; head 64 + 1."""
    model = BNUNet()
    c = [64, 128, 256, 512, 1024]
    enc = sum(9 * ci * co + 9 * co * co + 6 * co for ci, co in zip([1] + c[:-1], c))
    down = sum(9 * co * co + 3 * co for co in c[:-1])
    up = sum(9 * 2 * co * co + 3 * co for co in c[:-1])
    dec = sum(9 * 2 * co * co + 9 * co * co + 6 * co for co in c[:-1])
    assert count_parameters(model) == enc + down + up + dec + 65
    assert (model.in_channels, model.n_classes, model.LOSS) == (1, 1, "bce")
    assert model.RECIPE == dict(optimizer="adam", lr=1e-3, weight_decay=0.0)


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), depth=st.integers(1, 4))
def test_sizes_agree_with_the_forward(h, w, depth):
    model = BNUNet(width=1, depth=depth).eval()
    step = 2 ** (depth - 1)
    valid = model.valid_input_size((h, w))
    assert valid == (-(-h // step) * step, -(-w // step) * step)
    assert model(minidl.zeros(1, 1, *valid)).shape == (1, 1, *valid) and model.output_size(valid) == valid
    if h % step:
        with pytest.raises(SizeError, match=f"input height of {h}"):
            model(minidl.zeros(1, 1, h, valid[1]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        BNUNet(depth=0)
    with pytest.raises(ValueError, match="nearest sizes it takes are 16 and 32"):
        BNUNet(width=1).output_size(17)


def test_learns_synthetic_cells():
    """60 Adam steps (lr 3e-3: a tiny width learns faster with it) on two 32x32 synthetic cell
    images, width 8, depth 4: the BCE falls from ~0.78 below 0.35 (0.56 is the best constant
    prediction)."""
    x, mask = cells_batch(2, (32, 32))
    minidl.manual_seed(0)
    model = BNUNet(width=8, depth=4)
    losses = train_steps(model, x, mask[:, None].astype(np.float32),
                         lambda y, t: F.binary_cross_entropy_with_logits(y, t), lr=3e-3, steps=60)
    assert losses[-1] < 0.35, losses[::10]
