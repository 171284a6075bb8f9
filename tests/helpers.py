"""Test helpers: run the same function in minidl and PyTorch and compare."""
import tracemalloc

import numpy as np

import minidl


def assert_close(actual, expected, rtol=1e-10, atol=1e-12, what=""):
    actual = actual.detach().numpy() if hasattr(actual, "detach") else np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def compare_with_torch(torch, fn_minidl, fn_torch, arrays, rtol=1e-10, atol=1e-12, seed=0):
    """Forward and backward of ``fn`` on float64 copies of ``arrays`` in both libraries.

    The loss is sum(dy * y) with a RANDOM upstream gradient dy, so every entry of
    every input gradient is checked against an independent weighting.
    """
    rng = np.random.default_rng(seed)
    ours = [minidl.tensor(a, dtype=minidl.float64, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y = fn_minidl(*ours)
    y_ref = fn_torch(*theirs)
    assert_close(y, y_ref.detach().numpy(), rtol, atol, "forward")
    dy = rng.standard_normal(y_ref.shape)
    (y * minidl.tensor(dy)).sum().backward()
    (y_ref * torch.tensor(dy)).sum().backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        expected = b.grad.numpy() if b.grad is not None else np.zeros(b.shape)
        got = a.grad if a.grad is not None else np.zeros(a.shape)
        assert_close(got, expected, rtol, atol, f"gradient of input {i}")
    return y


def gradcheck_with_random_dy(fn, arrays, seed=0, **kwargs):
    """minidl.gradcheck of L = sum(dy * fn(*inputs)) with a random upstream gradient dy.

    ``arrays`` become float64 leaves; non-array values in ``arrays`` are passed through.
    """
    rng = np.random.default_rng(seed)
    inputs = tuple(minidl.tensor(a, dtype=minidl.float64, requires_grad=True)
                   if isinstance(a, np.ndarray) else a for a in arrays)
    with minidl.no_grad():
        y_shape = fn(*inputs).shape
    dy = minidl.tensor(rng.standard_normal(y_shape))
    return minidl.gradcheck(lambda *xs: (fn(*xs) * dy).sum(), inputs, **kwargs)


def record_calls(monkeypatch, owner, name):
    """Replace ``owner.name`` (for this test) by a wrapper that appends each call's positional
    arguments to the returned list and then calls the original."""
    calls = []
    original = getattr(owner, name)

    def recording(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return calls


def state_arrays(model):
    """{name: a copy of the array} of a module's state dict (weights and buffers)."""
    return {k: np.array(v.detach().numpy()) for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    """Two :func:`state_arrays` results equal to the last bit."""
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def traced_peak_bytes(fn):
    """tracemalloc's peak during one ``fn()`` above what was live before it (NumPy reports its
    arrays to tracemalloc): the memory a call holds at once besides what already existed."""
    tracemalloc.start()
    try:
        live, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak - live
