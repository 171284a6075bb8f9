"""Tensor.register_hook and retain_grad (minidl/hooks.py, the engine in minidl/autograd.py)
against PyTorch on the same graphs."""
import numpy as np
import pytest

import minidl

pytestmark = pytest.mark.usefixtures("device")  # every test runs on every device (tests/conftest.py)

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
W = np.array([[1.0, -2.0], [0.5, 0.3], [-1.5, 2.0]])


def _leaves(lib, *arrays):
    return [lib.tensor(a, dtype=lib.float64, requires_grad=True) for a in arrays]


def _graph(lib, hooks_on, hook_for, retain=()):
    """loss = sum(tanh(x @ w) * h + h * 3) with h = tanh(x @ w) used twice; ``hooks_on`` names
    where hooks go (x, w, z, h, loss), ``hook_for(name, seen)`` makes each hook."""
    x, w = _leaves(lib, X, W)
    z = x @ w
    h = z.tanh()
    loss = (h * h + h * 3).sum()
    tensors = {"x": x, "w": w, "z": z, "h": h, "loss": loss}
    seen = {}
    for name in hooks_on:
        tensors[name].register_hook(hook_for(name, seen))
    for name in retain:
        tensors[name].retain_grad()
    loss.backward()
    return tensors, seen


def _recorder(name, seen):
    def hook(grad):
        seen.setdefault(name, []).append(grad.detach().numpy().copy())
    return hook


def _doubler(name, seen):
    def hook(grad):
        seen.setdefault(name, []).append(grad.detach().numpy().copy())
        return grad * 2
    return hook


def test_hooks_see_the_gradient_of_their_tensor_like_torch(torch):
    names = ("x", "w", "z", "h", "loss")
    ours, seen = _graph(minidl, names, _recorder)
    theirs, seen_t = _graph(torch, names, _recorder)
    for name in names:
        assert len(seen[name]) == len(seen_t[name]) == 1, name  # h is used twice: one call, the sum
        np.testing.assert_allclose(seen[name][0], seen_t[name][0], rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(seen["x"][0], ours["x"].grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("where", ["x", "w", "z", "h", "loss"])
def test_a_replacement_gradient_changes_downstream_grads_like_torch(torch, where):
    ours, seen = _graph(minidl, (where,), _doubler)
    theirs, seen_t = _graph(torch, (where,), _doubler)
    plain, _ = _graph(torch, (), _recorder)
    for leaf in ("x", "w"):
        np.testing.assert_allclose(ours[leaf].grad.numpy(), theirs[leaf].grad.numpy(), rtol=1e-12)
    changed = {"x": ["x"], "w": ["w"]}.get(where, ["x", "w"])  # a leaf's hook changes only its own
    for leaf in ("x", "w"):
        factor = 2 if leaf in changed else 1
        np.testing.assert_allclose(ours[leaf].grad.numpy(), factor * plain[leaf].grad.numpy(), rtol=1e-12)


def test_hooks_chain_in_registration_order_and_retain_grad_sees_the_result(torch):
    results = {}
    for lib in (minidl, torch):
        x, w = _leaves(lib, X, W)
        z = x @ w
        calls = []
        z.register_hook(lambda g, calls=calls: calls.append("first") or g + 1)
        z.register_hook(lambda g, calls=calls: calls.append("second") or g * 3)
        z.retain_grad()
        z.sum().backward()
        results[lib.__name__] = (calls, z.grad.detach().numpy(), x.grad.numpy(), w.grad.numpy())
    ours, theirs = results["minidl"], results["torch"]
    assert ours[0] == theirs[0] == ["first", "second"]
    for a, b in zip(ours[1:], theirs[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(ours[1], np.full((2, 2), 6.0))  # (1 + 1) * 3


def test_handle_remove_and_context_manager():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    calls = []
    handle = y.register_hook(lambda g: calls.append("y") or g * 10)
    leaf_handle = x.register_hook(lambda g: calls.append("x"))
    handle.remove()
    handle.remove()  # a second remove does nothing
    (y * 1).sum().backward(retain_graph=True)
    assert calls == ["x"]
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    leaf_handle.remove()
    with x.register_hook(lambda g: g * 0):
        x.grad = None
        (y * 1).sum().backward(retain_graph=True)
        np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    x.grad = None
    (y * 1).sum().backward()
    assert calls == ["x"]
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_leaf_hook_runs_before_accumulation_with_the_summed_gradient(torch):
    """x is used twice; its hook is called once per backward with the sum, and what it returns
    is what accumulates into .grad (across two backward calls), as in PyTorch."""
    results = {}
    for lib in (minidl, torch):
        x = lib.tensor([1.0, -2.0, 0.5], dtype=lib.float64, requires_grad=True)
        seen = []
        x.register_hook(lambda g, seen=seen: seen.append(g.detach().numpy().copy()) or g * 2)
        for _ in range(2):
            ((x * x).sum() + (x * 3).sum()).backward()
        results[lib.__name__] = (seen, x.grad.numpy())
    (seen, grad), (seen_t, grad_t) = results["minidl"], results["torch"]
    assert len(seen) == len(seen_t) == 2
    for a, b in zip(seen, seen_t):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(grad, grad_t, rtol=1e-12)


def test_hook_on_a_leaf_given_backward_directly(torch):
    for lib in (minidl, torch):
        x = lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True)
        x.register_hook(lambda g: g + 1)
        x.backward(lib.tensor([0.5, 0.5], dtype=lib.float64))
        np.testing.assert_array_equal(x.grad.numpy(), [1.5, 1.5])


def test_retain_grad_on_non_leaves_like_torch(torch):
    ours, _ = _graph(minidl, (), _recorder, retain=("z", "h", "loss", "x"))
    theirs, _ = _graph(torch, (), _recorder, retain=("z", "h", "loss", "x"))
    for name in ("z", "h", "loss", "x"):
        np.testing.assert_allclose(ours[name].grad.numpy(), theirs[name].grad.detach().numpy(), rtol=1e-12)
        assert ours[name].retains_grad == theirs[name].retains_grad
    results = {}
    for lib in (minidl, torch):  # retained gradients accumulate over backward calls, as a leaf's do
        x = lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True)
        y = x * x
        y.retain_grad()
        y.sum().backward(retain_graph=True)
        (y * 3).sum().backward()
        results[lib.__name__] = y.grad.detach().numpy()
    np.testing.assert_array_equal(results["minidl"], results["torch"])
    np.testing.assert_array_equal(results["minidl"], [4.0, 4.0])


def test_hook_errors_like_torch(torch):
    with pytest.raises(RuntimeError, match="register_hook: cannot register a hook on a tensor that doesn't "
                                           "require gradient"):
        minidl.tensor([1.0]).register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="retain_grad: can't retain_grad on Tensor that has "
                                           "requires_grad=False"):
        minidl.tensor([1.0]).retain_grad()
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match="hook '<lambda>' has changed the size of value"):
        y.sum().backward(retain_graph=True)
    z = x * 3
    z.register_hook(lambda g: g.double())
    with pytest.raises(RuntimeError, match="has changed the type of value"):
        z.sum().backward()
    other = "cpu" if str(x.device) == "strict" else "strict"
    x.register_hook(lambda g: g.to(other))  # another device: refused before .grad is set
    with pytest.raises(RuntimeError, match=f"has changed the type of value .was {x.device}, got {other}"):
        (x * 5).sum().backward()
    assert x.grad is None
    x._hooks.clear()
    w = x * 4
    w.register_hook(lambda g: 1.0)
    with pytest.raises(TypeError, match="must return a Tensor or None"):
        w.sum().backward()


# --- register_post_accumulate_grad_hook and queue_callback (what DistributedDataParallel uses) ---
def _post_accumulate_run(lib, engine):
    """x used twice, w once; each leaf's post-accumulate hook records (name, its .grad then) and
    queues one end-of-pass callback that records the .grad of both; two backward passes."""
    x, w = _leaves(lib, X, W)
    events = []

    def hook_for(name):
        def hook(leaf):
            assert hook.returns_none_only and leaf is {"x": x, "w": w}[name]
            events.append((name, leaf.grad.detach().numpy().copy()))
            engine.queue_callback(lambda: events.append(("end", x.grad.detach().numpy().copy(),
                                                         w.grad.detach().numpy().copy())))
        hook.returns_none_only = True
        return hook

    for name, leaf in (("x", x), ("w", w)):
        leaf.register_post_accumulate_grad_hook(hook_for(name))
    for _ in range(2):
        z = x @ w
        ((z.tanh() * z).sum() + (x * x).sum()).backward()
    return events


def test_post_accumulate_grad_hooks_and_callbacks_like_torch(torch):
    ours = _post_accumulate_run(minidl, minidl.autograd.Variable._execution_engine)
    theirs = _post_accumulate_run(torch, torch.autograd.Variable._execution_engine)
    assert sorted(e[0] for e in ours) == sorted(e[0] for e in theirs)  # once per leaf and pass
    assert [e[0] for e in ours].count("end") == 4 and ours[-1][0] == "end"
    by_name = lambda events, name: [e[1:] for e in events if e[0] == name]  # noqa: E731
    for name in ("x", "w", "end"):
        for a, b in zip(by_name(ours, name), by_name(theirs, name)):  # .grad after accumulating
            for got, want in zip(a, b):
                np.testing.assert_allclose(got, want, rtol=1e-12)


def test_post_accumulate_grad_hook_errors_and_removal(torch):
    x = minidl.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="post accumulate grad hooks cannot be registered on non-leaf tensors"):
        (x * 2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        minidl.ones(2).register_post_accumulate_grad_hook(print)
    seen = []
    handle = x.register_post_accumulate_grad_hook(lambda leaf: seen.append(1))
    (x * 2).sum().backward()
    handle.remove()
    (x * 2).sum().backward()
    x.backward(minidl.ones(2))  # a leaf given backward directly also runs it (none left here)
    assert seen == [1]
    with pytest.raises(RuntimeError, match="Final callbacks can only be installed during backward pass"):
        minidl.autograd.Variable._execution_engine.queue_callback(print)
    with pytest.raises(RuntimeError, match="Final callbacks can only be installed during backward pass"):
        torch.autograd.Variable._execution_engine.queue_callback(print)
