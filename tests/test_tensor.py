"""Tensor creation, dtypes, attributes, conversions and clear errors for bad input."""
import numpy as np
import pytest

import minidl

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)


def test_default_dtypes_follow_pytorch():
    assert minidl.tensor([1.0, 2.0]).dtype == minidl.float32
    assert minidl.tensor([1.0], dtype=minidl.float64).dtype == minidl.float64
    assert minidl.tensor(np.zeros(2)).dtype == minidl.float64  # NumPy arrays keep their dtype
    assert minidl.tensor([1, 2]).dtype == minidl.int64
    assert minidl.tensor([True]).dtype == minidl.bool
    assert minidl.zeros(2, 3).dtype == minidl.float32


@pytest.mark.parametrize("name,args", [
    ("zeros", (2, 3)), ("ones", ((2, 3),)), ("full", ((2, 2), 7)), ("full", ((2,), 1.5)),
    ("full", ((2,), True)), ("arange", (5,)), ("arange", (1, 4, 0.5)), ("arange", (2, 9, 3)),
    ("eye", (3,)), ("eye", (2, 4)),
])
def test_creation_matches_torch(torch, name, args):
    ours = getattr(minidl, name)(*args)
    theirs = getattr(torch, name)(*args)
    assert ours.shape == tuple(theirs.shape)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_like_functions_and_options():
    x = minidl.tensor(np.zeros((2, 3)))
    assert minidl.zeros_like(x).dtype == minidl.float64
    assert minidl.ones_like(x, dtype=minidl.float32).dtype == minidl.float32
    w = minidl.zeros(3, requires_grad=True)
    assert w.requires_grad and w.is_leaf
    with pytest.raises(RuntimeError, match="floating point"):
        minidl.zeros(3, dtype=minidl.int64, requires_grad=True)


def test_manual_seed_makes_random_creation_reproducible():
    minidl.manual_seed(42)
    a = (minidl.rand(3), minidl.randn(2, 2), minidl.randint(0, 10, (5,)))
    minidl.manual_seed(42)
    b = (minidl.rand(3), minidl.randn(2, 2), minidl.randint(0, 10, (5,)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    minidl.manual_seed(43)
    assert not np.array_equal(minidl.rand(3).numpy(), a[0].numpy())


def test_rng_state_round_trip():
    state = minidl.get_rng_state()
    first = minidl.randn(4).numpy()
    minidl.set_rng_state(state)
    np.testing.assert_array_equal(minidl.randn(4).numpy(), first)


def test_random_ranges_and_dtypes():
    r = minidl.rand(1000)
    assert r.dtype == minidl.float32 and 0 <= r.numpy().min() and r.numpy().max() < 1
    i = minidl.randint(3, 7, (1000,))
    assert i.dtype == minidl.int64 and set(np.unique(i.numpy())) == {3, 4, 5, 6}
    assert minidl.randint(5, (3,)).numpy().max() < 5  # randint(high, size)


def test_attributes_and_conversions():
    x = minidl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    here = minidl.get_default_device()
    assert x.shape == (2, 2) and x.ndim == 2 and x.device == here and x.numel() == 4
    assert x.size() == (2, 2) and x.size(-1) == 2
    assert x.sum().item() == 10.0
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    assert x.to(here) is x and x.to(str(here)) is x
    assert x.to(minidl.float64).dtype == minidl.float64
    with pytest.raises(ValueError, match="one-element"):
        x.item()
    if not minidl.cuda.is_available():  # without CuPy: what to install; with it, no GPU: that
        with pytest.raises(RuntimeError, match="the cuda device is not available: (CuPy is not installed|"
                                               "CuPy is installed but cannot use a CUDA GPU)"):
            x.to("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        minidl.zeros(2, device="tpu")


def test_cast_is_differentiable():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3).sum().backward()
    assert x.grad.dtype == minidl.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_repr_mentions_dtype_and_grad_fn():
    device = "" if minidl.get_default_device() == "cpu" else f", device='{minidl.get_default_device()}'"
    assert repr(minidl.tensor([1.0, 2.0])) == f"tensor([1., 2.]{device})"
    assert "dtype=minidl.float64" in repr(minidl.tensor(np.zeros(2)))
    assert "requires_grad=True" in repr(minidl.zeros(1, requires_grad=True))
    assert "grad_fn=<MulBackward>" in repr(minidl.zeros(1, requires_grad=True) * 2)


# --- clear errors, raised before anything changes ------------------------------------------
def test_binary_op_shape_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(3, 4\) and \(5,\) cannot be broadcast"):
        minidl.zeros(3, 4) + minidl.zeros(5)
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 3\) and \(4, 3\)"):
        minidl.zeros(2, 3) * np.zeros((4, 3))


def test_matmul_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 6\) cannot be multiplied"):
        minidl.zeros(3, 4) @ minidl.zeros(5, 6)
    with pytest.raises(ValueError, match="matmul"):
        minidl.zeros(3) @ minidl.zeros(())


def test_bad_index_dtype_is_a_clear_error():
    x = minidl.zeros(4, 3)
    with pytest.raises(IndexError, match="getitem: tensors used as indices must be integer or bool, got dtype float32"):
        x[minidl.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match=r"getitem: .*out of bounds.*shape \(4, 3\)"):
        x[7]


def test_bad_shape_arguments():
    x = minidl.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"reshape: shape \(4, 2\) is invalid for a tensor of shape \(2, 3\)"):
        x.reshape(4, 2)
    with pytest.raises(IndexError, match="transpose: dim 2 is out of range"):
        x.transpose(0, 2)
    with pytest.raises(RuntimeError, match="permute"):
        x.permute(0, 0)
    with pytest.raises(RuntimeError, match="expand"):
        x.expand(4, 3)
    with pytest.raises(IndexError, match="sum: dim 5"):
        x.sum(5)
    with pytest.raises(RuntimeError, match="clamp"):
        x.clamp()
