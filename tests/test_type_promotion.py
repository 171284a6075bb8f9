"""PyTorch's type promotion: elementwise ops promote by category and by rank (dimensioned tensor,
0-dim tensor, Python number); matrix products and convolutions refuse mixed dtypes."""
import itertools

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import dtypes

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]


def _t(dtype, ndim):
    return minidl.tensor(np.ones((2,) * ndim, dtype=dtype))


# The examples of PyTorch's documentation (its "Type promotion" note), checked without PyTorch.
@pytest.mark.parametrize("a, b, expected", [
    (lambda: _t("int32", 1), lambda: 5, "int32"),                 # 5 is not of a higher category
    (lambda: _t("int32", 1), lambda: _t("int64", 0), "int32"),    # nor is a 0-dim long
    (lambda: _t("int64", 1), lambda: _t("int32", 1), "int64"),
    (lambda: _t("bool", 1), lambda: _t("int64", 1), "int64"),
    (lambda: _t("bool", 1), lambda: _t("uint8", 1), "uint8"),
    (lambda: _t("float32", 1), lambda: _t("float64", 1), "float64"),
    (lambda: _t("bool", 1), lambda: _t("int32", 1), "int32"),
    (lambda: _t("int64", 1), lambda: _t("float32", 1), "float32"),  # large enough to hold the float
    (lambda: _t("int32", 1), lambda: 5.5, "float32"),              # a Python float: the default float
    (lambda: _t("float32", 1), lambda: _t("float64", 0), "float32"),
    (lambda: _t("bool", 1), lambda: 1, "int64"),
])
def test_the_documented_examples(a, b, expected):
    a, b = a(), b()
    assert (a + b).dtype == np.dtype(expected) == dtypes.result_type(a, b)
    assert (b + a).dtype == np.dtype(expected)


def test_result_type_agrees_with_torch_on_every_pair(torch):
    to_torch = {name: getattr(torch, name) for name in DTYPES}
    for (a, b), (da, db) in itertools.product(itertools.product(DTYPES, DTYPES), [(0, 0), (0, 1), (1, 0), (1, 1)]):
        ours = dtypes.result_type(_t(a, da), _t(b, db))
        theirs = torch.result_type(torch.ones((2,) * da, dtype=to_torch[a]), torch.ones((2,) * db, dtype=to_torch[b]))
        assert str(theirs) == f"torch.{ours}", (a, da, b, db)
    for a, scalar, da in itertools.product(DTYPES, [True, 3, 2.5], [0, 1]):
        theirs = torch.result_type(torch.ones((2,) * da, dtype=to_torch[a]), scalar)
        assert str(theirs) == f"torch.{dtypes.result_type(_t(a, da), scalar)}", (a, scalar, da)


PAIRS = [(a, da, b, db) for a, b in itertools.product(["bool", "uint8", "int8", "int16", "int32", "int64", "float32",
                                                       "float64"], repeat=2)
         for da, db in [(1, 1), (0, 1), (1, 0)]]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv"])
def test_binary_ops_give_torch_s_dtype_and_values(torch, op):
    rng = np.random.default_rng(0)
    for a, da, b, db in PAIRS:
        x = (rng.integers(1, 4, (3,) * da) if a != "bool" else rng.random((3,) * da) > 0.5).astype(a)
        y = (rng.integers(1, 4, (3,) * db) if b != "bool" else rng.random((3,) * db) > 0.3).astype(b)
        if op == "truediv" and b == "bool":
            y = np.ones_like(y)
        fn = getattr(__import__("operator"), op)
        if op == "sub" and "bool" in (a, b):  # PyTorch refuses these; so does minidl
            for lib in (minidl, torch):
                with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with (a|two) bool"):
                    fn(lib.tensor(x), lib.tensor(y))
            continue
        ours = fn(minidl.tensor(x), minidl.tensor(y))
        theirs = fn(torch.tensor(x), torch.tensor(y))
        assert str(theirs.dtype) == f"torch.{ours.dtype}", (op, a, da, b, db)
        np.testing.assert_allclose(ours.numpy().astype(np.float64), theirs.numpy().astype(np.float64), rtol=1e-6)


def test_a_python_float_stands_for_the_default_dtype_as_in_torch(torch):
    """With ``set_default_dtype(float64)``, int tensor * 2.5 is float64 in both; float tensors keep theirs."""
    to_torch = {name: getattr(torch, name) for name in DTYPES}
    try:
        for lib in (minidl, torch):
            lib.set_default_dtype(lib.float64)
        for a, da in itertools.product(DTYPES, [0, 1]):
            theirs = torch.result_type(torch.ones((2,) * da, dtype=to_torch[a]), 2.5)
            ours = dtypes.result_type(_t(a, da), 2.5)
            assert str(theirs) == f"torch.{ours}", (a, da)
    finally:
        for lib in (minidl, torch):
            lib.set_default_dtype(lib.float32)


@pytest.mark.parametrize("scalar", [True, 2, 2.5])
@pytest.mark.parametrize("dtype", ["bool", "uint8", "int32", "int64", "float32", "float64"])
def test_tensor_scalar_ops_give_torch_s_dtype(torch, dtype, scalar):
    x = np.array([1, 0, 1], dtype=dtype)
    for fn in (lambda t: t + scalar, lambda t: scalar * t, lambda t: t / scalar, lambda t: t ** 2.0):
        assert str(fn(torch.tensor(x)).dtype) == f"torch.{fn(minidl.tensor(x)).dtype}"


def test_a_mixed_dtype_gradient_flows_back_in_each_input_s_dtype():
    a = minidl.tensor([1.0, 2.0], dtype=minidl.float32, requires_grad=True)
    b = minidl.tensor([3.0, 4.0], dtype=minidl.float64, requires_grad=True)
    c = minidl.tensor(2.0, dtype=minidl.float64, requires_grad=True)  # 0-dim: does not promote a
    (a * b).sum().backward()
    assert (a * c).dtype == minidl.float32
    (a * c).sum().backward()
    assert a.grad.dtype == minidl.float32 and b.grad.dtype == minidl.float64 and c.grad.dtype == minidl.float64
    np.testing.assert_allclose(c.grad.numpy(), 3.0)


def test_integer_errors_are_pytorch_s():
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool tensors"):
        minidl.tensor([True]) - minidl.tensor([False])
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor"):
        minidl.tensor([1.0]) - True
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
        minidl.tensor([2]) ** -1


def _f32(*shape):
    return minidl.ones(*shape)


def _f64(*shape):
    return minidl.ones(*shape, dtype=minidl.float64)


@pytest.mark.parametrize("call, message", [
    (lambda: _f32(2, 2) @ _f64(2, 2), "expected m1 and m2 to have the same dtype, but got: float != double"),
    (lambda: _f64(2, 2) @ _f32(2, 2), "expected m1 and m2 to have the same dtype, but got: double != float"),
    (lambda: _f32(2, 2).mm(_f64(2, 2)), "expected m1 and m2 to have the same dtype, but got: float != double"),
    (lambda: F.linear(_f32(2, 2), _f64(2, 2)), "expected m1 and m2 to have the same dtype, but got: float != double"),
    (lambda: F.linear(_f32(2, 2), _f32(2, 2), _f64(2)), "self and mat2 must have the same dtype, but got Double "
                                                        "and Float"),
    (lambda: F.conv2d(_f32(1, 1, 3, 3), _f64(1, 1, 2, 2)), "expected scalar type Float but found Double"),
    (lambda: F.conv2d(_f64(1, 1, 3, 3), _f32(1, 1, 2, 2)), "expected scalar type Double but found Float"),
    (lambda: F.conv2d(_f32(1, 1, 3, 3), _f32(1, 1, 2, 2), _f64(1)), r"Input type \(float\) and bias type "
                                                                    r"\(double\) should be the same"),
    (lambda: F.conv_transpose2d(_f32(1, 1, 3, 3), _f64(1, 1, 2, 2)), "expected scalar type Float but found Double"),
])
def test_products_and_convolutions_do_not_promote(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()


def test_torch_gives_the_same_product_errors(torch):
    TF = torch.nn.functional
    f32, f64 = torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype, but got: float != double"):
        torch.ones(2, 2) @ torch.ones(2, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="expected scalar type Float but found Double"):
        TF.conv2d(f32, f64)
