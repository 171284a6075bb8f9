"""Forward+backward of the U-Net ops: minidl against PyTorch, same process, same inputs.

Cases (batch 2 unless noted, float32):
  conv2d 3x3, padding 1, C -> C      at the U-Net sizes 64@256^2, 128@128^2, 256@64^2, 512@32^2
  conv_transpose2d 2x2, stride 2     2C -> C at the same levels (input at half the size)
  max_pool2d 2x2                     C@size at the same levels
  relu                               C@size at the same levels
  cat along channels                 two C@size tensors (skip + up-sampled) at the same levels
  softmax over channels              2 classes at 256^2 (the U-Net output)
  cross_entropy over (N, C, H, W)    2 classes at 256^2 (the U-Net output) and 21 at 128^2
  binary_cross_entropy_with_logits   1 channel at 256^2 (a one-class output)
  conv2d depthwise 3x3, padding 1    MobileNet's depthwise layers, batch 8: 32@112, 64@112 stride 2,
                                     128@56, 256@28, 512@14 (groups = channels; three-way with the
                                     im2col route and float32 errors: benchmarks/depthwise.py)

Method, per case: identical inputs and weights in both libraries; loss =
sum(dy * y) with a fixed random dy; one untimed run checks that outputs and
every gradient agree (float32 tolerance), then minidl and PyTorch alternate for
`--repeats` timed runs (each after a `--pause`, so that the idle BLAS/OpenMP threads
of the library that ran before have stopped spinning); the median time, the ratio
minidl/PyTorch and, for the convolutions, GFLOP/s (2 * multiply-adds of forward + both
backward products)
are reported, with the machine's measured float32 matrix-product peak in the
same run for scale (measured before and after the cases; the higher one is used) and
each library's fraction of it. Targets (issue 4): conv2d 3x3 and max_pool2d at most 1.5x
PyTorch; the chart draws that line.

    python -m benchmarks.ops                       # everything, 2 threads
    python -m benchmarks.ops --only conv2d --repeats 3
    python -m benchmarks.ops --quick               # small sizes: a smoke test
    python -m benchmarks.ops --device cuda         # on a GPU against PyTorch (cuDNN) on the same GPU
    python -m benchmarks.ops --dry --no-save       # that code path on the strict device, tiny sizes

With --device cuda (or strict) minidl runs on that device and PyTorch on the same GPU (on the
CPU for strict), TF32 off in PyTorch, cuDNN's autotuner on; each run is timed by CUDA events
(cupy.cuda.Event, torch.cuda.Event; wall clock on strict) after the warm-up, no pause;
results under <out>/gpu/ops_<device>.{json,md} (:func:`main_device`).
"""
# _common must come first: it sets the BLAS thread count before NumPy loads.
from benchmarks._common import (THREADS, machine_info, machine_line, matmul_peak_gflops, median_ms,  # noqa: I001
                                rel_error, timed, warn_if_threads_not_applied)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402

PARITY_RTOL = 1e-4  # float32, on max-normalised errors
LEVELS = [(64, 256), (128, 128), (256, 64), (512, 32)]  # (channels, size) of U-Net levels
TARGETS = {"conv2d 3x3": 1.5, "max_pool2d": 1.5,  # case-name prefix -> target ratio (issue 4)
           "conv2d depthwise": 1.5}  # issue 26
DEPTHWISE = [(32, 112, 1), (64, 112, 2), (128, 56, 1), (256, 28, 1), (512, 14, 1)]  # MobileNet (C, size, stride)
DEPTHWISE_BATCH = 8


def target_of(case):
    """The issue's target ratio for a case, or None where it sets none."""
    return next((t for prefix, t in TARGETS.items() if case.startswith(prefix)), None)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.ops", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=int(THREADS), help="BLAS / torch threads (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per library and case (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per library and case (default 1)")
    p.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    p.add_argument("--pause", type=float, default=0.1,
                   help="seconds of sleep before each timed run, so that the other library's idle "
                        "BLAS/OpenMP threads have stopped spinning (default 0.1)")
    p.add_argument("--only", default="", help="run only cases whose name contains this text")
    p.add_argument("--quick", action="store_true", help="divide every size by 8 (smoke test)")
    p.add_argument("--backend", default=None, help="minidl kernel backend (default: the automatic choice)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results directory")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    p.add_argument("--device", choices=["cpu", "cuda", "strict"], default="cpu",
                   help="where minidl runs (default cpu); cuda: against PyTorch on the same GPU; "
                        "strict: the strict test device at --dry's sizes")
    p.add_argument("--dry", action="store_true",
                   help="the --device code path on the strict test device, sizes divided by 32")
    args = p.parse_args(argv)
    if args.dry:
        args.device = "strict"
    return args


def cases(batch, quick, scale=None):
    """(name, inputs {name: array}, fn(inputs, lib), forward+backward flops or None).

    ``lib`` is minidl.functional or :func:`torch_functional`; inputs named ``target*`` get
    no gradient."""
    rng = np.random.default_rng(0)
    smallest = 4 if scale else 1  # --dry's scale: every case keeps a 4x4 input at least
    scale = scale or (8 if quick else 1)

    def randn(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    out = []
    for channels, size in LEVELS:
        size = max(size // scale, smallest)
        c = channels
        # conv2d 3x3 pad 1: forward N*F*OH*OW*K multiply-adds, and as many in each backward product
        x, w, b = randn(batch, c, size, size), randn(c, c, 3, 3) * 0.05, randn(c)
        flops = 3 * 2 * batch * c * size * size * c * 9
        out.append((f"conv2d 3x3 {c}@{size}", {"x": x, "weight": w, "bias": b},
                    lambda t, lib: lib.conv2d(t["x"], t["weight"], t["bias"], padding=1), flops))
        # conv_transpose2d 2x2 stride 2: 2C -> C, input at half the size
        half = size // 2
        x, w, b = randn(batch, 2 * c, half, half), randn(2 * c, c, 2, 2) * 0.05, randn(c)
        flops = 3 * 2 * batch * (2 * c) * half * half * c * 4
        out.append((f"conv_transpose2d 2x2/2 {2 * c}->{c}@{half}", {"x": x, "weight": w, "bias": b},
                    lambda t, lib: lib.conv_transpose2d(t["x"], t["weight"], t["bias"], stride=2), flops))
        # max_pool2d 2x2 (distinct values: no ties)
        x = rng.permutation(batch * c * size * size).reshape(batch, c, size, size).astype(np.float32)
        out.append((f"max_pool2d 2x2 {c}@{size}", {"x": x / x.size},
                    lambda t, lib: lib.max_pool2d(t["x"], 2), None))
        out.append((f"relu {c}@{size}", {"x": randn(batch, c, size, size)},
                    lambda t, lib: lib.relu(t["x"]), None))
        skip, up = randn(batch, c, size, size), randn(batch, c, size, size)
        out.append((f"cat 2x{c}@{size}", {"skip": skip, "up": up},
                    lambda t, lib: lib.cat([t["skip"], t["up"]], dim=1), None))
    size = max(256 // scale, smallest)
    out.append((f"softmax 2 classes @{size}", {"x": randn(batch, 2, size, size)},
                lambda t, lib: lib.softmax(t["x"], dim=1), None))
    for classes, size in [(2, max(256 // scale, smallest)), (21, max(128 // scale, smallest))]:
        logits = randn(batch, classes, size, size)
        target = rng.integers(0, classes, (batch, size, size))
        out.append((f"cross_entropy {classes} classes @{size}", {"x": logits, "target": target},
                    lambda t, lib: lib.cross_entropy(t["x"], t["target"]), None))
    size = max(256 // scale, smallest)
    logits = randn(batch, 1, size, size)
    target = rng.integers(0, 2, (batch, 1, size, size)).astype(np.float32)
    out.append((f"bce_with_logits 1 channel @{size}", {"x": logits, "target": target},
                lambda t, lib: lib.binary_cross_entropy_with_logits(t["x"], t["target"]), None))
    for c, size, stride in DEPTHWISE:
        size = max(size // scale, smallest)
        # forward N*C*OH*OW*9 multiply-adds, and as many in each of dx and dweight
        x, w, b = randn(DEPTHWISE_BATCH, c, size, size), randn(c, 1, 3, 3) / 3, randn(c)
        out_size = (size - 1) // stride + 1
        flops = 3 * 2 * DEPTHWISE_BATCH * c * out_size * out_size * 9
        out.append((f"conv2d depthwise 3x3 {c}@{size}" + (f"/{stride}" if stride > 1 else ""),
                    {"x": x, "weight": w, "bias": b},
                    lambda t, lib, stride=stride, c=c: lib.conv2d(t["x"], t["weight"], t["bias"], stride=stride,
                                                               padding=1, groups=c), flops))
    return out


def torch_functional(torch):
    """torch.nn.functional plus torch.cat: the names minidl.functional has, for the same lambdas."""
    names = {n: getattr(torch.nn.functional, n) for n in dir(torch.nn.functional) if not n.startswith("_")}
    return SimpleNamespace(**names, cat=torch.cat)


def _needs_grad(name, array):
    return array.dtype.kind == "f" and not name.startswith("target")


def _run(fn, tensors, lib, dy):
    y = fn(tensors, lib)
    (y * dy).sum().backward()
    return y


def bench_case(torch, name, arrays, fn, flops, repeats, warmup, pause=0.0):
    mine = {k: minidl.tensor(a, requires_grad=_needs_grad(k, a)) for k, a in arrays.items()}
    theirs = {k: torch.tensor(a, requires_grad=_needs_grad(k, a)) for k, a in arrays.items()}
    with minidl.no_grad():
        y_shape = fn(mine, F).shape
    dy_np = np.random.default_rng(1).standard_normal(y_shape).astype(np.float32)
    dy_mine, dy_theirs = minidl.tensor(dy_np), torch.tensor(dy_np)
    F_torch = torch_functional(torch)

    # parity: one run of each from the same inputs
    y = _run(fn, mine, F, dy_mine)
    y_ref = _run(fn, theirs, F_torch, dy_theirs)
    errors = {"output": rel_error(y.detach().numpy(), y_ref.detach().numpy())}
    for k in arrays:
        if _needs_grad(k, arrays[k]):
            errors[f"d{k}"] = rel_error(mine[k].grad.numpy(), theirs[k].grad.numpy())
    ok = all(e <= PARITY_RTOL for e in errors.values())

    def clear():
        for t in list(mine.values()) + list(theirs.values()):
            t.grad = None

    for _ in range(warmup):
        clear()
        _run(fn, mine, F, dy_mine)
        _run(fn, theirs, F_torch, dy_theirs)
    t_mine, t_theirs = [], []
    for _ in range(repeats):
        clear()
        time.sleep(pause)  # let the other library's idle worker threads stop spinning
        t_mine.append(timed(lambda: _run(fn, mine, F, dy_mine)))
        time.sleep(pause)
        t_theirs.append(timed(lambda: _run(fn, theirs, F_torch, dy_theirs)))
    ms_mine, ms_theirs = median_ms(t_mine), median_ms(t_theirs)
    row = {"case": name, "minidl_ms": ms_mine, "torch_ms": ms_theirs, "ratio": ms_mine / ms_theirs,
           "parity_ok": ok, "errors": errors}
    row["target"] = target_of(name)
    if flops:
        row["minidl_gflops"] = flops / ms_mine / 1e6
        row["torch_gflops"] = flops / ms_theirs / 1e6
    return row


def _ms(ms):
    """Milliseconds with 3 significant digits or more: 0.123, 1.23, 12.3, 123.4."""
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.3g}"


def markdown(result):
    m = result["machine"]
    lines = [
        "# Ops, forward + backward: minidl vs PyTorch",
        "",
        f"Batch {result['config']['batch']}, float32, median of {result['config']['repeats']} runs, "
        f"alternating in one process. minidl backend: `{m['minidl_backend']}`. "
        f"Measured float32 matrix-product peak (NumPy BLAS, 2048x2048, best of before and after the "
        f"cases): {result['matmul_peak_gflops']:.1f} GFLOP/s "
        f"({result['matmul_peak_gflops_before']:.1f} before, "
        f"{result['matmul_peak_gflops_after']:.1f} after).",
        "",
        "| case | minidl ms | PyTorch ms | ratio | target | minidl GFLOP/s (% of peak) "
        "| PyTorch GFLOP/s (% of peak) | parity |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    peak = result["matmul_peak_gflops"]
    for r in result["rows"]:
        gf = tg = ""
        if "minidl_gflops" in r:
            gf = f"{r['minidl_gflops']:.1f} ({100 * r['minidl_gflops'] / peak:.0f}%)"
            tg = f"{r['torch_gflops']:.1f} ({100 * r['torch_gflops'] / peak:.0f}%)"
        worst = max(r["errors"].values())
        target = r.get("target")
        ratio = f"**{r['ratio']:.2f}**" if target and r["ratio"] > target else f"{r['ratio']:.2f}"
        parity = f"{'OK' if r['parity_ok'] else 'MISMATCH'} ({worst:.0e})"
        lines.append(f"| {r['case']} | {_ms(r['minidl_ms'])} | {_ms(r['torch_ms'])} | {ratio} | "
                     f"{target or ''} | {gf} | {tg} | {parity} |")
    lines += ["", machine_line(m), "",
              "GFLOP/s: 2 x multiply-adds of the forward and both backward products; % of the "
              "float32 matrix-product peak measured above. Ratios in bold miss their target. "
              "conv2d counts the multiply-adds of the direct convolution: where it takes the "
              "Winograd path (3x3 with at least 128 channels, minidl/ops/conv_winograd.py) it does "
              "fewer, so its rate can exceed the peak.", "",
              f"Reproduce: `python -m benchmarks.ops {result['config']['argv']}`".rstrip(), ""]
    return "\n".join(lines)


def chart(result, path):
    """Ratio per case, coloured against the case's target, with the 1.5 line."""
    from benchmarks._charts import save_ratio_chart

    rows = result["rows"]
    save_ratio_chart(path, [{"labels": [r["case"] for r in rows], "ratios": [r["ratio"] for r in rows],
                             "targets": [r["target"] for r in rows], "target": 1.5,
                             "title": "forward + backward time (target 1.5: conv2d 3x3, max_pool2d)"}],
                     f"Ops: minidl / PyTorch, batch {result['config']['batch']}, "
                     f"{result['machine']['threads']} threads, backend {result['machine']['minidl_backend']}")


def bench_case_device(torch, target, name, arrays, fn, flops, repeats, warmup):
    """One case with minidl on ``target`` (benchmarks/_gpu.py) and PyTorch next to it: parity
    from one run each, then ``warmup`` untimed and ``repeats`` event-timed runs, alternating."""
    from benchmarks import _gpu

    torch_device = _gpu.torch_device_name(target)
    mine = {k: minidl.tensor(a, requires_grad=_needs_grad(k, a), device=target.name)
            for k, a in arrays.items()}
    theirs = {k: torch.tensor(a, requires_grad=_needs_grad(k, a), device=torch_device)
              for k, a in arrays.items()}
    with minidl.no_grad():
        y_shape = fn(mine, F).shape
    dy_np = np.random.default_rng(1).standard_normal(y_shape).astype(np.float32)
    dy_mine = minidl.tensor(dy_np, device=target.name)
    dy_theirs = torch.tensor(dy_np, device=torch_device)
    F_torch = torch_functional(torch)

    y = _run(fn, mine, F, dy_mine)
    y_ref = _run(fn, theirs, F_torch, dy_theirs)
    errors = {"output": rel_error(y.detach().cpu().numpy(), y_ref.detach().cpu().numpy())}
    for k in arrays:
        if _needs_grad(k, arrays[k]):
            errors[f"d{k}"] = rel_error(mine[k].grad.cpu().numpy(), theirs[k].grad.cpu().numpy())
    ok = all(e <= PARITY_RTOL for e in errors.values())

    def clear():
        for t in list(mine.values()) + list(theirs.values()):
            t.grad = None

    for _ in range(warmup):
        clear()
        _run(fn, mine, F, dy_mine)
        _run(fn, theirs, F_torch, dy_theirs)
    clocks = {"minidl": target.clock(), "torch": _gpu.torch_clock(torch, torch_device)}
    times = {"minidl": [], "torch": []}
    for _ in range(repeats):
        for lib, tensors, functional, dy in (("minidl", mine, F, dy_mine),
                                             ("torch", theirs, F_torch, dy_theirs)):
            clear()
            clock = clocks[lib]
            clock.marks = []
            clock.mark()
            _run(fn, tensors, functional, dy)
            clock.mark()
            times[lib].append(clock.intervals_ms()[0])
    ms = {lib: float(np.median(v)) for lib, v in times.items()}
    row = {"case": name, "minidl_ms": ms["minidl"], "torch_ms": ms["torch"],
           "ratio": ms["minidl"] / ms["torch"], "parity_ok": bool(ok), "errors": errors,
           "target": 2.0 if name.startswith("conv2d 3x3") else None}  # issue 28: conv2d <= 2x cuDNN
    if flops:
        row["minidl_tflops"] = flops / ms["minidl"] / 1e9
        row["torch_tflops"] = flops / ms["torch"] / 1e9
    return row


def device_markdown(result):
    e = result["environment"]
    lines = ["# Ops on a GPU, forward + backward: minidl vs PyTorch", "",
             f"minidl on `{result['device']}`, PyTorch on `{result['torch_device']}`, batch "
             f"{result['config']['batch']}, float32, median of {result['config']['repeats']} event-timed "
             f"runs after {result['config']['warmup']} warm-up runs.", "",
             "| case | minidl ms | PyTorch ms | ratio | target | minidl TFLOP/s | PyTorch TFLOP/s | parity |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['case']} | error: {r['error']} | | | | | | FAILED |")
            continue
        worst = max(r["errors"].values())
        lines.append(f"| {r['case']} | {_ms(r['minidl_ms'])} | {_ms(r['torch_ms'])} | {r['ratio']:.2f} | "
                     f"{r['target'] or ''} | {r.get('minidl_tflops', 0):.3g} | {r.get('torch_tflops', 0):.3g} | "
                     f"{'OK' if r['parity_ok'] else 'MISMATCH'} ({worst:.0e}) |")
    lines += ["", f"Device: {e.get('gpu_name', result['device'])}; CuPy {e.get('cupy')}; torch "
              f"{e.get('torch')}; {e['date_utc']}.", "",
              f"Reproduce: `PYTHONPATH=. python -m benchmarks.ops {result['config']['argv']}`", ""]
    return "\n".join(lines)


def run_device_cases(torch, target, batch, scale, repeats, warmup, only="", deadline=None):
    """Every case (or those whose name contains ``only``) on ``target``; a case that raises is a
    row with its error; cases after ``deadline`` (time.perf_counter) are skipped."""
    import traceback

    from benchmarks._gpu_step import set_torch_float32

    set_torch_float32(torch, "cuda" if target.is_gpu else "cpu")
    rows = []
    for name, arrays, fn, flops in cases(batch, False, scale=scale):
        if only not in name:
            continue
        if deadline is not None and time.perf_counter() > deadline:
            rows.append({"case": name, "skipped": "time budget spent"})
            continue
        try:
            rows.append(bench_case_device(torch, target, name, arrays, fn, flops, repeats, warmup))
        except Exception as error:  # noqa: BLE001  (reported, the other cases still run)
            rows.append({"case": name, "error": f"{type(error).__name__}: {error}",
                         "traceback": traceback.format_exc(), "parity_ok": False})
    return rows


def main_device(args, argv):
    import torch

    from benchmarks import _gpu

    if args.device == "strict":
        torch.set_num_threads(args.threads)
    target = _gpu.Target(args.device)
    scale = 32 if args.device == "strict" else 8 if args.quick else 1  # strict: NumPy underneath
    rows = run_device_cases(torch, target, args.batch, scale, args.repeats, args.warmup, args.only)
    for r in rows:
        print(f"{r['case']:40s} " + (f"minidl {r['minidl_ms']:9.3f} ms  torch {r['torch_ms']:9.3f} ms  "
                                     f"ratio {r['ratio']:6.2f}  parity {'OK' if r['parity_ok'] else 'MISMATCH'}"
                                     if "ratio" in r else r.get("error", r.get("skipped", ""))), flush=True)
    result = {"benchmark": "ops", "device": args.device, "torch_device": _gpu.torch_device_name(target),
              "config": {"batch": args.batch, "repeats": args.repeats, "warmup": args.warmup,
                         "scale": scale, "argv": " ".join(sys.argv[1:] if argv is None else argv)},
              "environment": _gpu.environment(target, torch), "rows": rows}
    if not args.no_save:
        out = args.out / "gpu"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"ops_{args.device}.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / f"ops_{args.device}.md").write_text(device_markdown(result))
        print(f"wrote {out}/ops_{args.device}.json and .md")
    return 0 if all(r.get("parity_ok") for r in rows if "skipped" not in r) else 1


def main(argv=None):
    args = parse_args(argv)
    if args.device != "cpu":
        return main_device(args, argv)
    warn_if_threads_not_applied(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    if args.backend:
        minidl.backend.set_backend(args.backend)
    peak = matmul_peak_gflops()
    print(f"float32 matrix-product peak: {peak:.1f} GFLOP/s ({args.threads} threads)")
    rows = []
    for name, arrays, fn, flops in cases(args.batch, args.quick):
        if args.only not in name:
            continue
        row = bench_case(torch, name, arrays, fn, flops, args.repeats, args.warmup, args.pause)
        rows.append(row)
        print(f"{name:40s} minidl {row['minidl_ms']:9.1f} ms  torch {row['torch_ms']:9.1f} ms  "
              f"ratio {row['ratio']:5.2f}  parity {'OK' if row['parity_ok'] else 'MISMATCH'}", flush=True)
    peak_after = matmul_peak_gflops()  # again: on a busy machine one measurement can be low
    print(f"float32 matrix-product peak after the cases: {peak_after:.1f} GFLOP/s")
    result = {
        "benchmark": "ops",
        "config": {"batch": args.batch, "repeats": args.repeats, "warmup": args.warmup,
                   "pause_s": args.pause,
                   "quick": args.quick, "argv": " ".join(sys.argv[1:] if argv is None else argv)},
        "machine": machine_info(torch, args.threads),
        "matmul_peak_gflops": max(peak, peak_after),
        "matmul_peak_gflops_before": peak,
        "matmul_peak_gflops_after": peak_after,
        "rows": rows,
    }
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"ops_{result['machine']['minidl_backend']}"
        (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / f"{stem}.md").write_text(markdown(result))
        chart(result, args.out / f"{stem}.png")
        print(f"wrote {args.out / stem}.json, .md and .png")
    return 0 if all(r["parity_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
