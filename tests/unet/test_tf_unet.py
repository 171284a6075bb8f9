"""TfUNet (jakeret/tf_unet): a PyTorch twin in float64 with tf_unet's three costs, its
initialisation, the size rule, a short training run with its recipe."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
from seed_model_checks import cells_batch, compare_with_twin, count_parameters, fix_dropout_masks
from benchmarks.torch_twins import torch_tf_unet, torch_tf_unet_cost
from unet.planner import SizeError
from unet.tf_unet import TfUNet, tf_unet_loss


@pytest.mark.parametrize("cost, class_weights", [("cross_entropy", None), ("cross_entropy", [0.3, 2.0, 1.1]),
                                                 ("dice_coefficient", None)])
def test_matches_torch_twin_float64(torch, cost, class_weights):
    """Outputs, tf_unet's cost, every gradient, two steps of its momentum SGD with dropout
    (keep 0.75) on fixed masks, then eval mode: all to 1e-10."""
    ours = TfUNet(in_channels=2, n_classes=3, width=3, layers=3)
    theirs = torch_tf_unet(torch, 2, 3, 3, 3, 3, 0.75)
    assert len(fix_dropout_masks(torch, ours, theirs)) == 2 * 5
    rng = np.random.default_rng(0)
    size = ours.valid_input_size((30, 45))
    assert size == (44, 48)
    x = rng.standard_normal((2, 2, *size))
    target = rng.integers(0, 3, (2, *size))
    losses = (lambda y, t: tf_unet_loss(y, t, cost, class_weights), torch_tf_unet_cost(torch, cost, class_weights))
    compare_with_twin(torch, ours, theirs, x, target, TfUNet.RECIPE, losses)


def test_filter_size_5_and_two_layers_match_the_twin(torch):
    ours = TfUNet(in_channels=1, n_classes=2, width=2, layers=2, filter_size=5, keep_prob=1.0)
    theirs = torch_tf_unet(torch, 1, 2, 2, 2, 5, 1.0)
    size = ours.valid_input_size(20)
    assert (size, ours.output_size(size)) == (34, 2)        # 34 -> 26 | 13 -> 5, up 10 -> 2
    x = np.random.default_rng(1).standard_normal((1, 1, size, size))
    target = np.random.default_rng(2).integers(0, 2, (1, size, size))
    losses = (lambda y, t: tf_unet_loss(y, t), torch_tf_unet_cost(torch, "cross_entropy", None))
    compare_with_twin(torch, ours, theirs, x, target, TfUNet.RECIPE, losses)


def test_default_is_tf_unets_network():
    """Unet(channels=3, n_class=2), layers 3, features_root 16, 3x3: per level 9*(c_in + f)*f
    + 2f weights and biases; up: 4*f*f/2 + f/2 for the deconv; output 16*2 + 2."""
    model = TfUNet()
    down = sum(9 * (c + f) * f + 2 * f for c, f in ((3, 16), (16, 32), (32, 64)))
    up = sum(4 * f * (f // 2) + f // 2 + 9 * (f + f // 2) * (f // 2) + f for f in (64, 32))
    assert count_parameters(model) == down + up + 16 * 2 + 2 == 117_058
    assert (model.in_channels, model.n_classes, model.LOSS) == (3, 2, "ce")
    assert model.RECIPE == dict(optimizer="sgd", lr=0.2, momentum=0.2, weight_decay=0.0)
    assert model.output_size(572) == 532 and model.output_size((572, 188)) == (532, 148)
    names = [name for name, _ in model.named_children()]
    assert names == ["down_conv_0", "down_conv_1", "down_conv_2", "pool", "up_conv_1", "up_conv_0", "output_map"]
    assert [m.p for m in model.modules() if isinstance(m, minidl.nn.Dropout)] == [0.25] * 10


def test_tf_unet_initialisation():
    """truncated_normal(stddev=sqrt(2 / (9 * features))), features of the level (the up
    level's for its deconv, up_conv_0's for the output map); every bias 0.1."""
    model = TfUNet(width=32)
    truncated = 0.8796256610342398                 # std of N(0, 1) restricted to [-2, 2]
    for layer, features in ((model.down_conv_0[0], 32), (model.down_conv_2[3], 128),
                            (model.up_conv_1.deconv[0], 128), (model.up_conv_0.conv[3], 64),
                            (model.output_map, 64)):
        w, std = layer.weight.detach().numpy(), math.sqrt(2 / (9 * features))
        assert np.abs(w).max() <= 2 * std
        if w.size > 2000:
            assert abs(w.std() / (truncated * std) - 1) < 0.05, (layer, w.std())
        np.testing.assert_array_equal(layer.bias.detach().numpy(), np.float32(0.1))


def test_loss_by_hand():
    """Two pixels, two classes: the costs from their definitions."""
    logits = minidl.tensor(np.array([[[[2.0, 0.0]], [[0.0, 1.0]]]]))        # (1, 2, 1, 2)
    target = minidl.tensor(np.array([[[0, 0]]]))                          # both class 0
    l0, l1 = math.log(1 + math.exp(-2)), math.log(1 + math.exp(1))
    assert tf_unet_loss(logits, target).item() == pytest.approx((l0 + l1) / 2, rel=1e-12)
    assert tf_unet_loss(logits, target, class_weights=[3.0, 5.0]).item() == pytest.approx(3 * (l0 + l1) / 2)
    p0, p1 = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1))
    assert tf_unet_loss(logits, target, "dice_coefficient").item() == pytest.approx(
        -2 * (p0 + p1) / (1e-5 + 2 + 2), rel=1e-12)
    onehot = minidl.tensor(np.array([[[[1.0, 1.0]], [[0.0, 0.0]]]]))
    assert tf_unet_loss(logits, onehot).item() == pytest.approx((l0 + l1) / 2, rel=1e-12)


def test_loss_errors():
    logits = minidl.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="cost must be"):
        tf_unet_loss(logits, minidl.zeros(1, 4, 4, dtype=minidl.int64), cost="dice")
    with pytest.raises(ValueError, match="one weight per class"):
        tf_unet_loss(logits, minidl.zeros(1, 4, 4, dtype=minidl.int64), class_weights=[1.0])
    with pytest.raises(ValueError, match="at least as large as the logits"):
        tf_unet_loss(logits, minidl.zeros(1, 3, 3, dtype=minidl.int64))
    with pytest.raises(ValueError, match="must be an integer tensor"):
        tf_unet_loss(logits, minidl.zeros(1, 4, 4))


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), layers=st.integers(1, 3))
def test_sizes_agree_with_the_forward(h, w, layers):
    model = TfUNet(in_channels=1, width=1, layers=layers).eval()
    valid = model.valid_input_size((h, w))
    out = model.output_size(valid)
    assert model(minidl.zeros(1, 1, *valid)).shape == (1, 2, *out)
    assert valid[0] >= h and valid[1] >= w
    for smaller in range(h, valid[0]):
        with pytest.raises(SizeError):
            model.output_size(smaller)
    if valid[0] != h:
        with pytest.raises(SizeError, match=f"input height of {h}"):
            model(minidl.zeros(1, 1, h, valid[1]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="keep_prob must be a probability"):
        TfUNet(keep_prob=0.0)
    with pytest.raises(ValueError, match="layers must be an int >= 1"):
        TfUNet(layers=0)
    with pytest.raises(ValueError, match="too small: the smallest size it takes is 44"):
        TfUNet().output_size(40)
    with pytest.raises(ValueError, match="nearest sizes it takes are 44 and 48"):
        TfUNet().output_size(46)


def test_learns_synthetic_cells():
    """tf_unet's "adam" optimizer (its default lr 1e-3; keep_prob 1 here) on two 92x92
    synthetic cell images (52x52 out, labels cropped by the loss): the cross-entropy falls
    from ~0.69 below 0.5 in 60 steps (0.56 is the best constant prediction). (Its default
    momentum SGD at lr 0.2 on ONE repeated batch can kill the output ReLU: loss log 2.)"""
    x, mask = cells_batch(2, (92, 92))
    minidl.manual_seed(0)
    model = TfUNet(in_channels=1, n_classes=2, width=8, keep_prob=1.0)
    opt = minidl.optim.Adam(model.parameters(), lr=1e-3)
    xt, tt = minidl.tensor(x), minidl.tensor(mask)
    losses = []
    for _ in range(60):
        loss = tf_unet_loss(model(xt), tt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5, losses[::10]
