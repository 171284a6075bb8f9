"""dropout / dropout2d (minidl/ops/dropout.py, minidl/functional/dropout.py) and nn.Dropout/Dropout2d.

Masks are random, so instead of comparing with PyTorch's masks these tests check
the statistics, that the gradient uses the forward's mask, reproducibility, and
the deterministic cases (p = 0, p = 1, eval) against PyTorch.
"""
import numpy as np
import pytest

import minidl
from helpers import assert_close, gradcheck_with_random_dy
from minidl.functional.dropout import dropout, dropout2d
from minidl.nn.dropout import Dropout, Dropout2d


def _nonzero(shape, seed=0):
    """Random entries bounded away from 0, so y == 0 exactly where the mask dropped."""
    a = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(a) < 0.1, 0.5, a)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(backend, p):
    x = minidl.ones(200, 500, dtype=minidl.float64)
    y = dropout(x, p).numpy()
    kept = y != 0
    assert abs(1 - kept.mean() - p) < 0.01  # fraction zeroed ~ p (100,000 draws: std ~0.0016)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-15)  # survivors scaled by 1/(1-p)
    assert abs(y.mean() - 1) < 0.03  # E[y] = x


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_dropout_gradient_is_the_forward_mask_over_1_minus_p(backend, p):
    x = minidl.tensor(_nonzero((6, 7, 3)), requires_grad=True)
    y = dropout(x, p)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    (y * minidl.tensor(dy)).sum().backward()
    mask = y.detach().numpy() != 0
    assert 0 < mask.mean() < 1
    assert_close(y, x.detach().numpy() * mask / (1 - p))
    assert_close(x.grad, dy * mask / (1 - p))


def test_dropout_gradcheck_with_a_fixed_seed(backend):
    def fn(x):  # reseeding makes the function deterministic: the same mask on every call
        minidl.manual_seed(3)
        return dropout(x, 0.4)

    assert gradcheck_with_random_dy(fn, [_nonzero((3, 4))])

    def fn2d(x):
        minidl.manual_seed(4)
        return dropout2d(x, 0.5)

    assert gradcheck_with_random_dy(fn2d, [_nonzero((2, 3, 2, 2))])


@pytest.mark.parametrize("op", [dropout, dropout2d])
def test_dropout_is_reproducible_with_manual_seed(backend, op):
    x = minidl.tensor(_nonzero((4, 5, 3, 3)))
    minidl.manual_seed(7)
    first = op(x, 0.5).numpy()
    second = op(x, 0.5).numpy()
    minidl.manual_seed(7)
    again = op(x, 0.5).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)  # the generator moved on


@pytest.mark.parametrize("op", [dropout, dropout2d])
def test_dropout_identity_cases_return_the_input_itself(backend, op):
    x = minidl.tensor(_nonzero((2, 3, 4, 4)), requires_grad=True)
    assert op(x, 0.5, training=False) is x
    assert op(x, 0.0) is x
    assert op(x, 0, training=True) is x


@pytest.mark.parametrize("op,torch_op", [(dropout, "dropout"), (dropout2d, "dropout2d")])
def test_dropout_p_one_gives_zeros_and_zero_gradient_like_torch(torch, backend, op, torch_op):
    torch_op = getattr(torch.nn.functional, torch_op)
    a = _nonzero((2, 3, 2, 2))
    x, x_ref = minidl.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, y_ref = op(x, 1.0), torch_op(x_ref, 1.0)
    assert_close(y, y_ref.detach().numpy(), rtol=0, atol=0)
    y.sum().backward()
    y_ref.sum().backward()
    assert_close(x.grad, x_ref.grad.numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_dropout2d_zeroes_whole_channels(backend, p):
    x = minidl.tensor(_nonzero((40, 50, 3, 4)), requires_grad=True)
    y = dropout2d(x, p)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    (y * minidl.tensor(dy)).sum().backward()
    kept = y.detach().numpy() != 0  # (N, C, H, W)
    per_channel = kept.all(axis=(2, 3))
    np.testing.assert_array_equal(per_channel, kept.any(axis=(2, 3)))  # each map all kept or all dropped
    assert abs(1 - per_channel.mean() - p) < 0.05  # 2000 draws: std ~0.011
    assert_close(y, x.detach().numpy() * kept / (1 - p))
    assert_close(x.grad, dy * kept / (1 - p))


def test_dropout2d_3d_input_is_n_c_l_like_torch(torch, backend):
    x = minidl.tensor(_nonzero((30, 40, 6)))
    with pytest.warns(UserWarning, match=r"dropout2d: Received a 3D input .* interpreted as shape \(N, C, L\)"):
        y = dropout2d(x, 0.5)
    kept = y.numpy() != 0
    np.testing.assert_array_equal(kept.all(axis=2), kept.any(axis=2))  # one draw per (n, c)
    assert 0.4 < kept.mean() < 0.6
    with torch.no_grad(), pytest.warns(UserWarning, match="Received a 3D input"):
        y_ref = torch.nn.functional.dropout2d(torch.tensor(x.numpy()), 0.5).numpy()
    np.testing.assert_array_equal((y_ref != 0).all(axis=2), (y_ref != 0).any(axis=2))  # torch does the same


def test_dropout_keeps_dtype(backend):
    x = minidl.randn(4, 3, 2, 2)
    assert dropout(x).dtype == minidl.float32
    assert dropout2d(x).dtype == minidl.float32


def test_dropout_modules_follow_training_mode(backend):
    x = minidl.tensor(_nonzero((4, 3, 5, 5)))
    for layer in (Dropout(0.5), Dropout2d(0.5)):
        assert layer.training
        y = layer(x).numpy()
        assert (y == 0).any() and not np.array_equal(y, x.numpy())
        layer.eval()
        assert layer(x) is x
        layer.train()
        assert (layer(x).numpy() == 0).any()
    minidl.manual_seed(9)
    a = Dropout(0.3)(x).numpy()
    minidl.manual_seed(9)
    np.testing.assert_array_equal(a, dropout(x, 0.3).numpy())  # the module is the function


def test_dropout_modules_repr_like_torch(torch):
    for ours, theirs in [(Dropout(), torch.nn.Dropout()),
                         (Dropout(0.2, inplace=True), torch.nn.Dropout(0.2, True)),
                         (Dropout2d(0.3), torch.nn.Dropout2d(0.3))]:
        assert repr(ours) == repr(theirs)
    assert list(Dropout().state_dict()) == []


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_probability_errors(backend, p):
    x = minidl.ones(2, 3, 4, 4)
    message = rf"dropout probability has to be between 0 and 1, but got {p}$"
    with pytest.raises(ValueError, match="^dropout: " + message):
        dropout(x, p)
    with pytest.raises(ValueError, match="^dropout2d: " + message):
        dropout2d(x, p)
    with pytest.raises(ValueError, match="^Dropout: " + message):
        Dropout(p)
    with pytest.raises(ValueError, match="^Dropout2d: " + message):
        Dropout2d(p)


def test_dropout_other_errors(backend):
    with pytest.raises(TypeError, match="dropout: input must be a minidl Tensor, got ndarray"):
        dropout(np.ones(3))
    with pytest.raises(TypeError, match="dropout2d: input must be a minidl Tensor, got list"):
        dropout2d([1.0, 2.0])
    with pytest.raises(TypeError, match=r"dropout: p must be a number in \[0, 1\], got '0.5'"):
        dropout(minidl.ones(3), "0.5")
    with pytest.raises(TypeError, match=r"Dropout: p must be a number in \[0, 1\], got None"):
        Dropout(None)
    for shape in [(3, 4), (2, 3, 4, 5, 6)]:
        with pytest.raises(ValueError, match=rf"dropout2d: input must be 4-D \(N, C, H, W\) or 3-D \(N, C, L\), "
                                             rf"got shape \({', '.join(map(str, shape))}\)"):
            dropout2d(minidl.ones(*shape))
