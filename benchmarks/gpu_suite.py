"""Everything issue 28 asks a GPU to show, in one prepared run: ``python -m benchmarks.gpu_suite``.

    PYTHONPATH=. python -m benchmarks.gpu_suite --out DIR            # on an H100/H200: <= 8 min
    PYTHONPATH=. python -m benchmarks.gpu_suite --out DIR --dry      # here: the strict device

It writes DIR/report.json and DIR/report.md after every section (a run cut short still leaves
a report), never stops at the first failure, and records each section's time, every check's
pass/fail and figures, and any exception with its traceback. Sections, in order:

  environment        GPU, compute capability, driver, CUDA runtime, NVRTC, CuPy, NumPy, SciPy,
                     Numba, PyTorch (+ its CUDA and cuDNN), Python, git commit
  determinism        (b) the CUDA kernels twice on the same input, bytes compared: im2col, col2im,
                     max-pool forward (y, argmax) and backward, avg-pool forward and backward, the
                     fused softmax + cross-entropy forward and backward
  kernel_agreement   (c) the same kernels on the GPU against the reference kernels on NumPy,
                     float32, max |gpu - cpu| / max |cpu| <= 1e-5 (exact for im2col, argmax)
  op_agreement       (c) the main ops, forward and every gradient (random upstream gradient),
                     minidl on the GPU against minidl on the CPU, float32, same 1e-5
  gradcheck          (d) float64 gradient checks of those ops on the GPU (minidl.gradcheck)
  no_host_copy       (e) one training step of a small U-Net (forward, loss, backward, Adam step,
                     zero_grad) makes no device-to-host copy; the loss's .item() after it is seen
                     as exactly one (the counter works) (benchmarks/_gpu.py: HostTransfers)
  unet_step          (f) benchmarks/_gpu_step.py: base 64, batch 4 of 1x512x512, minidl against
                     PyTorch (cuDNN) on the same GPU: parity, CUDA-event times, TFLOP/s, peak memory
  ops_benchmark      (f) benchmarks/ops.py's cases on the GPU against PyTorch
  op_suite           (a) pytest tests/ops tests/nn tests/optim with MINIDL_TEST_DEVICES=cuda, in a
                     subprocess with benchmarks/_pytest_record.py: every outcome, within its budget

Dry mode (``--dry``, and automatically when CuPy or a GPU is missing, the reason in the
report): the same code on the strict test device (minidl/backend/strict.py), tiny sizes,
PyTorch on the CPU, the op suite cut to a few files; only the GPU itself is not exercised.
Budget (``--budget``, seconds, default 450 on a GPU): each section gets a share; a section
that finds less than its minimum left is skipped (reported as such), and a watchdog writes
the report and exits if the whole run passes the budget by more than a grace period.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

import minidl
import minidl.functional as F
import minidl.optim
from benchmarks import _gpu
from minidl.backend import devices, use_backend

ROOT = Path(__file__).resolve().parents[1]
FLOAT32_RTOL = 1e-5
OP_SUITE_PATHS = ["tests/ops", "tests/nn", "tests/optim"]
DRY_OP_SUITE_PATHS = ["tests/ops/test_softmax.py", "tests/optim/test_adam_foreach.py", "tests/nn/test_init.py"]
DEFAULT_BUDGET = {"gpu": 450.0, "dry": 300.0}
WATCHDOG_GRACE_S = 20.0
# section -> (share of the budget, minimum seconds it needs to start: GPU, dry)
SHARES = {
    "environment": (0.0, 0, 0),
    "determinism": (0.04, 5, 1),
    "kernel_agreement": (0.05, 5, 1),
    "op_agreement": (0.06, 5, 1),
    "gradcheck": (0.10, 10, 2),
    "no_host_copy": (0.06, 10, 2),
    "unet_step": (0.20, 30, 5),
    "ops_benchmark": (0.12, 20, 3),
    "op_suite": (0.37, 60, 10),
}
TARGETS = {"unet_step_ratio": 1.5, "unet_memory_ratio": 1.5, "conv2d_ratio": 2.0}


def rel_error(a, b):
    """max |a - b| / max |b| over float64 copies (0 for empty arrays)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    if not b.size:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _check(name, ok, **figures):
    return {"name": name, "ok": bool(ok), **figures}


def _exception(error):
    return {"type": type(error).__name__, "message": str(error), "traceback": traceback.format_exc()}


class Context:
    """What every section gets: the device, the sizes, the budget, PyTorch (or None)."""

    def __init__(self, target, dry, budget, out, tests):
        self.target, self.dry, self.budget, self.out, self.tests = target, dry, budget, out, tests
        self.start = time.perf_counter()
        self.torch = _gpu.import_torch()
        self.rng = np.random.default_rng(0)
        self.section_budget = budget
        self.section_deadline = float("inf")

    def left(self):
        return self.budget - (time.perf_counter() - self.start)

    def out_of_time(self):
        """Whether the running section has spent its budget (its remaining cases are skipped)."""
        return time.perf_counter() > self.section_deadline


def _skipped(name):
    return {"name": name, "ok": None, "skipped": "the section's time budget is spent"}


# =================================================================== (b), (c): the kernels

def xent_forward_spec(xp, logits, target, weight, ignore_index):
    """The fused softmax + cross-entropy's specification (cupy_gpu.softmax_cross_entropy_forward's
    docstring), on any array module: the strict device's kernel, and the CPU's reference."""
    C = logits.shape[1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    valid = (target != ignore_index) if ignore_index is not None else xp.ones(target.shape, bool)
    t = xp.where(valid, target, 0)
    w = (xp.ones(C, logits.dtype) if weight is None else weight.astype(logits.dtype))[t] * valid
    return -w * xp.take_along_axis(logp, t[:, None], axis=1)[:, 0]


def xent_backward_spec(xp, dy, logits, target, weight, ignore_index):
    """dlogits of :func:`xent_forward_spec` given dy (the docstring of the CUDA kernel)."""
    C = logits.shape[1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    valid = (target != ignore_index) if ignore_index is not None else xp.ones(target.shape, bool)
    t = xp.where(valid, target, 0)
    w = (xp.ones(C, logits.dtype) if weight is None else weight.astype(logits.dtype))[t] * valid
    onehot = t[:, None] == xp.arange(C).reshape((1, C) + (1,) * (t.ndim - 1))
    dx = (dy * w)[:, None] * (xp.exp(logp) - onehot)
    return xp.where(valid[:, None], dx, 0)


def _xent(kernels, xp):
    """(forward, backward) of the fused kernel: the CUDA one, or the spec on the strict device."""
    if hasattr(kernels, "softmax_cross_entropy_forward"):
        return kernels.softmax_cross_entropy_forward, kernels.softmax_cross_entropy_backward
    return ((lambda *a: xent_forward_spec(xp, *a)), (lambda *a: xent_backward_spec(xp, *a)))


def kernel_cases(rng, dry, large):
    """[(name, host inputs {name: array}, call(kernels, xp, device inputs) -> tuple of arrays)].

    ``large``: the sizes of the determinism section (U-Net's first level); else smaller ones
    that the NumPy reference computes in a moment."""
    if dry:
        N, C, H, W = 2, 3, 9, 11
    elif large:
        N, C, H, W = 4, 64, 128, 128
    else:
        N, C, H, W = 2, 16, 64, 64
    f32 = np.float32

    def randn(*shape):
        return rng.standard_normal(shape).astype(f32)

    cases = []
    x = randn(N, C, H, W)
    conv = (3, 3, 1, 1, 1, 1, 1, 1)  # KH KW SH SW PH PW DH DW: the U-Net's 3x3 same convolution
    cases.append(("im2col 3x3 pad 1", {"x": x}, lambda k, xp, a: (k.im2col(a["x"], *conv),)))
    strided = (3, 3, 2, 2, 1, 1, 1, 1)
    OH, OW = (H + 2 - 3) // 2 + 1, (W + 2 - 3) // 2 + 1
    cases.append(("col2im 3x3 stride 2 pad 1 (overlapping windows)",
                  {"cols": randn(N, C * 9, OH * OW)},
                  lambda k, xp, a: (k.col2im(a["cols"], (N, C, H, W), *strided),)))
    cases.append(("col2im 3x3 pad 1", {"cols": randn(N, C * 9, H * W)},
                  lambda k, xp, a: (k.col2im(a["cols"], (N, C, H, W), *conv),)))
    # max-pool 3x3 stride 2 pad 1: overlapping windows, so backward sums into shared pixels;
    # integers from a small range: many ties (the first maximum must win)
    xi = rng.integers(-3, 4, (N, C, H, W)).astype(f32)
    pool = (3, 3, 2, 2, 1, 1, 1, 1, OH, OW)
    dy = randn(N, C, OH, OW)

    def maxpool(k, xp, a):
        y, argmax = k.maxpool2d_forward(a["x"], *pool)
        return y, argmax, k.maxpool2d_backward(a["dy"], argmax, (N, C, H, W))

    cases.append(("max-pool 3x3/2 pad 1 forward (y, argmax) + backward, with ties", {"x": xi, "dy": dy},
                  maxpool))
    OH2, OW2 = H // 2, W // 2

    def maxpool2(k, xp, a):
        y, argmax = k.maxpool2d_forward(a["x"], 2, 2, 2, 2, 0, 0, 1, 1, OH2, OW2)
        return y, argmax, k.maxpool2d_backward(a["dy"], argmax, (N, C, H, W))

    cases.append(("max-pool 2x2/2 forward + backward (U-Net)", {"x": x, "dy": randn(N, C, OH2, OW2)},
                  maxpool2))
    avg = (3, 3, 2, 2, 1, 1, OH, OW)
    for include_pad, divisor in ((True, None), (False, None), (False, 5)):
        def avgpool(k, xp, a, include_pad=include_pad, divisor=divisor):
            return (k.avgpool2d_forward(a["x"], *avg, include_pad, divisor),
                    k.avgpool2d_backward(a["dy"], (N, C, H, W), *avg, include_pad, divisor))

        cases.append((f"avg-pool 3x3/2 pad 1 forward + backward (count_include_pad={include_pad}, "
                      f"divisor_override={divisor})", {"x": x, "dy": dy}, avgpool))
    for classes, side in ((2, H), (21, max(H // 2, 3))):
        logits = (randn(N, classes, side, side) * 3).astype(f32)
        target = rng.integers(0, classes, (N, side, side))
        target[0, 0, :2] = -100  # two ignored pixels
        weight = rng.uniform(0.5, 2.0, classes).astype(f32)
        dloss = randn(N, side, side)

        def xent(k, xp, a):
            forward, backward = _xent(k, xp)
            return (forward(a["logits"], a["target"], a["weight"], -100),
                    backward(a["dloss"], a["logits"], a["target"], a["weight"], -100),
                    forward(a["logits"], a["target_all"], None, None),
                    backward(a["dloss"], a["logits"], a["target_all"], None, None))

        cases.append((f"softmax + cross-entropy fused, {classes} classes (with weight and ignore_index; "
                      "without)", {"logits": logits, "target": target, "weight": weight, "dloss": dloss,
                                   "target_all": np.maximum(target, 0)}, xent))
    return cases


def _on(target, arrays):
    return {name: target.asarray(a) for name, a in arrays.items()}


def section_determinism(ctx):
    """(b) Every kernel twice on the same device input: the outputs' bytes must be equal."""
    target, checks = ctx.target, []
    kernels = target.kernels()
    for name, arrays, call in kernel_cases(ctx.rng, ctx.dry, large=True):
        if ctx.out_of_time():
            checks.append(_skipped(name))
            continue
        try:
            inputs = _on(target, arrays)
            first = [target.host(a) for a in call(kernels, target.xp, inputs)]
            second = [target.host(a) for a in call(kernels, target.xp, inputs)]
            same = [a.tobytes() == b.tobytes() for a, b in zip(first, second)]
            differing = [int(np.count_nonzero(a != b)) for a, b in zip(first, second)]
            checks.append(_check(name, all(same), outputs=len(first), differing_entries=differing,
                                 kernel=_kernel_name(kernels, name)))
        except Exception as error:  # noqa: BLE001
            checks.append(_check(name, False, error=_exception(error)))
    return {"checks": checks}


def _kernel_name(kernels, case):
    module = kernels.__name__.rsplit(".", 1)[-1]
    if "cross-entropy" in case and not hasattr(kernels, "softmax_cross_entropy_forward"):
        return "specification (no fused kernel on this device)"
    return module


def section_kernel_agreement(ctx):
    """(c) The device's kernels against the reference kernels on NumPy, float32."""
    from minidl.backend import reference

    target, checks = ctx.target, []
    kernels = target.kernels()
    for name, arrays, call in kernel_cases(ctx.rng, ctx.dry, large=False):
        if ctx.out_of_time():
            checks.append(_skipped(name))
            continue
        try:
            gpu = [target.host(a) for a in call(kernels, target.xp, _on(target, arrays))]
            cpu = call(reference, np, arrays)
            errors = [rel_error(g, c) for g, c in zip(gpu, cpu)]
            exact = [bool(np.array_equal(g, c)) for g, c in zip(gpu, cpu)]
            # integer outputs (argmax) and im2col (a copy) must be exact
            need_exact = [c.dtype.kind in "iu" or name.startswith("im2col") for c in cpu]
            ok = all((e if must else err <= FLOAT32_RTOL) for e, must, err in zip(exact, need_exact, errors))
            checks.append(_check(name, ok, rel_errors=errors, exact=exact, tolerance=FLOAT32_RTOL,
                                 kernel=_kernel_name(kernels, name)))
        except Exception as error:  # noqa: BLE001
            checks.append(_check(name, False, error=_exception(error)))
    return {"checks": checks}


# =================================================================== (c), (d): the ops

def op_cases(rng, small):
    """[(name, host inputs, fn(tensors) -> tensor)]: the U-Net's ops and the other main ones.
    Inputs named target* or const* get no gradient. ``small``: odd sizes for float64 gradient checks."""
    if small:
        N, C, H, W, K = 2, 3, 5, 7, 4
    else:
        N, C, H, W, K = 2, 16, 33, 31, 24

    def randn(*shape):
        return rng.standard_normal(shape)

    classes = 5
    return [
        ("conv2d 3x3 pad 1", {"x": randn(N, C, H, W), "w": randn(K, C, 3, 3) / 3, "b": randn(K)},
         lambda t: F.conv2d(t["x"], t["w"], t["b"], padding=1)),
        ("conv2d 3x3 stride 2 dilation 2 groups 1", {"x": randn(N, C, H, W), "w": randn(K, C, 3, 3) / 3},
         lambda t: F.conv2d(t["x"], t["w"], stride=2, padding=2, dilation=2)),
        ("conv2d 1x1", {"x": randn(N, C, H, W), "w": randn(K, C, 1, 1), "b": randn(K)},
         lambda t: F.conv2d(t["x"], t["w"], t["b"])),
        ("conv2d depthwise 3x3", {"x": randn(N, C, H, W), "w": randn(C, 1, 3, 3), "b": randn(C)},
         lambda t: F.conv2d(t["x"], t["w"], t["b"], padding=1, groups=C)),
        ("conv_transpose2d 2x2 stride 2", {"x": randn(N, K, H, W), "w": randn(K, C, 2, 2), "b": randn(C)},
         lambda t: F.conv_transpose2d(t["x"], t["w"], t["b"], stride=2)),
        ("max_pool2d 2x2", {"x": randn(N, C, H + 1, W + 1)}, lambda t: F.max_pool2d(t["x"], 2)),
        ("max_pool2d 3x3/2 pad 1", {"x": randn(N, C, H, W)},
         lambda t: F.max_pool2d(t["x"], 3, stride=2, padding=1)),
        ("avg_pool2d 3x3/2 pad 1", {"x": randn(N, C, H, W)},
         lambda t: F.avg_pool2d(t["x"], 3, stride=2, padding=1)),
        ("relu", {"x": randn(N, C, H, W)}, lambda t: F.relu(t["x"])),
        ("cat dim 1", {"a": randn(N, C, H, W), "b": randn(N, K, H, W)},
         lambda t: minidl.cat([t["a"], t["b"]], dim=1)),
        ("softmax dim 1", {"x": randn(N, C, H, W)}, lambda t: F.softmax(t["x"], dim=1)),
        ("log_softmax dim 1", {"x": randn(N, C, H, W)}, lambda t: F.log_softmax(t["x"], dim=1)),
        ("cross_entropy (N,C,H,W), weight, ignore_index",
         {"x": randn(N, classes, H, W), "const_weight": rng.uniform(0.5, 2, classes),
          "target": np.where(rng.random((N, H, W)) < 0.1, -100, rng.integers(0, classes, (N, H, W)))},
         lambda t: F.cross_entropy(t["x"], t["target"], weight=t["const_weight"], ignore_index=-100)),
        ("cross_entropy label_smoothing 0.1", {"x": randn(N, classes), "target": rng.integers(0, classes, N)},
         lambda t: F.cross_entropy(t["x"], t["target"], label_smoothing=0.1)),
        ("binary_cross_entropy_with_logits", {"x": randn(N, 1, H, W),
                                              "target": rng.integers(0, 2, (N, 1, H, W)).astype(float)},
         lambda t: F.binary_cross_entropy_with_logits(t["x"], t["target"])),
        ("mse_loss", {"x": randn(N, C), "target": randn(N, C)}, lambda t: F.mse_loss(t["x"], t["target"])),
        ("linear", {"x": randn(N, H, C), "w": randn(K, C), "b": randn(K)},
         lambda t: F.linear(t["x"], t["w"], t["b"])),
        ("matmul batched", {"a": randn(N, H, C), "b": randn(N, C, W)}, lambda t: t["a"] @ t["b"]),
        ("batch_norm (training)", {"x": randn(N, C, H, W), "w": randn(C), "b": randn(C)},
         lambda t: F.batch_norm(t["x"], None, None, t["w"], t["b"], training=True)),
        ("elementwise: exp, tanh, sigmoid, mul, div",
         {"a": randn(N, C, H), "b": rng.uniform(0.5, 2, (N, C, H))},
         lambda t: t["a"].exp() * t["a"].tanh() + t["a"].sigmoid() / t["b"]),
        ("reductions: sum, mean, max over dims", {"x": randn(N, C, H, W)},
         lambda t: t["x"].sum(dim=1) + t["x"].mean(dim=1) + t["x"].max(dim=1)[0]),
        ("getitem and reshape", {"x": randn(N, C, H, W)},
         lambda t: t["x"][:, 1:, ::2].reshape(N, -1) * 2),
    ]


def _needs_grad(name, array):
    return array.dtype.kind == "f" and not name.startswith(("target", "const"))


def _forward_backward(arrays, fn, device, dtype, dy_seed=1):
    """Output and every gradient on the host, for sum(dy * fn(inputs)) with a random dy."""
    tensors = {k: minidl.tensor(a.astype(dtype) if a.dtype.kind == "f" else a, device=device,
                                requires_grad=_needs_grad(k, a)) for k, a in arrays.items()}
    y = fn(tensors)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(dtype)
    (y * minidl.tensor(dy, device=device)).sum().backward()
    grads = {k: t.grad.cpu().numpy() for k, t in tensors.items() if t.requires_grad}
    return y.detach().cpu().numpy(), grads


def section_op_agreement(ctx):
    """(c) Each op's output and gradients, float32, minidl on the device against the CPU
    (its reference kernels)."""
    checks = []
    for name, arrays, fn in op_cases(ctx.rng, small=ctx.dry):
        if ctx.out_of_time():
            checks.append(_skipped(name))
            continue
        try:
            y_dev, g_dev = _forward_backward(arrays, fn, ctx.target.name, np.float32)
            with use_backend("reference"):  # the specification; Numba would compile first
                y_cpu, g_cpu = _forward_backward(arrays, fn, "cpu", np.float32)
            errors = {"output": rel_error(y_dev, y_cpu)}
            errors.update({f"d{k}": rel_error(g_dev[k], g_cpu[k]) for k in g_cpu})
            checks.append(_check(name, max(errors.values()) <= FLOAT32_RTOL, rel_errors=errors,
                                 tolerance=FLOAT32_RTOL))
        except Exception as error:  # noqa: BLE001
            checks.append(_check(name, False, error=_exception(error)))
    return {"checks": checks}


def section_gradcheck(ctx):
    """(d) minidl.gradcheck, float64, of L = sum(dy * op(inputs)) with a random dy, on the device."""
    checks = []
    for name, arrays, fn in op_cases(ctx.rng, small=True):
        if ctx.out_of_time():
            checks.append(_skipped(name))
            continue
        start = time.perf_counter()
        try:
            device = ctx.target.name
            tensors = {k: minidl.tensor(a.astype(np.float64) if a.dtype.kind == "f" else a, device=device,
                                        requires_grad=_needs_grad(k, a)) for k, a in arrays.items()}
            keys = list(tensors)
            with minidl.no_grad():
                shape = fn(tensors).shape
            dy = minidl.tensor(np.random.default_rng(2).standard_normal(shape), device=device)

            def loss(*values, keys=keys, fn=fn, dy=dy):
                return (fn(dict(zip(keys, values))) * dy).sum()

            ok = minidl.gradcheck(loss, tuple(tensors.values()), raise_exception=False)
            checks.append(_check(name, ok, seconds=time.perf_counter() - start))
            if not ok:  # the message of the failing entry
                try:
                    minidl.gradcheck(loss, tuple(tensors.values()))
                except Exception as error:  # noqa: BLE001
                    checks[-1]["message"] = str(error)[:2000]
        except Exception as error:  # noqa: BLE001
            checks.append(_check(name, False, error=_exception(error)))
    return {"checks": checks}


# =================================================================== (e) no host copies

def section_no_host_copy(ctx):
    """(e) A small U-Net's training step, counted by _gpu.HostTransfers: no copy to the host;
    then the loss's .item(): one or two, both inside item() (the positive control: the counter
    sees copies)."""
    import unet

    target = ctx.target
    counter_probe = _gpu.HostTransfers(target)
    if not counter_probe.available:
        return {"checks": [_check("CuPy's synchronisation detector can be hooked", False,
                                  message="cupy._core.syncdetect._declare_synchronize is missing in "
                                          "this CuPy: the check cannot run")]}
    base, side = (2, 16) if ctx.dry else (8, 64)
    minidl.manual_seed(0)
    model = unet.UNet(in_channels=1, n_classes=2, base_channels=base, depth=3, padding="same")
    model.to(target.name)
    opt = minidl.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((2, 1, side, side)).astype(np.float32), device=target.name)
    t = minidl.tensor(rng.integers(0, 2, (2, side, side)), device=target.name)
    checks = []
    for step in (1, 2):  # the first step creates Adam's state; the second is a steady one
        with _gpu.HostTransfers(target) as seen:
            loss = F.cross_entropy(model(x), t)
            loss.backward()
            opt.step()
            opt.zero_grad()
        checks.append(_check(f"training step {step}: forward, loss, backward, Adam step, zero_grad",
                             not seen.events, host_transfers=len(seen.events), events=seen.events[:20]))
        with _gpu.HostTransfers(target) as control:
            value = loss.item()
        # item() copies the value, and before it, in one copy, the device's pending value checks
        # (cross_entropy's class-index range: minidl/backend/deferred_checks.py)
        from_item = all(any("in item" in frame for frame in event["where"]) for event in control.events)
        checks.append(_check(f"positive control, step {step}: loss.item() is seen (its value and "
                             "the pending device checks read with it)",
                             1 <= len(control.events) <= 2 and from_item, host_transfers=len(control.events),
                             loss=value, events=control.events[:5]))
    return {"checks": checks}


# =================================================================== (f) benchmarks

def section_unet_step(ctx):
    from benchmarks import _gpu_step

    if ctx.torch is None:
        return {"checks": [], "skipped": "PyTorch is not importable"}
    if ctx.dry:
        ctx.torch.set_num_threads(2)
    size = dict(base=2, batch=1, size=16, warmup=1, repeats=2) if ctx.dry else \
        dict(base=64, batch=4, size=512, warmup=2, repeats=5)
    row = _gpu_step.unet_step_on_device(ctx.torch, ctx.target, **size)
    checks = [_check("parity with PyTorch (loss, gradients, Adam updates, later losses)", row["parity_ok"],
                     errors=row["errors"], tolerances=row["tolerances"])]
    targets = []
    if not ctx.dry:
        targets.append(_target("U-Net step time, minidl / PyTorch", row["ratio"], TARGETS["unet_step_ratio"]))
        if "memory_ratio" in row:
            targets.append(_target("U-Net step peak GPU memory, minidl / PyTorch", row["memory_ratio"],
                                   TARGETS["unet_memory_ratio"]))
    return {"checks": checks, "targets": targets, "figures": row, "markdown": _gpu_step.row_lines(row)}


def _target(name, value, limit):
    return {"name": name, "value": value, "at_most": limit, "met": bool(value <= limit)}


def section_ops_benchmark(ctx):
    from benchmarks.ops import run_device_cases

    if ctx.torch is None:
        return {"checks": [], "skipped": "PyTorch is not importable"}
    deadline = ctx.section_deadline - 5  # a case takes a few seconds: start none after this
    scale, repeats, warmup = (32, 1, 0) if ctx.dry else (1, 5, 2)
    rows = run_device_cases(ctx.torch, ctx.target, 2, scale, repeats, warmup, deadline=deadline)
    checks, targets = [], []
    for r in rows:
        if "skipped" in r:
            checks.append({"name": r["case"], "ok": None, "skipped": r["skipped"]})
            continue
        checks.append(_check(f"{r['case']}: parity with PyTorch", r.get("parity_ok"),
                             **{k: v for k, v in r.items() if k not in ("case", "parity_ok")}))
        if not ctx.dry and r.get("target") and "ratio" in r:
            targets.append(_target(f"{r['case']} forward + backward, minidl / cuDNN", r["ratio"], r["target"]))
    return {"checks": checks, "targets": targets}


# =================================================================== (a) the op suite

def section_op_suite(ctx):
    """(a) pytest over the op, nn and optim tests on the device alone, in a subprocess."""
    record = ctx.out / "pytest_results.jsonl"
    log = ctx.out / "pytest_log.txt"
    record.unlink(missing_ok=True)
    budget = ctx.section_budget  # the plugin starts no test after it (the first one always runs)
    env = {**os.environ, "MINIDL_TEST_DEVICES": ctx.target.name, "MINIDL_SUITE_RECORD": str(record),
           "MINIDL_SUITE_DEADLINE": str(time.time() + budget),
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rN",
           "-p", "benchmarks._pytest_record", *ctx.tests]
    killed = False
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            returncode = process.wait(timeout=max(budget, 5) + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            returncode, killed = process.wait(), True
    entries = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    tests = [e for e in entries if e["event"] == "test"]
    collected = next((e["count"] for e in entries if e["event"] == "collected"), None)
    finish = next((e for e in entries if e["event"] == "finish"), None)
    outcome = {}
    for e in tests:  # a test's worst phase: failed > skipped > passed
        rank = {"passed": 0, "skipped": 1, "failed": 2}
        if rank[e["outcome"]] >= rank.get(outcome.get(e["nodeid"]), -1):
            outcome[e["nodeid"]] = e["outcome"]
    counts = {k: sum(1 for v in outcome.values() if v == k) for k in ("passed", "failed", "skipped")}
    not_run = (collected - len(outcome)) if collected is not None else None
    failures = [e for e in tests if e["outcome"] == "failed"]
    collect_errors = [e for e in entries if e["event"] == "collect_error"]
    skip_reasons = {}
    for e in tests:
        if e["outcome"] == "skipped":
            skip_reasons[e.get("reason", "")] = skip_reasons.get(e.get("reason", ""), 0) + 1
    slowest = sorted(tests, key=lambda e: -e["duration"])[:10]
    figures = {"command": " ".join(cmd), "paths": ctx.tests, "device": ctx.target.name,
               "collected": collected, **counts, "not_run": not_run, "returncode": returncode,
               "killed_at_budget": killed, "stopped_early": (finish or {}).get("shouldstop") or None,
               "collection_errors": collect_errors[:20], "failures": failures[:60],
               "failures_left_out": max(len(failures) - 60, 0), "skip_reasons": skip_reasons,
               "slowest": [{"nodeid": e["nodeid"], "seconds": e["duration"]} for e in slowest],
               "log": log.name, "record": record.name}
    complete = finish is not None and not killed and not figures["stopped_early"] and not_run == 0
    checks = [_check("every collected test ran (within the budget)", complete, not_run=not_run,
                     collected=collected),
              _check("no test failed, no collection error", counts["failed"] == 0 and not collect_errors
                     and collected is not None, failed=counts["failed"], collection_errors=len(collect_errors)),
              _check("no test skipped for want of a device", not any("cuda" in r.lower() and "not" in r.lower()
                                                                        for r in skip_reasons),
                     skip_reasons=skip_reasons)]
    return {"checks": checks, "figures": figures}


# =================================================================== running and reporting

SECTIONS = [
    ("environment", "Environment", None),
    ("determinism", "(b) kernels bitwise identical from run to run", section_determinism),
    ("kernel_agreement", "(c) kernels: device vs NumPy reference, float32 1e-5", section_kernel_agreement),
    ("op_agreement", "(c) ops: device vs CPU, float32 1e-5, forward and gradients", section_op_agreement),
    ("gradcheck", "(d) float64 gradient checks on the device", section_gradcheck),
    ("no_host_copy", "(e) a training step makes no device-to-host copy", section_no_host_copy),
    ("unet_step", "(f) U-Net step vs PyTorch", section_unet_step),
    ("ops_benchmark", "(f) ops forward + backward vs PyTorch", section_ops_benchmark),
    ("op_suite", "(a) the op suite (tests/ops, tests/nn, tests/optim) on the device", section_op_suite),
]


class Report:
    def __init__(self, ctx, dry_reason, argv):
        self.ctx = ctx
        self.data = {"suite": "minidl benchmarks.gpu_suite", "format": 1, "device": ctx.target.name,
                     "dry": ctx.dry, "dry_reason": dry_reason, "budget_s": ctx.budget,
                     "argv": argv, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "environment": {}, "sections": [], "finished": False}
        self.lock = threading.Lock()

    def write(self):
        with self.lock:
            d = self.data
            d["total_s"] = time.perf_counter() - self.ctx.start
            d["summary"] = {s: sum(1 for x in d["sections"] if x["status"] == s)
                            for s in ("passed", "failed", "incomplete", "error", "skipped", "timed out", "running")}
            d["all_passed"] = all(x["status"] == "passed" for x in d["sections"]) and d["finished"]
            d["targets"] = [t for x in d["sections"] for t in x.get("targets", [])]
            out = self.ctx.out
            (out / "report.json").write_text(json.dumps(d, indent=2, default=_json_default) + "\n")
            (out / "report.md").write_text(markdown(d))


def _json_default(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _status(result):
    """failed: a check failed; incomplete: none failed but some were skipped for time; passed."""
    if result.get("skipped"):
        return "skipped"
    checks = [c for c in result.get("checks", []) if c.get("ok") is not None]
    if any(not c["ok"] for c in checks):
        return "failed"
    if any(c.get("skipped") for c in result.get("checks", [])):
        return "incomplete"
    return "passed" if checks else "skipped"


def run_sections(ctx, report, only=None):
    for name, title, fn in SECTIONS:
        if only and name not in only and name != "environment":
            continue
        share, min_gpu, min_dry = SHARES[name]
        entry = {"name": name, "title": title, "status": "running", "seconds": 0.0}
        report.data["sections"].append(entry)
        report.write()
        start = time.perf_counter()
        try:
            if fn is None:
                report.data["environment"] = _gpu.environment(ctx.target, ctx.torch)
                entry["status"] = "passed"
            else:
                later = sum(SHARES[n][0] for n, _, _ in SECTIONS[[s[0] for s in SECTIONS].index(name):]
                            if not only or n in only)
                # this section's share of what is left, so that a fast section gives its time on
                ctx.section_budget = max(ctx.left() - 5, 0) * share / later if later else ctx.left()
                if name == "op_suite":
                    ctx.section_budget = max(ctx.left() - 5, 0)
                entry["budget_s"] = ctx.section_budget
                ctx.section_deadline = time.perf_counter() + ctx.section_budget
                minimum = min_dry if ctx.dry else min_gpu
                if ctx.left() < minimum:
                    entry.update(status="skipped", reason=f"time budget: {ctx.left():.0f} s left, "
                                                          f"this section needs {minimum} s")
                else:
                    result = fn(ctx)
                    entry.update(result)
                    entry["status"] = _status(result)
        except Exception as error:  # noqa: BLE001  (reported; the next section still runs)
            entry.update(status="error", error=_exception(error))
        entry["seconds"] = time.perf_counter() - start
        ctx.target.free_memory()  # what the section's arrays left cached in the memory pools
        report.write()


def start_watchdog(ctx, report):
    """Past budget + grace: mark the running section timed out, write the report, exit 3."""
    def fire():
        for entry in report.data["sections"]:
            if entry["status"] == "running":
                entry.update(status="timed out", seconds=time.perf_counter() - ctx.start,
                             error={"type": "Watchdog", "message": f"the run passed its budget of "
                                    f"{ctx.budget:.0f} s by {WATCHDOG_GRACE_S:.0f} s in this section",
                                    "traceback": _main_thread_stack()})
        report.write()
        sys.stdout.flush()
        os._exit(3)

    timer = threading.Timer(ctx.budget + WATCHDOG_GRACE_S, fire)
    timer.daemon = True
    timer.start()
    return timer


def _main_thread_stack():
    frame = sys._current_frames().get(threading.main_thread().ident)
    return "".join(traceback.format_stack(frame)) if frame is not None else ""


# ------------------------------------------------------------------------- markdown

def _fmt(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def markdown(d):
    env = d.get("environment", {})
    mode = (f"**DRY RUN on the strict test device** ({d['dry_reason']}): the GPU itself was not used."
            if d["dry"] else f"On the GPU: {env.get('gpu_name', '?')}.")
    lines = ["# minidl GPU suite report", "", mode, "",
             f"Started {d['started_utc']}, {d.get('total_s', 0):.1f} s of a {d['budget_s']:.0f} s budget; "
             f"{'finished' if d['finished'] else 'NOT finished (cut short)'}; all sections passed: "
             f"**{d.get('all_passed')}**.", "", "## Environment", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in env.items()]
    lines += ["", "## Sections", "", "| section | status | seconds | budget s | checks passed |",
              "|---|---|---:|---:|---:|"]
    for s in d["sections"]:
        checks = [c for c in s.get("checks", []) if c.get("ok") is not None]
        lines.append(f"| {s['title']} | **{s['status']}** | {s['seconds']:.1f} | "
                     f"{_fmt(s.get('budget_s', ''))} | {sum(c['ok'] for c in checks)}/{len(checks)} |")
    if d.get("targets"):
        lines += ["", "## Issue 28's targets", "", "| target | value | at most | met |", "|---|---:|---:|---|"]
        lines += [f"| {t['name']} | {t['value']:.2f} | {t['at_most']} | {t['met']} |" for t in d["targets"]]
    for s in d["sections"]:
        lines += ["", f"## {s['title']}", "", f"Status **{s['status']}**, {s['seconds']:.1f} s."]
        for key in ("reason", "skipped"):
            if s.get(key):
                lines.append(f"{key}: {s[key]}")
        if s.get("markdown"):
            lines += [""] + s["markdown"]
        if s.get("checks"):
            lines += ["", "| check | ok | figures |", "|---|---|---|"]
            for c in s["checks"]:
                figures = {k: v for k, v in c.items() if k not in ("name", "ok", "error", "events", "failures")}
                ok = {True: "pass", False: "**FAIL**", None: "-"}[c.get("ok")]
                lines.append(f"| {c['name']} | {ok} | {_fmt(figures).replace('|', '/')[:600]} |")
            for c in s["checks"]:
                if c.get("error"):
                    lines += ["", f"Exception in `{c['name']}`:", "", "```text", c["error"]["traceback"].rstrip(),
                              "```"]
                for event in c.get("events", [])[:5]:
                    lines += ["", f"Host transfer in `{c['name']}`: {event['what']}", "", "```text",
                              *event["where"], "```"]
        if s["name"] == "op_suite" and s.get("figures"):
            f = s["figures"]
            lines += ["", f"`{f['command']}` (MINIDL_TEST_DEVICES={f['device']}): collected {f['collected']}, "
                      f"passed {f['passed']}, failed {f['failed']}, skipped {f['skipped']}, not run "
                      f"{f['not_run']}; exit {f['returncode']}"
                      + (", killed at the budget" if f["killed_at_budget"] else "")
                      + (f", stopped early: {f['stopped_early']}" if f["stopped_early"] else "") + "."]
            if f["skip_reasons"]:
                lines += ["", "Skip reasons: " + "; ".join(f"{n} x {r}" for r, n in f["skip_reasons"].items())]
            for e in f["collection_errors"]:
                lines += ["", f"Collection error in `{e['nodeid']}`:", "", "```text", str(e["longrepr"]), "```"]
            for e in f["failures"]:
                lines += ["", f"FAILED `{e['nodeid']}` ({e['when']}):", "", "```text", str(e["longrepr"]), "```"]
            if f["failures_left_out"]:
                lines.append(f"\n... and {f['failures_left_out']} more failures (report.json, pytest_results.jsonl).")
        if s.get("error"):
            lines += ["", f"Section error ({s['error']['type']}): {s['error']['message']}", "", "```text",
                      s["error"]["traceback"].rstrip(), "```"]
    lines += ["", f"Reproduce: `PYTHONPATH=. python -m benchmarks.gpu_suite {d['argv']}`", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_suite", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="directory for report.json, report.md and "
                   "the op suite's log")
    p.add_argument("--dry", action="store_true", help="run on the strict test device at tiny sizes "
                   "(automatic when CuPy or a GPU is missing)")
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds for the whole run (default {DEFAULT_BUDGET['gpu']:.0f} on a GPU, "
                        f"{DEFAULT_BUDGET['dry']:.0f} dry)")
    p.add_argument("--sections", nargs="+", choices=[s[0] for s in SECTIONS[1:]], default=None,
                   help="run only these sections (default: all)")
    p.add_argument("--tests", nargs="+", default=None,
                   help=f"pytest paths of the op suite (default {' '.join(OP_SUITE_PATHS)}; dry: "
                        f"{' '.join(DRY_OP_SUITE_PATHS)})")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    dry, reason = args.dry, ("--dry" if args.dry else None)
    if not dry and devices.cuda_problem():
        dry, reason = True, f"no usable GPU: {devices.cuda_problem()}"
    target = _gpu.Target("strict" if dry else "cuda")
    budget = args.budget or DEFAULT_BUDGET["dry" if dry else "gpu"]
    args.out.mkdir(parents=True, exist_ok=True)
    tests = args.tests or (DRY_OP_SUITE_PATHS if dry else OP_SUITE_PATHS)
    ctx = Context(target, dry, budget, args.out, tests)
    report = Report(ctx, reason, argv_text)
    print(f"gpu_suite: device {target.name}{' (DRY: ' + reason + ')' if dry else ''}, budget {budget:.0f} s, "
          f"report in {args.out}", flush=True)
    watchdog = start_watchdog(ctx, report)
    run_sections(ctx, report, args.sections)
    watchdog.cancel()
    report.data["finished"] = True
    report.write()
    for s in report.data["sections"]:
        print(f"  {s['name']:18s} {s['status']:10s} {s['seconds']:7.1f} s", flush=True)
    print(f"gpu_suite: {'ALL PASSED' if report.data['all_passed'] else 'NOT ALL PASSED'}; "
          f"{args.out / 'report.md'}", flush=True)
    return 0 if report.data["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
