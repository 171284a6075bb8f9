"""Where minidl's U-Net training step spends its time, next to PyTorch's total.

Splits the step (the one of benchmarks.unet_step: forward, cross-entropy, backward, Adam)
into matrix products, im2col/tiles, pooling, elementwise and Python overhead, by timing
the self time of every minidl op, kernel and optimizer call (benchmarks/_profiler.py says
exactly what each category holds). minidl's profiled steps alternate with unprofiled
PyTorch steps, whose median is drawn as a marker for scale.

    python -m benchmarks.unet_profile --base 32            # same as: unet_step --profile
    python -m benchmarks.unet_profile --base 16 --size 64 --repeats 2

Writes benchmarks/results/unet_step_profile.{json,md,png}.
"""
# _common must come first: it sets the BLAS / Numba thread counts before NumPy loads.
from benchmarks._common import machine_info, machine_line, median_ms  # noqa: I001

import sys  # noqa: E402
import time  # noqa: E402

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402

from benchmarks._profiler import CATEGORIES, OpProfiler, wrapper_cost_seconds  # noqa: E402
from benchmarks.unet_step import (build_minidl, build_torch, make_batch, save,  # noqa: E402
                                  train_step)

TOP_OPS = 15  # rows of the per-op table


def profile_base(torch, args, base):
    model, opt = build_minidl(base, args.seed)
    twin, topt = build_torch(torch, model)
    x_np, t_np = make_batch(args.seed, args.batch, args.size)
    x, target = minidl.tensor(x_np), minidl.tensor(t_np)
    xt, tt = torch.from_numpy(x_np), torch.from_numpy(t_np)
    for _ in range(1 + args.warmup):  # compile / first touch outside the profile
        train_step(model, opt, x, target, F)
        train_step(twin, topt, xt, tt, torch.nn.functional)
    wall, torch_times = 0.0, []
    with OpProfiler() as prof:
        for _ in range(args.repeats):
            time.sleep(args.pause)  # as in unet_step: idle worker threads of the other library stop
            start = time.perf_counter()
            train_step(model, opt, x, target, F)
            wall += time.perf_counter() - start
            time.sleep(args.pause)
            start = time.perf_counter()
            train_step(twin, topt, xt, tt, torch.nn.functional)  # not a minidl call: untouched
            torch_times.append(time.perf_counter() - start)
    if not any(kind == "kernel" for kind, _ in prof.self_time):
        print("warning: no kernel calls were seen: the ops may reach their kernels other than through "
              "kernels_for(x).<name>, and im2col/tiles/pooling time then counts as op time",
              file=sys.stderr)
    n = args.repeats
    calls_per_step = sum(prof.calls.values()) / n
    return {
        "base": base,
        "minidl_ms_per_step": 1e3 * wall / n,  # mean of the profiled steps (categories add up to it)
        "torch_median_ms": median_ms(torch_times),
        "categories_ms": {k: 1e3 * v / n for k, v in prof.by_category(wall).items()},
        "wrapped_calls_per_step": calls_per_step,
        "profiler_cost_ms_per_step": 1e3 * calls_per_step * wrapper_cost_seconds(),
        "ops": [{"kind": kind, "name": name, "category": cat, "ms_per_step": 1e3 * s / n,
                 "calls_per_step": calls / n} for kind, name, cat, s, calls in prof.rows()],
    }


def print_row(r):
    total = r["minidl_ms_per_step"]
    print(f"B={r['base']}: minidl {total:.1f} ms/step profiled (PyTorch {r['torch_median_ms']:.1f} ms); "
          f"{r['wrapped_calls_per_step']:.0f} wrapped calls/step, profiler cost ~"
          f"{r['profiler_cost_ms_per_step']:.1f} ms/step")
    for k, v in r["categories_ms"].items():
        print(f"    {k:18s} {v:9.1f} ms  {100 * v / total:5.1f} %")
    print("    top ops by self time:")
    for op in r["ops"][:8]:
        print(f"      {op['name']:34s} {op['category']:16s} {op['ms_per_step']:8.1f} ms  "
              f"x{op['calls_per_step']:.0f}")


def markdown(result):
    c, m = result["config"], result["machine"]
    lines = [
        "# Where minidl's U-Net training step spends its time",
        "",
        f"`unet.UNet(1, 2, base_channels=B, depth=5, padding=\"same\")`, batch {c['batch']} of "
        f"1x{c['size']}x{c['size']}, cross-entropy, Adam; mean of {c['repeats']} profiled steps "
        f"after warm-up, {m['threads']} threads, backend `{m['minidl_backend']}`. Self time of "
        "every op, kernel and optimizer call (nested calls counted once, under the innermost); "
        "Python overhead = step wall time minus all of them.",
        "",
        "| B | " + " | ".join(CATEGORIES) + " | minidl total | PyTorch total |",
        "|---:|" + "---:|" * (len(CATEGORIES) + 2),
    ]
    for r in result["rows"]:
        total = r["minidl_ms_per_step"]
        cells = [f"{v:.1f} ({100 * v / total:.0f}%)" for v in r["categories_ms"].values()]
        lines.append(f"| {r['base']} | " + " | ".join(cells)
                     + f" | {total:.1f} | {r['torch_median_ms']:.1f} |")
    lines += [
        "",
        "All times in ms per step. What the categories hold:",
        "",
        "- **matrix products**: self time of the Conv2d / ConvTranspose2d (and Linear / MatMul) "
        "ops: the BLAS products **plus** the per-band zero padding, the copies of column "
        "blocks and the bias add that these ops do inline;",
        "- **im2col/tiles**: the kernels that lay convolutions out for the products: im2col, col2im, "
        "the shifted rows and the Winograd tile transforms (backend module functions);",
        "- **pooling**: pooling kernels and the pooling ops' own time;",
        "- **elementwise**: every other op (ReLU, cross-entropy, softmax, cat, pad, arithmetic), "
        "other kernels, and the optimizer (Adam update, zero_grad);",
        "- **Python overhead**: module calls, `Function.apply` (graph recording, Tensor creation), "
        "the autograd walk (ordering, broadcast sums, gradient accumulation) and the profiler's own "
        "wrappers (estimated below).",
        "",
    ]
    for r in result["rows"]:
        lines += [f"## B = {r['base']}: the {TOP_OPS} largest self times", "",
                  f"{r['wrapped_calls_per_step']:.0f} wrapped calls per step; the wrappers cost about "
                  f"{r['profiler_cost_ms_per_step']:.1f} ms per step (inside 'Python overhead').", "",
                  "| call | category | ms per step | calls per step |", "|---|---|---:|---:|"]
        for op in r["ops"][:TOP_OPS]:
            lines.append(f"| {op['kind']} `{op['name']}` | {op['category']} | {op['ms_per_step']:.1f} | "
                         f"{op['calls_per_step']:.0f} |")
        lines.append("")
    lines += [machine_line(m), "",
              f"Reproduce: `python -m benchmarks.unet_profile {c['argv']}`".rstrip(), ""]
    return "\n".join(lines)


def chart(result, path):
    from benchmarks._charts import save_stacked_chart

    rows = result["rows"]
    c = result["config"]
    save_stacked_chart(path, [f"B={r['base']}" for r in rows], list(CATEGORIES),
                       [list(r["categories_ms"].values()) for r in rows],
                       f"minidl U-Net step, batch {c['batch']} of {c['size']}x{c['size']}, "
                       f"{result['machine']['threads']} threads: where the time goes",
                       markers=[r["torch_median_ms"] for r in rows], marker_label="PyTorch step")


def run_profile(torch, args):
    """Profile each --base; print, and write unet_step_profile.{json,md,png} unless --no-save."""
    rows = []
    for base in args.base:
        row = profile_base(torch, args, base)
        rows.append(row)
        print_row(row)
    argv = " ".join(a for a in sys.argv[1:] if a != "--profile")
    result = {"benchmark": "unet_step_profile",
              "config": {"base": args.base, "batch": args.batch, "size": args.size,
                         "repeats": args.repeats, "warmup": args.warmup, "seed": args.seed,
                         "argv": argv},
              "machine": machine_info(torch, args.threads), "rows": rows}
    if not args.no_save:
        save(args, "unet_step_profile", result, markdown(result), chart)
    return 0


def main(argv=None):
    from benchmarks.unet_step import main as unet_step_main

    return unet_step_main(["--profile"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
