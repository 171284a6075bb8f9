r"""Whole-model gradient checks in float64: every parameter of a tiny U-Net and a tiny FCN-8s.

This is the end-to-end proof that every gradient in the chain (conv, transposed conv,
max-pool, crop, concatenation, batch norm, bilinear up-sampling, addition, ReLU) is right.

The loss is L = sum(dy * model(x)) with a fixed random dy, so that every output element
matters with its own weight. One backward gives dL/dp for every parameter p. For EVERY
parameter tensor we then compare, by central differences (eps = 1e-6):

  * the directional derivative along a random direction u (all entries of p at once):
        <dL/dp, u>   vs   (L(p + eps u) - L(p - eps u)) / (2 eps)
  * a few single entries p[k] (the largest-gradient one and random ones):
        dL/dp[k]     vs   (L(p + eps e_k) - L(p - eps e_k)) / (2 eps)

Two forwards per comparison instead of two per entry keeps the whole check to seconds,
while a wrong gradient in any tensor (or in any entry we probe) fails it.
"""
import numpy as np
import pytest

import minidl
from unet import FCN, UNet

EPS = 1e-6


def _loss_fn(model, x, dy):
    def loss():
        with minidl.no_grad():
            return float((model(x) * dy).sum().item())
    return loss


def check_parameter_gradients(model, x, seed=0, n_entries=3, rtol=1e-5, atol=1e-8):
    """Compare backward's gradient of every parameter tensor with central differences."""
    rng = np.random.default_rng(seed)
    model.double()
    x = minidl.tensor(x, dtype=minidl.float64)
    with minidl.no_grad():
        y_shape = model(x).shape
    dy = minidl.tensor(rng.standard_normal(y_shape))
    model.zero_grad()
    (model(x) * dy).sum().backward()
    loss = _loss_fn(model, x, dy)
    checked = 0
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name}: backward did not reach this parameter"
        grad = np.asarray(p.grad.numpy() if hasattr(p.grad, "numpy") else p.grad, dtype=np.float64)
        assert grad.shape == tuple(p.shape), name
        p0 = p.detach().numpy().copy()

        def numerical(direction):
            p.data[...] = p0 + EPS * direction
            plus = loss()
            p.data[...] = p0 - EPS * direction
            minus = loss()
            p.data[...] = p0
            return (plus - minus) / (2 * EPS)

        u = rng.standard_normal(p.shape)
        probes = [("direction u", u, float((grad * u).sum()))]
        flat = [int(np.argmax(np.abs(grad)))] + list(rng.choice(grad.size, size=min(n_entries, grad.size) - 1,
                                                                replace=False))
        for k in flat:
            e = np.zeros(p.shape)
            e.reshape(-1)[k] = 1.0
            probes.append((f"entry {np.unravel_index(k, p.shape)}", e, float(grad.reshape(-1)[k])))
        for what, direction, analytical in probes:
            num = numerical(direction)
            assert abs(analytical - num) <= atol + rtol * abs(num), (
                f"{name} ({what}): analytical {analytical:.10g} vs numerical {num:.10g}")
        checked += 1
    return checked


def _randomise(model, seed=1):
    """Generic parameter values: non-zero biases and score layers, BN scales around 1."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        fan_in = int(np.prod(p.shape[1:])) if p.ndim > 1 else 1
        if p.ndim > 1:
            p.data[...] = rng.standard_normal(p.shape) * np.sqrt(2.0 / fan_in)
        elif "bn" in name or (p.ndim == 1 and name.endswith("weight")):
            p.data[...] = 1 + 0.2 * rng.standard_normal(p.shape)
        else:
            p.data[...] = 0.1 * rng.standard_normal(p.shape)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_tiny_unet_gradients(padding, batch_norm):
    model = UNet(in_channels=2, n_classes=3, base_channels=3, depth=3, padding=padding,
                 batch_norm=batch_norm)
    _randomise(model)
    size = model.valid_input_size(8)
    x = np.random.default_rng(2).standard_normal((2, 2, size, size))
    n_tensors = check_parameter_gradients(model, x)
    assert n_tensors == len(list(model.parameters()))


def test_tiny_unet_bilinear_depth2_gradients():
    model = UNet(in_channels=1, n_classes=2, base_channels=2, depth=2, padding="valid",
                 up_mode="bilinear")
    _randomise(model)
    x = np.random.default_rng(3).standard_normal((1, 1, 20, 20))
    check_parameter_gradients(model, x)


def test_tiny_fcn8s_gradients():
    model = FCN(n_classes=3, variant="8s", in_channels=2, width=1 / 32)
    _randomise(model)
    model.eval()                                          # no dropout: a deterministic function
    x = np.random.default_rng(4).standard_normal((1, 2, 11, 9))
    n_tensors = check_parameter_gradients(model, x, n_entries=1)   # a forward costs ~50 ms here
    # 16 convolutions (13 VGG, fc6, fc7, score_fr) and 2 score layers with a weight and a bias
    # each, and 3 bias-free up-samplers
    assert n_tensors == 2 * 16 + 2 * 2 + 3
