"""In-place ops (minidl/inplace.py): PyTorch's semantics, memory shared by views, and gradients
through recorded in-place ops, against PyTorch and by gradcheck."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from helpers import compare_with_torch, gradcheck_with_random_dy

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)

rng = np.random.default_rng(7)
X = rng.standard_normal((3, 5))       # odd sizes
O = rng.standard_normal((3, 5))
ROW = rng.standard_normal((5,))       # broadcast along the rows
SCALAR = np.array(0.7)                # a 0-dim tensor operand
MASK = rng.random((3, 5)) > 0.5


# --- every in-place method, recorded in a graph: the same code runs on both libraries --------
def _iadd(x, o):
    h = x * 1.0
    h += o
    return h


def _isub(x, o):
    h = x * 1.0
    h -= o
    return h


def _imul(x, o):
    h = x * 1.0
    h *= o
    return h


def _idiv(x, o):
    h = x * 1.0
    h /= o * o + 1.0
    return h


def _ipow(x):
    h = x * 1.0
    h **= 2
    return h


def _setitem_slice(x, o):
    h = x * 1.0
    h[1:3, ::2] = o[0:2, 1:4]
    return h


def _setitem_broadcast_number(x):
    h = x * 1.0
    h[:, 1] = 0.5
    return h


def _setitem_array_index(x, row):
    h = x * 1.0
    h[[0, 2]] = row  # an integer-array index, the value broadcast over two rows
    return h


def _inplace_on_a_slice(x, o):
    h = x * 1.0
    h[1:].mul_(o[1:])  # a view of h: h's graph learns of it (CopySlices)
    return h * h


def _inplace_on_a_view_of_a_view(x):
    h = x * 1.0
    h.view(-1)[::2].exp_()
    return h


def _inplace_on_a_transposed_row(x, o):
    h = x * 1.0
    h.t()[2].add_(o[0, :3])
    return h.sum(0) * h[0]


def _two_inplace_ops(x, o):
    h = x * 1.0
    h.mul_(o).add_(1.5)
    h.relu_()
    return h


CASES = {
    "add_": (lambda x, o: (x * 1.0).add_(o), (X, O)),
    "add_ broadcast": (lambda x, row: (x * 1.0).add_(row), (X, ROW)),
    "add_ alpha": (lambda x, o: (x * 1.0).add_(o, alpha=-2.5), (X, O)),
    "sub_": (lambda x, o: (x * 1.0).sub_(o, alpha=0.5), (X, O)),
    "mul_": (lambda x, o: (x * 1.0).mul_(o), (X, O)),
    "mul_ 0-dim": (lambda x, s: (x * 1.0).mul_(s), (X, SCALAR)),
    "div_": (lambda x, o: (x * 1.0).div_(o * o + 1.0), (X, O)),
    "pow_": (lambda x: (x * 1.0).pow_(3), (X,)),
    "+=": (_iadd, (X, ROW)),
    "-=": (_isub, (X, O)),
    "*=": (_imul, (X, O)),
    "/=": (_idiv, (X, O)),
    "**=": (_ipow, (X,)),
    "zero_": (lambda x: (x * 2.0).zero_() + x, (X,)),
    "fill_ number": (lambda x: (x * 2.0).fill_(2.5) * x, (X,)),
    "fill_ 0-dim tensor": (lambda x, s: (x * 2.0).fill_(s) * x, (X, SCALAR)),
    "copy_": (lambda x, o: (x * 2.0).copy_(o) * x, (X, O)),
    "copy_ broadcast": (lambda x, row: (x * 2.0).copy_(row) * x, (X, ROW)),
    "clamp_": (lambda x: (x * 1.0).clamp_(-0.5, 0.8), (X,)),
    "clamp_ min only": (lambda x: (x * 1.0).clamp_(min=0.1), (X,)),
    "relu_": (lambda x: (x * 1.0).relu_(), (X,)),
    "sigmoid_": (lambda x: (x * 1.0).sigmoid_(), (X,)),
    "tanh_": (lambda x: (x * 1.0).tanh_(), (X,)),
    "exp_": (lambda x: (x * 1.0).exp_(), (X,)),
    "log_": (lambda x: (x * x + 0.5).log_(), (X,)),
    "sqrt_": (lambda x: (x * x + 0.5).sqrt_(), (X,)),
    "abs_": (lambda x: (x * 1.0).abs_(), (X,)),
    "neg_": (lambda x: (x * 1.0).neg_(), (X,)),
    "masked_fill_ number": (lambda x: (x * 1.0).masked_fill_(_mask(x), 2.0), (X,)),
    "masked_fill_ 0-dim tensor": (lambda x, s: (x * 1.0).masked_fill_(_mask(x), s), (X, SCALAR)),
    "setitem slice": (_setitem_slice, (X, O)),
    "setitem number": (_setitem_broadcast_number, (X,)),
    "setitem array index": (_setitem_array_index, (X, ROW)),
    "in-place on a slice": (_inplace_on_a_slice, (X, O)),
    "in-place on a view of a view": (_inplace_on_a_view_of_a_view, (X,)),
    "in-place on a transposed row": (_inplace_on_a_transposed_row, (X, O)),
    "two in-place ops in a row": (_two_inplace_ops, (X, O)),
}


def _mask(x):
    """MASK as a bool tensor of x's library (minidl or torch)."""
    if isinstance(x, minidl.Tensor):
        return minidl.tensor(MASK)
    import torch

    return torch.tensor(MASK)


@pytest.mark.parametrize("name", sorted(CASES))
def test_inplace_method_gradient_check(name):
    fn, arrays = CASES[name]
    assert gradcheck_with_random_dy(fn, arrays)


@pytest.mark.parametrize("name", sorted(CASES))
def test_inplace_method_matches_torch(torch, name):
    fn, arrays = CASES[name]
    compare_with_torch(torch, fn, fn, arrays)


def test_inplace_ops_keep_the_tensor_and_its_memory():
    h = minidl.tensor(X)
    memory = h._data
    for op in (lambda t: t.add_(1), lambda t: t.mul_(2), lambda t: t.clamp_(0, 1), lambda t: t.relu_(),
               lambda t: t.masked_fill_(minidl.tensor(MASK), 3.0), lambda t: t.copy_(O), lambda t: t.zero_()):
        assert op(h) is h and h._data is memory


# --- memory shared as in PyTorch ------------------------------------------------------------------
def test_an_alias_sees_augmented_assignment():
    y = minidl.zeros(2)
    z = y
    y += 1
    assert z is y
    np.testing.assert_array_equal(z.numpy(), [1.0, 1.0])


@pytest.mark.parametrize("view, numpy_view", [
    (lambda b: b[1:3], lambda a: a[1:3]),
    (lambda b: b[1], lambda a: a[1]),
    (lambda b: b[1, 2], lambda a: a[1, 2:3]),  # a 0-dim view
    (lambda b: b.view(12)[4:8], lambda a: a.reshape(12)[4:8]),
    (lambda b: b.reshape(2, 6)[0], lambda a: a.reshape(2, 6)[0]),
    (lambda b: b.t()[1], lambda a: a.T[1]),
    (lambda b: b.unsqueeze(0)[0], lambda a: a),
    (lambda b: b.detach(), lambda a: a),
    (lambda b: b.data, lambda a: a),
])
def test_an_inplace_op_on_a_view_changes_the_base(view, numpy_view):
    base = minidl.tensor(np.arange(12.0).reshape(3, 4))
    expected = np.arange(12.0).reshape(3, 4)
    v = view(base)
    v += 100
    numpy_view(expected)[...] += 100
    np.testing.assert_array_equal(base.numpy(), expected)
    assert v._version == base._version == 1


def test_a_change_of_the_base_is_seen_by_its_views():
    base = minidl.zeros(2, 3)
    row, flat = base[1], base.view(6)
    base[1, 2] = 7.0
    assert row[2].item() == 7.0 and flat[5].item() == 7.0


def test_advanced_indexing_copies_so_its_result_is_no_view():
    base = minidl.zeros(4)
    picked = base[[0, 1]]
    picked += 1
    np.testing.assert_array_equal(base.numpy(), np.zeros(4))


def test_an_inplace_op_on_a_view_updates_the_graph_of_the_base_and_of_other_views(torch):
    def run(lib, a):
        base = a * 1
        first, second = base[0:2], base[1:3]  # overlapping views
        first.mul_(10)
        return (second * lib.tensor([1.0, 3.0], dtype=a.dtype)).sum()

    a = minidl.tensor([1.0, 2.0, 3.0, 4.0], dtype=minidl.float64, requires_grad=True)
    b = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    run(minidl, a).backward()
    run(torch, b).backward()
    np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())  # [0, 10, 3, 0]


def test_a_view_of_a_tensor_that_gains_a_gradient_gains_one_too():
    a = minidl.zeros(3)
    view = a[:2]
    w = minidl.ones(3, requires_grad=True)
    a.add_(w)  # a was a plain tensor; now it depends on w
    assert view.requires_grad and view.grad_fn is not None
    (view * 3.0).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0, 0.0])


# --- PyTorch's rules: errors raised before anything changes ------------------------------------
def _unchanged_after(error, message, tensor, op):
    before, version = tensor.detach().numpy().copy(), tensor._version
    with pytest.raises(error, match=message):
        op()
    np.testing.assert_array_equal(tensor.detach().numpy(), before)
    assert tensor._version == version


def test_a_leaf_that_requires_grad_is_not_changed_in_place_while_recording():
    x = minidl.ones(2, requires_grad=True)
    _unchanged_after(RuntimeError, "add_: a leaf Variable that requires grad", x, lambda: x.add_(1))
    _unchanged_after(RuntimeError, "a leaf Variable that requires grad", x, lambda: x.__iadd__(1))
    _unchanged_after(RuntimeError, "a view of a leaf Variable that requires grad", x, lambda: x[0].mul_(2))
    with minidl.no_grad():
        x.add_(1)  # what optimizers do
    np.testing.assert_array_equal(x.detach().numpy(), [2.0, 2.0])


def test_a_view_made_under_no_grad_is_not_changed_with_recording_on():
    x = minidl.ones(3, requires_grad=True)
    h = x * 1
    with minidl.no_grad():
        view = h[0:2]
    _unchanged_after(RuntimeError, "A view was created in no_grad mode", h, lambda: view.mul_(2))


@pytest.mark.parametrize("op, message", [
    (lambda t: t.__iadd__(1.5), "result type Float can't be cast to the desired output type Long"),
    (lambda t: t.mul_(2.0), "result type Float can't be cast to the desired output type Long"),
    (lambda t: t.div_(2), "result type Float can't be cast to the desired output type Long"),
    (lambda t: t.add_(minidl.ones(2, 3, dtype=minidl.int64)), r"output with shape \[3\] doesn't match the "
                                                               r"broadcast shape \[2, 3\]"),
    (lambda t: t.copy_(minidl.ones(2)), r"copy_: source of shape \(2,\) cannot be copied"),
    (lambda t: t.__setitem__(slice(0, 2), minidl.ones(3)), r"setitem: a value of shape \(3,\) cannot be "
                                                            r"assigned"),
    (lambda t: t.normal_(), "normal_: expects a floating point tensor"),
])
def test_a_result_that_does_not_fit_raises_pytorchs_error(op, message):
    t = minidl.tensor([1, 2, 3])
    _unchanged_after(RuntimeError, message, t, lambda: op(t))


def test_writing_into_an_expanded_tensor_raises():
    t = minidl.zeros(1, 3)
    wide = t.expand(2, 3)
    _unchanged_after(RuntimeError, "more than one element of the written-to tensor refers to a single "
                     "memory location", t, lambda: wide.add_(1))


# --- modules and functions with inplace=True, and nn.init ---------------------------------------
@pytest.mark.parametrize("make", [
    lambda lib: lib.nn.ReLU(inplace=True),
    lambda lib: lib.nn.LeakyReLU(0.2, inplace=True),
    lambda lib: (lambda t: lib.nn.functional.relu(t, inplace=True)),
    lambda lib: (lambda t: lib.nn.functional.leaky_relu(t, 0.3, inplace=True)),
])
def test_inplace_activations_write_into_their_input(make, torch):
    def run(lib, x):
        h = x * 2.0
        out = make(lib)(h)
        assert out is h
        return h

    compare_with_torch(torch, lambda x: run(minidl, x), lambda x: run(torch, x), (X,))


def test_inplace_activation_gradient_check():
    relu, leaky = nn.ReLU(inplace=True), nn.LeakyReLU(0.2, inplace=True)
    assert gradcheck_with_random_dy(lambda x: leaky(relu(x * 1.0 - 0.3) * 2.0 - 0.5), (X,))


@pytest.mark.parametrize("fn, shape", [(F.dropout, (3, 5)), (F.dropout2d, (2, 3, 4, 4))])
def test_inplace_dropout_equals_the_out_of_place_one(fn, shape):
    x = minidl.tensor(rng.standard_normal(shape), requires_grad=True)
    dy = minidl.tensor(rng.standard_normal(shape))
    minidl.manual_seed(3)
    expected = fn(x * 1.0, 0.4, training=True)
    (expected * dy).sum().backward()
    expected_grad, x.grad = x.grad.numpy().copy(), None
    minidl.manual_seed(3)
    h = x * 1.0
    out = fn(h, 0.4, training=True, inplace=True)
    assert out is h
    (out * dy).sum().backward()
    np.testing.assert_array_equal(out.detach().numpy(), expected.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), expected_grad)


def test_init_functions_change_parameters_in_place_through_copy_():
    p = nn.Parameter(minidl.zeros(4, 3))
    memory, version = p._data, p._version
    nn.init.kaiming_uniform_(p)
    nn.init.zeros_(p)
    assert p._data is memory and p._version == version + 2


def test_normal_and_uniform_are_reproducible_and_in_range():
    a, b = minidl.zeros(1000), minidl.zeros(1000)
    minidl.manual_seed(5)
    a.uniform_(-2.0, 3.0)
    minidl.manual_seed(5)
    b.uniform_(**{"from": -2.0, "to": 3.0})  # PyTorch's keyword names
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert -2.0 <= a.numpy().min() and a.numpy().max() < 3.0
    c = minidl.zeros(20000, dtype=minidl.float64).normal_(1.0, 2.0)
    assert abs(c.numpy().mean() - 1.0) < 0.05 and abs(c.numpy().std() - 2.0) < 0.05


def test_a_random_fill_gives_the_old_values_a_zero_gradient():
    x = minidl.tensor(X, requires_grad=True)
    (x * 2.0).normal_().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros_like(X))


# --- the manual SGD idiom of the PyTorch tutorials ------------------------------------------------
def _model_and_batch():
    minidl.manual_seed(11)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    x = minidl.randn(16, 4, dtype=minidl.float64)
    target = minidl.randint(0, 3, (16,))
    return model, x, target


@pytest.mark.parametrize("update", [
    lambda p, lr: p.__isub__(lr * p.grad),           # p -= lr * p.grad
    lambda p, lr: p.data.add_(p.grad, alpha=-lr),    # the older idiom, through .data
    lambda p, lr: p.copy_(p - lr * p.grad),
])
def test_manual_sgd_trains_and_equals_optim_sgd_after_ten_steps(update):
    manual, x, target = _model_and_batch()
    reference, _, _ = _model_and_batch()
    opt = minidl.optim.SGD(reference.parameters(), lr=0.1)
    losses = []
    for _ in range(10):
        loss = F.cross_entropy(manual(x), target)
        losses.append(loss.item())
        manual.zero_grad()
        loss.backward()
        with minidl.no_grad():
            for p in manual.parameters():
                update(p, 0.1)
        opt.zero_grad()
        F.cross_entropy(reference(x), target).backward()
        opt.step()
    assert losses[-1] < 0.9 * losses[0]  # it trains (the loss stayed put when -= rebound the name)
    for p, q in zip(manual.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-14, atol=1e-15)


def test_scalar_results_accumulate_in_place_as_in_pytorch(torch):
    """``total = 0; total += x.sum()`` twice (an evaluation loop's idiom): reductions give 0-d
    tensors on writable memory of their own, so the second ``+=`` works and the gradient is
    PyTorch's."""
    x = np.arange(6.0).reshape(2, 3)
    results = []
    for lib in (minidl, torch):
        xt = lib.tensor(x, requires_grad=True)
        total = 0
        for reduce in (lambda t: t.sum(), lambda t: t.mean(), lambda t: (t * t).max()):
            total += reduce(xt)
        total.backward()
        results.append((float(total.item()), xt.grad.numpy().copy()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-15)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-15)
    s = minidl.tensor(x).sum()
    assert s.numpy().flags.writeable and s.shape == ()
