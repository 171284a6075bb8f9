"""Version counters: a saved tensor changed in place makes backward raise, before any gradient
is written, naming the op and the versions; the project's models never trip it."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
import unet

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)

CHANGED = r"one of the variables needed for gradient computation has been modified by an inplace operation: .* was saved at version {} and is now at version {}"


def _leaf(values):
    return minidl.tensor(values, dtype=minidl.float64, requires_grad=True)


def _copy_into_a_saved_input():
    x = _leaf([1.0, 2.0])
    h = x * 1.0
    y = (h * h).sum()  # Mul saves h
    with minidl.no_grad():
        h.copy_(minidl.tensor([5.0, 6.0], dtype=minidl.float64))
    return x, y, "Mul", "input 0 of Mul", 0, 1


def _add_to_the_output_of_exp():
    x = _leaf([1.0, 2.0])
    y = x.exp()  # Exp saves its output
    y += 1
    return x, y.sum(), "Exp", "the output of Exp", 0, 1


def _add_to_the_output_of_sigmoid():
    x = _leaf([1.0, -2.0])
    y = x.sigmoid()
    y.add_(1).mul_(2)  # two changes: version 2
    return x, y.sum(), "Sigmoid", "the output of Sigmoid", 0, 2


def _inplace_on_a_view_of_a_saved_tensor():
    x = _leaf([1.0, 2.0, 3.0])
    h = x * 1.0
    y = h.sqrt()  # Sqrt saves its output y; the slice below shares y's memory
    y[1:].mul_(2)
    return x, y.sum(), "Sqrt", "the output of Sqrt", 0, 1


def _a_write_through_data():
    x = _leaf([1.0, 2.0])
    y = (x * x).sum()  # Mul saves x itself
    x.data.mul_(3)  # PyTorch would not notice this one (see docs/gradients/version_counters.md)
    return x, y, "Mul", "input 0 of Mul", 0, 1


@pytest.mark.parametrize("case", [_copy_into_a_saved_input, _add_to_the_output_of_exp,
                                  _add_to_the_output_of_sigmoid, _inplace_on_a_view_of_a_saved_tensor,
                                  _a_write_through_data])
def test_a_saved_tensor_changed_in_place_makes_backward_raise(case):
    x, y, op, what, saved, now = case()
    with pytest.raises(RuntimeError, match=f"{op}.backward: " + CHANGED.format(saved, now)) as error:
        y.backward()
    assert what in str(error.value)
    assert x.grad is None  # raised before any gradient was written


def test_pytorch_raises_in_the_same_four_cases(torch):
    """The cases above, in PyTorch (all but the write through .data, which PyTorch misses)."""
    def exp_case(x):
        y = x.exp()
        y += 1
        return y.sum()

    def copy_case(x):
        h = x * 1.0
        y = (h * h).sum()
        with torch.no_grad():
            h.copy_(torch.tensor([5.0, 6.0], dtype=torch.float64))
        return y

    def view_case(x):
        y = (x * 1.0).sqrt()
        y[1:].mul_(2)
        return y.sum()

    def sigmoid_case(x):
        y = x.sigmoid()
        y.add_(1).mul_(2)
        return y.sum()

    for case in (exp_case, copy_case, view_case, sigmoid_case):
        x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            case(x).backward()


def test_an_inplace_op_after_relu_inplace_is_caught_as_in_pytorch():
    x = _leaf([-1.0, 2.0])
    h = x * 1.0
    h.relu_()  # Relu saves its output, which now lives in h
    h.mul_(2)
    with pytest.raises(RuntimeError, match="Relu.backward: " + CHANGED.format(1, 2)):
        h.sum().backward()


def test_pytorch_style_saved_tensors_are_checked_too():
    class Square(minidl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, dy):
            x, = ctx.saved_tensors
            return 2 * x * dy

    x = _leaf([1.0, 2.0])
    h = x * 1.0
    y = Square.apply(h).sum()
    with minidl.no_grad():
        h.add_(1)
    with pytest.raises(RuntimeError, match=CHANGED.format(0, 1)):
        y.backward()


@pytest.mark.parametrize("change", [
    lambda t: t.add_(1),
    lambda t: t.__iadd__(1),
    lambda t: t.__setitem__(0, 5.0),
    lambda t: t.data.zero_(),
    lambda t: t.detach().mul_(2),
    lambda t: t[1:].fill_(3.0),
    lambda t: t.copy_(minidl.ones(3)),
])
def test_every_kind_of_inplace_change_moves_the_shared_counter(change):
    t = minidl.zeros(3)
    view = t[0:2]
    change(t)
    assert t._version == view._version == 1


def test_an_optimizer_step_and_nn_init_move_parameter_versions():
    layer = nn.Linear(3, 2)
    before = [p._version for p in layer.parameters()]
    layer(minidl.ones(1, 3)).sum().backward()
    minidl.optim.SGD(layer.parameters(), lr=0.1).step()
    assert [p._version for p in layer.parameters()] == [v + 1 for v in before]


def test_a_graph_built_before_an_optimizer_step_refuses_to_backward():
    """PyTorch's well-known 'modified by an inplace operation' after optimizer.step()."""
    layer = nn.Linear(3, 2)
    opt = minidl.optim.SGD(layer.parameters(), lr=0.1)
    x = minidl.ones(4, 3, requires_grad=True)
    loss = layer(x).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="Linear.backward: .*input 1 of Linear"):
        loss.backward()


# --- and no false alarm in the project's models ----------------------------------------------------
def _train_steps(model, x, target, steps=2, loss=F.cross_entropy):
    opt = minidl.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        value = loss(model(x), target)
        value.backward()
        opt.step()
    return value.item()


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_a_unet_with_batch_norm_and_dropout_trains_without_a_false_alarm(padding):
    model = unet.UNet(1, 2, base_channels=4, depth=3, padding=padding, batch_norm=True, dropout=0.3)
    size = 28 if padding == "same" else 44
    x = minidl.randn(2, 1, size, size)
    out = model(x).shape[-1]
    target = minidl.randint(0, 2, (2, out, out))
    assert np.isfinite(_train_steps(model, x, target))
    model.eval()
    with minidl.no_grad():
        model(x)


def test_fcn_and_inplace_relu_models_train_without_a_false_alarm():
    fcn = unet.FCN(n_classes=3, variant="8s", in_channels=1, width=0.125)
    x = minidl.randn(1, 1, 64, 64)
    assert np.isfinite(_train_steps(fcn, x, minidl.randint(0, 3, (1, 64, 64))))
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                        nn.Conv2d(4, 2, 1), nn.LeakyReLU(0.1, inplace=True))
    assert np.isfinite(_train_steps(net, minidl.randn(2, 1, 9, 9), minidl.randint(0, 2, (2, 9, 9))))


def test_arrays_on_a_bytes_buffer_work_and_share_their_owner():
    """An array whose memory belongs to a bytes object (np.frombuffer, PIL images, arrays from
    another process) has no ``.base`` chain down to an array; the engine still finds its owner."""
    from minidl.backend import memory_owner

    raw = bytes(24)
    a = np.frombuffer(raw, dtype=np.float32).reshape(2, 3)
    b = np.frombuffer(raw, dtype=np.float32)[1:]
    assert memory_owner(a) is memory_owner(b) is raw
    x = minidl.as_tensor(a)
    w = minidl.nn.Parameter(minidl.ones(3, 3))
    (x @ w).relu().sum().backward()
    assert w.grad.shape == (3, 3)
