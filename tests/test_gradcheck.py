"""gradcheck must pass on correct backwards and fail, loudly and precisely, on wrong ones."""
import re
import warnings

import numpy as np
import pytest

import minidl
from minidl.autograd import Function
from minidl.gradcheck import GradcheckError, gradcheck

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)


def _t(rng, *shape, requires_grad=True, dtype=np.float64):
    return minidl.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


class Square(Function):
    """y = x^2, dx = 2 x dy. The correct version, to make sure Function itself is fine."""

    def forward(self, x):
        self.save(x=x)
        return x * x

    def backward(self, dy):
        return 2 * self.saved.x * dy


class WrongSquare(Function):
    """y = x^2 with a planted bug: dx = 3 x dy (a wrong factor)."""

    def forward(self, x):
        self.save(x=x)
        return x * x

    def backward(self, dy):
        return 3 * self.saved.x * dy


class WrongAtOneElement(Function):
    """y = x^2 whose backward is right everywhere except at element (1, 2)."""

    def forward(self, x):
        self.save(x=x)
        return x * x

    def backward(self, dy):
        dx = 2 * self.saved.x * dy
        dx[1, 2] *= 3.0
        return dx


# ---------------------------------------------------------------- passes on correct ops

OPS = {
    "mul": lambda x: x * x,
    "div": lambda x: x / (1.0 + x * x),
    "exp": lambda x: x.exp(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "sum_dim1": lambda x: x.sum(dim=1),
    "mean_keepdim": lambda x: x.mean(dim=0, keepdim=True),
    "transpose": lambda x: x.T,
    "square_function": lambda x: Square.apply(x),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_passes_on_correct_op_with_random_upstream_gradient(name):
    rng = np.random.default_rng(0)
    op = OPS[name]
    x = _t(rng, 3, 4)
    dy = minidl.tensor(rng.standard_normal(op(x).shape))  # random dy, not all-ones
    assert gradcheck(lambda x: (op(x) * dy).sum(), (x,)) is True


def test_passes_on_matmul_with_two_inputs_and_broadcast_bias():
    rng = np.random.default_rng(1)
    x, w, b = _t(rng, 5, 3), _t(rng, 3, 4), _t(rng, 4)
    dy = minidl.tensor(rng.standard_normal((5, 4)))
    assert gradcheck(lambda x, w, b: ((x @ w + b) * dy).sum(), (x, w, b))


def test_full_jacobian_of_vector_output():
    rng = np.random.default_rng(2)
    x, w = _t(rng, 4), _t(rng, 4, 3)
    # y is (3,): the check builds the whole 3x4 and 3x12 Jacobians.
    assert gradcheck(lambda x, w: (x @ w).tanh(), (x, w))


def test_tuple_output_and_non_tensor_inputs_pass_through():
    rng = np.random.default_rng(3)
    x = _t(rng, 2, 3)
    c = _t(rng, 2, 3, requires_grad=False)  # a constant tensor: passed, not checked

    def fn(x, c, scale):
        return x * c * scale, (x * x).sum(dim=0)

    assert gradcheck(fn, (x, c, 2.5))


def test_single_tensor_input_is_accepted():
    x = _t(np.random.default_rng(4), 3)
    assert gradcheck(lambda x: x.exp(), x)


def test_fast_mode_passes_on_correct_op():
    rng = np.random.default_rng(5)
    x, w = _t(rng, 4, 3), _t(rng, 3, 2)
    assert gradcheck(lambda x, w: (x @ w).sigmoid(), (x, w), fast_mode=True)


# ---------------------------------------------------------------- fails on wrong backwards

def test_fails_on_wrong_backward_and_names_input_and_element():
    rng = np.random.default_rng(6)
    a, x = _t(rng, 2), _t(rng, 2, 3)
    # The bug is in input 1; input 0 goes through a correct op.
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, x: (a * a).sum() + WrongSquare.apply(x).sum(), (a, x))
    msg = str(info.value)
    assert "input 1" in msg
    assert re.search(r"element \(\d+, \d+\)", msg), msg
    assert "analytical" in msg and "numerical" in msg
    assert "How to read" in msg


def test_failure_points_at_the_wrong_element():
    x = _t(np.random.default_rng(7), 3, 4)
    with pytest.raises(GradcheckError, match=r"input 0 .*element \(1, 2\)"):
        gradcheck(lambda x: WrongAtOneElement.apply(x), (x,))


def test_failure_reports_the_values():
    # At x = 1 and dy = 1: analytical 3*x = 3, numerical 2*x = 2.
    x = minidl.tensor(np.ones(1), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: WrongSquare.apply(x).sum(), (x,))
    found = re.search(r"analytical (\S+) vs numerical (\S+)", str(info.value))
    assert found, str(info.value)
    assert float(found.group(1)) == pytest.approx(3.0)
    assert float(found.group(2)) == pytest.approx(2.0, rel=1e-8)


def test_raise_exception_false_returns_false():
    x = _t(np.random.default_rng(8), 3)
    assert gradcheck(lambda x: WrongSquare.apply(x), (x,), raise_exception=False) is False


def test_fast_mode_catches_the_planted_bug():
    x = _t(np.random.default_rng(9), 3, 4)
    with pytest.raises(GradcheckError, match="fast_mode"):
        gradcheck(lambda x: WrongSquare.apply(x), (x,), fast_mode=True)


def test_fails_when_gradient_is_cut():
    x = _t(np.random.default_rng(10), 3)
    with pytest.raises(GradcheckError, match=r"analytical 0 "):
        gradcheck(lambda x: x.detach() * x.detach() + 0.0 * x, (x,))


def test_random_fn_is_rejected():
    x = _t(np.random.default_rng(11), 3)
    rng = np.random.default_rng(12)
    noisy = lambda x: x * minidl.tensor(rng.standard_normal(3))  # noqa: E731
    with pytest.raises(GradcheckError, match="deterministic"):
        gradcheck(noisy, (x,))


# ---------------------------------------------------------------- warnings and side effects

def test_warns_for_float32_inputs():
    x = _t(np.random.default_rng(13), 3, dtype=np.float32)
    with pytest.warns(UserWarning, match="float64"):
        gradcheck(lambda x: x * 2.0, (x,), raise_exception=False)


def test_no_warning_for_float64_inputs():
    x = _t(np.random.default_rng(14), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradcheck(lambda x: x * 2.0, (x,))


def test_no_input_requires_grad_is_an_error():
    x = _t(np.random.default_rng(15), 3, requires_grad=False)
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda x: x * 2.0, (x,))


@pytest.mark.parametrize("fast_mode", [False, True])
def test_inputs_unchanged_after_check(fast_mode):
    rng = np.random.default_rng(16)
    x, w = _t(rng, 3, 2), _t(rng, 2, 2)
    x_data, w_data = x._data, w._data
    x_copy, w_copy = x.detach().numpy().copy(), w.detach().numpy().copy()
    gradcheck(lambda x, w: (x @ w).tanh(), (x, w), fast_mode=fast_mode)
    assert x._data is x_data and w._data is w_data          # same arrays ...
    np.testing.assert_array_equal(x.data, x_copy)          # ... bit-for-bit same values
    np.testing.assert_array_equal(w.data, w_copy)
    assert x.grad is None and w.grad is None               # grads as they were


def test_existing_grad_is_restored():
    x = _t(np.random.default_rng(17), 3)
    (x * 3.0).sum().backward()
    before = x.grad.detach().numpy().copy()
    gradcheck(lambda x: x.exp(), (x,))
    np.testing.assert_array_equal(x.grad.data, before)


def test_inputs_restored_when_fn_raises_midway():
    x = _t(np.random.default_rng(18), 2, 2)
    x_copy = x.detach().numpy().copy()
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 4:  # after the analytical pass, while x is perturbed
            raise ArithmeticError("boom")
        return x * x

    with pytest.raises(ArithmeticError, match="boom"):
        gradcheck(flaky, (x,))
    np.testing.assert_array_equal(x.data, x_copy)
