"""The autograd engine: graph shapes, accumulation, freeing, no_grad, custom Functions."""
import gc
import weakref

import numpy as np
import pytest

import minidl
from minidl.autograd import Function
from minidl.backend import memory_owner, to_host

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)


def leaf(values):
    return minidl.tensor(values, dtype=minidl.float64, requires_grad=True)


def test_node_used_twice_adds_both_gradients():
    x = leaf([1.0, 2.0, 3.0])
    y = x * x  # d/dx x*x = 2x: both uses of x contribute
    y.backward(minidl.tensor(np.ones(3)))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_diamond_graph():
    x = leaf(2.0)
    a = x * 3.0
    b = x.exp()
    c = a * b  # c = 3x e^x, dc/dx = 3 e^x + 3x e^x
    c.backward()
    np.testing.assert_allclose(x.grad.item(), 3 * np.exp(2.0) * (1 + 2.0))


def test_broadcast_gradient_is_summed_to_input_shape():
    a = leaf(np.ones((3, 1)))
    b = leaf(np.arange(4.0))
    dy = np.arange(12.0).reshape(3, 4)
    (a * b).backward(minidl.tensor(dy))
    np.testing.assert_allclose(a.grad.numpy(), (dy * np.arange(4.0)).sum(1, keepdims=True))
    np.testing.assert_allclose(b.grad.numpy(), dy.sum(0))


def test_second_backward_accumulates_into_grad():
    x = leaf([1.0, -2.0])
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_gradients_of_two_leaves_are_independent_arrays():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()  # Add returns the same dy for both inputs
    a.grad.data += 100
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0])


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_backward_through_freed_graph_raises_and_changes_nothing():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    before = x.grad.numpy().copy()
    with pytest.raises(RuntimeError, match="second time|retain_graph"):
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), before)


def test_saved_arrays_are_freed_after_backward():
    x = leaf(np.ones(1000))
    hidden = x.exp()
    ref = weakref.ref(hidden.grad_fn.saved.y)
    y = (hidden * 2).sum()
    del hidden
    y.backward()
    gc.collect()
    assert ref() is None


def test_non_scalar_backward_needs_gradient():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).backward(minidl.tensor([1.0, 2.0, 3.0]))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.tensor([1.0]).sum().backward()


def test_deep_chain_does_not_hit_recursion_limit():
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0
    del y  # freeing a deep graph must not recurse either
    gc.collect()


def test_no_grad_context_and_decorator():
    x = leaf([1.0])
    with minidl.no_grad():
        y = x * 2
        assert not minidl.is_grad_enabled()
        with minidl.enable_grad():
            z = x * 2
    assert minidl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad

    @minidl.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert minidl.is_grad_enabled()


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(ValueError):
        with minidl.no_grad():
            raise ValueError("boom")
    assert minidl.is_grad_enabled()


def test_detach_and_leaf_flags():
    x = leaf([1.0, 2.0])
    y = x * 2
    assert x.is_leaf and not y.is_leaf
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d._data is y._data
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)
    with pytest.raises(RuntimeError, match="floating point"):
        minidl.tensor([1, 2]).requires_grad_()


class Cube(Function):
    """The worked example from the autograd docstring."""

    def forward(self, x):
        self.save(x=x)
        return x ** 3

    def backward(self, dy):
        return dy * 3 * self.saved.x ** 2


def test_user_defined_function():
    x = leaf([1.0, 2.0])
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])


def test_function_with_non_tensor_argument_and_wrong_gradient_count():
    class Scale(Function):
        def forward(self, x, factor):
            self.save(factor=factor)
            return x * factor

        def backward(self, dy):
            return dy * self.saved.factor, None

    class Broken(Function):
        def forward(self, x, factor):
            return x * factor

        def backward(self, dy):
            return dy  # forgot the None for `factor`

    x = leaf([1.0, 2.0])
    Scale.apply(x, 5.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0])
    with pytest.raises(RuntimeError, match=r"Broken.backward returned an incorrect number of gradients "
                                           r"\(expected 2, got 1\)"):
        Broken.apply(x, 5.0).sum().backward()


def test_grad_of_float32_leaf_stays_float32():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x * np.float64(2.0)).sum().backward()
    assert x.grad.dtype == minidl.float32


def test_in_place_change_of_a_leaf_that_requires_grad_needs_no_grad():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        x.zero_()
    with minidl.no_grad():
        x.copy_(minidl.tensor([3.0, 4.0]))
    np.testing.assert_array_equal(x.detach().numpy(), [3.0, 4.0])


# --- gradient ownership: the engine writes only into arrays it allocated itself -------------
class _Made(Function):
    """y = 2x; backward returns a NEW array and remembers it (to check it is not copied)."""

    made = []

    def forward(self, x):
        return 2 * x

    def backward(self, dy):
        dx = 2 * dy
        _Made.made.append(dx)
        return dx


def test_a_leaf_gradient_is_the_engine_s_own_copy():
    x = leaf([1.0, 2.0])
    _Made.made.clear()
    _Made.apply(x).backward(minidl.tensor([1.0, 1.0], dtype=minidl.float64))
    assert memory_owner(x.grad._data) is not memory_owner(_Made.made[0])  # borrowed, so copied
    (_Made.apply(x) * 1.0).backward(minidl.tensor([1.0, 1.0], dtype=minidl.float64))  # accumulates
    np.testing.assert_array_equal(to_host(_Made.made[0]), [2.0, 2.0])  # the op's array is untouched
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0])


def test_leaf_copies_the_users_gradient_passed_through():
    x = leaf([1.0, 2.0])
    g = np.array([3.0, 4.0])
    x.clone().backward(minidl.tensor(g))  # Clone returns dy: the caller's array itself
    x.grad.data += 1  # must not reach g
    np.testing.assert_array_equal(g, [3.0, 4.0])
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 5.0])


def test_two_leaves_fed_by_one_array_get_separate_gradients():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).backward(minidl.tensor([1.0, 1.0], dtype=minidl.float64))  # Add returns dy twice
    a.grad.data *= 5
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0])


def test_pieces_of_one_gradient_are_not_written_into():
    a, b = leaf([1.0, 2.0]), leaf([3.0])
    x = minidl.cat([a, b]) * 1.0  # dy of cat is new; its pieces are views of it
    h = x.clone()
    y = minidl.cat([h[:2] + h[:2], h[2:]])  # h's gradient arrives in two pieces, summed
    y.backward(minidl.tensor([1.0, 2.0, 3.0], dtype=minidl.float64))
    np.testing.assert_allclose(a.grad.numpy(), [2.0, 4.0])
    np.testing.assert_allclose(b.grad.numpy(), [3.0])


def test_node_used_three_times_sums_in_place_correctly():
    x = leaf([0.5, -1.0])
    h = x * 3.0  # used three times below; gradients of h: 1, 2x... summed by the engine
    y = h + h * h + h.exp()  # dy/dh = 1 + 2h + e^h
    y.backward(minidl.tensor([1.0, 1.0], dtype=minidl.float64))
    hv = np.array([1.5, -3.0])
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * (1 + 2 * hv + np.exp(hv)))


def test_accumulating_into_a_leaf_leaves_the_op_arrays_alone():
    x = leaf([1.0, 2.0])
    _Made.made.clear()
    y = _Made.apply(x) + _Made.apply(x)  # two new arrays reach the same leaf
    y.backward(minidl.tensor([1.0, 1.0], dtype=minidl.float64))
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0])
    for made in _Made.made:
        np.testing.assert_allclose(to_host(made), [2.0, 2.0])  # neither was added into


def test_a_backward_that_writes_into_dy_fails_instead_of_changing_another_node_s_gradient():
    class Scribbler(Function):  # a buggy op: it doubles dy in place
        def forward(self, x):
            return x.copy()

        def backward(self, dy):
            dy *= 2
            return dy

    a = leaf([1.0, 2.0])
    h = a * 1.0
    y = Scribbler.apply(h) + h  # Add hands the same dy to Scribbler and to Mul
    with pytest.raises(ValueError, match="read-only"):
        y.backward(minidl.tensor([1.0, 1.0], dtype=minidl.float64))
    assert a.grad is None


def test_relu_backward_leaves_a_borrowed_gradient_alone():
    z = leaf([-1.0, 2.0])
    g = np.array([5.0, 6.0])
    z.relu().backward(minidl.tensor(g))  # the caller's array: borrowed
    np.testing.assert_array_equal(g, [5.0, 6.0])
    np.testing.assert_allclose(z.grad.numpy(), [0.0, 6.0])


def test_sum_of_a_borrowed_and_a_new_gradient_spares_the_borrowed_one():
    x = leaf([1.0, 2.0])
    h = x.clone()
    _Made.made.clear()
    y = h.reshape(2) * 1.0 + _Made.apply(h)  # h gets a new array (from _Made) and dy*1 ...
    z = h.reshape(1, 2).reshape(2) + _Made.apply(h)  # ... and views of the caller's array
    g = np.array([1.0, 10.0])
    (y + z).backward(minidl.tensor(g))
    np.testing.assert_array_equal(g, [1.0, 10.0])  # the caller's array is unchanged
    np.testing.assert_allclose(x.grad.numpy(), 6.0 * g)  # 1 + 2 + 1 + 2 per unit of g
