"""How long OpenBLAS's idle threads should spin: minidl's training steps under each
``OPENBLAS_THREAD_TIMEOUT``, alternated in one process.

After a matrix product, NumPy's OpenBLAS threads spin for 2**n clock ticks before they sleep
(n = OPENBLAS_THREAD_TIMEOUT, read when OpenBLAS starts its threads). A spinning thread holds a core
that the parallel Numba kernel after the product needs; a sleeping one must be woken for the next
product. Which costs more depends on the machine and the model, so this measures it: each round
sets every value in turn (minidl.backend.openblas_threads.apply_thread_timeout restarts the
threads with it; the order reverses every round), and under each runs one untimed step and then
``--steps`` timed ones, a ``--pause`` before each, of every case: the seed models
(benchmarks.models: batch 2, 128x128) and U-Net steps (benchmarks.unet_step's model, BASE:BATCH:SIZE).
Reported per case: the median over rounds of the fastest timed step, and the median of the
per-round ratios to the first value (paired: the machine's drift cancels).

    python -m benchmarks.thread_timeout                     # 24,16,12,8; all models; two U-Net cases
    python -m benchmarks.thread_timeout --values 24,12 --models bn_unet --unet 16:8:128 --rounds 9

Writes benchmarks/results/thread_timeout.json and .md (unless --no-save).
"""
from benchmarks._common import THREADS, machine_info, machine_line, warn_if_threads_not_applied  # first: threads

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from minidl.backend.openblas_threads import apply_thread_timeout  # noqa: E402

from benchmarks import models as bench_models  # noqa: E402
from benchmarks import unet_step as bench_unet  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--values", default="24,16,12,8", help="OPENBLAS_THREAD_TIMEOUT exponents, the first the reference")
    p.add_argument("--models", nargs="*", default=list(bench_models.MODELS), help="seed models (default: all)")
    p.add_argument("--unet", nargs="*", default=["16:8:128", "16:4:256"], metavar="BASE:BATCH:SIZE",
                   help="U-Net steps (default 16:8:128 16:4:256)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of all values (default 5)")
    p.add_argument("--steps", type=int, default=2, help="timed steps per case and value in a round (default 2)")
    p.add_argument("--pause", type=float, default=0.05, help="seconds of sleep before each timed step")
    p.add_argument("--threads", type=int, default=int(THREADS))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    args.values = [int(v) for v in args.values.split(",")]
    for v in args.values:
        if not 4 <= v <= 30:
            p.error(f"--values: OpenBLAS takes exponents 4 to 30, got {v}")
    return args


def model_case(torch, name):
    """(label, step function) for seed model ``name`` as benchmarks.models runs it."""
    spec, defaults = bench_models.MODELS[name], bench_models.parse_args([])
    minidl.manual_seed(0)
    model = spec.build(defaults.widths[name])
    rng = np.random.default_rng(0)
    bench_models.randomise_zero_weights(model, rng)
    size = model.valid_input_size(defaults.size)
    model.eval()
    with minidl.no_grad():
        out_shape = tuple(model(minidl.zeros(1, spec.in_channels, size, size)).shape)
    model.train()
    x, t = bench_models.make_batch(rng, defaults.batch, spec.in_channels, size,
                                   (defaults.batch, *out_shape[1:]), spec.loss)
    loss_fn, x, t = bench_models.losses(torch, spec.loss)[0], minidl.tensor(x), minidl.tensor(t)
    return name, lambda: bench_models.step(model, loss_fn, x, t)


def unet_case(text):
    """(label, step function) for a U-Net step BASE:BATCH:SIZE as benchmarks.unet_step runs it."""
    base, batch, size = (int(v) for v in text.split(":"))
    model, opt = bench_unet.build_minidl(base, 0)
    x, t = bench_unet.make_batch(0, batch, size)
    x, t = minidl.tensor(x), minidl.tensor(t)
    return f"unet base {base}, {batch}x{size}x{size}", lambda: bench_unet.train_step(model, opt, x, t, F)


def set_timeout(value):
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(value)
    if not apply_thread_timeout():
        sys.exit("thread_timeout: NumPy's BLAS here is not an OpenBLAS whose threads can be restarted")


def run(cases, values, rounds, steps, pause):
    """{label: {value: [fastest timed step of each round, s]}}"""
    times = {label: {v: [] for v in values} for label, _ in cases}
    for r in range(rounds):
        for v in (values if r % 2 == 0 else values[::-1]):
            set_timeout(v)
            for label, step in cases:
                step()  # untimed: the first after the restart
                fastest = float("inf")
                for _ in range(steps):
                    time.sleep(pause)
                    start = time.perf_counter()
                    step()
                    fastest = min(fastest, time.perf_counter() - start)
                times[label][v].append(fastest)
        print(f"round {r + 1}/{rounds} done", flush=True)
    return times


def summary(times, values):
    rows = []
    for label, by_value in times.items():
        ref = by_value[values[0]]
        rows.append({"case": label,
                     "median_ms": {str(v): 1e3 * statistics.median(t) for v, t in by_value.items()},
                     "paired_ratio": {str(v): statistics.median(a / b for a, b in zip(t, ref))
                                      for v, t in by_value.items()},
                     "times_s": {str(v): t for v, t in by_value.items()}})
    return rows


def markdown(result):
    values = result["config"]["values"]
    lines = [f"# OPENBLAS_THREAD_TIMEOUT: minidl's steps under each value (`python -m benchmarks.thread_timeout "
             f"{result['config']['argv']}`)", "",
             f"{result['config']['rounds']} rounds, values alternated in one process (order reversed each round); "
             f"per case and value the median over rounds of the fastest of {result['config']['steps']} timed steps, "
             f"and in brackets the median per-round ratio to {values[0]}.", "",
             "| case | " + " | ".join(f"n = {v}" for v in values) + " |",
             "|---|" + "---:|" * len(values)]
    for row in result["rows"]:
        cells = [f"{row['median_ms'][str(v)]:.1f} ms ({row['paired_ratio'][str(v)]:.3f})" for v in values]
        lines.append(f"| {row['case']} | " + " | ".join(cells) + " |")
    lines += ["", machine_line(result["machine"]), ""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    warn_if_threads_not_applied(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    machine = machine_info(torch, args.threads)  # before the runs change the variable
    machine["openblas_thread_timeout"] = "varied"
    cases = [model_case(torch, name) for name in args.models] + [unet_case(text) for text in args.unet]
    for _, step in cases:  # compile and warm every kernel once before timing anything
        step()
    times = run(cases, args.values, args.rounds, args.steps, args.pause)
    result = {"benchmark": "thread_timeout",
              "config": {"values": args.values, "rounds": args.rounds, "steps": args.steps, "pause_s": args.pause,
                         "argv": " ".join(sys.argv[1:] if argv is None else argv)},
              "machine": machine, "rows": summary(times, args.values)}
    for row in result["rows"]:
        print(f"{row['case']:32s} " + "  ".join(
            f"{v}: {row['median_ms'][str(v)]:7.1f} ms ({row['paired_ratio'][str(v)]:.3f})" for v in args.values))
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "thread_timeout.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "thread_timeout.md").write_text(markdown(result))
        print(f"wrote {args.out / 'thread_timeout'}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
