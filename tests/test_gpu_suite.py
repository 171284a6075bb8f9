"""benchmarks/gpu_suite.py, the GPU suite of issue 28, in its dry mode on the strict device.

The dry run takes the code path of the GPU run (only the device differs), so these tests are
what makes a failure on the GPU machine a GPU failure and not one the CPU could have shown.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minidl
from benchmarks import _gpu, gpu_suite

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = [name for name, _, _ in gpu_suite.SECTIONS]


def _run_suite(out, *args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MINIDL_TEST_DEVICES", None)
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_suite", "--out", str(out), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def dry_report(tmp_path_factory):
    """One dry run of every section (the op suite cut to one small file), as a subprocess."""
    out = tmp_path_factory.mktemp("gpu_suite")
    done = _run_suite(out, "--dry", "--budget", "400", "--tests", "tests/nn/test_init.py")
    assert (out / "report.json").exists(), done.stdout + done.stderr
    return done, json.loads((out / "report.json").read_text()), (out / "report.md").read_text(), out


def _section(report, name):
    return next(s for s in report["sections"] if s["name"] == name)


def test_dry_report_has_every_section_with_status_and_time(dry_report):
    done, report, markdown, out = dry_report
    assert report["dry"] is True and report["device"] == "strict" and report["dry_reason"] == "--dry"
    assert report["finished"] is True
    assert [s["name"] for s in report["sections"]] == SECTIONS
    for s in report["sections"]:
        assert s["status"] in ("passed", "failed"), (s["name"], s["status"], s.get("error"))
        assert s["seconds"] >= 0
        assert s["name"] == "environment" or s["budget_s"] > 0
    assert report["total_s"] <= report["budget_s"]
    env = report["environment"]
    for key in ("python", "numpy", "scipy", "numba", "pytest", "torch", "device", "date_utc"):
        assert key in env
    assert "DRY RUN on the strict test device" in markdown
    for s in report["sections"]:
        assert s["title"] in markdown
    # the exit status says whether everything passed
    assert done.returncode == (0 if report["all_passed"] else 1), done.stdout + done.stderr


@pytest.mark.parametrize("name", ["determinism", "kernel_agreement", "op_agreement", "gradcheck",
                                  "unet_step", "ops_benchmark", "op_suite"])
def test_dry_sections_pass(dry_report, name):
    section = _section(dry_report[1], name)
    failed = [c for c in section.get("checks", []) if c.get("ok") is False]
    assert section["status"] == "passed", failed or section.get("error")
    assert section["checks"], "a section that checks nothing cannot pass"


def test_dry_kernel_sections_cover_every_kernel(dry_report):
    names = " ".join(c["name"] for c in _section(dry_report[1], "determinism")["checks"])
    for kernel in ("im2col", "col2im", "max-pool", "avg-pool", "softmax + cross-entropy"):
        assert kernel in names


def test_dry_training_steps_make_no_host_copy(dry_report):
    """A training step copies nothing to the host; the positive controls pass (the counter sees
    loss.item(): its value, and the device's pending value checks read with it)."""
    checks = _section(dry_report[1], "no_host_copy")["checks"]
    assert len(checks) == 4
    for check in checks:
        assert check["ok"], check
        if check["name"].startswith("positive control"):
            assert 1 <= check["host_transfers"] <= 2
            for event in check["events"]:
                assert any("minidl/tensor.py" in frame and "in item" in frame for frame in event["where"])
        else:
            assert check["host_transfers"] == 0, check["events"]


def test_dry_unet_step_and_op_suite_figures(dry_report):
    report, out = dry_report[1], dry_report[3]
    row = _section(report, "unet_step")["figures"]
    assert row["device"] == "strict" and row["torch_device"] == "cpu" and row["parity_ok"]
    assert row["median_ms"]["minidl"] > 0 and row["tflops"]["torch"] > 0
    assert report["targets"] == []  # dry timings are no measure of the targets
    suite = _section(report, "op_suite")["figures"]
    assert suite["device"] == "strict" and suite["collected"] > 0 and suite["not_run"] == 0
    assert suite["passed"] + suite["skipped"] == suite["collected"] and suite["failed"] == 0
    lines = (out / "pytest_results.jsonl").read_text().splitlines()
    assert any('"strict' in line or "[strict" in line for line in lines)  # ran on the strict device only
    assert not any("[cpu" in line for line in lines)


# ----------------------------------------------------------------------- in-process pieces

def _context(tmp_path, budget=100.0):
    ctx = gpu_suite.Context(_gpu.Target("strict"), True, budget, tmp_path, [])
    ctx.section_deadline = float("inf")
    return ctx


def test_determinism_check_sees_a_kernel_that_differs_between_runs(tmp_path, monkeypatch):
    ctx = _context(tmp_path)
    real = ctx.target.kernels()
    calls = []

    class Flaky:  # the reference kernels, except that im2col's second run differs in one entry
        __name__ = "flaky"

        def __getattr__(self, name):
            return getattr(real, name)

        def im2col(self, *args):
            cols = real.im2col(*args)
            calls.append(1)
            if len(calls) == 2:
                cols[0, 0, 0] += 1
            return cols

    monkeypatch.setattr(ctx.target, "kernels", lambda: Flaky())
    checks = {c["name"]: c for c in gpu_suite.section_determinism(ctx)["checks"]}
    assert not checks["im2col 3x3 pad 1"]["ok"] and checks["im2col 3x3 pad 1"]["differing_entries"] == [1]
    assert checks["col2im 3x3 pad 1"]["ok"]


def test_agreement_check_sees_a_kernel_off_by_more_than_1e5(tmp_path, monkeypatch):
    ctx = _context(tmp_path)
    real = ctx.target.kernels()

    class Off:
        __name__ = "off"

        def __getattr__(self, name):
            return getattr(real, name)

        def col2im(self, *args):
            return real.col2im(*args) * (1 + 3e-5)

    monkeypatch.setattr(ctx.target, "kernels", lambda: Off())
    checks = {c["name"]: c for c in gpu_suite.section_kernel_agreement(ctx)["checks"]}
    assert not checks["col2im 3x3 pad 1"]["ok"]
    assert 1e-5 < checks["col2im 3x3 pad 1"]["rel_errors"][0] < 1e-4
    assert checks["im2col 3x3 pad 1"]["ok"]


def test_xent_spec_matches_minidl_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4, 5))
    target = rng.integers(0, 3, (2, 4, 5))
    target[0, 0, 0] = -100
    weight = rng.uniform(0.5, 2, 3)
    loss = gpu_suite.xent_forward_spec(np, logits, target, weight, -100)
    expected = minidl.functional.cross_entropy(minidl.tensor(logits), minidl.tensor(target),
                                               weight=minidl.tensor(weight), reduction="none")
    np.testing.assert_allclose(loss, expected.numpy(), rtol=1e-12, atol=1e-12)
    x = minidl.tensor(logits, requires_grad=True)
    dy = rng.standard_normal(target.shape)
    (minidl.functional.cross_entropy(x, minidl.tensor(target), weight=minidl.tensor(weight),
                                     reduction="none") * minidl.tensor(dy)).sum().backward()
    np.testing.assert_allclose(gpu_suite.xent_backward_spec(np, dy, logits, target, weight, -100),
                               x.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_host_transfers_counts_explicit_copies_and_restores_the_array_type():
    target = _gpu.Target("strict")
    a = target.asarray(np.arange(6.0).reshape(2, 3))
    original = minidl.backend.strict.StrictArray.__dict__["get"]
    with _gpu.HostTransfers(target) as seen:
        a + 1  # stays on the device
        a.get()
        float(a[0, 0])
        a.sum().item()
    assert [e["what"] for e in seen.events] == ["StrictArray.get", "StrictArray.__float__",
                                                "StrictArray.item"]
    assert any("test_gpu_suite.py" in frame for frame in seen.events[0]["where"])
    assert minidl.backend.strict.StrictArray.__dict__["get"] is original
    with _gpu.HostTransfers(target) as seen:
        pass
    a.get()
    assert seen.events == []


def test_section_error_is_reported_and_later_sections_still_run(tmp_path, monkeypatch):
    def broken(ctx):
        raise ZeroDivisionError("planted")

    sections = [("environment", "Environment", None), ("determinism", "broken", broken),
                ("kernel_agreement", "agreement", gpu_suite.section_kernel_agreement)]
    monkeypatch.setattr(gpu_suite, "SECTIONS", sections)
    ctx = _context(tmp_path)
    report = gpu_suite.Report(ctx, "--dry", "")
    gpu_suite.run_sections(ctx, report)
    statuses = {s["name"]: s for s in report.data["sections"]}
    assert statuses["determinism"]["status"] == "error"
    assert "ZeroDivisionError: planted" in statuses["determinism"]["error"]["traceback"]
    assert statuses["kernel_agreement"]["status"] == "passed"
    assert "ZeroDivisionError: planted" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["error"] == 1


def test_sections_are_skipped_when_the_budget_is_spent(tmp_path):
    ctx = _context(tmp_path, budget=0.0)
    report = gpu_suite.Report(ctx, "--dry", "")
    gpu_suite.run_sections(ctx, report, only=["gradcheck", "unet_step"])
    sections = report.data["sections"]
    assert [s["name"] for s in sections] == ["environment", "gradcheck", "unet_step"]
    assert [s["status"] for s in sections[1:]] == ["skipped", "skipped"]
    assert "time budget" in sections[1]["reason"]


def test_cases_after_the_section_deadline_are_skipped_and_the_section_is_incomplete(tmp_path):
    ctx = _context(tmp_path)
    ctx.section_deadline = 0.0  # already past
    result = gpu_suite.section_gradcheck(ctx)
    assert all(c["ok"] is None and c["skipped"] for c in result["checks"])
    assert gpu_suite._status(result) == "incomplete"


def test_watchdog_writes_the_report_and_exits(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from benchmarks import _gpu, gpu_suite
        gpu_suite.WATCHDOG_GRACE_S = 0.2
        ctx = gpu_suite.Context(_gpu.Target("strict"), True, 0.3, Path({str(tmp_path)!r}), [])
        report = gpu_suite.Report(ctx, "--dry", "")
        report.data["sections"].append({{"name": "gradcheck", "title": "t", "status": "running",
                                         "seconds": 0.0}})
        gpu_suite.start_watchdog(ctx, report)
        time.sleep(30)  # a hung section
        """)
    (tmp_path / "hung.py").write_text(script)
    done = subprocess.run([sys.executable, str(tmp_path / "hung.py")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 3, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["sections"][0]["status"] == "timed out"
    assert "time.sleep(30)" in report["sections"][0]["error"]["traceback"]
    assert report["all_passed"] is False


def test_unet_flops_match_the_torch_twins_convolutions(torch):
    """unet_forward_macs against the multiply-adds counted by hooks on the PyTorch twin."""
    from benchmarks import _gpu_step
    from benchmarks._torch_unet import TorchUNet

    batch, size, base, depth = 2, 32, 3, 4
    model = TorchUNet(1, 2, base, depth)
    macs = []

    def count(module, inputs, output):
        w = module.weight
        if isinstance(module, torch.nn.ConvTranspose2d):  # every input pixel meets the whole kernel
            macs.append(inputs[0].numel() * w.shape[1] * w.shape[2] * w.shape[3])
        else:  # every output pixel: C_in * KH * KW
            macs.append(output.numel() * w.shape[1] * w.shape[2] * w.shape[3])

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(batch, 1, size, size))
    assert _gpu_step.unet_forward_macs(batch, size, base, depth) == sum(macs)
    assert _gpu_step.unet_step_flops(batch, size, base, depth) == 6 * sum(macs)


# ----------------------------------------------------------------------- the cuda glue, on a stand-in
# CuPy cannot run here; these check that benchmarks/_gpu.py calls the CuPy API it names (read in
# CuPy 14.2's source: cupy.cuda.Event/get_elapsed_time, MemoryHook.malloc_postprocess,
# cupy._core.syncdetect._declare_synchronize, runtime.getDeviceProperties, ...) the way CuPy
# calls back. They cannot show that CuPy behaves as read.

class _FakeCupy:
    """The few pieces of CuPy that benchmarks/_gpu.py touches."""

    def __init__(self):
        import types

        fake = self
        self.now, self.used, self.hooks = 0.0, 100, {}
        self.__version__ = "14.2.0-fake"

        class Event:
            def record(self):
                self.at = fake.now

            def synchronize(self):
                pass

        class MemoryHook:  # CuPy's: registered by name while inside ``with``
            name = "MemoryHook"

            def __enter__(self):
                fake.hooks[self.name] = self
                return self

            def __exit__(self, *exc):
                del fake.hooks[self.name]

        class Pool:
            def used_bytes(self):
                return fake.used

        class Runtime:
            @staticmethod
            def getDeviceProperties(device):
                return {"name": b"Fake H100", "major": 9, "minor": 0, "totalGlobalMem": 80 * 2**30,
                        "multiProcessorCount": 132}

            driverGetVersion = staticmethod(lambda: 13000)
            runtimeGetVersion = staticmethod(lambda: 13000)

        stream = types.SimpleNamespace(synchronize=lambda: None)
        self.cuda = types.SimpleNamespace(
            Event=Event, MemoryHook=MemoryHook, runtime=Runtime,
            get_elapsed_time=lambda a, b: b.at - a.at, get_current_stream=lambda: stream,
            Device=lambda: types.SimpleNamespace(id=0),
            nvrtc=types.SimpleNamespace(getVersion=lambda: (13, 0)))
        self.pool = Pool()
        self.get_default_memory_pool = lambda: self.pool

    def malloc(self, nbytes):  # what SingleDeviceMemoryPool.malloc does around an allocation
        self.used += nbytes
        for hook in list(self.hooks.values()):
            hook.malloc_postprocess(device_id=0, size=nbytes, mem_size=nbytes, mem_ptr=1, pmem_id=1)

    def free(self, nbytes):
        self.used -= nbytes


@pytest.fixture
def fake_gpu(monkeypatch):
    import types

    cupy = _FakeCupy()
    syncdetect = types.ModuleType("cupy._core.syncdetect")
    syncdetect.calls = []
    syncdetect._declare_synchronize = lambda: syncdetect.calls.append(1)
    core = types.ModuleType("cupy._core")
    core.syncdetect = syncdetect
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy._core", core)
    monkeypatch.setitem(sys.modules, "cupy._core.syncdetect", syncdetect)
    target = object.__new__(_gpu.Target)
    target.name, target.is_gpu, target.cupy, target.xp = "cuda", True, cupy, cupy
    return target, cupy, syncdetect


def test_cupy_clock_reads_event_times(fake_gpu):
    target, cupy, _ = fake_gpu
    clock = target.clock()
    for t in (1.0, 3.5, 4.0):
        cupy.now = t
        clock.mark()
    assert clock.intervals_ms() == [2.5, 0.5]


def test_cupy_peak_memory_follows_the_pool_through_a_memory_hook(fake_gpu):
    target, cupy, _ = fake_gpu

    def step():
        cupy.malloc(300)
        cupy.malloc(50)
        cupy.free(350)
        cupy.malloc(20)

    assert _gpu.minidl_peak_memory(target, step) == {"peak_bytes": 450, "live_before_bytes": 100}
    assert cupy.hooks == {}  # unregistered after the step


def test_cupy_host_transfers_hook_syncdetect_and_restore_it(fake_gpu):
    target, cupy, syncdetect = fake_gpu
    original = syncdetect._declare_synchronize
    with _gpu.HostTransfers(target) as seen:
        assert seen.available
        syncdetect._declare_synchronize()  # what ndarray.get() calls before its copy
    assert len(seen.events) == 1 and "ndarray.get" in seen.events[0]["what"]
    assert any("test_gpu_suite.py" in frame for frame in seen.events[0]["where"])
    assert syncdetect.calls == [1]  # CuPy's own function still ran
    assert syncdetect._declare_synchronize is original
    del syncdetect._declare_synchronize
    assert not _gpu.HostTransfers(target).available  # a CuPy without the hook: said, not passed


def test_cupy_environment_reads_the_device(fake_gpu):
    target, cupy, _ = fake_gpu
    env = _gpu.environment(target, None)
    assert env["gpu_name"] == "Fake H100" and env["compute_capability"] == "9.0"
    assert env["cupy"] == "14.2.0-fake" and env["cuda_runtime_version"] == 13000
    assert env["nvrtc_version"] == "13.0" and env["multiprocessors"] == 132
    assert env["nvidia_driver"]  # nvidia-smi's answer, or why there is none


def test_op_suite_stops_at_its_deadline_and_counts_the_tests_not_run(tmp_path):
    tests = tmp_path / "test_three.py"
    tests.write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n\ndef test_c():\n    assert False\n")
    ctx = _context(tmp_path)
    ctx.tests, ctx.section_budget = [str(tests)], 0.0  # the deadline has passed when pytest starts
    result = gpu_suite.section_op_suite(ctx)
    f = result["figures"]
    assert (f["collected"], f["passed"], f["failed"], f["not_run"]) == (3, 1, 0, 2)
    assert "budget" in f["stopped_early"]
    checks = {c["name"]: c["ok"] for c in result["checks"]}
    assert checks == {"every collected test ran (within the budget)": False,
                      "no test failed, no collection error": True,
                      "no test skipped for want of a device": True}
    assert gpu_suite._status(result) == "failed"

    ctx.section_budget = 100.0  # with time: all three run, and the failure is reported
    f = gpu_suite.section_op_suite(ctx)["figures"]
    assert (f["passed"], f["failed"], f["not_run"]) == (2, 1, 0)
    assert f["failures"][0]["nodeid"].endswith("test_c") and "assert False" in f["failures"][0]["longrepr"]
