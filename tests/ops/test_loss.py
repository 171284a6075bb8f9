"""Losses (minidl/ops/loss.py, minidl/functional/loss.py, minidl/nn/loss.py) against PyTorch.

Forward and every gradient in float64 with a random upstream gradient (a random
dy for reduction='none', a random scalar for 'mean'/'sum'), 1e-10 relative.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from helpers import assert_close, compare_with_torch, gradcheck_with_random_dy
from minidl.functional.loss import (binary_cross_entropy, binary_cross_entropy_with_logits,
                                    cross_entropy, dice_loss, mse_loss, nll_loss)
from minidl.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, DiceLoss, MSELoss, NLLLoss


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
REDUCTIONS = ["none", "mean", "sum"]
# scores (C,), (N,C), (N,C,H,W), (N,C,d1,d2,d3)
SCORE_SHAPES = [(5,), (4, 3), (2, 3, 4, 5), (2, 3, 2, 3, 2)]


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _rand(shape, seed=0, low=0.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape)


def _class_dim(shape):
    return shape[1] if len(shape) > 1 else shape[0]


def _index_target(shape, seed=0, ignore_index=-100, ignore_fraction=0.0):
    """Class indices for scores of ``shape``; about ``ignore_fraction`` of them set to ignore_index."""
    rng = np.random.default_rng(seed)
    t_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    t = rng.integers(0, _class_dim(shape), t_shape)
    ignored = rng.random(t_shape) < ignore_fraction
    return np.where(ignored, ignore_index, t).astype(np.int64)


def _probabilities(shape, seed=0):
    """Class probabilities for scores of ``shape``: positive, summing to 1 along the class dim."""
    p = _rand(shape, seed, 0.05, 1.0)
    return p / p.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)


def _kwargs(torch, **kwargs):
    """The same keyword arguments for minidl and torch (NumPy arrays become tensors of each)."""
    ours = {k: minidl.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    theirs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    return ours, theirs


def _compare_ce(torch, x, target, seed=0, **kwargs):
    tF = torch.nn.functional
    ours, theirs = _kwargs(torch, **kwargs)
    t_ours, t_theirs = minidl.tensor(target), torch.tensor(target)
    return compare_with_torch(torch, lambda a: cross_entropy(a, t_ours, **ours),
                              lambda a: tF.cross_entropy(a, t_theirs, **theirs), [x], seed=seed)


# --------------------------------------------------------------------------------------------
# cross_entropy with class indices
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SCORE_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("ignore_index", [None, -100, 1])
def test_cross_entropy_class_indices_match_torch(torch, backend, shape, reduction, weighted, label_smoothing,
                                                 ignore_index):
    x = _randn(shape, seed=len(shape))
    kwargs = {"reduction": reduction, "label_smoothing": label_smoothing}
    if ignore_index is None:
        target = _index_target(shape, seed=1)
    else:
        target = _index_target(shape, seed=1, ignore_index=ignore_index, ignore_fraction=0.3)
        kwargs["ignore_index"] = ignore_index
    if weighted:
        kwargs["weight"] = _rand((_class_dim(shape),), seed=2, low=0.2, high=2.0)
    _compare_ce(torch, x, target, **kwargs)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2), (3,)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_all_ignored_matches_torch(torch, backend, shape, reduction, weighted, label_smoothing):
    """'mean' over nothing is 0/0 = nan (as torch); 'sum' is 0; every gradient is 0."""
    x = _randn(shape)
    target = np.full(shape[:1] + shape[2:] if len(shape) > 1 else (), -100, dtype=np.int64)
    kwargs = {"reduction": reduction, "label_smoothing": label_smoothing}
    if weighted:
        kwargs["weight"] = _rand((_class_dim(shape),), seed=2, low=0.2, high=2.0)
    y = _compare_ce(torch, x, target, **kwargs)
    if reduction == "mean":
        assert np.isnan(y.item())


def test_cross_entropy_zero_total_weight_gives_nan_like_torch(torch, backend):
    """Present classes all weigh 0: 'mean' is 0/0; the non-ignored rows' gradients are nan as in torch."""
    x, target = _randn((3, 4)), np.array([0, 1, -100])
    for ls in (0.0, 0.3):
        _compare_ce(torch, x, target, weight=np.array([0.0, 0.0, 1.0, 1.0]), label_smoothing=ls)


def test_cross_entropy_gradient_is_softmax_minus_onehot(backend):
    """No weights, no smoothing, 'sum': dL/dz = softmax(z) - onehot(t) exactly."""
    z = minidl.tensor(_randn((4, 3)), requires_grad=True)
    t = np.array([0, 2, 1, 2])
    cross_entropy(z, minidl.tensor(t), reduction="sum").backward()
    p = np.exp(z.detach().numpy())
    p /= p.sum(1, keepdims=True)
    assert_close(z.grad, p - np.eye(3)[t])


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 4), spatial=st.lists(st.integers(1, 3), max_size=3),
       reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans(),
       label_smoothing=st.sampled_from([0.0, 0.1, 0.5, 1.0]), ignore=st.sampled_from([None, -100, 0, 2]),
       seed=st.integers(0, 2**16))
def test_cross_entropy_sweep_matches_torch(torch, backend, n, c, spatial, reduction, weighted, label_smoothing,
                                           ignore, seed):
    shape = (n, c, *spatial)
    kwargs = {"reduction": reduction, "label_smoothing": label_smoothing}
    if ignore is None:
        target = _index_target(shape, seed)
    else:
        target = _index_target(shape, seed, ignore_index=ignore, ignore_fraction=0.4)
        kwargs["ignore_index"] = ignore
    if weighted:
        kwargs["weight"] = _rand((c,), seed + 1, 0.2, 2.0)
    _compare_ce(torch, _randn(shape, seed), target, seed=seed, **kwargs)


# --------------------------------------------------------------------------------------------
# cross_entropy with class probabilities
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SCORE_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_probabilities_match_torch(torch, backend, shape, reduction, weighted, label_smoothing):
    """Both gradients: the logits' and the (soft) target's."""
    tF = torch.nn.functional
    kwargs = {"reduction": reduction, "label_smoothing": label_smoothing}
    if weighted:
        kwargs["weight"] = _rand((_class_dim(shape),), seed=2, low=0.2, high=2.0)
    ours, theirs = _kwargs(torch, **kwargs)
    compare_with_torch(torch, lambda a, q: cross_entropy(a, q, **ours),
                       lambda a, q: tF.cross_entropy(a, q, **theirs),
                       [_randn(shape, seed=3), _probabilities(shape, seed=4)])


def test_cross_entropy_probabilities_of_a_onehot_equal_class_indices(backend):
    x, t = _randn((3, 4, 2, 2)), _index_target((3, 4, 2, 2), seed=5)
    onehot = np.moveaxis(np.eye(4)[t], -1, 1)
    a = cross_entropy(minidl.tensor(x), minidl.tensor(t), label_smoothing=0.1)
    b = cross_entropy(minidl.tensor(x), minidl.tensor(onehot), label_smoothing=0.1)
    assert_close(a, b.item())


def test_cross_entropy_empty_batch_mean_is_nan_like_torch(torch, backend):
    tF = torch.nn.functional
    for target in (np.zeros((0,), np.int64), np.zeros((0, 3))):
        y = cross_entropy(minidl.tensor(np.zeros((0, 3))), minidl.tensor(target))
        assert np.isnan(y.item()) and np.isnan(tF.cross_entropy(torch.zeros(0, 3), torch.tensor(target)).item())


# --------------------------------------------------------------------------------------------
# nll_loss
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SCORE_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 0])
def test_nll_loss_matches_torch(torch, backend, shape, reduction, weighted, ignore_index):
    tF = torch.nn.functional
    target = _index_target(shape, seed=1, ignore_index=ignore_index, ignore_fraction=0.3)
    kwargs = {"reduction": reduction, "ignore_index": ignore_index}
    if weighted:
        kwargs["weight"] = _rand((_class_dim(shape),), seed=2, low=0.2, high=2.0)
    ours, theirs = _kwargs(torch, **kwargs)
    t_ours, t_theirs = minidl.tensor(target), torch.tensor(target)
    compare_with_torch(torch, lambda a: nll_loss(a, t_ours, **ours), lambda a: tF.nll_loss(a, t_theirs, **theirs),
                       [_randn(shape, seed=3)])


@pytest.mark.parametrize("weight", [None, np.array([0.0, 0.0, 1.0])])
def test_nll_loss_all_ignored_or_zero_weight_like_torch(torch, backend, weight):
    tF = torch.nn.functional
    ours, theirs = _kwargs(torch, weight=weight)
    for target in (np.array([-100, -100]), np.array([0, 1])):
        t_ours, t_theirs = minidl.tensor(target), torch.tensor(target)
        compare_with_torch(torch, lambda a: nll_loss(a, t_ours, **ours),
                           lambda a: tF.nll_loss(a, t_theirs, **theirs), [_randn((2, 3))])


def test_nll_of_log_softmax_equals_cross_entropy(backend):
    from minidl.functional.softmax import log_softmax
    x, t = minidl.tensor(_randn((2, 3, 4))), minidl.tensor(_index_target((2, 3, 4)))
    assert_close(nll_loss(log_softmax(x, 1), t), cross_entropy(x, t).item())


# --------------------------------------------------------------------------------------------
# binary cross-entropy
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,weight_shape", [((7,), None), ((3, 4), (4,)), ((2, 3, 4, 4), (3, 1, 1)),
                                                ((2, 3), (2, 1)), ((2, 3), ())])
def test_bce_matches_torch(torch, backend, reduction, shape, weight_shape):
    tF = torch.nn.functional
    kwargs = {"reduction": reduction}
    if weight_shape is not None:
        kwargs["weight"] = _rand(weight_shape, seed=2, low=0.2, high=2.0)
    ours, theirs = _kwargs(torch, **kwargs)
    compare_with_torch(torch, lambda x, t: binary_cross_entropy(x, t, **ours),
                       lambda x, t: tF.binary_cross_entropy(x, t, **theirs),
                       [_rand(shape, 3, 0.02, 0.98), _rand(shape, 4)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_clamps_the_log_at_x_0_and_1_like_torch(torch, backend, reduction):
    """log(0) is clamped at -100: the loss is finite; the gradients are torch's (+-1e12, and +-inf for t)."""
    tF = torch.nn.functional
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-30, 1 - 1e-16, 0.5])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.7, 0.2, 0.5])
    y = compare_with_torch(torch, lambda a, b: binary_cross_entropy(a, b, reduction=reduction),
                           lambda a, b: tF.binary_cross_entropy(a, b, reduction=reduction), [x, t])
    assert np.isfinite(y.detach().numpy()).all()
    if reduction == "none":
        assert_close(y[:4], [0.0, 0.0, 100.0, 100.0])


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), reduction=st.sampled_from(REDUCTIONS),
       seed=st.integers(0, 2**16))
def test_bce_sweep_matches_torch(torch, backend, shape, reduction, seed):
    tF = torch.nn.functional
    compare_with_torch(torch, lambda x, t: binary_cross_entropy(x, t, reduction=reduction),
                       lambda x, t: tF.binary_cross_entropy(x, t, reduction=reduction),
                       [_rand(shape, seed, 0.01, 0.99), _rand(shape, seed + 1)], seed=seed)


# --------------------------------------------------------------------------------------------
# binary cross-entropy with logits
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,weight_shape,pos_weight_shape", [
    ((7,), None, None), ((4, 3), None, (3,)), ((4, 3), (4, 1), (3,)), ((2, 3, 4, 4), (3, 1, 1), (3, 1, 1)),
    ((2, 3, 4), None, ()), ((2, 3, 4), (2, 3, 4), (1, 3, 1)), ((2, 3), (), (2, 3))])
def test_bce_with_logits_matches_torch(torch, backend, reduction, shape, weight_shape, pos_weight_shape):
    tF = torch.nn.functional
    kwargs = {"reduction": reduction}
    if weight_shape is not None:
        kwargs["weight"] = _rand(weight_shape, seed=2, low=0.2, high=2.0)
    if pos_weight_shape is not None:
        kwargs["pos_weight"] = _rand(pos_weight_shape, seed=5, low=0.2, high=4.0)
    ours, theirs = _kwargs(torch, **kwargs)
    compare_with_torch(torch, lambda x, t: binary_cross_entropy_with_logits(x, t, **ours),
                       lambda x, t: tF.binary_cross_entropy_with_logits(x, t, **theirs),
                       [3 * _randn(shape, seed=3), _rand(shape, 4)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos_weight", [None, np.array(2.5)])
def test_bce_with_logits_is_finite_at_1e4_like_torch(torch, backend, reduction, pos_weight):
    tF = torch.nn.functional
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0, 40.0, -40.0])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 0.3, 0.9])
    ours, theirs = _kwargs(torch, reduction=reduction, pos_weight=pos_weight)
    y = compare_with_torch(torch, lambda a, b: binary_cross_entropy_with_logits(a, b, **ours),
                           lambda a, b: tF.binary_cross_entropy_with_logits(a, b, **theirs), [x, t])
    assert np.isfinite(y.detach().numpy()).all()


def test_bce_with_logits_equals_bce_of_sigmoid(backend):
    x, t = _randn((3, 4), seed=1), _rand((3, 4), seed=2)
    a = binary_cross_entropy_with_logits(minidl.tensor(x), minidl.tensor(t), reduction="none")
    b = binary_cross_entropy(minidl.tensor(x).sigmoid(), minidl.tensor(t), reduction="none")
    assert_close(a, b.detach().numpy())


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), reduction=st.sampled_from(REDUCTIONS),
       use_pos_weight=st.booleans(), scale=st.sampled_from([1.0, 10.0, 100.0]), seed=st.integers(0, 2**16))
def test_bce_with_logits_sweep_matches_torch(torch, backend, shape, reduction, use_pos_weight, scale, seed):
    tF = torch.nn.functional
    kwargs = {"reduction": reduction}
    if use_pos_weight:  # per-class positive weights along the last dim
        kwargs["pos_weight"] = _rand(shape[-1:], seed + 2, 0.2, 4.0)
    ours, theirs = _kwargs(torch, **kwargs)
    compare_with_torch(torch, lambda x, t: binary_cross_entropy_with_logits(x, t, **ours),
                       lambda x, t: tF.binary_cross_entropy_with_logits(x, t, **theirs),
                       [scale * _randn(shape, seed), _rand(shape, seed + 1)], seed=seed)


# --------------------------------------------------------------------------------------------
# mse_loss
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)])
def test_mse_matches_torch(torch, backend, reduction, shape):
    tF = torch.nn.functional
    compare_with_torch(torch, lambda x, t: mse_loss(x, t, reduction=reduction),
                       lambda x, t: tF.mse_loss(x, t, reduction=reduction), [_randn(shape, 1), _randn(shape, 2)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weighted_mse_matches_torch_with_every_gradient(torch, backend, reduction):
    """PyTorch's weighted mean divides by sum(weight); weight gets a gradient too."""
    tF = torch.nn.functional
    compare_with_torch(torch, lambda x, t, w: mse_loss(x, t, reduction=reduction, weight=w),
                       lambda x, t, w: tF.mse_loss(x, t, reduction=reduction, weight=w),
                       [_randn((3, 4), 1), _randn((3, 4), 2), _rand((3, 4), 3, 0.1, 2.0)])


# --------------------------------------------------------------------------------------------
# dice_loss (not in PyTorch: checked against its definition written with torch autograd)
# --------------------------------------------------------------------------------------------
def _torch_dice(p, t, smooth=1.0, reduction="mean", binary=False):
    """The definition of dice_loss in plain torch ops (autograd gives the reference gradient)."""
    axes = tuple(range(1, p.ndim)) if binary else tuple(range(2, p.ndim))
    dice = (2 * (p * t).sum(axes) + smooth) / (p.sum(axes) + t.sum(axes) + smooth)
    loss = 1 - dice
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def test_dice_hand_computed_value(backend):
    """One sample, two classes, four pixels, smooth = 1:
         class 0: p = [.9 .2 .6 .1], t = [1 0 1 0]: I = 1.5, P = 1.8, T = 2, dice = 4/4.8
         class 1: p = [.1 .8 .4 .9], t = [0 1 0 1]: I = 1.7, P = 2.2, T = 2, dice = 4.4/5.2
    """
    p = np.array([[[[0.9, 0.2], [0.6, 0.1]], [[0.1, 0.8], [0.4, 0.9]]]])  # (1, 2, 2, 2)
    target = np.array([[[0, 1], [0, 1]]])  # (1, 2, 2) class indices
    losses = dice_loss(minidl.tensor(p), minidl.tensor(target), reduction="none")
    assert_close(losses, [[1 - 4 / 4.8, 1 - 4.4 / 5.2]])
    assert_close(dice_loss(minidl.tensor(p), minidl.tensor(target)), 1 - (4 / 4.8 + 4.4 / 5.2) / 2)
    # the gradient of class 0, pixel 0 (t = 1): -(2 t D - (2 I + s)) / D^2 / count = -(2*4.8 - 4)/4.8^2/2
    x = minidl.tensor(p, requires_grad=True)
    dice_loss(x, minidl.tensor(target)).backward()
    assert_close(x.grad[0, 0, 0, 0], -(2 * 4.8 - 4) / 4.8 ** 2 / 2)
    assert_close(x.grad[0, 0, 0, 1], -(0 - 4) / 4.8 ** 2 / 2)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 2, 3, 2, 2), (2, 1, 3, 5)])
@pytest.mark.parametrize("smooth", [1.0, 0.0, 1e-3])
def test_dice_matches_its_definition_in_torch(torch, backend, reduction, shape, smooth):
    compare_with_torch(torch, lambda p, t: dice_loss(p, t, smooth=smooth, reduction=reduction),
                       lambda p, t: _torch_dice(p, t, smooth, reduction),
                       [_rand(shape, 1, 0.01, 0.99), _rand(shape, 2)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dice_binary_and_class_index_targets(torch, backend, reduction):
    p, t = _rand((2, 4, 5), 1), (_rand((2, 4, 5), 2) > 0.5).astype(float)  # (N, H, W) binary
    compare_with_torch(torch, lambda a: dice_loss(a, minidl.tensor(t), reduction=reduction),
                       lambda a: _torch_dice(a, torch.tensor(t), reduction=reduction, binary=True), [p])
    assert dice_loss(minidl.tensor(p), minidl.tensor(t), reduction="none").shape == (2,)
    probs, labels = _probabilities((2, 3, 4, 4), 3), _index_target((2, 3, 4, 4), 4)
    onehot = np.moveaxis(np.eye(3)[labels], -1, 1)
    compare_with_torch(torch, lambda a: dice_loss(a, minidl.tensor(labels), reduction=reduction),
                       lambda a: _torch_dice(a, torch.tensor(onehot), reduction=reduction), [probs])


def test_dice_perfect_prediction_and_empty_class(backend):
    t = np.zeros((1, 2, 3, 3))
    t[0, 0] = 1.0  # class 1 is absent everywhere: P = T = 0, dice = s / s = 1
    assert_close(dice_loss(minidl.tensor(t), minidl.tensor(t)), 0.0)


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4),
       reduction=st.sampled_from(REDUCTIONS), smooth=st.sampled_from([0.5, 1.0, 2.0]), seed=st.integers(0, 2**16))
def test_dice_sweep(torch, backend, n, c, h, w, reduction, smooth, seed):
    shape = (n, c, h, w)
    compare_with_torch(torch, lambda p, t: dice_loss(p, t, smooth=smooth, reduction=reduction),
                       lambda p, t: _torch_dice(p, t, smooth, reduction),
                       [_rand(shape, seed), _rand(shape, seed + 1)], seed=seed)


# --------------------------------------------------------------------------------------------
# gradcheck (central differences) with a random upstream gradient, every loss
# --------------------------------------------------------------------------------------------
_T = _index_target((2, 3, 3, 2), seed=7, ignore_fraction=0.2)
GRADCHECKS = {
    "cross_entropy": (lambda x: cross_entropy(x, minidl.tensor(_T), reduction="none"), [_randn((2, 3, 3, 2))]),
    "cross_entropy_weighted_smoothed": (
        lambda x: cross_entropy(x, minidl.tensor(_T), weight=minidl.tensor([0.5, 2.0, 1.0]), label_smoothing=0.2),
        [_randn((2, 3, 3, 2))]),
    "cross_entropy_unbatched": (lambda x: cross_entropy(x, minidl.tensor(np.array(2)), label_smoothing=0.1),
                                [_randn((4,))]),
    "cross_entropy_probs": (lambda x, q: cross_entropy(x, q, reduction="none", label_smoothing=0.1,
                                                       weight=minidl.tensor([0.5, 2.0, 1.0])),
                            [_randn((2, 3, 2)), _probabilities((2, 3, 2))]),
    "nll_loss": (lambda x: nll_loss(x, minidl.tensor(_T), weight=minidl.tensor([0.5, 2.0, 1.0])),
                 [_randn((2, 3, 3, 2))]),
    "binary_cross_entropy": (lambda x, t: binary_cross_entropy(x, t, reduction="none"),
                             [_rand((3, 4), 1, 0.05, 0.95), _rand((3, 4), 2, 0.05, 0.95)]),
    "bce_with_logits": (lambda x, t: binary_cross_entropy_with_logits(
        x, t, pos_weight=minidl.tensor(_rand((4,), 3, 0.5, 3.0)), weight=minidl.tensor(_rand((3, 1), 4)),
        reduction="sum"), [_randn((3, 4)), _rand((3, 4), 2)]),
    "mse_loss": (lambda x, t, w: mse_loss(x, t, weight=w), [_randn((3, 4)), _randn((3, 4), 2), _rand((3, 4), 3)]),
    "dice_loss": (lambda p, t: dice_loss(p, t, reduction="none"), [_rand((2, 3, 3, 3), 1), _rand((2, 3, 3, 3), 2)]),
    "dice_loss_indices": (lambda p: dice_loss(p, minidl.tensor(_index_target((2, 3, 3, 2), 8)), smooth=0.5),
                          [_rand((2, 3, 3, 2), 5)]),
}


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck(backend, name):
    fn, arrays = GRADCHECKS[name]
    assert gradcheck_with_random_dy(fn, arrays)


def test_losses_keep_float32(backend):
    x = minidl.randn(2, 3, 4, 4)
    t = minidl.tensor(_index_target((2, 3, 4, 4)))
    probs = minidl.tensor(_rand((2, 3, 4, 4)).astype(np.float32))
    for y in (cross_entropy(x, t), cross_entropy(x, t, reduction="none", weight=minidl.tensor([1.0, 2.0, 3.0])),
              nll_loss(x, t), binary_cross_entropy(probs, probs), binary_cross_entropy_with_logits(x, probs),
              mse_loss(x, probs), dice_loss(probs, t)):
        assert y.dtype == minidl.float32


def test_none_reduction_takes_a_per_pixel_weight_map(torch, backend):
    """The U-Net use: per-pixel losses (N, H, W) times a weight map, then a mean."""
    tF = torch.nn.functional
    x = minidl.tensor(_randn((2, 3, 4, 4)), requires_grad=True)
    target = _index_target((2, 3, 4, 4))
    weight_map = _rand((2, 4, 4), 9, 0.5, 3.0)
    loss = (cross_entropy(x, minidl.tensor(target), reduction="none") * minidl.tensor(weight_map)).mean()
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    ref = (tF.cross_entropy(xt, torch.tensor(target), reduction="none") * torch.tensor(weight_map)).mean()
    loss.backward()
    ref.backward()
    assert_close(loss, ref.item())
    assert_close(x.grad, xt.grad.numpy())


# --------------------------------------------------------------------------------------------
# nn modules
# --------------------------------------------------------------------------------------------
def test_loss_modules_match_functional_and_register_buffers(backend):
    x, t = minidl.tensor(_randn((2, 3, 4))), minidl.tensor(_index_target((2, 3, 4)))
    w = minidl.tensor([0.5, 1.0, 2.0])
    ce = CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1, reduction="sum")
    assert ce.weight is w and dict(ce.named_buffers()) == {"weight": w} and "weight" in ce.state_dict()
    assert_close(ce(x, t), cross_entropy(x, t, weight=w, ignore_index=1, label_smoothing=0.1,
                                         reduction="sum").item())
    assert CrossEntropyLoss().weight is None and dict(CrossEntropyLoss().named_buffers()) == {}
    assert_close(NLLLoss(weight=w)(x, t), nll_loss(x, t, weight=w).item())
    p, q = minidl.tensor(_rand((2, 3), 1)), minidl.tensor(_rand((2, 3), 2))
    assert_close(BCELoss(reduction="none")(p, q), binary_cross_entropy(p, q, reduction="none").numpy())
    pw = minidl.tensor([1.0, 2.0, 3.0])
    bce = BCEWithLogitsLoss(pos_weight=pw)
    assert list(dict(bce.named_buffers())) == ["pos_weight"] and bce.weight is None
    assert_close(bce(p, q), binary_cross_entropy_with_logits(p, q, pos_weight=pw).item())
    assert_close(MSELoss(reduction="sum")(p, q), mse_loss(p, q, reduction="sum").item())
    dice = DiceLoss(smooth=0.5, reduction="none")
    probs = minidl.tensor(_rand((2, 3, 4, 4)))
    labels = minidl.tensor(_index_target((2, 3, 4, 4)))
    assert_close(dice(probs, labels), dice_loss(probs, labels, smooth=0.5, reduction="none").numpy())
    assert repr(dice) == "DiceLoss(smooth=0.5)"


def test_loss_modules_against_torch_modules(torch, backend):
    x, t = _randn((3, 4, 2, 2)), _index_target((3, 4, 2, 2), ignore_fraction=0.3)
    w = _rand((4,), 1, 0.5, 2.0)
    ours = CrossEntropyLoss(weight=minidl.tensor(w), label_smoothing=0.2)
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.2)
    assert_close(ours(minidl.tensor(x), minidl.tensor(t)), theirs(torch.tensor(x), torch.tensor(t)).item())


def test_legacy_size_average_and_reduce_map_to_reduction_with_a_warning(backend):
    x, t = minidl.tensor(_randn((4, 3))), minidl.tensor(_index_target((4, 3)))
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated, please use "
                                         "reduction='sum' instead"):
        y = cross_entropy(x, t, size_average=False)
    assert_close(y, cross_entropy(x, t, reduction="sum").item())
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert MSELoss(reduce=False).reduction == "none"


# --------------------------------------------------------------------------------------------
# errors: before any work, naming the function, the argument and the shapes
# --------------------------------------------------------------------------------------------
def _t(a):
    return minidl.tensor(np.asarray(a))


def _read(y):
    """Copy ``y`` to the host: where a device's deferred value checks raise (on the CPU the op
    has raised already)."""
    return y.sum().item()


def test_cross_entropy_errors(backend):
    x = _t(_randn((2, 3, 4, 4)))
    with pytest.raises(IndexError, match=r"^cross_entropy: target contains class 5 but input has 3 classes "
                                         r"\(input shape \(2, 3, 4, 4\)\)$"):
        _read(cross_entropy(x, _t(np.full((2, 4, 4), 5))))
    with pytest.raises(IndexError, match=r"cross_entropy: target contains class -1 but input has 3 classes "
                                         r"\(input shape \(2, 3\)\); classes must be in \[0, 2\] or equal "
                                         r"ignore_index=-100"):
        _read(cross_entropy(_t(_randn((2, 3))), _t([0, -1])))
    cross_entropy(_t(_randn((2, 3))), _t([0, 7]), ignore_index=7)  # the ignored value may be anything
    with pytest.raises(ValueError, match=r"cross_entropy: target shape \(2, 4, 5\) does not match input shape "
                                         r"\(2, 3, 4, 4\): expected class indices of shape \(2, 4, 4\) or class "
                                         r"probabilities of shape \(2, 3, 4, 4\)"):
        cross_entropy(x, _t(np.zeros((2, 4, 5), np.int64)))
    with pytest.raises(ValueError, match=r"cross_entropy: target shape \(3,\) does not match input shape \(2, 3\)"):
        cross_entropy(_t(_randn((2, 3))), _t([0, 1, 1]))
    with pytest.raises(TypeError, match=r"cross_entropy: class-index target must have an integer dtype \(int64\), "
                                        r"got float64 \(target shape \(2,\)\)"):
        cross_entropy(_t(_randn((2, 3))), _t([0.0, 1.0]))
    with pytest.raises(TypeError, match=r"cross_entropy: target of the input's shape \(2, 3\) holds class "
                                        r"probabilities and must be floating point, got dtype int64"):
        cross_entropy(_t(_randn((2, 3))), _t(np.zeros((2, 3), np.int64)))
    with pytest.raises(ValueError, match=r"cross_entropy: ignore_index=1 is not supported with class-probability"):
        cross_entropy(_t(_randn((2, 3))), _t(_probabilities((2, 3))), ignore_index=1)
    with pytest.raises(ValueError, match=r"cross_entropy: weight must have shape \(3,\), one weight per class, "
                                         r"got shape \(4,\) \(input shape \(2, 3, 4, 4\)\)"):
        cross_entropy(x, _t(np.zeros((2, 4, 4), np.int64)), weight=_t(np.ones(4)))
    with pytest.raises(RuntimeError, match=r"cross_entropy: weight is not differentiable and cannot require grad"):
        cross_entropy(x, _t(np.zeros((2, 4, 4), np.int64)), weight=minidl.ones(3, requires_grad=True))
    with pytest.raises(ValueError, match=r"cross_entropy: reduction must be 'none', 'mean' or 'sum', got 'avg'"):
        cross_entropy(x, _t(np.zeros((2, 4, 4), np.int64)), reduction="avg")
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=rf"cross_entropy: label_smoothing must be in \[0, 1\], got {bad}"):
            cross_entropy(x, _t(np.zeros((2, 4, 4), np.int64)), label_smoothing=bad)
    with pytest.raises(ValueError, match=r"cross_entropy: input must be \(C,\), \(N, C\) or \(N, C, d1, ...\)"):
        cross_entropy(_t(1.0), _t(0))
    with pytest.raises(TypeError, match=r"cross_entropy: input must be a floating-point tensor, got dtype int64"):
        cross_entropy(_t([[1, 2]]), _t([0]))
    with pytest.raises(TypeError, match=r"cross_entropy: target must be a minidl Tensor, got ndarray"):
        cross_entropy(x, np.zeros((2, 4, 4), np.int64))


def test_nll_loss_errors(backend):
    with pytest.raises(IndexError, match=r"nll_loss: target contains class 3 but input has 3 classes "
                                         r"\(input shape \(2, 3\)\)"):
        _read(nll_loss(_t(_randn((2, 3))), _t([0, 3])))
    with pytest.raises(ValueError, match=r"nll_loss: target shape \(2, 3\) does not match input shape \(2, 3\): "
                                         r"expected class indices of shape \(2,\)"):
        nll_loss(_t(_randn((2, 3))), _t(np.zeros((2, 3), np.int64)))
    with pytest.raises(TypeError, match=r"nll_loss: class-index target must have an integer dtype"):
        nll_loss(_t(_randn((2, 3))), _t([True, False]))
    with pytest.raises(ValueError, match=r"nll_loss: weight must have shape \(3,\)"):
        nll_loss(_t(_randn((2, 3))), _t([0, 1]), weight=_t([1.0, 2.0]))


def test_binary_loss_errors(backend):
    p, q = _t(_rand((2, 3))), _t(_rand((2, 3), 1))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of input must be in \[0, 1\], got "
                                         r"values in \[-0.5, 1.5\] \(shape \(2,\)\); apply sigmoid first"):
        binary_cross_entropy(_t([-0.5, 1.5]), _t([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of target must be in \[0, 1\]"):
        binary_cross_entropy(_t([0.5]), _t([1.5]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of input must be in \[0, 1\]"):
        binary_cross_entropy(_t([np.nan]), _t([1.0]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: target shape \(3,\) must equal input shape \(2, 3\)"):
        binary_cross_entropy(p, _t(_rand((3,))))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: weight of shape \(2,\) does not broadcast to the "
                                         r"input shape \(2, 3\)"):
        binary_cross_entropy(p, q, weight=_t([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"binary_cross_entropy: target must be a floating-point tensor, got dtype "
                                        r"int64 \(shape \(2, 3\)\)"):
        binary_cross_entropy(p, _t(np.ones((2, 3), np.int64)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target shape \(1,\) must equal input "
                                         r"shape \(2, 3\)"):
        binary_cross_entropy_with_logits(p, _t([1.0]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: pos_weight of shape \(2, 3, 1\) does "
                                         r"not broadcast to the input shape \(2, 3\)"):
        binary_cross_entropy_with_logits(p, q, pos_weight=_t(np.ones((2, 3, 1))))
    with pytest.raises(RuntimeError, match=r"binary_cross_entropy_with_logits: pos_weight is not differentiable"):
        binary_cross_entropy_with_logits(p, q, pos_weight=minidl.ones(3, requires_grad=True))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: reduction must be 'none', 'mean' or "
                                         r"'sum', got 'batchmean'"):
        binary_cross_entropy_with_logits(p, q, reduction="batchmean")


def test_mse_and_dice_errors(backend):
    with pytest.raises(ValueError, match=r"mse_loss: target shape \(3,\) must equal input shape \(3, 1\)"):
        mse_loss(_t(_randn((3, 1))), _t(_randn((3,))))
    with pytest.raises(ValueError, match=r"mse_loss: weight shape \(3,\) must equal input shape \(2, 3\)"):
        mse_loss(_t(_randn((2, 3))), _t(_randn((2, 3))), weight=_t(np.ones(3)))
    with pytest.raises(ValueError, match=r"mse_loss: reduction must be 'none', 'mean' or 'sum', got None"):
        mse_loss(_t(_randn((2, 3))), _t(_randn((2, 3))), reduction=None)
    probs = _t(_rand((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"dice_loss: target shape \(2, 4\) does not match input shape "
                                         r"\(2, 3, 4, 4\): expected \(2, 3, 4, 4\) \(masks or probabilities\) or "
                                         r"class indices of shape \(2, 4, 4\)"):
        dice_loss(probs, _t(np.zeros((2, 4), np.int64)))
    with pytest.raises(TypeError, match=r"dice_loss: target of the input's shape \(2, 3, 4, 4\) must be floating "
                                        r"point \(one-hot masks or probabilities\), got dtype int64"):
        dice_loss(probs, _t(np.zeros((2, 3, 4, 4), np.int64)))
    with pytest.raises(IndexError, match=r"dice_loss: target contains class 3 but input has 3 classes"):
        _read(dice_loss(probs, _t(np.full((2, 4, 4), 3))))
    with pytest.raises(IndexError, match=r"dice_loss: target contains class -100 but input has 3 classes "
                                         r"\(input shape \(2, 3, 4, 4\)\); classes must be in \[0, 2\]$"):
        _read(dice_loss(probs, _t(np.full((2, 4, 4), -100))))
    with pytest.raises(ValueError, match=r"dice_loss: smooth must be a number >= 0, got -1.0"):
        dice_loss(probs, probs, smooth=-1.0)
    with pytest.raises(ValueError, match=r"dice_loss: input must be \(N, C, H, W\) \(or \(N, C, d1, ..., dk\)\) "
                                         r"or \(N, H, W\), got shape \(2, 3\)"):
        dice_loss(_t(_rand((2, 3))), _t(_rand((2, 3))))
    with pytest.raises(ValueError, match=r"dice_loss: reduction must be 'none', 'mean' or 'sum', got 'max'"):
        dice_loss(probs, probs, reduction="max")


def test_a_bad_class_index_raises_at_once_on_the_cpu_and_at_the_next_host_copy_on_a_device(backend):
    """A device's range check of class indices is read with the next copy to the host (as
    PyTorch's device-side assert), so that a training step makes no copy of its own."""
    x, t = _t(_randn((2, 3))), _t([0, 3])
    if x.device.type == "cpu":
        with pytest.raises(IndexError, match="nll_loss: target contains class 3"):
            nll_loss(x, t)
        return
    loss = nll_loss(x, t)  # no copy to the host here: the check waits
    with pytest.raises(IndexError, match="nll_loss: target contains class 3"):
        loss.item()
    assert nll_loss(x, _t([0, 2])).item() == pytest.approx(-(x[0, 0] + x[1, 2]).item() / 2)  # cleared
