"""TfUNet (jakeret/tf_unet): a PyTorch twin in float64 with tf_unet's three costs, its
initialisation, the size rule, a short training run with its recipe."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
from seed_model_checks import cells_batch, compare_with_twin, count_parameters, fix_dropout_masks
from unet.planner import SizeError
from unet.tf_unet import TfUNet, tf_unet_loss


def torch_tf_unet(torch, in_channels, n_classes, width, layers, filter_size, keep_prob):
    """create_conv_net written in PyTorch with our module names."""
    tnn = torch.nn

    def block(ci, co):
        return tnn.Sequential(tnn.Conv2d(ci, co, filter_size), tnn.Dropout(1 - keep_prob), tnn.ReLU(),
                              tnn.Conv2d(co, co, filter_size), tnn.Dropout(1 - keep_prob), tnn.ReLU())

    class Up(tnn.Module):
        def __init__(self, f):
            super().__init__()
            self.deconv = tnn.Sequential(tnn.ConvTranspose2d(f, f // 2, 2, stride=2), tnn.ReLU())
            self.conv = block(f, f // 2)

        def forward(self, x, skip):
            x = self.deconv(x)
            h, w = x.shape[-2:]
            top, left = (skip.shape[-2] - h) // 2, (skip.shape[-1] - w) // 2
            return self.conv(torch.cat([skip[:, :, top:top + h, left:left + w], x], 1))

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            c = in_channels
            for i in range(layers):
                setattr(self, f"down_conv_{i}", block(c, 2 ** i * width))
                c = 2 ** i * width
            for i in range(layers - 2, -1, -1):
                setattr(self, f"up_conv_{i}", Up(2 ** (i + 1) * width))
            self.output_map = tnn.Conv2d(width, n_classes, 1)

        def forward(self, x):
            skips = []
            for i in range(layers):
                x = getattr(self, f"down_conv_{i}")(x)
                skips.append(x)
                if i < layers - 1:
                    x = torch.nn.functional.max_pool2d(x, 2)
            for i in range(layers - 2, -1, -1):
                x = getattr(self, f"up_conv_{i}")(x, skips[i])
            return torch.relu(self.output_map(x))

    return Twin()


def torch_tf_unet_cost(torch, cost, class_weights):
    """tf_unet's _get_cost in PyTorch, on class-index labels cropped like util.crop_to_shape."""
    def loss(logits, target):
        n_class, (h, w) = logits.shape[1], logits.shape[-2:]
        oy, ox = (target.shape[-2] - h) // 2, (target.shape[-1] - w) // 2
        y = torch.nn.functional.one_hot(target[:, oy:oy + h, ox:ox + w], n_class).to(logits.dtype)
        flat_logits, flat_labels = logits.permute(0, 2, 3, 1).reshape(-1, n_class), y.reshape(-1, n_class)
        if cost == "dice_coefficient":
            p = torch.softmax(flat_logits, 1)
            return -(2 * (p * flat_labels).sum() / (1e-5 + p.sum() + flat_labels.sum()))
        loss_map = -(flat_labels * torch.log_softmax(flat_logits, 1)).sum(1)
        if class_weights is not None:
            loss_map = loss_map * (flat_labels * torch.tensor(class_weights, dtype=logits.dtype)).sum(1)
        return loss_map.mean()
    return loss


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
