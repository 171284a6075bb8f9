"""The Numba backend's ReLU kernels (relu, relu_backward) against the array code of Relu in
minidl/ops/activation.py, their specification: bit for bit, on random shapes with NaN, signed
zeros, infinities and subnormals mixed in; the op through them on every backend (float64
gradient check with a random upstream gradient, PyTorch's values); arrays the kernels do not
take left to the array code."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functional as F
from minidl.backend import available_backends
from helpers import gradcheck_with_random_dy

needs_numba = pytest.mark.skipif("numba" not in available_backends(), reason="the Numba backend is not installed")
SPECIAL = [np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 5e-324, -5e-324]


@st.composite
def arrays(draw):
    """(x, dy) of one float dtype and one shape (0 to 4 axes, empty ones included), x with
    special values in a random fraction of its places."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = tuple(draw(st.lists(st.integers(0, 7), max_size=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal(shape)
    special = rng.random(shape) < draw(st.floats(0, 1))
    x[special] = rng.choice(SPECIAL, size=int(special.sum()))
    dy = rng.standard_normal(shape)
    dy[rng.random(shape) < 0.2] = np.nan
    return x.astype(dtype), dy.astype(dtype)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@needs_numba
@settings(max_examples=60, deadline=None)
@given(arrays())
def test_kernels_equal_the_array_code_bit_for_bit(case):
    from minidl.backend import numba_cpu
    x, dy = case
    y = np.empty_like(x)
    assert numba_cpu.relu(x, y)
    assert same_bits(y, np.where(x < 0, 0, x).astype(x.dtype))  # NaN and -0.0 kept
    dx = np.empty_like(dy)
    assert numba_cpu.relu_backward(dy, y, dx)
    assert same_bits(dx, np.where(y <= 0, 0, dy).astype(dy.dtype))  # NaN y passes dy on


@needs_numba
@pytest.mark.parametrize("case", ["float16", "mixed dtypes", "not contiguous", "other shape"])
def test_kernels_refuse_arrays_they_do_not_take_and_write_nothing(case):
    from minidl.backend import numba_cpu
    x = np.arange(-6.0, 6.0).reshape(3, 4).astype(np.float32)
    dy, out = np.ones_like(x), np.full_like(x, 7.0)
    if case == "float16":
        x, dy, out = x.astype(np.float16), dy.astype(np.float16), out.astype(np.float16)
    elif case == "mixed dtypes":
        dy = dy.astype(np.float64)
    elif case == "not contiguous":
        x, dy, out = x.T, dy.T, np.full_like(x.T, 7.0)
    else:
        out = np.full((4, 3), 7.0, np.float32)
    before = out.copy()
    if case != "mixed dtypes":
        assert not numba_cpu.relu(x, out)
    assert not numba_cpu.relu_backward(dy, np.maximum(x, 0), out)
    assert same_bits(out, before)


@needs_numba
def test_kernels_take_a_channel_slice_sample_by_sample():
    """The gradient Cat's backward hands an input is a channel slice: not contiguous, but each
    sample is; the kernels take it sample by sample, with the array code's values."""
    from minidl.backend import numba_cpu
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    dy = rng.standard_normal((3, 9, 4, 6)).astype(np.float32)[:, 2:7]  # (3, 5, 4, 6), a view
    assert not dy.flags.c_contiguous and dy[0].flags.c_contiguous
    y, dx = np.empty_like(x), np.empty_like(x)
    assert numba_cpu.relu(x, y)
    assert numba_cpu.relu_backward(dy, y, dx)
    assert same_bits(dx, np.where(y <= 0, 0, dy).astype(dy.dtype))
    x_slice = rng.standard_normal((3, 9, 4, 6)).astype(np.float32)[:, 1:6]
    assert numba_cpu.relu(x_slice, y)
    assert same_bits(y, np.where(x_slice < 0, 0, x_slice).astype(x.dtype))


def relu_step(x_np, dy_np, backend):
    """y and dx of F.relu on ``backend``."""
    from minidl.backend import use_backend
    x = minidl.tensor(x_np, requires_grad=True)
    with use_backend(backend):
        y = F.relu(x)
        y.backward(minidl.tensor(dy_np))
    return y.detach().numpy(), x.grad.numpy()


@needs_numba
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_the_op_on_numba_equals_the_reference_backend_and_uses_the_kernels(monkeypatch, layout):
    """The transposed input is not C-contiguous: the kernel refuses it and the array code runs."""
    from minidl.backend import numba_cpu
    calls = []  # (kernel name, whether it took the arrays)

    def recorded(name):
        kernel = getattr(numba_cpu, name)

        def call(*args):
            took = kernel(*args)
            calls.append((name, took))
            return took
        return call

    for name in ("relu", "relu_backward"):
        monkeypatch.setattr(numba_cpu, name, recorded(name))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 7, 9)).astype(np.float32)
    dy = rng.standard_normal((3, 5, 7, 9)).astype(np.float32)
    if layout == "transposed":
        x, dy = x.transpose(3, 2, 1, 0), dy.transpose(3, 2, 1, 0)
    ours, reference = relu_step(x, dy, "numba"), relu_step(x, dy, "reference")
    for a, b in zip(ours, reference):
        assert same_bits(np.ascontiguousarray(a), np.ascontiguousarray(b))
    assert [name for name, _ in calls] == ["relu", "relu_backward"]
    assert [took for _, took in calls] == [layout == "contiguous"] * 2


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 9, 4), (17,)])
def test_relu_gradcheck_with_a_random_upstream_gradient(backend, shape):
    x = np.random.default_rng(5).standard_normal(shape)
    x = np.where(np.abs(x) < 0.05, 0.5, x)  # away from the kink at 0
    assert gradcheck_with_random_dy(F.relu, [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_matches_torch_forward_and_backward(torch, backend, dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 11, 13)).astype(dtype)
    x[0, 0, 0, :5] = [0.0, -0.0, np.nan, -1.0, np.inf]
    dy = rng.standard_normal(x.shape).astype(dtype)
    dy[0, 0, 0, 3] = np.nan  # at a negative input: 0
    y, dx = relu_step(x, dy, backend)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.relu(xt)
    yt.backward(torch.tensor(dy))
    assert same_bits(y, yt.detach().numpy())  # -0.0 and NaN included
    assert same_bits(dx, xt.grad.numpy())
