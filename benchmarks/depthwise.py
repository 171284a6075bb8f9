"""Depthwise 3x3 conv2d (MobileNet), forward + backward: minidl's depthwise route, its im2col route
and PyTorch, alternating in one process; and each one's float32 error against float64.

Cases (batch 8 unless --batch, float32, weight (C, 1, 3, 3), padding 1, bias): MobileNet's
depthwise layers 32ch@112, 64ch@112 stride 2 (-> 56), 128ch@56, 256ch@28, 512ch@14.

Method, per case: identical inputs, weights and upstream gradient dy (loss = sum(dy * y)) in
every variant, made into each library's tensors once, outside the timing; one untimed run of
each, then the three alternate for ``--repeats`` timed runs of forward + backward (the leaves'
gradients cleared first), each after a ``--pause`` (idle BLAS/OpenMP threads of the previous one
stop spinning); medians are reported. Accuracy: output and every gradient of each float32
variant against minidl's depthwise route in float64 on the same numbers, as max |error| /
max |float64 value|, the worst of (y, dx, dweight, dbias).

    python -m benchmarks.depthwise                  # -> benchmarks/results/depthwise.{json,md}
    python -m benchmarks.depthwise --repeats 3 --no-save
"""
# _common must come first: it sets the BLAS thread count before NumPy loads.
from benchmarks._common import THREADS, machine_info, machine_line, median_ms, timed, warn_if_threads_not_applied  # noqa: I001

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from minidl.backend import conv_algorithm  # noqa: E402

# (channels, input size, stride): MobileNet v1's depthwise 3x3 layers at 224x224 input
CASES = [(32, 112, 1), (64, 112, 2), (128, 56, 1), (256, 28, 1), (512, 14, 1)]
TARGET = 1.5  # issue 26: depthwise 3x3 forward + backward at most 1.5x PyTorch


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.depthwise", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=int(THREADS), help="BLAS / torch / Numba threads (default 2)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per variant and case (default 7)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--pause", type=float, default=0.1, help="seconds of sleep before each timed run")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results directory")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    return p.parse_args(argv)


def _minidl_step(route, stride, C):
    """One forward + backward of minidl on leaves made beforehand (gradients cleared first)."""
    def step(tensors, dy):
        for t in tensors:
            t.grad = None
        with conv_algorithm(route):
            y = F.conv2d(*tensors, stride=stride, padding=1, groups=C)
        y.backward(dy)
        return y
    return step


def _torch_step(torch, stride, C):
    def step(tensors, dy):
        for t in tensors:
            t.grad = None
        y = torch.nn.functional.conv2d(*tensors, stride=stride, padding=1, groups=C)
        y.backward(dy)
        return y
    return step


def _leaves(lib, arrays, dy):
    """(x, weight, bias) as leaves that require grad, and dy, in minidl or torch (copies)."""
    return [lib.tensor(a, requires_grad=True) for a in arrays], lib.tensor(dy)


def _results(step, lib, arrays, dy):
    """[y, dx, dweight, dbias] as NumPy arrays, from one step on fresh leaves."""
    tensors, dy_t = _leaves(lib, arrays, dy)
    y = step(tensors, dy_t)
    return [y.detach().numpy()] + [t.grad.numpy() for t in tensors]


def _error(results, reference):
    """The worst of max |a - b| / max |b| over (y, dx, dweight, dbias)."""
    return max(float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))
               for a, b in zip(results, reference))


def bench_case(torch, C, size, stride, batch, repeats, pause):
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal((batch, C, size, size))
    w64 = rng.standard_normal((C, 1, 3, 3)) / 3
    b64 = rng.standard_normal(C)
    OH = (size + 2 - 3) // stride + 1
    dy64 = rng.standard_normal((batch, C, OH, OH))
    arrays64 = [x64, w64, b64]
    arrays = [a.astype(np.float32) for a in arrays64]
    dy = dy64.astype(np.float32)
    # float64 reference on the float32 inputs' values (so only the computation's rounding counts)
    exact = _results(_minidl_step("depthwise", stride, C), minidl, [a.astype(np.float64) for a in arrays],
                     dy.astype(np.float64))
    steps = {"depthwise": (_minidl_step("depthwise", stride, C), minidl),
             "im2col": (_minidl_step("im2col", stride, C), minidl),
             "torch": (_torch_step(torch, stride, C), torch)}
    errors = {name: _error(_results(step, lib, arrays, dy), exact) for name, (step, lib) in steps.items()}
    leaves = {name: _leaves(lib, arrays, dy) for name, (step, lib) in steps.items()}  # made once, untimed
    for name, (step, _) in steps.items():
        step(*leaves[name])  # untimed: the leaves' first gradients
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, (step, _) in steps.items():
            time.sleep(pause)
            times[name].append(timed(lambda: step(*leaves[name])))
    ms = {name: median_ms(t) for name, t in times.items()}
    return {"case": f"{C}ch@{size}" + (f" stride {stride}" if stride > 1 else ""),
            "channels": C, "size": size, "stride": stride,
            "depthwise_ms": ms["depthwise"], "im2col_ms": ms["im2col"], "torch_ms": ms["torch"],
            "ratio": ms["depthwise"] / ms["torch"], "im2col_ratio": ms["im2col"] / ms["torch"],
            "float32_error": errors}


def markdown(result):
    cfg = result["config"]
    lines = ["# Depthwise 3x3 conv2d (MobileNet), forward + backward", "",
             f"Batch {cfg['batch']}, float32, weight (C, 1, 3, 3), padding 1, bias; median of "
             f"{cfg['repeats']} runs of each variant, alternating in one process. Ratio: time over "
             f"PyTorch's (target {TARGET}).", "",
             "| case | depthwise route ms | im2col route ms | PyTorch ms | depthwise / PyTorch "
             "| im2col / PyTorch | float32 error: depthwise | im2col | PyTorch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        e = r["float32_error"]
        ratio = f"**{r['ratio']:.2f}**" if r["ratio"] > TARGET else f"{r['ratio']:.2f}"
        lines.append(f"| {r['case']} | {r['depthwise_ms']:.2f} | {r['im2col_ms']:.2f} | {r['torch_ms']:.2f} "
                     f"| {ratio} | {r['im2col_ratio']:.2f} | {e['depthwise']:.1e} | {e['im2col']:.1e} "
                     f"| {e['torch']:.1e} |")
    lines += ["", machine_line(result["machine"]), "",
              "float32 error: the worst over y, dx, dweight and dbias of max |float32 - float64| / "
              "max |float64|, the float64 values computed by minidl's depthwise route from the same "
              "(float32-representable) inputs. Ratios in bold miss the target.", "",
              f"Reproduce: `python -m benchmarks.depthwise {cfg['argv']}`".rstrip(), ""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    warn_if_threads_not_applied(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for C, size, stride in CASES:
        row = bench_case(torch, C, size, stride, args.batch, args.repeats, args.pause)
        rows.append(row)
        e = row["float32_error"]
        print(f"{row['case']:22s} depthwise {row['depthwise_ms']:8.2f} ms  im2col {row['im2col_ms']:8.2f} ms  "
              f"torch {row['torch_ms']:8.2f} ms  ratio {row['ratio']:5.2f} (im2col {row['im2col_ratio']:5.2f})  "
              f"float32 error {e['depthwise']:.1e} / {e['im2col']:.1e} / torch {e['torch']:.1e}", flush=True)
    result = {"benchmark": "depthwise",
              "config": {"batch": args.batch, "repeats": args.repeats, "pause_s": args.pause,
                         "argv": " ".join(sys.argv[1:] if argv is None else argv)},
              "machine": machine_info(torch, args.threads), "rows": rows}
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "depthwise.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "depthwise.md").write_text(markdown(result))
        print(f"wrote {args.out / 'depthwise'}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
