"""The backend kernels alone: reference vs Numba vs the nearest PyTorch op, at U-Net sizes.

Cases (batch 2, float32, the U-Net levels 64@256^2, 128@128^2, 256@64^2, 512@32^2):
  im2col    3x3, padding 1     PyTorch: F.unfold (the same layout, (N, K, L))
  col2im    3x3, padding 1     PyTorch: F.fold
  maxpool2d_forward   2x2/2    PyTorch: F.max_pool2d(..., return_indices=True)
  maxpool2d_backward  2x2/2    PyTorch: max_pool2d's backward, i.e. max_unpool2d of dy
Each kernel's result is checked against the reference first (exact: the Numba loops add in
the reference's order); then reference and Numba alternate for `--repeats` timed calls,
and PyTorch is timed after all of them (its OpenMP threads spin after each op and would slow
kernels that follow in the same process); medians are reported. Compilation is excluded (one untimed call first); for compile times see
``python -m benchmarks.numba_compile``.

    python -m benchmarks.kernels                 # 2 threads, writes results/kernels.{json,md}
    python -m benchmarks.kernels --repeats 3 --no-save
"""
# _common must come first: it sets the BLAS / Numba thread counts before NumPy loads.
from benchmarks._common import THREADS, machine_info, machine_line, median_ms, timed  # noqa: I001

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from minidl.backend import kernel_module  # noqa: E402

LEVELS = [(64, 256), (128, 128), (256, 64), (512, 32)]
CONV = (3, 3, 1, 1, 1, 1, 1, 1)  # KH, KW, SH, SW, PH, PW, DH, DW
BACKENDS = ("reference", "numba")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=int(THREADS), help="Numba / torch threads (default 2)")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per kernel (default 7)")
    p.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results directory")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    return p.parse_args(argv)


def cases(torch, batch):
    """(name, {backend: call}, torch call): each call takes its module and returns its result."""
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    for C, S in LEVELS:
        x = rng.standard_normal((batch, C, S, S)).astype(np.float32)
        cols = rng.standard_normal((batch, C * 9, S * S)).astype(np.float32)  # (N, K, OH*OW)
        xt = torch.from_numpy(x)
        colst = torch.from_numpy(cols)
        yield (f"im2col 3x3 {C}@{S}", lambda k, x=x: k.im2col(x, *CONV),
               lambda xt=xt: F.unfold(xt, 3, padding=1))
        yield (f"col2im 3x3 {C}@{S}", lambda k, c=cols, s=x.shape: k.col2im(c, s, *CONV),
               lambda c=colst, S=S: F.fold(c, (S, S), 3, padding=1))
        half = S // 2
        pool = (2, 2, 2, 2, 0, 0, 1, 1, half, half)
        _, argmax = kernel_module("reference").maxpool2d_forward(x, *pool)
        dy = rng.standard_normal((batch, C, half, half)).astype(np.float32)
        yt, it = F.max_pool2d(xt, 2, return_indices=True)
        dyt = torch.from_numpy(dy)
        yield (f"maxpool2d_forward 2x2 {C}@{S}",
               lambda k, x=x, pool=pool: k.maxpool2d_forward(x, *pool),
               lambda xt=xt: F.max_pool2d(xt, 2, return_indices=True))
        yield (f"maxpool2d_backward 2x2 {C}@{S}",
               lambda k, dy=dy, a=argmax, s=x.shape: k.maxpool2d_backward(dy, a, s),
               lambda dyt=dyt, it=it, S=S: F.max_unpool2d(dyt, it, 2, output_size=(S, S)))


def bench_minidl(name, call, repeats):
    """Check the Numba result against the reference, then time both, alternating."""
    modules = {b: kernel_module(b) for b in BACKENDS}
    results = {b: call(m) for b, m in modules.items()}  # also compiles the Numba kernel

    def parts(result):  # a kernel returns one array or a tuple of them
        return result if isinstance(result, tuple) else (result,)

    same = all(np.array_equal(a, b) for backend in BACKENDS[1:]
               for a, b in zip(parts(results["reference"]), parts(results[backend])))
    times = {b: [] for b in BACKENDS}
    for _ in range(repeats):
        for b, m in modules.items():
            times[b].append(timed(lambda: call(m)))
    row = {"case": name, "equal_to_reference": bool(same)}
    row.update({f"{b}_ms": median_ms(t) for b, t in times.items()})
    return row


def bench_torch(torch_call, repeats):
    torch_call()
    return median_ms([timed(torch_call) for _ in range(repeats)])


def markdown(result):
    m = result["machine"]
    lines = ["# Backend kernels: reference vs Numba vs PyTorch", "",
             f"Batch {result['config']['batch']}, float32, median of {result['config']['repeats']} "
             "calls, alternating in one process; compilation excluded.", "",
             "| kernel | reference ms | numba ms | PyTorch ms | numba / PyTorch | equal |",
             "|---|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['case']} | {r['reference_ms']:.1f} | {r['numba_ms']:.1f} | "
                     f"{r['torch_ms']:.1f} | {r['numba_ms'] / r['torch_ms']:.2f} | "
                     f"{'yes' if r['equal_to_reference'] else 'NO'} |")
    lines += ["", machine_line(m), "",
              f"Reproduce: `python -m benchmarks.kernels {result['config']['argv']}`".rstrip(), ""]
    return "\n".join(lines)


def chart(result, path):
    """numba / PyTorch and numba / reference time per kernel case (the issue sets no target)."""
    from benchmarks._charts import save_ratio_chart

    rows = result["rows"]
    labels = [r["case"] for r in rows]
    save_ratio_chart(path, [
        {"labels": labels, "ratios": [r["numba_ms"] / r["torch_ms"] for r in rows], "target": None,
         "title": "numba / nearest PyTorch op", "ylabel": "time ratio"},
        {"labels": labels, "ratios": [r["numba_ms"] / r["reference_ms"] for r in rows], "target": None,
         "title": "numba / reference", "ylabel": "time ratio"},
    ], f"Backend kernels, batch {result['config']['batch']}, {result['machine']['threads']} threads")


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    # minidl first, PyTorch after: PyTorch's OpenMP threads spin after each op and would slow
    # the kernels that follow them in the same process.
    all_cases = list(cases(torch, args.batch))
    rows = [bench_minidl(name, call, args.repeats) for name, call, _ in all_cases]
    for row, (_, _, torch_call) in zip(rows, all_cases):
        row["torch_ms"] = bench_torch(torch_call, args.repeats)
        print(f"{row['case']:34s} reference {row['reference_ms']:8.1f} ms  "
              f"numba {row['numba_ms']:7.1f} ms  torch {row['torch_ms']:7.1f} ms  "
              f"equal {row['equal_to_reference']}", flush=True)
    result = {"benchmark": "kernels",
              "config": {"batch": args.batch, "repeats": args.repeats,
                         "argv": " ".join(sys.argv[1:] if argv is None else argv)},
              "machine": machine_info(torch, args.threads), "rows": rows}
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "kernels.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "kernels.md").write_text(markdown(result))
        chart(result, args.out / "kernels.png")
        print(f"wrote {args.out / 'kernels'}.json, .md and .png")
    return 0 if all(r["equal_to_reference"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
