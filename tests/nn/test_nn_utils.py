"""minidl.nn.utils against torch.nn.utils: gradient clipping and parameters as a vector."""
import numpy as np
import pytest

import minidl
from minidl.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters


def _pair(torch, grads):
    """Parameters with the given gradients, in minidl and in PyTorch (float64)."""
    ours, theirs = [], []
    for g in grads:
        p = minidl.nn.Parameter(minidl.zeros(g.shape, dtype=minidl.float64))
        p.grad = minidl.tensor(g.copy())
        q = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64))
        q.grad = torch.tensor(g.copy())
        ours.append(p)
        theirs.append(q)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, float("inf")])
@pytest.mark.parametrize("max_norm", [0.3, 1e6])  # clipped, and left alone (coef clamped to 1)
def test_clip_grad_norm_matches_torch(torch, rng, norm_type, max_norm):
    grads = [rng.standard_normal((3, 5)), rng.standard_normal(7), rng.standard_normal((2, 1, 3))]
    ours, theirs = _pair(torch, grads)
    ours.append(minidl.nn.Parameter(minidl.ones(2)))  # no gradient: skipped, as in PyTorch
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    total_ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(total.item(), total_ref.item(), rtol=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)
    if max_norm < 1:  # the clipped gradients really have the requested norm
        flat = np.concatenate([p.grad.numpy().ravel() for p in ours[:3]])
        np.testing.assert_allclose(np.linalg.norm(flat, ord=norm_type), max_norm, rtol=1e-5)


def test_clip_grad_norm_bumps_versions_and_handles_edges(torch):
    p = minidl.nn.Parameter(minidl.ones(4))
    assert clip_grad_norm_([p], 1.0).item() == 0.0  # no gradients at all: 0, as PyTorch
    assert torch.nn.utils.clip_grad_norm_([torch.nn.Parameter(torch.ones(4))], 1.0).item() == 0.0
    p.grad = minidl.full((4,), 3.0)
    before = p.grad._version
    clip_grad_norm_(p, 1.0)  # a single tensor is accepted
    assert p.grad._version > before
    p = minidl.nn.Parameter(minidl.ones(2))
    p.grad = minidl.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite, so it cannot be clipped"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert np.isnan(p.grad.numpy()[0]) and p.grad.numpy()[1] == 1.0  # untouched after the error
    with pytest.raises(TypeError, match=r"clip_grad_norm_: parameters\[0\] must be a Tensor"):
        clip_grad_norm_([np.ones(2)], 1.0)


def test_clip_grad_value_matches_torch(torch, rng):
    grads = [rng.standard_normal((4, 3)) * 3, rng.standard_normal(5)]
    ours, theirs = _pair(torch, grads)
    clip_grad_value_(ours, 0.7)
    torch.nn.utils.clip_grad_value_(theirs, 0.7)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    assert all(np.abs(p.grad.numpy()).max() <= 0.7 for p in ours)


def test_parameters_to_vector_and_back(torch):
    model = minidl.nn.Sequential(minidl.nn.Linear(3, 4), minidl.nn.Linear(4, 2))
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            q.copy_(torch.tensor(p.detach().numpy()))
    vec = parameters_to_vector(model.parameters())
    np.testing.assert_array_equal(vec.detach().numpy(), torch.nn.utils.parameters_to_vector(ref.parameters()).detach().numpy())
    (vec * minidl.arange(vec.numel()).float()).sum().backward()  # differentiable, as PyTorch's
    assert np.array_equal(model[0].weight.grad.numpy().ravel(), np.arange(12.0))
    new = minidl.arange(vec.numel()).float() * 0.5
    vector_to_parameters(new, model.parameters())
    assert np.array_equal(model[1].bias.detach().numpy(), new.numpy()[-2:])
    assert model[0].weight.shape == (4, 3)
    with pytest.raises(TypeError, match="expected minidl.Tensor, but got: list"):
        vector_to_parameters([1.0], model.parameters())
    with pytest.raises(RuntimeError, match="at least 26 entries"):
        vector_to_parameters(minidl.zeros(5), model.parameters())
    assert np.array_equal(model[1].bias.detach().numpy(), new.numpy()[-2:])  # unchanged


@pytest.mark.parametrize("norm_type", [2.0, 1, float("inf")])
def test_get_total_norm_and_clip_grads_with_norm_match_torch(torch, rng, norm_type):
    """PyTorch's two steps of clip_grad_norm_, used apart: the norm of some gradients, then a
    clip of (other) parameters by a norm given from outside."""
    from minidl.nn.utils import clip_grads_with_norm_, get_total_norm

    grads = [rng.standard_normal((4, 3)), rng.standard_normal(5)]
    ours, theirs = _pair(torch, grads)
    total = get_total_norm([p.grad for p in ours], norm_type=norm_type)
    total_ref = torch.nn.utils.get_total_norm([q.grad for q in theirs], norm_type=norm_type)
    np.testing.assert_allclose(total.item(), total_ref.item(), rtol=1e-12)
    assert get_total_norm(ours[0].grad).item() == pytest.approx(np.linalg.norm(grads[0]), rel=1e-12)
    versions = [p.grad._version for p in ours]
    assert clip_grads_with_norm_(ours, 0.5, total * 2) is None
    torch.nn.utils.clip_grads_with_norm_(theirs, 0.5, total_ref * 2)
    for p, q, v in zip(ours, theirs, versions):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)
        assert p.grad._version == v + 1
    bad = ours[0].grad.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(RuntimeError, match="non-finite"):
        get_total_norm([bad], error_if_nonfinite=True)
    assert get_total_norm([]).item() == torch.nn.utils.get_total_norm([]).item() == 0.0
