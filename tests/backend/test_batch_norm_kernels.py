"""The Numba backend's fused batch-norm kernels (batch_norm_train, batch_norm_backward) against
the array code of BatchNorm in minidl/ops/norm.py, their specification (what the reference
backend, the strict device and CuPy run): float64 to rounding on random shapes (2-D, 3-D, 4-D,
one channel, one value per sample), and float32 no further from float64 than the array code."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl.backend import available_backends, use_backend
from minidl.functional.norm import batch_norm

pytestmark = pytest.mark.skipif("numba" not in available_backends(), reason="the Numba backend is not installed")

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def cases(draw):
    """(x shape, affine, needs_x, seed): N >= 1, C >= 1, zero to two spatial axes, m = N*S >= 2."""
    N, C = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    spatial = tuple(draw(st.lists(st.integers(1, 6), max_size=2)))
    if N * int(np.prod(spatial)) < 2:
        N = 2
    return (N, C) + spatial, draw(st.booleans()), draw(st.booleans()), draw(st.integers(0, 2**16))


def run(backend, shape, affine, needs_x, seed, dtype):
    """y, dx (or None), dweight, dbias, running mean and var of one training step on ``backend``."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x_np = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    dy_np = rng.standard_normal(shape).astype(dtype)
    w = minidl.tensor(rng.standard_normal(C).astype(dtype), requires_grad=True) if affine else None
    b = minidl.tensor(rng.standard_normal(C).astype(dtype), requires_grad=True) if affine else None
    running = [minidl.tensor(np.zeros(C, dtype)), minidl.tensor(np.ones(C, dtype))]
    x = minidl.tensor(x_np, requires_grad=needs_x)
    with use_backend(backend):
        y = batch_norm(x, *running, w, b, training=True, momentum=0.1, eps=1e-5)
        if y.requires_grad:
            y.backward(minidl.tensor(dy_np))
    grads = [t.grad.numpy() if t is not None and t.grad is not None else None for t in (x, w, b)]
    return [y.detach().numpy()] + grads + [r.numpy() for r in running]


@SETTINGS
@given(cases())
def test_float64_equals_the_array_code_to_rounding(case):
    shape, affine, needs_x, seed = case
    fused = run("numba", shape, affine, needs_x, seed, np.float64)
    array_code = run("reference", shape, affine, needs_x, seed, np.float64)
    for name, ours, theirs in zip(["y", "dx", "dweight", "dbias", "running_mean", "running_var"], fused, array_code):
        assert (ours is None) == (theirs is None), name
        if ours is not None:
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("shape", [(8, 16, 64, 64), (2, 3, 127), (64, 5)])
def test_float32_is_no_further_from_float64_than_the_array_code(shape):
    """Each float32 result's worst error against the float64 array code, relative to its largest
    value: the fused kernels (float64 sums) at most the array code's (float32 sums)."""
    exact = run("reference", shape, True, True, 1, np.float64)
    fused = run("numba", shape, True, True, 1, np.float32)
    array_code = run("reference", shape, True, True, 1, np.float32)
    for name, e, ours, theirs in zip(["y", "dx", "dweight", "dbias"], exact, fused, array_code):
        scale = np.abs(e).max()
        ours_error, theirs_error = np.abs(ours - e).max() / scale, np.abs(theirs - e).max() / scale
        assert ours_error <= 1.5 * theirs_error, (name, ours_error, theirs_error)


def torch_float32(torch, shape, seed=1):
    """y, dx, dweight, dbias of PyTorch's float32 batch norm on run()'s inputs."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = torch.tensor((rng.standard_normal(shape) * 3 + 1).astype(np.float32), requires_grad=True)
    dy = torch.tensor(rng.standard_normal(shape).astype(np.float32))
    w = torch.tensor(rng.standard_normal(C).astype(np.float32), requires_grad=True)
    b = torch.tensor(rng.standard_normal(C).astype(np.float32), requires_grad=True)
    y = torch.nn.functional.batch_norm(x, torch.zeros(C), torch.ones(C), w, b, training=True, momentum=0.1, eps=1e-5)
    y.backward(dy)
    return [y.detach().numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()]


@pytest.mark.parametrize("shape", [(8, 16, 64, 64), (2, 3, 127), (64, 5)])
def test_float32_is_no_further_from_float64_than_pytorch(torch, shape):
    """The same errors as above, against PyTorch's float32 on the same inputs (the issue's bar)."""
    exact = run("reference", shape, True, True, 1, np.float64)
    fused = run("numba", shape, True, True, 1, np.float32)
    for name, e, ours, theirs in zip(["y", "dx", "dweight", "dbias"], exact, fused, torch_float32(torch, shape)):
        scale = np.abs(e).max()
        ours_error, theirs_error = np.abs(ours - e).max() / scale, np.abs(theirs - e).max() / scale
        assert ours_error <= 1.5 * theirs_error, (name, ours_error, theirs_error)
