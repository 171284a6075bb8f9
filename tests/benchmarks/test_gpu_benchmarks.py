"""``--device`` / ``--dry`` of benchmarks/unet_step.py and benchmarks/ops.py: the GPU code path
(benchmarks/_gpu.py, benchmarks/_gpu_step.py) run here on the strict test device at tiny sizes."""
import json

import pytest

import minidl


def test_unet_step_dry_writes_a_parity_checked_row(tmp_path, torch):
    from benchmarks import unet_step

    assert unet_step.main(["--dry", "--out", str(tmp_path), "--repeats", "2", "--warmup", "1"]) == 0
    result = json.loads((tmp_path / "gpu" / "unet_step_strict.json").read_text())
    assert result["device"] == "strict" and result["dry"] is True
    (row,) = result["rows"]
    assert (row["base"], row["batch"], row["size"], row["depth"]) == (2, 1, 16, 5)
    assert row["parity_ok"] and row["errors"]["grad_max"] < 1e-3
    assert len(row["all_ms"]["minidl"]) == len(row["all_ms"]["torch"]) == 2
    for lib in ("minidl", "torch"):
        phases = row["median_ms_by_phase"][lib]
        assert set(phases) == {"forward", "backward", "adam"} and all(v > 0 for v in phases.values())
        assert row["tflops"][lib] == pytest.approx(row["step_tflop"] / (row["median_ms"][lib] / 1e3))
    assert row["peak_memory"] == {"minidl": None, "torch": None}  # measured on cuda only
    assert len(row["losses"]["minidl"]) == 1 + 1 + 2  # first step, warm-up, timed steps
    text = (tmp_path / "gpu" / "unet_step_strict.md").read_text()
    assert "Parity OK" in text and "minidl on `strict`" in text


def test_ops_dry_compares_each_case(tmp_path, torch):
    from benchmarks import ops

    assert ops.main(["--dry", "--out", str(tmp_path), "--only", "64@", "--repeats", "1",
                     "--warmup", "0"]) == 0
    result = json.loads((tmp_path / "gpu" / "ops_strict.json").read_text())
    cases = [r["case"] for r in result["rows"]]
    assert any(c.startswith("conv2d 3x3") for c in cases) and any(c.startswith("max_pool2d") for c in cases)
    for r in result["rows"]:
        assert r["parity_ok"], r
        assert r["minidl_ms"] > 0 and r["torch_ms"] > 0
    conv = next(r for r in result["rows"] if r["case"].startswith("conv2d 3x3"))
    assert conv["target"] == 2.0 and conv["minidl_tflops"] > 0


def test_ops_device_case_reports_a_raising_case_and_goes_on(torch, monkeypatch):
    from benchmarks import _gpu, ops

    real_cases = ops.cases

    def with_a_broken_case(batch, quick, scale=None):
        found = real_cases(batch, quick, scale)[:2]
        name, arrays, fn, flops = found[0]
        return [("broken", arrays, lambda t, lib: lib.conv2d(t["x"], t["weight"][:, :1]), None)] + found

    monkeypatch.setattr(ops, "cases", with_a_broken_case)
    rows = ops.run_device_cases(torch, _gpu.Target("strict"), 1, 32, 1, 0)
    assert rows[0]["case"] == "broken" and not rows[0]["parity_ok"] and rows[0]["error"].startswith("ValueError: conv2d")
    assert "Traceback" in rows[0]["traceback"]
    assert all(r["parity_ok"] for r in rows[1:]) and len(rows) == 3


def test_cuda_without_a_gpu_says_why():
    if minidl.cuda.is_available():
        pytest.skip("there is a GPU here")
    from benchmarks import _gpu

    with pytest.raises(RuntimeError, match="cuda device is not available"):
        _gpu.Target("cuda")


@pytest.mark.parametrize("argv, expected", [
    ([], ([16, 32, 64], 4, 256)),                      # the CPU benchmark's defaults, unchanged
    (["--device", "cuda"], ([64], 4, 512)),            # issue 28's GPU row
    (["--device", "strict"], ([2], 1, 16)),            # NumPy underneath: tiny
    (["--dry"], ([2], 1, 16)),
    (["--device", "cuda", "--base", "32", "--size", "256"], ([32], 4, 256)),
])
def test_unet_step_sizes_per_device(argv, expected):
    from benchmarks import unet_step

    args = unet_step.parse_args(argv)
    assert (args.base, args.batch, args.size) == expected
    assert args.device == ("strict" if "--dry" in argv else argv[1] if argv else "cpu")
