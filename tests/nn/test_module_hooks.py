"""Module hooks (forward pre, forward, full backward, backward pre) against PyTorch's, on the same
small model with the same weights, in float64."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn


def _models(torch):
    """conv -> relu -> linear, the same weights in both libraries."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, (3, 2), stride=2)
            self.act = nn.ReLU()
            self.fc = nn.Linear(3 * 2 * 3, 4)

        def forward(self, x):
            return self.fc(self.act(self.conv(x)).flatten(1))

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 3, (3, 2), stride=2)
            self.act = torch.nn.ReLU()
            self.fc = torch.nn.Linear(3 * 2 * 3, 4)

        def forward(self, x):
            return self.fc(self.act(self.conv(x)).flatten(1))

    ours, theirs = Net().double(), TorchNet().double()
    with torch.no_grad():
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            q.copy_(torch.tensor(p.detach().numpy()))
    return ours, theirs


def _arrays(values):
    return [None if v is None else np.array(v.detach().numpy()) for v in values]


def _run(torch, register, x_requires_grad=True, seed=0):
    """Register hooks through ``register(model, lib, log)`` in both libraries, run forward and
    backward with a random upstream gradient; return both logs, outputs and gradients."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 5, 7))
    dy = rng.standard_normal((2, 4))
    results = []
    for lib, model in zip((minidl, torch), _models(torch)):
        log = []
        register(model, lib, log)
        xt = lib.tensor(x, dtype=lib.float64, requires_grad=x_requires_grad)
        y = model(xt)
        (y * lib.tensor(dy)).sum().backward()
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        results.append((log, y.detach().numpy(), grads, None if xt.grad is None else xt.grad.numpy()))
    return results


def _assert_same(ours, theirs):
    (log, y, grads, xg), (log_ref, y_ref, grads_ref, xg_ref) = ours, theirs
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-14)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-14)
    assert (xg is None) == (xg_ref is None)
    if xg is not None:
        np.testing.assert_allclose(xg, xg_ref, rtol=1e-12, atol=1e-14)
    assert [entry[0] for entry in log] == [entry[0] for entry in log_ref]  # call order
    for entry, entry_ref in zip(log, log_ref):
        for a, b in zip(entry[1:], entry_ref[1:]):
            assert (a is None) == (b is None), entry[0]
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=entry[0])


def test_forward_pre_and_forward_hooks_replace_args_and_outputs(torch):
    def register(model, lib, log):
        def pre(module, args):
            log.append(("pre conv",) + tuple(_arrays(args)))
            return args[0] * 0.5  # a single value: becomes a 1-tuple
        def fwd(module, args, output):
            log.append(("fwd act", *_arrays(args), _arrays([output])[0]))
            return output + 1.0
        def fwd_first(module, args, output):
            log.append(("fwd act first",))
        def pre_kwargs(module, args, kwargs):
            log.append(("pre fc kwargs", len(args), len(kwargs)))
            return (args[0] - 0.25,), kwargs
        def fwd_kwargs(module, args, kwargs, output):
            log.append(("fwd fc kwargs", _arrays([output])[0]))
        model.conv.register_forward_pre_hook(pre)
        model.act.register_forward_hook(fwd)
        model.act.register_forward_hook(fwd_first, prepend=True)
        model.fc.register_forward_pre_hook(pre_kwargs, with_kwargs=True)
        model.fc.register_forward_hook(fwd_kwargs, with_kwargs=True)
    _assert_same(*_run(torch, register))


def test_full_backward_hooks_see_and_replace_gradients(torch):
    def register(model, lib, log):
        def bw_fc(module, grad_input, grad_output):
            log.append(("bw fc", *_arrays(grad_input), *_arrays(grad_output)))
        def bw_act(module, grad_input, grad_output):
            log.append(("bw act", *_arrays(grad_input), *_arrays(grad_output)))
            return (grad_input[0] * 3.0,)
        def bw_pre_act(module, grad_output):
            log.append(("bw pre act", *_arrays(grad_output)))
            return (grad_output[0] + 0.5,)
        def bw_conv(module, grad_input, grad_output):
            log.append(("bw conv", *_arrays(grad_input), *_arrays(grad_output)))
        def bw_conv_first(module, grad_input, grad_output):
            log.append(("bw conv first",))
        model.fc.register_full_backward_hook(bw_fc)
        model.act.register_full_backward_hook(bw_act)
        model.act.register_full_backward_pre_hook(bw_pre_act)
        model.conv.register_full_backward_hook(bw_conv)
        model.conv.register_full_backward_hook(bw_conv_first, prepend=True)
    _assert_same(*_run(torch, register, True))
    with pytest.warns(UserWarning, match="no inputs require gradients"):  # conv's grad_input: None
        _assert_same(*_run(torch, register, False))


def test_no_input_requiring_grad_calls_the_hook_with_none_and_refuses_replacements(torch):
    for lib in (minidl, torch):
        seen = []
        lin = lib.nn.Linear(3, 2)
        lin.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go[0].shape)))
        with pytest.warns(UserWarning, match="no inputs require gradients"):
            lin(lib.ones(4, 3)).sum().backward()
        assert seen[0][0] == (None,) and tuple(seen[0][1]) == (4, 2)
        lin2 = lib.nn.Linear(3, 2)
        lin2.register_full_backward_hook(lambda m, gi, go: (lib.ones(4, 3),))
        with pytest.raises(RuntimeError, match="no input requires gradient should always return None"), \
                pytest.warns(UserWarning, match="no inputs require gradients"):
            lin2(lib.ones(4, 3)).sum().backward()


def test_removal_context_manager_and_module_used_twice(torch):
    def register(model, lib, log):
        h = model.act.register_forward_hook(lambda m, a, o: o * 100.0)
        h.remove()
        with model.fc.register_forward_pre_hook(lambda m, a: (a[0] * 100.0,)):
            pass  # removed on exit
        model.fc.register_full_backward_hook(lambda m, gi, go: log.append(("bw fc", *_arrays(gi))))
    _assert_same(*_run(torch, register))
    # one module applied twice: each call gets its own backward hook call, in reverse order
    for lib in (minidl, torch):
        lin = lib.nn.Linear(2, 2, bias=False).double()
        with lib.no_grad():
            lin.weight.copy_(lib.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=lib.float64))
        seen = []
        lin.register_full_backward_hook(lambda m, gi, go: seen.append(gi[0].numpy().copy()))
        x = lib.tensor([[1.0, -1.0]], dtype=lib.float64, requires_grad=True)
        lin(lin(x)).sum().backward()
        if lib is minidl:
            ours = seen
        else:
            assert len(ours) == len(seen) == 2
            for a, b in zip(ours, seen):
                np.testing.assert_allclose(a, b)


def test_always_call_hook_runs_when_forward_raises(torch):
    for lib in (minidl, torch):
        class Bad(lib.nn.Module):
            def forward(self, x):
                raise ValueError("boom")
        seen = []
        bad = Bad()
        bad.register_forward_hook(lambda m, a, o: seen.append(("always", o)), always_call=True)
        bad.register_forward_hook(lambda m, a, o: seen.append(("plain", o)))
        with pytest.raises(ValueError, match="boom"):
            bad(lib.ones(1))
        assert seen == [("always", None)]


def test_hooks_survive_to_and_deepcopy_and_wrong_counts_fail():
    import copy
    lin = nn.Linear(2, 2)
    seen = []
    lin.register_forward_hook(lambda m, a, o: seen.append(1))
    copy.deepcopy(lin.double())(minidl.ones(1, 2, dtype=minidl.float64))
    assert seen == [1]
    lin.register_full_backward_hook(lambda m, gi, go: (None, None))
    x = minidl.ones(1, 2, dtype=minidl.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="invalid number of grad_input, got 2, but expected 1"):
        lin(x).sum().backward()


def test_backward_hook_packs_mixed_inputs_and_outputs_as_pytorch(torch):
    """grad_input: None for a non-tensor argument, zeros for a tensor that needs no gradient
    (or that forward ignores) while another does; grad_output: one entry per output, None for a
    non-tensor, a non-differentiable or an unused output. A replacement reaches an unused input."""
    rng = np.random.default_rng(3)
    x, z, w, dy = (rng.standard_normal((2, 3)) for _ in range(4))
    results = []
    for lib in (minidl, torch):
        class M(lib.nn.Module):
            def forward(self, x, k, z, w):
                return x * k, k, z + 1, x.sum()

        log = []
        m = M()

        def pre(module, grad_output, log=log):
            log.append(("pre", _arrays(grad_output)))

        def hook(module, grad_input, grad_output, lib=lib, log=log):
            log.append(("full", _arrays(grad_input), _arrays(grad_output)))
            return grad_input[:3] + (lib.full((2, 3), 5.0, dtype=lib.float64),)

        m.register_full_backward_pre_hook(pre)
        m.register_full_backward_hook(hook)
        xt = lib.tensor(x, requires_grad=True)
        wt = lib.tensor(w, requires_grad=True)
        a, k, b, s = m(xt, 3.0, lib.tensor(z), wt)
        (a * lib.tensor(dy)).sum().backward()
        results.append((log, xt.grad.numpy(), wt.grad.numpy(), b.requires_grad, s.requires_grad))
    (ours, *ours_rest), (theirs, *theirs_rest) = results
    assert [entry[0] for entry in ours] == [entry[0] for entry in theirs] == ["pre", "full"]
    for ours_entry, theirs_entry in zip(ours, theirs):
        for ours_list, theirs_list in zip(ours_entry[1:], theirs_entry[1:]):
            assert len(ours_list) == len(theirs_list)
            for o, t in zip(ours_list, theirs_list):
                assert (o is None) == (t is None)
                if o is not None:
                    np.testing.assert_allclose(o, t, rtol=1e-12)
    for o, t in zip(ours_rest, theirs_rest):
        np.testing.assert_allclose(o, t, rtol=1e-12)
