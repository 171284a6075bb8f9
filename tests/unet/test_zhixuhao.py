"""ZhixuhaoUNet (zhixuhao/unet, Keras): a PyTorch twin in float64, Keras's 'same' padding and
initialisation, the size rule, a short training run."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
import minidl.functional as F
from seed_model_checks import (cells_batch, compare_with_twin, count_parameters, fix_dropout_masks,
                               standard_losses, train_steps)
from benchmarks.torch_twins import torch_zhixuhao
from unet.planner import SizeError
from unet.zhixuhao import ZhixuhaoUNet


@pytest.mark.parametrize("up", ["transpose", "upsample"])
def test_matches_torch_twin_float64(torch, up):
    """Outputs, BCE loss, every gradient, two Adam steps (lr 1e-4, the recipe) with dropout
    0.5 on fixed masks, then eval mode: all to 1e-10."""
    ours = ZhixuhaoUNet(in_channels=2, n_classes=1, width=2, up=up)
    theirs = torch_zhixuhao(torch, 2, 1, 2, up, 0.5)
    assert fix_dropout_masks(torch, ours, theirs) == ["drop4", "drop5"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 32, 48))
    target = (rng.random((2, 1, 32, 48)) < 0.4).astype(np.float64)
    compare_with_twin(torch, ours, theirs, x, target, ZhixuhaoUNet.RECIPE, standard_losses(torch, "bce"))


def test_default_is_the_keras_model():
    """Keras's model.summary() of zhixuhao's unet(): Total params 31,031,685."""
    model = ZhixuhaoUNet()
    assert count_parameters(model) == 31_031_685
    assert count_parameters(ZhixuhaoUNet(up="upsample")) == 31_031_685
    assert (model.in_channels, model.n_classes, model.LOSS) == (1, 1, "bce")
    assert model.RECIPE == dict(optimizer="adam", lr=1e-4, weight_decay=0.0)
    assert [model.drop4.p, model.drop5.p] == [0.5, 0.5]
    assert tuple(model.conv5[2].weight.shape) == (1024, 1024, 3, 3)


def test_upsample_branch_pads_like_keras_same():
    """UpSampling2D then Conv2D(2, padding='same'): TensorFlow pads 0 on top/left and 1 on
    bottom/right, so the tap at the kernel's top-left reads the pixel itself and the tap at
    its bottom-right the pixel one down and right (zero past the last row/column)."""
    up = ZhixuhaoUNet(width=1, up="upsample").up9              # 2 -> 1 channels
    x = np.arange(2 * 3 * 4, dtype=np.float64).reshape(1, 2, 3, 4) + 1
    big = x.repeat(2, 2).repeat(2, 3)[:, 0]                      # nearest x2 of channel 0
    conv = up[2]
    for (i, j), expected in (((0, 0), big), ((1, 1), np.pad(big[:, 1:, 1:], ((0, 0), (0, 1), (0, 1))))):
        with minidl.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[0, 0, i, j] = 1.0
        out = up(minidl.tensor(x.astype(np.float32))).detach().numpy()[:, 0]
        np.testing.assert_array_equal(out, expected)


def test_keras_initialisation():
    """he_normal: N(0, 2/fan_in) truncated at 2 std (std of the result 0.8796 of that), bias 0;
    a transposed kernel's fan_in is KH*KW*C_out as Keras counts it; conv10 glorot_uniform."""
    model = ZhixuhaoUNet(width=32)
    truncated = 0.8796256610342398           # std of N(0, 1) restricted to [-2, 2]
    for conv, fan_in in ((model.conv3[2], 9 * 128), (model.conv1[0], 9 * 1), (model.up6[0], 4 * 256),
                         (model.head[0], 9 * 32)):
        w = conv.weight.detach().numpy()
        std = math.sqrt(2 / fan_in)
        assert np.abs(w).max() <= 2 * std
        if w.size > 1000:
            assert abs(w.std() / (truncated * std) - 1) < 0.05, (conv, w.std())
        assert not conv.bias.detach().numpy().any()
    model = ZhixuhaoUNet(width=2, n_classes=500)               # conv10, 1x1, 2 -> 500: l = sqrt(6 / 502)
    w, limit = model.head[2].weight.detach().numpy(), math.sqrt(6 / 502)
    assert np.abs(w).max() <= limit and abs(w.std() / (limit / math.sqrt(3)) - 1) < 0.1


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 80), w=st.integers(1, 80))
def test_sizes_agree_with_the_forward(h, w):
    model = ZhixuhaoUNet(width=1, up="upsample").eval()
    valid = model.valid_input_size((h, w))
    assert all(v >= m and v % 16 == 0 and v - m < 16 for v, m in zip(valid, (h, w)))
    assert model(minidl.zeros(1, 1, *valid)).shape == (1, 1, *model.output_size(valid))
    assert model.output_size(valid) == valid
    assert model.output_size(valid[0]) == valid[0]
    if h % 16:
        with pytest.raises(SizeError, match=f"input height of {h}"):
            model(minidl.zeros(1, 1, h, valid[1]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="up must be 'transpose'"):
        ZhixuhaoUNet(up="bilinear")
    with pytest.raises(ValueError, match="width must be an int >= 1"):
        ZhixuhaoUNet(width=0)
    with pytest.raises(ValueError, match="dropout must be a probability"):
        ZhixuhaoUNet(dropout=1.0)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, H, W\)"):
        ZhixuhaoUNet(width=1)(minidl.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="nearest sizes it takes are 16 and 32"):
        ZhixuhaoUNet(width=1).output_size(20)


@pytest.mark.parametrize("up", ["transpose", "upsample"])
def test_learns_synthetic_cells(up):
    """40 Adam steps (lr 3e-3: the recipe's 1e-4 is for the full width) on two 32x32 synthetic
    cell images, width 8, no dropout: the BCE falls from ~0.69 below 0.3, well under the 0.56
    of the best constant prediction (75% of the pixels are cell)."""
    x, mask = cells_batch(2, (32, 32))
    minidl.manual_seed(0)
    model = ZhixuhaoUNet(width=8, up=up, dropout=0.0)
    losses = train_steps(model, x, mask[:, None].astype(np.float32),
                         lambda y, t: F.binary_cross_entropy_with_logits(y, t), lr=3e-3, steps=40)
    assert losses[-1] < 0.3, losses[::10]
