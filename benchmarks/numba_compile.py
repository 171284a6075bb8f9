"""Numba compile time: the first call of every kernel, without and with the on-disk cache.

Numba compiles a kernel on its first call for each dtype; ``cache=True`` stores the machine
code so that the next process loads it instead. Each measurement runs in a FRESH Python
process with its own empty cache directory (``NUMBA_CACHE_DIR``, so the repository's
``__pycache__`` is neither used nor touched):

  cold     first process: compiles, and writes the cache
  cached   second process, same cache directory: loads

Two things are measured in each:
  kernels  every public kernel of ``minidl.backend.numba_cpu`` (im2col, col2im, max/avg pool
           forward and backward, the four Winograd tile transforms, the shifted rows) in
           float32 and float64 on tiny inputs, both ways it runs: on Numba's threads and as its
           serial twin on the calling thread (what small work takes): first call minus second
           call = the compile (or cache-load) time of that kernel, dtype and way;
  step     the first training step of a small U-Net-shaped network (conv2d 3x3 with 3, 8 and
           16 input channels, the last by shifted rows, and one with 128 channels by Winograd;
           max_pool2d, conv_transpose2d 2x2/2, cat, relu; float32, forward and backward),
           minus the second step: what a user waits for before training starts.
Plus ``import minidl`` (which must not import Numba) and ``import numba``.

    python -m benchmarks.numba_compile            # writes results/numba_compile.{json,md}
    python -m benchmarks.numba_compile --no-save
"""
# _common must come first: it sets the BLAS / Numba thread counts before NumPy loads.
from benchmarks._common import THREADS, machine_info, machine_line  # noqa: I001

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

STEP_BUDGET_S = 3.0  # the bound on the compile time of a cached first step
DTYPES = ("float32", "float64")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.numba_compile",
                                description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=int(THREADS), help="Numba / BLAS threads (default 2)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results directory")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    p.add_argument("--child", choices=["kernels", "step"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---- what runs in the fresh process -----------------------------------------------------------

def kernel_calls(np, dtype):
    """{kernel name: a call of it on tiny inputs of ``dtype``}: every public numba_cpu kernel."""
    from minidl.backend import numba_cpu as k

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    conv = (3, 3, 1, 1, 1, 1, 1, 1)
    cols = rng.standard_normal((2, 3 * 9, 8 * 8)).astype(dtype)  # (N, K, OH*OW)
    pool = (2, 2, 2, 2, 0, 0, 1, 1, 4, 4)
    dy = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    avg = (2, 2, 2, 2, 0, 0, 4, 4, True, None)
    argmax = np.zeros((2, 3, 4, 4), dtype=np.int64)  # any valid winners: cell 0 of each plane
    tiles = (1, 1, 2, 2, 0)  # Winograd: padding 1 of an 8x8 output, 2 x 2 tiles of 4x4 per sample
    V = rng.standard_normal((36, 3, 8)).astype(dtype)  # (points, channels, 2 * 2 * 2 tiles)
    y = np.empty((2, 3, 8, 8), dtype=dtype)
    depthwise = rng.standard_normal((3, 1, 3, 3)).astype(dtype)  # (C, M, KH, KW)
    return {
        "im2col": lambda: k.im2col(x, *conv),
        "col2im": lambda: k.col2im(cols, x.shape, *conv),
        "maxpool2d_forward": lambda: k.maxpool2d_forward(x, *pool),
        "maxpool2d_backward": lambda: k.maxpool2d_backward(dy, argmax, x.shape),
        "avgpool2d_forward": lambda: k.avgpool2d_forward(x, *avg),
        "avgpool2d_backward": lambda: k.avgpool2d_backward(dy, x.shape, *avg),
        "winograd_input_tiles": lambda: k.winograd_input_tiles(x, *tiles, 8),
        "winograd_input_tiles_adjoint": lambda: k.winograd_input_tiles_adjoint(V, *tiles, np.zeros_like(x)),
        "winograd_output_tiles": lambda: k.winograd_output_tiles(V, *tiles[2:], y),
        "winograd_output_tiles_adjoint": lambda: k.winograd_output_tiles_adjoint(x, *tiles[2:], 8),
        # rows 0 .. 7 of a 3x3 'same' conv2d of x: padding 1, canvas width 8 + 2
        "stack_shifted_rows": lambda: k.stack_shifted_rows(x, 0, 8, 3, 3, 1, 1, 1, 1, 10, 1),
        # a depthwise 3x3 'same' conv2d of x (multiplier 1): stride 1, padding 1, dilation 1
        "depthwise_conv2d": lambda: k.depthwise_conv2d(x, depthwise, 1, 1, 1, 1, 1, 1, 8, 8),
        "depthwise_conv2d_dx": lambda: k.depthwise_conv2d_dx(x, depthwise, x.shape, 1, 1, 1, 1, 1, 1),
        "depthwise_conv2d_dweight": lambda: k.depthwise_conv2d_dweight(x, x, 3, 3, 1, 1, 1, 1, 1, 1),
        # a direct 3x3 'same' conv2d of x, 3 -> 3 channels: padding 1, dilation 1, one group
        "direct_conv2d": lambda: k.direct_conv2d(x, x[:, :, :3, :3], 1, 1, 1, 1, 1, 8, 8),
        "direct_conv2d_dweight": lambda: k.direct_conv2d_dweight(x, x, 3, 3, 1, 1, 1, 1, 1),
        # batch norm in training over x's 3 channels (weight and bias: x's first row of values)
        "batch_norm_train": lambda: k.batch_norm_train(x, x[0, 0, 0, :3], x[0, 0, 1, :3], 1e-5),
        "batch_norm_backward": lambda: k.batch_norm_backward(x, x, x[0, 0, 0, :3], np.abs(x[0, 0, 1, :3]), True),
        # ReLU of x and its backward (x as the upstream gradient too), into a fresh array
        "relu": lambda: k.relu(x, np.empty_like(x)),
        "relu_backward": lambda: k.relu_backward(x, x, np.empty_like(x)),
        # the columns of x's 2x2 tiles and back (a 2x2/2 up-convolution's copies)
        "unfold_tiles": lambda: k.unfold_tiles(x, 2, 2),
        "fold_tiles": lambda: k.fold_tiles(k.unfold_tiles(x, 2, 2), 2, 2, x.shape),
    }


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def child_kernels():
    start = time.perf_counter()
    import minidl  # noqa: F401

    import_minidl = time.perf_counter() - start
    numba_imported_by_minidl = "numba" in sys.modules
    start = time.perf_counter()
    import numba  # noqa: F401
    import numpy as np

    import_numba = time.perf_counter() - start
    from minidl.backend import numba_cpu

    rows = []
    small_work = (numba_cpu.SERIAL_VALUES, numba_cpu.SERIAL_FLOPS, numba_cpu.SERIAL_WINDOW_CELLS)
    for way, limits in (("one thread", small_work), ("threads", (0, 0, 0))):  # (0, 0, 0): no work is small
        numba_cpu.SERIAL_VALUES, numba_cpu.SERIAL_FLOPS, numba_cpu.SERIAL_WINDOW_CELLS = limits
        for dtype in DTYPES:
            for name, call in kernel_calls(np, dtype).items():
                first, second = _seconds(call), _seconds(call)
                rows.append({"kernel": name, "dtype": dtype, "way": way, "first_call_s": first,
                             "second_call_s": second, "compile_s": first - second})
    return {"import_minidl_s": import_minidl, "import_numba_s": import_numba,
            "numba_imported_by_minidl": numba_imported_by_minidl, "kernels": rows}


def child_step():
    import numpy as np

    import minidl
    import minidl.functional as F

    rng = np.random.default_rng(0)

    def param(*shape):
        return minidl.tensor((0.1 * rng.standard_normal(shape)).astype(np.float32),
                             requires_grad=True)

    w1, w2, wide = param(8, 3, 3, 3), param(128, 8, 3, 3), param(128, 128, 3, 3)
    up, w3 = param(128, 8, 2, 2), param(2, 16, 3, 3)
    x = minidl.tensor(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))

    def step():
        skip = F.relu(F.conv2d(x, w1, padding=1))                          # (2, 8, 32, 32)
        low = F.relu(F.conv2d(F.max_pool2d(skip, 2), w2, padding=1))       # (2, 128, 16, 16)
        low = F.relu(F.conv2d(low, wide, padding=1))                       # Winograd (128 channels)
        y = F.conv2d(minidl.cat([skip, F.conv_transpose2d(low, up, stride=2)], 1), w3, padding=1)  # shifted rows
        (y * y).mean().backward()
        for w in (w1, w2, wide, up, w3):
            w.grad = None

    first, second = _seconds(step), _seconds(step)
    return {"first_step_s": first, "second_step_s": second, "compile_s": first - second,
            "backend": minidl.backend.get_backend()}


# ---- the parent: fresh processes, one cache directory per measurement ------------------------

def run_child(what, cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    env.pop("MINIDL_BACKEND", None)  # the default choice: numba
    result = subprocess.run([sys.executable, "-m", "benchmarks.numba_compile", "--child", what],
                            capture_output=True, text=True, env=env, check=False,
                            cwd=Path(__file__).resolve().parents[1])
    if result.returncode != 0:
        raise RuntimeError(f"the {what} measurement failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure():
    out = {}
    for what in ("kernels", "step"):
        with tempfile.TemporaryDirectory(prefix="minidl-numba-cache-") as cache_dir:
            out[what] = {"cold": run_child(what, cache_dir), "cached": run_child(what, cache_dir)}
            out[what]["cache_files"] = len(list(Path(cache_dir).rglob("*.nbc")))
    return out


def markdown(result):
    m, k, s = result["machine"], result["kernels"], result["step"]
    lines = ["# Numba compile time: first calls, without and with the on-disk cache", "",
             "Each column is a fresh process with its own cache directory: `cold` compiles and "
             "writes the cache, `cached` loads it. Time = first call minus second call; the "
             "first row also holds one-time costs (importing `numba_cpu`, initialising Numba's "
             "compiler; the first row on threads, starting them). Way: the kernel on Numba's "
             "threads, or its serial twin on the calling thread (small work).", "",
             "| kernel | dtype | way | cold s | cached s |", "|---|---|---|---:|---:|"]
    cached = {(r["kernel"], r["dtype"], r["way"]): r for r in k["cached"]["kernels"]}
    for r in k["cold"]["kernels"]:
        lines.append(f"| {r['kernel']} | {r['dtype']} | {r['way']} | {r['compile_s']:.2f} | "
                     f"{cached[(r['kernel'], r['dtype'], r['way'])]['compile_s']:.3f} |")
    lines.append(f"| **all kernels** | both | both | **{sum(r['compile_s'] for r in k['cold']['kernels']):.2f}** | "
                 f"**{sum(r['compile_s'] for r in k['cached']['kernels']):.2f}** |")
    lines += ["", "| first training step (small U-Net, float32) | cold | cached |", "|---|---:|---:|",
              f"| first step s | {s['cold']['first_step_s']:.2f} | {s['cached']['first_step_s']:.2f} |",
              f"| second step s | {s['cold']['second_step_s']:.3f} | {s['cached']['second_step_s']:.3f} |",
              f"| compile (first - second) s | {s['cold']['compile_s']:.2f} | {s['cached']['compile_s']:.2f} |",
              "", f"Cached first step within {STEP_BUDGET_S:.0f} s of compile time: "
              f"{'yes' if result['cached_step_within_budget'] else 'NO'}. "
              f"`import minidl` (NumPy already loaded): {k['cold']['import_minidl_s']:.2f} s "
              f"(imports Numba: {'yes' if k['cold']['numba_imported_by_minidl'] else 'no'}); "
              f"`import numba`: {k['cold']['import_numba_s']:.2f} s.", "",
              machine_line(m, extra=f", numba {result['numba']}"), "",
              "Reproduce: `python -m benchmarks.numba_compile`", ""]
    return "\n".join(lines)


def chart(result, path):
    """Compile seconds per kernel (both dtypes), and of the first step, cold and cached."""
    from benchmarks._charts import save_ratio_chart

    per_kernel = {}
    for mode in ("cold", "cached"):
        for r in result["kernels"][mode]["kernels"]:
            key = f"{r['kernel']} ({mode}, {r['way']})"
            per_kernel[key] = per_kernel.get(key, 0.0) + r["compile_s"]
    step = result["step"]
    save_ratio_chart(path, [
        {"labels": list(per_kernel), "ratios": list(per_kernel.values()), "target": None,
         "title": "kernels, float32 + float64", "ylabel": "compile (or cache load) s",
         "baseline": None, "fmt": "{:.2f}"},
        {"labels": ["first step, cold", "first step, cached"],
         "ratios": [step["cold"]["compile_s"], step["cached"]["compile_s"]], "target": STEP_BUDGET_S,
         "targets": [None, STEP_BUDGET_S],  # the budget is for the cached start only
         "title": "first training step", "ylabel": "compile (or cache load) s", "baseline": None},
    ], "Numba: first-call time in a fresh process, without and with the on-disk cache")


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child_kernels() if args.child == "kernels" else child_step()))
        return 0
    import numba

    try:
        import torch
    except ImportError:  # machine_info only reads its version
        torch = type("torch", (), {"__version__": "not installed"})
    result = measure()
    result["numba"] = numba.__version__
    result["machine"] = machine_info(torch, args.threads)
    result["cached_step_within_budget"] = result["step"]["cached"]["compile_s"] < STEP_BUDGET_S
    for mode in ("cold", "cached"):
        total = sum(r["compile_s"] for r in result["kernels"][mode]["kernels"])
        print(f"{mode:6s} all kernels, both dtypes: {total:6.2f} s   "
              f"first step: {result['step'][mode]['first_step_s']:5.2f} s "
              f"(compile {result['step'][mode]['compile_s']:.2f} s)")
    for r in result["kernels"]["cold"]["kernels"]:
        print(f"  {r['kernel']:29s} {r['dtype']:8s} cold {r['compile_s']:5.2f} s")
    print(f"import minidl (after numpy) {result['kernels']['cold']['import_minidl_s']:.2f} s, "
          f"import numba {result['kernels']['cold']['import_numba_s']:.2f} s")
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "numba_compile.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "numba_compile.md").write_text(markdown(result))
        chart(result, args.out / "numba_compile.png")
        print(f"wrote {args.out / 'numba_compile'}.json, .md and .png")
    return 0 if result["cached_step_within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
