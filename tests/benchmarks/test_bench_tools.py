"""The benchmark suite's own tools: the op profiler, the PyTorch U-Net twin, the RSS meter."""
import time

import numpy as np
import pytest

import minidl
import minidl.functional as F
from benchmarks._profiler import CATEGORIES, OpProfiler, category
from minidl.ops.conv import Conv2d


def test_nested_calls_are_counted_once_under_the_innermost():
    prof = OpProfiler()
    inner = prof._wrap(lambda: time.sleep(0.1), "kernel", lambda args: "inner")

    def outer_body():
        time.sleep(0.01)
        inner()

    outer = prof._wrap(outer_body, "op", lambda args: "outer")
    start = time.perf_counter()
    outer()
    wall = time.perf_counter() - start
    # counted twice, the outer call would own >= 0.11 s; its own work is 0.01 s of sleep
    assert prof.self_time[("op", "outer")] < 0.08
    assert prof.self_time[("kernel", "inner")] >= 0.1
    assert sum(prof.self_time.values()) == pytest.approx(wall, abs=0.01)


def test_profiler_sees_conv_and_kernels_and_restores_them(backend):
    original = Conv2d.__dict__["forward"]
    x = minidl.tensor(np.ones((1, 2, 6, 6), np.float32), requires_grad=True)
    w = minidl.tensor(np.ones((3, 2, 3, 3), np.float32), requires_grad=True)
    with OpProfiler() as prof:
        start = time.perf_counter()
        # stride 2: its dx goes through col2im (stride 1 correlates dy with the rotated kernel)
        F.relu(F.conv2d(x, w, padding=1, stride=2)).sum().backward()
        wall = time.perf_counter() - start
    assert Conv2d.__dict__["forward"] is original
    names = {name for _, name in prof.self_time}
    assert {"Conv2d.forward", "Conv2d.backward", "im2col", "col2im", "Relu.forward"} <= names
    split = prof.by_category(wall)
    assert list(split) == list(CATEGORIES)
    assert sum(split.values()) == pytest.approx(wall)
    assert split["Python overhead"] >= 0


def test_categories():
    assert category("op", "ConvTranspose2d.backward") == "matrix products"
    assert category("kernel", "col2im") == "im2col/tiles"
    assert category("kernel", "winograd_input_tiles_adjoint") == "im2col/tiles"
    assert category("kernel", "stack_shifted_rows") == "im2col/tiles"
    assert category("kernel", "direct_conv2d_dweight") == "matrix products"
    assert category("kernel", "maxpool2d_backward") == "pooling"
    assert category("op", "MaxPool2d.forward") == "pooling"
    assert category("op", "CrossEntropy.forward") == "elementwise"
    assert category("optimizer", "Adam.step") == "elementwise"


def test_torch_twin_has_the_same_weights_and_output():
    torch = pytest.importorskip("torch")
    import unet
    from benchmarks._torch_unet import torch_twin

    model = unet.UNet(1, 2, base_channels=2, depth=3, padding="same")
    twin = torch_twin(model)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    with minidl.no_grad(), torch.no_grad():
        ours = model(minidl.tensor(x)).numpy()
        theirs = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_peak_growth_sees_a_temporary_array():
    from benchmarks._memory import peak_growth

    def allocate_and_free():
        a = np.ones(64 * 2**20 // 8)  # 64 MiB, touched, then freed
        del a

    result = peak_growth(allocate_and_free)
    if not result["valid"]:
        pytest.skip("this kernel refuses to reset the RSS high-water mark (/proc/self/clear_refs)")
    assert 60 * 2**20 <= result["peak_growth"] < 200 * 2**20


def _run_benchmark(module, *args, cwd):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=repo, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_unet_step_smoke_run_writes_agreeing_results(tmp_path):
    pytest.importorskip("torch")
    import json

    _run_benchmark("benchmarks.unet_step", "--base", "2", "--size", "16", "--batch", "2",
                   "--repeats", "1", "--warmup", "0", "--case", "2:1:32", "--out", str(tmp_path), cwd=tmp_path)
    result = json.loads((tmp_path / "unet_step.json").read_text())
    row, case = result["rows"]
    assert row["parity_ok"] and row["base"] == 2 and "batch" not in row
    assert 0 < row["errors"]["grad_vs_float64"]["minidl"] < 1e-3  # float32 against PyTorch's float64
    assert case["parity_ok"] and (case["base"], case["batch"], case["size"]) == (2, 1, 32)
    assert case["rss_peak_growth_mib"]["minidl"] > 0
    assert result["config"]["matmul_peak_gflops"] > 0
    assert "2 (batch 1 of 32x32)" in (tmp_path / "unet_step.md").read_text()
    assert row["median_ms"]["minidl"] > 0 and row["median_ms"]["torch"] > 0
    assert row["rss_peak_growth_mib"]["minidl"] > 0 and row["tracemalloc_peak_mib_minidl"] > 0
    assert (tmp_path / "unet_step.md").read_text().startswith("# U-Net training step")
    assert (tmp_path / "unet_step.png").read_bytes()[:4] == b"\x89PNG"


def test_unet_step_parity_forgives_pytorchs_rounding_not_ours():
    """A gradient further from PyTorch's than GRAD_RTOL passes only when minidl's float32 is no
    further from float64 than PyTorch's."""
    from benchmarks import unet_step

    agree = {"loss": 0.0, "grad_max": 1e-4, "update_median_over_lr": 0.0, "loss_trace_max": 0.0,
             "grad_vs_float64": {"minidl": 1e-3, "torch": 1e-5}}
    assert unet_step.parity_ok(agree)  # within GRAD_RTOL of PyTorch's: no reference needed
    apart = dict(agree, grad_max=2e-3)
    assert unet_step.parity_ok(dict(apart, grad_vs_float64={"minidl": 4e-5, "torch": 1e-3}))  # PyTorch's rounding
    assert not unet_step.parity_ok(dict(apart, grad_vs_float64={"minidl": 1e-3, "torch": 4e-5}))  # ours
    assert not unet_step.parity_ok({k: v for k, v in apart.items() if k != "grad_vs_float64"})
    assert not unet_step.parity_ok(dict(agree, loss=1e-3))


def test_unet_profile_smoke_run_adds_up(tmp_path):
    pytest.importorskip("torch")
    import json

    _run_benchmark("benchmarks.unet_profile", "--base", "2", "--size", "16", "--batch", "2",
                   "--repeats", "1", "--warmup", "0", "--out", str(tmp_path), cwd=tmp_path)
    (row,) = json.loads((tmp_path / "unet_step_profile.json").read_text())["rows"]
    assert sum(row["categories_ms"].values()) == pytest.approx(row["minidl_ms_per_step"])
    assert row["categories_ms"]["matrix products"] > 0 and row["categories_ms"]["im2col/tiles"] > 0
    assert (tmp_path / "unet_step_profile.png").exists()


def test_timed_step_takes_one_optimizer_step_and_times_each_phase():
    from benchmarks._common import timed_step

    layer = minidl.nn.Linear(3, 2)
    opt = minidl.optim.SGD(layer.parameters(), lr=0.5)
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    w, b = layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy()
    clock = {"a": [], "b": [], "c": []}

    loss = timed_step(lambda: (layer(minidl.tensor(x)) ** 2).mean(), opt, clock, phases=("a", "b", "c"))

    y = x @ w.T + b  # loss = mean(y**2) over 4 entries: dloss/dw = (2/4) y.T @ x
    np.testing.assert_allclose(loss.item(), (y ** 2).mean(), rtol=1e-6)
    np.testing.assert_allclose(layer.weight.detach().numpy(), w - 0.5 * (0.5 * y.T @ x), rtol=1e-5)
    assert layer.weight.grad is None or not np.any(layer.weight.grad.numpy())  # zero_grad ran
    assert all(len(seconds) == 1 and seconds[0] >= 0 for seconds in clock.values())


def test_winograd_rounding_measures_both_paths_against_float64():
    from benchmarks.winograd_rounding import markdown, measure

    row = measure(6, 9)  # small: every path runs, and the errors are float32 rounding, not 0
    for path, bound in (("winograd", 1e-4), ("im2col", 1e-5)):
        for name in ("y", "dx", "dweight"):
            assert 0 < row["errors"][path][name] < bound, (path, name)
    assert row["errors"]["winograd"] != row["errors"]["im2col"]  # two different computations
    assert "| 6@9 |" in markdown([row])


def test_numba_compile_calls_every_public_numba_kernel_once_per_dtype():
    """benchmarks.numba_compile promises the compile time of every kernel: its list must follow
    numba_cpu's public functions (a kernel added without it would be compiled unmeasured)."""
    import inspect

    pytest.importorskip("numba")
    from benchmarks.numba_compile import kernel_calls
    from minidl.backend import kernel_module

    numba_cpu = kernel_module("numba")
    public = {name for name, function in inspect.getmembers(numba_cpu, inspect.isfunction)
              if not name.startswith("_") and function.__module__ == numba_cpu.__name__}
    calls = kernel_calls(np, np.float32)
    assert set(calls) == public - {"start_threads"}  # every kernel (start_threads is no kernel)
    for call in calls.values():
        call()  # each runs on its tiny inputs


def test_models_smoke_run_agrees_for_every_model(tmp_path):
    """benchmarks.models at tiny widths and size: every seed model's minidl and PyTorch step
    agree (float32 and float64) and the result files are written."""
    pytest.importorskip("torch")
    import json

    from benchmarks.models import MODELS

    tiny = {"unet": 2, "zhixuhao": 2, "tf_unet": 2, "bn_unet": 2, "resnet34_unet": 1 / 16,
            "fcn8s": 1 / 32, "mini_unet": 2}
    assert set(tiny) == set(MODELS)
    widths = [arg for name, w in tiny.items() for arg in ("--width", f"{name}={w}")]
    _run_benchmark("benchmarks.models", "--size", "32", "--repeats", "1", "--warmup", "0",
                   "--pause", "0", *widths, "--out", str(tmp_path), cwd=tmp_path)
    rows = json.loads((tmp_path / "models.json").read_text())["rows"]
    assert [r["model"] for r in rows] == list(MODELS)
    for r in rows:
        assert r["parity_ok"] and r["nonzero"], r
        assert max(r["errors_float64"].values()) < 1e-10, r
        assert r["median_ms"]["minidl"] > 0 and r["median_ms"]["torch"] > 0
    assert (tmp_path / "models.md").read_text().startswith("# Seed models")


def _parity_row(minidl_grad, torch_grads, float32_grad=5e-3):
    """A models.py row whose float32 gradients disagree (float32_grad > GRAD_RTOL32)."""
    return {"nonzero": True,
            "errors_float32": {"output": 1e-5, "loss": 1e-7, "grad": float32_grad},
            "errors_float64": {"output": 1e-14, "loss": 0.0, "grad": 1e-13},
            "errors_float32_vs_float64": {"minidl": {"output": 1e-5, "loss": 1e-7, "grad": minidl_grad},
                                          "torch": {"output": 1e-5, "loss": 1e-7,
                                                    "grad": float(np.median(torch_grads))}},
            "grad_errors_float32_vs_float64_per_batch": {"torch": torch_grads}}


def test_models_parity_rule_for_gradients_amplified_by_rounding():
    """A gradient moved by flipped ReLU masks passes when minidl's median error is within 10x
    PyTorch's median or within PyTorch's largest on the same batches; not when beyond both."""
    from benchmarks.models import parity_ok

    torch_grads = [8.5e-6, 4.7e-4, 2.6e-4, 8.7e-3, 2.1e-3, 5.8e-3, 8.7e-6, 1.4e-3, 2.7e-4]
    assert parity_ok(_parity_row(4e-3, torch_grads))        # within 10x the median (4.7e-4)
    assert parity_ok(_parity_row(8e-3, torch_grads))        # beyond 10x, within PyTorch's largest
    assert not parity_ok(_parity_row(2e-2, torch_grads))    # beyond both: a real loss of accuracy
    assert parity_ok(_parity_row(2e-2, torch_grads, float32_grad=1e-4))  # libraries agree: OK
    row = _parity_row(4e-3, torch_grads)
    row["errors_float64"]["grad"] = 1e-6                    # float64 must agree on every batch
    assert not parity_ok(row)
    del row["errors_float32_vs_float64"], row["errors_float64"]
    assert not parity_ok(row)                               # no float64 reference: tolerance only


def test_thread_timeout_alternates_the_values_and_times_every_case(monkeypatch):
    """benchmarks.thread_timeout: each round sets every value (restarting OpenBLAS's threads), in
    reversed order every other round, and runs each case once untimed and --steps times timed."""
    import os

    from benchmarks import thread_timeout

    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "24")  # restored after the test
    applied, calls = [], []
    monkeypatch.setattr(thread_timeout, "apply_thread_timeout",
                        lambda: applied.append(os.environ["OPENBLAS_THREAD_TIMEOUT"]) or ["libopenblas.so"])
    cases = [(name, lambda name=name: calls.append((name, os.environ["OPENBLAS_THREAD_TIMEOUT"])))
             for name in ("a", "b")]
    times = thread_timeout.run(cases, [24, 12], rounds=3, steps=2, pause=0)
    assert applied == ["24", "12", "12", "24", "24", "12"]
    assert calls == [(name, value) for value in applied for name in ("a", "b") for _ in range(3)]
    assert all(len(times[name][v]) == 3 for name in ("a", "b") for v in (24, 12))
    rows = thread_timeout.summary(times, [24, 12])
    assert [row["paired_ratio"]["24"] for row in rows] == [1.0, 1.0]
    a24, a12 = times["a"][24], times["a"][12]
    assert rows[0]["paired_ratio"]["12"] == pytest.approx(float(np.median([x / y for x, y in zip(a12, a24)])))
