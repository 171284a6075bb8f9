"""float32 rounding of conv2d by Winograd F(4x4, 3x3) and by im2col, against float64.

For 3x3 'same' convolutions at the U-Net sizes of ``benchmarks.ops`` (batch 1, weights scaled
like PyTorch's default initialisation), conv2d forward + backward runs three times on the same
numbers: float32 by Winograd, float32 by im2col, float64 by im2col (the reference). For y, dx
and dweight it reports max |float32 - float64| / max |float64|. No timing, no PyTorch.

    python -m benchmarks.winograd_rounding          # writes results/winograd_rounding.{json,md}
    python -m benchmarks.winograd_rounding --no-save
"""
# _common must come first: it sets the BLAS / Numba thread counts before NumPy loads.
from benchmarks._common import THREADS, rel_error  # noqa: I001

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SIZES = ((64, 256), (128, 128), (256, 64), (512, 32))  # (channels, height = width)
PATHS = ("winograd", "im2col")  # forced with minidl.backend.conv_algorithm


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.winograd_rounding",
                                description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=int(THREADS), help="Numba / BLAS threads (default 2)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results directory")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    return p.parse_args(argv)


def forward_backward(x, w, dy):
    """[y, dx, dweight] of conv2d(x, w, padding=1) with upstream gradient dy."""
    import minidl
    from minidl.functional.conv import conv2d

    xt, wt = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    y = conv2d(xt, wt, padding=1)
    y.backward(minidl.tensor(dy))
    return [y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()]


def measure(channels, size, seed=0):
    from minidl.backend import conv_algorithm

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, channels, size, size))
    w = rng.uniform(-1, 1, (channels, channels, 3, 3)) / np.sqrt(9 * channels)
    dy = rng.standard_normal((1, channels, size, size))
    with conv_algorithm("im2col"):
        exact = forward_backward(x, w, dy)  # float64, the textbook route
    errors = {}
    for path in PATHS:
        with conv_algorithm(path):
            approx = forward_backward(*(a.astype(np.float32) for a in (x, w, dy)))
        errors[path] = {name: rel_error(a, e) for name, a, e in zip(("y", "dx", "dweight"), approx, exact)}
    return {"case": f"{channels}@{size}", "errors": errors}


def markdown(rows):
    lines = ["# conv2d float32 rounding: Winograd F(4x4, 3x3) and im2col against float64", "",
             "max |float32 - float64| / max |float64| of conv2d 3x3, padding 1, batch 1; "
             "float64 by im2col is the reference.", "",
             "| case | y Winograd | y im2col | dx Winograd | dx im2col | dweight Winograd | dweight im2col |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        e = r["errors"]
        cells = [f"{e[path][name]:.1e}" for name in ("y", "dx", "dweight") for path in PATHS]
        lines.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", "Reproduce: `python -m benchmarks.winograd_rounding`", ""])


def main(argv=None):
    args = parse_args(argv)
    rows = []
    for channels, size in SIZES:
        rows.append(measure(channels, size))
        e = rows[-1]["errors"]
        print(f"{rows[-1]['case']:>8}  " + "  ".join(
            f"{name} winograd {e['winograd'][name]:.1e} im2col {e['im2col'][name]:.1e}"
            for name in ("y", "dx", "dweight")), flush=True)
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "winograd_rounding.json").write_text(json.dumps({"rows": rows}, indent=1))
        (args.out / "winograd_rounding.md").write_text(markdown(rows))
        print(f"wrote {args.out / 'winograd_rounding.json'} and .md")


if __name__ == "__main__":
    main()
