"""fcn8s / fcn16s / fcn32s as seed models: the interface (SOURCE, LOSS, RECIPE, sizes), a
PyTorch twin with our module tree (float64, tests/seed_model_checks.py: output, loss, every
gradient, parameters after two steps of the paper's SGD in train mode, eval mode), and a short training run on synthetic trimaps reported by mean IU."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
import minidl.functional as F
from seed_model_checks import compare_with_twin, fix_dropout_masks, standard_losses

from benchmarks.torch_twins import torch_fcn
from unet import FCN
from unet.metrics import confusion_matrix, mean_iou
from unet.synthetic import make_trimap


WIDTH = 1 / 32


def test_interface():
    assert FCN.LOSS == "ce"
    assert FCN.RECIPE["optimizer"] == "sgd" and FCN.RECIPE["weight_decay"] == 5e-4
    assert "Fully Convolutional" in FCN.SOURCE
    model = FCN(n_classes=3, variant="8s", width=WIDTH)
    assert model.in_channels == 3 and model.n_classes == 3
    # parameters at the default width (VGG16: 13 convolutions and the two fc layers as convs)
    assert sum(p.numel() for p in FCN(n_classes=21, variant="8s").parameters()) == 134_489_759


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300))
def test_valid_input_size_is_the_size_itself(h, w):
    model = FCN(n_classes=2, variant="16s", width=1 / 64)
    assert model.valid_input_size((h, w)) == (h, w) and model.valid_input_size(h) == h
    assert model.output_size((h, w)) == (h, w)


def test_valid_input_size_rejects_nonsense():
    with pytest.raises(ValueError, match="positive"):
        FCN(width=WIDTH).valid_input_size(0)


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_matches_torch_twin_with_the_papers_sgd(torch, variant):
    minidl.manual_seed(0)
    ours = FCN(n_classes=3, variant=variant, width=WIDTH)
    rng = np.random.default_rng(0)
    for p in ours.parameters():                       # non-zero score layers: every branch counts
        p.data[...] = rng.standard_normal(p.shape) * (2.0 / max(p[0].numel(), 1)) ** 0.5
    theirs = torch_fcn(torch, 3, variant, WIDTH)
    fix_dropout_masks(torch, ours, theirs)            # the fc dropouts: the same masks in both
    recipe = dict(optimizer="sgd", lr=1e-3, momentum=FCN.RECIPE["momentum"],
                  weight_decay=FCN.RECIPE["weight_decay"])
    x = rng.standard_normal((2, 3, 21, 26))
    target = rng.integers(0, 3, (2, 21, 26))
    compare_with_twin(torch, ours, theirs, x, target, recipe, standard_losses(torch, "ce"))


def test_fcn8s_learns_trimaps_and_reports_mean_iu():
    """From scratch (the paper starts from ImageNet VGG16), a tiny FCN-8s fits two trimaps well
    beyond the class frequencies: its loss falls below 80% of their entropy (the best loss of a
    prediction that ignores the image) and its mean IU clearly above all-background's."""
    minidl.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = [make_trimap((64, 64), rng, border=1) for _ in range(2)]
    x = minidl.tensor(np.stack([s[0] for s in samples]))                 # (2, 3, 64, 64)
    target = np.stack([s[1] for s in samples])                           # (2, 64, 64)
    freq = np.bincount(target.ravel(), minlength=3) / target.size
    entropy = -np.sum(freq * np.log(freq))
    model = FCN(n_classes=3, variant="8s", width=1 / 32)
    opt = minidl.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = F.cross_entropy(model(x), minidl.tensor(target))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with minidl.no_grad():
        pred = model(x).numpy().argmax(axis=1)
    miu = mean_iou(confusion_matrix(pred, target, 3))
    all_background = freq[1] / 3                  # IU of class 1 = its frequency, the others 0
    assert min(losses[-5:]) < 0.8 * entropy, (entropy, losses)
    assert miu > all_background + 0.1, (miu, all_background)
