"""One U-Net training step: minidl against PyTorch, same process, same weights and batch.

Model: unet.UNet(in_channels=1, n_classes=2, base_channels=B, depth=5, padding="same")
for each B of --base (default 16 32 64), and its torch.nn twin (benchmarks/_torch_unet.py)
with minidl's weights copied in. Batch --batch (4) of 1 x --size x --size (256) float32
images, random class maps as targets. One step = forward, pixel-wise F.cross_entropy (mean),
backward, Adam(lr=1e-3).step(), zero_grad().

Method, per B:
  1. parity: the FIRST step of each library from identical weights and batch, timed (it
     includes Numba's compilation or on-disk cache load for minidl on the first B of a run,
     and first-touch allocations for both); compares loss, every gradient, and the Adam
     updates in the same run; and each library's float32 gradients with PyTorch's float64
     ones from the same weights (the rounding of each: a gradient further from PyTorch's than
     GRAD_RTOL still passes when minidl's is no further from float64 than PyTorch's);
  2. --warmup untimed steps, then --repeats timed steps, minidl and PyTorch alternating
     (same machine state for both) with a --pause before each, so that the idle worker
     threads of the library that ran before (OpenBLAS and OpenMP spin for a while after
     their last call) do not compete with the one being timed; median ms per step and per
     phase, ratio minidl/torch;
     the losses of every step are compared too (both train on the same batch);
  3. peak memory of one step, the same way for both libraries: RSS high-water-mark growth
     in a fresh process that runs only that library, after one warm-up step
     (benchmarks/_memory.py), plus tracemalloc's peak for minidl (NumPy reports its
     arrays to tracemalloc; torch does not).

Threads: --threads is read by benchmarks/_common.py before NumPy loads (BLAS, Numba);
torch.set_num_threads gets the same number.

    python -m benchmarks.unet_step                         # B = 16 32 64, batch 4, 256x256
    python -m benchmarks.unet_step --base 16 --repeats 2 --size 64    # smoke run
    python -m benchmarks.unet_step --profile --base 32     # where minidl's step time goes
    python -m benchmarks.unet_step --device cuda           # on a GPU: B = 64, batch 4, 512x512
    python -m benchmarks.unet_step --dry --no-save         # that code path, strict device, tiny

--profile splits minidl's step into matrix products, im2col/tiles, pooling, elementwise and
Python overhead (benchmarks/_profiler.py) and writes unet_step_profile.{json,md,png}.
"""
# _common must come first: it sets the BLAS / Numba thread counts before NumPy loads.
from benchmarks._common import (THREADS, machine_info, machine_line, median_ms, rel_error,  # noqa: I001
                                timed_step, warn_if_threads_not_applied)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
import minidl.optim  # noqa: E402
from minidl.backend import allocator  # noqa: E402
import unet  # noqa: E402

LR = 1e-3
DEPTH = 5
LOSS_RTOL = 1e-4        # first loss, relative (float32)
GRAD_RTOL = 1e-3        # every gradient, max |a - b| / max |b|: float32 sums over 4*256*256
                        # pixels and ReLU masks that flip on values within rounding of 0 (or
                        # minidl's float32 no further from float64 than PyTorch's: parity_ok)
UPDATE_TOL = 0.01       # median |update difference| / lr after the first Adam step
LOSS_TRACE_RTOL = 1e-3  # loss of every later step (both keep training on the same batch)
TARGET_RATIOS = {16: 1.2, 32: 1.0, 64: 1.0}  # step time per base width (issue 26; base 16 also at 8x128x128)
TARGET_MEMORY_RATIO = 1.0                   # peak step memory, every width
PHASES = ("forward", "backward", "adam")
MIB = 2 ** 20


def target_ratio(row):
    """The step-time target of a row (None for a width the issue sets none for)."""
    return TARGET_RATIOS.get(row["base"])


def _target_text(row):
    target = target_ratio(row)
    return "no target" if target is None else f"target <= {target}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.unet_step",
        description="Time one Adam training step of a same-padding U-Net (depth 5) in minidl and "
                    "in PyTorch (same process, same weights, alternating), check they agree, and "
                    "measure the peak memory of the step for both.")
    p.add_argument("--base", type=int, nargs="+", default=None,
                   help="base channel counts B to run (default: 16 32 64; with --device cuda: 64)")
    p.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--case", action="append", default=None, metavar="BASE:BATCH:SIZE",
                   help="an extra row with its own batch and size (default: 16:8:128, the few-channel "
                   "case of issue 26; --case none for no extra row)")
    p.add_argument("--size", type=int, default=None,
                   help="image height = width, divisible by 16 (default 256; with --device cuda: 512)")
    p.add_argument("--device", choices=["cpu", "cuda", "strict"], default="cpu",
                   help="where minidl runs (default cpu). cuda: minidl on CuPy against PyTorch on the "
                        "same GPU, CUDA-event timing, peak GPU memory (benchmarks/_gpu_step.py); strict: "
                        "the same code on the strict test device against PyTorch on the CPU, at --dry's "
                        "tiny sizes unless --base/--size/--batch are given")
    p.add_argument("--dry", action="store_true",
                   help="the --device code path on the strict test device at a tiny size (base 2, "
                        "batch 1 of 16x16), to check it without a GPU")
    p.add_argument("--threads", type=int, default=int(THREADS),
                   help="BLAS / Numba / torch threads (default 2); set before numpy loads")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per library (default 5)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed steps per library after the first one (default 1)")
    p.add_argument("--pause", type=float, default=0.2,
                   help="seconds of sleep before each timed step, so that the other library's idle "
                        "BLAS/OpenMP worker threads have stopped spinning (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None, help="minidl kernel backend (default: the automatic choice)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--profile", action="store_true",
                   help="instead of the comparison: split minidl's step time by category")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results directory")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    p.add_argument("--child-memory", choices=["minidl", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.dry:
        args.device = "strict"
    tiny = args.device == "strict"  # the strict device is NumPy underneath: tiny defaults
    if args.base is None:
        args.base = [2] if tiny else [64] if args.device == "cuda" else [16, 32, 64]
    if args.size is None:
        args.size = 16 if tiny else 512 if args.device == "cuda" else 256
    if tiny and args.batch == 4:
        args.batch = 1
    if args.size % 2 ** (DEPTH - 1) or args.size < 2 ** (DEPTH - 1):
        p.error(f"--size must be a positive multiple of {2 ** (DEPTH - 1)} (4 max-pools), got {args.size}")
    for name in ("batch", "repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if min(args.base) < 1:
        p.error(f"--base values must be >= 1, got {args.base}")
    return args


# ----------------------------------------------------------------------------- set-up

def make_batch(seed, batch, size):
    """x (batch, 1, size, size) float32 ~ N(0, 1), target (batch, size, size) int64 in {0, 1}."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 1, size, size)).astype(np.float32)
    target = rng.integers(0, 2, (batch, size, size)).astype(np.int64)
    return x, target


def build_minidl(base, seed):
    minidl.manual_seed(seed)
    model = unet.UNet(in_channels=1, n_classes=2, base_channels=base, depth=DEPTH, padding="same")
    return model, minidl.optim.Adam(model.parameters(), lr=LR)


def build_torch(torch, model):
    from benchmarks._torch_unet import torch_twin

    twin = torch_twin(model)
    return twin, torch.optim.Adam(twin.parameters(), lr=LR)


def train_step(model, opt, x, target, functional, clock=None):
    """One step; the same code drives both libraries (same API). Returns the loss (float)."""
    loss = timed_step(lambda: functional.cross_entropy(model(x), target), opt, clock, phases=PHASES)
    return loss.item()


# ----------------------------------------------------------------------------- first step + parity

def first_step(model, opt, x, target, functional, params, to_numpy):
    """The first step, timed, keeping the loss, the gradients and the updates for parity."""
    before = {name: to_numpy(p).copy() for name, p in params}
    start = time.perf_counter()
    loss = functional.cross_entropy(model(x), target)
    loss.backward()
    seconds = time.perf_counter() - start
    grads = {name: to_numpy(p.grad).copy() for name, p in params}  # untimed copies
    start = time.perf_counter()
    opt.step()
    opt.zero_grad()
    seconds += time.perf_counter() - start
    updates = {name: to_numpy(p) - before[name] for name, p in params}
    return seconds, loss.item(), grads, updates


def float64_gradients(torch, model, x_np, t_np):
    """PyTorch's float64 gradients of the first step from ``model``'s weights (a float64 twin):
    the reference both libraries' float32 gradients are measured against."""
    twin64 = build_torch(torch, model)[0].double()
    loss = torch.nn.functional.cross_entropy(twin64(torch.from_numpy(x_np).double()), torch.from_numpy(t_np))
    loss.backward()
    return {name: p.grad.numpy().copy() for name, p in twin64.named_parameters()}


def errors_against_float64(grads, grads64):
    """The largest relative error of any float32 gradient against its float64 value."""
    return max(rel_error(grads[name], grads64[name]) for name in grads64)


def parity_ok(errors):
    """Loss, gradients, updates and later losses agree: the gradients within GRAD_RTOL of
    PyTorch's, or (where PyTorch's float32 rounding is the larger) minidl's no further from
    the float64 gradients than PyTorch's."""
    vs64 = errors.get("grad_vs_float64")
    grads_ok = errors["grad_max"] <= GRAD_RTOL or (vs64 is not None and vs64["minidl"] <= vs64["torch"])
    return (errors["loss"] <= LOSS_RTOL and grads_ok and errors["update_median_over_lr"] <= UPDATE_TOL
            and errors["loss_trace_max"] <= LOSS_TRACE_RTOL)


def compare_first_steps(mine, theirs):
    """Relative errors between the two first steps (loss, gradients, Adam updates)."""
    (_, loss_m, grads_m, upd_m), (_, loss_t, grads_t, upd_t) = mine, theirs
    grad_errors = {name: rel_error(grads_m[name], grads_t[name]) for name in grads_t}
    update_diff = np.concatenate([np.abs(upd_m[n] - upd_t[n]).ravel() for n in upd_t]) / LR
    names = list(grads_t)
    shown = [names[0], names[len(names) // 2], names[-2]]  # first conv, the bottom, the output conv
    return {
        "loss": abs(loss_m - loss_t) / abs(loss_t),
        "grad_max": max(grad_errors.values()),
        "grad_max_param": max(grad_errors, key=grad_errors.get),
        "grads_shown": {n: grad_errors[n] for n in shown},
        "update_median_over_lr": float(np.median(update_diff)),
        "update_max_over_lr": float(update_diff.max()),
    }


# ----------------------------------------------------------------------------- memory

def child_memory(args):
    """In a fresh process: peak RSS growth of ONE step of ONE library (benchmarks/_memory.py)."""
    from benchmarks._memory import peak_growth

    base = args.base[0]
    x_np, t_np = make_batch(args.seed, args.batch, args.size)
    if args.child_memory == "minidl":
        model, opt = build_minidl(base, args.seed)
        functional, wrap = F, minidl.tensor
    else:
        import torch

        torch.set_num_threads(args.threads)
        from benchmarks._torch_unet import TorchUNet

        torch.manual_seed(args.seed)
        model = TorchUNet(1, 2, base, DEPTH)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        functional, wrap = torch.nn.functional, torch.from_numpy
    x, target = wrap(x_np), wrap(t_np)
    train_step(model, opt, x, target, functional)  # warm-up: compile / cache load, Adam state
    if args.child_memory == "minidl":
        # the buffers minidl caches between steps (ReLU outputs, minidl/backend/allocator.py) are
        # the step's memory: released here, so that the step's growth includes them again
        allocator.empty_cache()
    result = peak_growth(lambda: train_step(model, opt, x, target, functional))
    print(json.dumps(result))


def measure_rss(args, library, base):
    """Run :func:`child_memory` in a fresh interpreter; its JSON result."""
    from benchmarks._memory import CHILD_ENV

    cmd = [sys.executable, "-m", "benchmarks.unet_step", "--child-memory", library,
           "--base", str(base), "--batch", str(args.batch), "--size", str(args.size),
           "--threads", str(args.threads), "--seed", str(args.seed)]
    env = {**os.environ, **CHILD_ENV}
    if args.backend:
        env["MINIDL_BACKEND"] = args.backend
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"unet_step: the {library} memory measurement failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def tracemalloc_peak(model, opt, x, target):
    """Peak bytes that NumPy/Python allocate during one minidl step, above what was live before."""
    tracemalloc.start()
    try:
        train_step(model, opt, x, target, F)  # so that everything the step frees was traced
        allocator.empty_cache()  # cached ReLU outputs count in the step's peak, not in what was live
        live, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        train_step(model, opt, x, target, F)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - live


# ----------------------------------------------------------------------------- one base

def bench_base(torch, args, base):
    model, opt = build_minidl(base, args.seed)
    twin, topt = build_torch(torch, model)
    x_np, t_np = make_batch(args.seed, args.batch, args.size)
    x, target = minidl.tensor(x_np), minidl.tensor(t_np)
    xt, tt = torch.from_numpy(x_np), torch.from_numpy(t_np)
    params_m = list(model.named_parameters())
    params_t = list(twin.named_parameters())

    def to_numpy(t):  # both libraries spell it the same way
        return t.detach().numpy()

    grads64 = float64_gradients(torch, model, x_np, t_np)  # before the first steps change the weights
    mine = first_step(model, opt, x, target, F, params_m, to_numpy)
    theirs = first_step(twin, topt, xt, tt, torch.nn.functional, params_t, to_numpy)
    errors = compare_first_steps(mine, theirs)
    errors["grad_vs_float64"] = {"minidl": errors_against_float64(mine[2], grads64),
                                 "torch": errors_against_float64(theirs[2], grads64)}
    del grads64
    losses = {"minidl": [mine[1]], "torch": [theirs[1]]}

    for _ in range(args.warmup):
        losses["minidl"].append(train_step(model, opt, x, target, F))
        losses["torch"].append(train_step(twin, topt, xt, tt, torch.nn.functional))
    clocks = {lib: {k: [] for k in PHASES} for lib in ("minidl", "torch")}
    totals = {"minidl": [], "torch": []}
    for _ in range(args.repeats):
        for lib, (m, o, a, b, fn) in (("minidl", (model, opt, x, target, F)),
                                      ("torch", (twin, topt, xt, tt, torch.nn.functional))):
            time.sleep(args.pause)  # let the other library's idle worker threads stop spinning
            start = time.perf_counter()
            losses[lib].append(train_step(m, o, a, b, fn, clocks[lib]))
            totals[lib].append(time.perf_counter() - start)
    errors["loss_trace_max"] = max(abs(a - b) / abs(b) for a, b in zip(losses["minidl"], losses["torch"]))

    ms = {lib: median_ms(totals[lib]) for lib in totals}
    row = {
        "base": base,
        "parameters": int(sum(p.numel() for _, p in params_m)),
        "median_ms": ms,
        "min_ms": {lib: 1e3 * min(totals[lib]) for lib in totals},
        "median_ms_by_phase": {lib: {k: median_ms(clocks[lib][k]) for k in PHASES} for lib in clocks},
        "ratio": ms["minidl"] / ms["torch"],
        "first_step_s": {"minidl": mine[0], "torch": theirs[0]},
        "first_step_excess_s": {"minidl": mine[0] - ms["minidl"] / 1e3,
                                "torch": theirs[0] - ms["torch"] / 1e3},
        "losses": losses,
        "parity_ok": parity_ok(errors),
        "errors": errors,
    }
    if not args.no_memory:
        row["tracemalloc_peak_mib_minidl"] = tracemalloc_peak(model, opt, x, target) / MIB
        del model, opt, twin, topt  # the children measure; free this process's copies first
        rss = {lib: measure_rss(args, lib, base) for lib in ("minidl", "torch")}
        row["rss_peak_growth_mib"] = {lib: r["peak_growth"] / MIB for lib, r in rss.items()}
        row["rss_valid"] = {lib: r["valid"] for lib, r in rss.items()}
        row["rss_before_mib"] = {lib: r["rss_before"] / MIB for lib, r in rss.items()}
        row["memory_ratio"] = rss["minidl"]["peak_growth"] / rss["torch"]["peak_growth"]
    return row


# ----------------------------------------------------------------------------- reports

def print_row(r):
    ph = r["median_ms_by_phase"]
    print(f"B={_label(r)} minidl {r['median_ms']['minidl']:9.1f} ms "
          f"(fwd {ph['minidl']['forward']:.0f} / bwd {ph['minidl']['backward']:.0f} / "
          f"adam {ph['minidl']['adam']:.0f})   torch {r['median_ms']['torch']:9.1f} ms "
          f"(fwd {ph['torch']['forward']:.0f} / bwd {ph['torch']['backward']:.0f} / "
          f"adam {ph['torch']['adam']:.0f})   ratio {r['ratio']:.2f} ({_target_text(r)})")
    e = r["errors"]
    print(f"      first step: minidl {r['first_step_s']['minidl']:.2f} s, torch "
          f"{r['first_step_s']['torch']:.2f} s;  parity {'OK' if r['parity_ok'] else 'MISMATCH'}: "
          f"loss {e['loss']:.1e}, grads {e['grad_max']:.1e} ({e['grad_max_param']}), "
          f"update median {e['update_median_over_lr']:.1e} / max {e['update_max_over_lr']:.1e} x lr, "
          f"later losses {e['loss_trace_max']:.1e}; float32 grads vs float64: minidl "
          f"{e['grad_vs_float64']['minidl']:.1e}, torch {e['grad_vs_float64']['torch']:.1e}")
    if "memory_ratio" in r:
        g = r["rss_peak_growth_mib"]
        print(f"      peak memory of a step (RSS growth, fresh process): minidl {g['minidl']:.0f} MiB, "
              f"torch {g['torch']:.0f} MiB, ratio {r['memory_ratio']:.2f} (target <= "
              f"{TARGET_MEMORY_RATIO}); tracemalloc minidl {r['tracemalloc_peak_mib_minidl']:.0f} MiB"
              + "".join(f"  [{lib}: could not reset the RSS high-water mark: upper bound only]"
                        for lib, ok in r["rss_valid"].items() if not ok))


def _label(row):
    """The B column: the base width, and the batch and size when they are not the run's."""
    if "batch" not in row:
        return str(row["base"])
    return f"{row['base']} (batch {row['batch']} of {row['size']}x{row['size']})"


def markdown(result):
    c, m = result["config"], result["machine"]
    lines = [
        "# U-Net training step: minidl vs PyTorch",
        "",
        f"`unet.UNet(1, 2, base_channels=B, depth={DEPTH}, padding=\"same\")`, batch {c['batch']} of "
        f"1x{c['size']}x{c['size']} float32, pixel-wise cross-entropy, Adam(lr={LR}). One step = "
        "forward + loss + backward + Adam step + zero_grad. Median of "
        f"{c['repeats']} steps after the first step and {c['warmup']} warm-up step(s), minidl and "
        f"PyTorch alternating in one process, identical weights and batch, {m['threads']} threads. "
        f"minidl backend: `{m['minidl_backend']}`.",
        "",
        "| B | parameters | minidl ms | PyTorch ms | ratio | target | minidl first step s "
        "| PyTorch first step s | parity | float32 grads vs float64: minidl / PyTorch |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in result["rows"]:
        e = r["errors"]
        target = target_ratio(r)
        lines.append(
            f"| {_label(r)} | {r['parameters']:,} | {r['median_ms']['minidl']:.1f} | "
            f"{r['median_ms']['torch']:.1f} | **{r['ratio']:.2f}** | {'-' if target is None else target} | "
            f"{r['first_step_s']['minidl']:.2f} | "
            f"{r['first_step_s']['torch']:.2f} | {'OK' if r['parity_ok'] else 'MISMATCH'} "
            f"(loss {e['loss']:.0e}, grads {e['grad_max']:.0e}) | "
            f"{e['grad_vs_float64']['minidl']:.0e} / {e['grad_vs_float64']['torch']:.0e} |")
    lines += ["", "Median ms per phase (forward includes the loss; adam includes zero_grad):", "",
              "| B | library | forward | backward | adam |", "|---:|---|---:|---:|---:|"]
    for r in result["rows"]:
        for lib in ("minidl", "torch"):
            ph = r["median_ms_by_phase"][lib]
            lines.append(f"| {_label(r)} | {lib} | {ph['forward']:.1f} | {ph['backward']:.1f} | "
                         f"{ph['adam']:.1f} |")
    if any("memory_ratio" in r for r in result["rows"]):
        lines += ["", "Peak memory of one step, MiB above what was live before it (model, Adam "
                  "state, batch): RSS high-water-mark growth in a fresh process running only that "
                  "library, after one warm-up step (benchmarks/_memory.py); tracemalloc: "
                  "NumPy's traced peak in the benchmark process (minidl only).", "",
                  f"| B | minidl RSS MiB | PyTorch RSS MiB | ratio (target <= {TARGET_MEMORY_RATIO}) "
                  "| minidl tracemalloc MiB |",
                  "|---:|---:|---:|---:|---:|"]
        for r in result["rows"]:
            if "memory_ratio" in r:
                g = r["rss_peak_growth_mib"]
                flag = "" if all(r["rss_valid"].values()) else " (upper bound: peak not reset)"
                lines.append(f"| {_label(r)} | {g['minidl']:.0f} | {g['torch']:.0f} | "
                             f"**{r['memory_ratio']:.2f}**{flag} | {r['tracemalloc_peak_mib_minidl']:.0f} |")
    lines += [
        "",
        "First step: the parity step, timed. On the first B of a run it includes Numba's "
        "compilation, or loading its on-disk cache (`python -m benchmarks.numba_compile` measures "
        "cold and cached separately); for both libraries it includes first-touch allocations.",
        "Parity: relative errors (max |a - b| / max |b|) of the first loss and of every gradient; "
        f"Adam updates: median |difference| / lr <= {UPDATE_TOL}; every later loss within "
        f"{LOSS_TRACE_RTOL} relative.",
        "",
        machine_line(m),
        "",
        (f"float32 matrix product peak measured in the same run (2048^3, best of 5): "
         f"{c['matmul_peak_gflops']:.0f} GFLOP/s." if "matmul_peak_gflops" in c else ""),
        "",
        f"Reproduce: `python -m benchmarks.unet_step {c['argv']}`".rstrip(),
        "",
    ]
    return "\n".join(lines)


def chart(result, path):
    from benchmarks._charts import save_ratio_chart

    rows = result["rows"]
    labels = [f"B={r['base']}" + (f"\n{r['batch']}x{r['size']}²" if "batch" in r else "") for r in rows]
    panels = [{"labels": labels, "ratios": [r["ratio"] for r in rows],
               "target": None, "targets": [target_ratio(r) for r in rows], "title": "step time"}]
    if all("memory_ratio" in r for r in rows):
        panels.append({"labels": labels,
                       "ratios": [r["memory_ratio"] for r in rows], "target": TARGET_MEMORY_RATIO,
                       "title": "peak memory (RSS growth)",
                       "ylabel": "minidl / PyTorch (memory)"})
    c = result["config"]
    save_ratio_chart(path, panels, f"U-Net step, batch {c['batch']} of {c['size']}x{c['size']}, "
                                   f"{result['machine']['threads']} threads: minidl / PyTorch")


def save(args, stem, result, markdown_text, chart_fn):
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown_text)
    chart_fn(result, args.out / f"{stem}.png")
    print(f"wrote {args.out / stem}.json, .md and .png")


# ----------------------------------------------------------------------------- main

def extra_cases(args):
    """[(base, batch, size)] of the --case rows."""
    texts = args.case if args.case is not None else ["16:8:128"]
    cases = []
    for text in texts:
        if text == "none":
            continue
        try:
            base, batch, size = (int(v) for v in text.split(":"))
        except ValueError:
            raise SystemExit(f"unet_step: --case must be BASE:BATCH:SIZE (e.g. 16:8:128), got {text!r}")
        cases.append((base, batch, size))
    return cases


def matmul_peak_gflops(n=2048, repeats=5):
    """The float32 matrix product's speed on this machine now (the ceiling of im2col's products)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    if args.child_memory:
        child_memory(args)
        return 0
    if args.device != "cpu":
        return main_device(args, argv)
    warn_if_threads_not_applied(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    if args.backend:
        minidl.backend.set_backend(args.backend)
    if args.profile:
        from benchmarks.unet_profile import run_profile

        return run_profile(torch, args)
    config = {"base": args.base, "batch": args.batch, "size": args.size, "depth": DEPTH,
              "repeats": args.repeats, "warmup": args.warmup, "seed": args.seed, "pause_s": args.pause,
              "argv": " ".join(sys.argv[1:] if argv is None else argv)}
    rows = []
    for base in args.base:
        row = bench_base(torch, args, base)
        rows.append(row)
        print_row(row)
    for base, batch, size in extra_cases(args):
        case_args = argparse.Namespace(**{**vars(args), "batch": batch, "size": size})
        row = bench_base(torch, case_args, base)
        row.update(batch=batch, size=size)
        rows.append(row)
        print_row(row)
    config["matmul_peak_gflops"] = matmul_peak_gflops()
    print(f"float32 matrix product peak (2048^3, this process, {args.threads} threads): "
          f"{config['matmul_peak_gflops']:.0f} GFLOP/s")
    result = {"benchmark": "unet_step", "config": config,
              "machine": machine_info(torch, args.threads),
              "targets": {"ratio_by_base": TARGET_RATIOS, "memory_ratio": TARGET_MEMORY_RATIO},
              "rows": rows}
    if not args.no_save:
        save(args, "unet_step", result, markdown(result), chart)
    return 0 if all(r["parity_ok"] for r in rows) else 1


def main_device(args, argv):
    """--device cuda / strict: benchmarks/_gpu_step.py, one row per --base, results under
    <out>/gpu/unet_step_<device>.{json,md}."""
    import torch

    from benchmarks import _gpu, _gpu_step

    if args.device == "strict":
        torch.set_num_threads(args.threads)
    target = _gpu.Target(args.device)
    rows = []
    for base in args.base:
        row = _gpu_step.unet_step_on_device(torch, target, base=base, batch=args.batch, size=args.size,
                                            warmup=args.warmup, repeats=args.repeats, seed=args.seed)
        rows.append(row)
        print("\n".join(_gpu_step.row_lines(row)) + "\n", flush=True)
    result = {"benchmark": "unet_step", "device": args.device, "dry": args.dry,
              "environment": _gpu.environment(target, torch),
              "argv": " ".join(sys.argv[1:] if argv is None else argv), "rows": rows}
    if not args.no_save:
        out = args.out / "gpu"
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"unet_step_{args.device}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        lines = ["# U-Net training step on a GPU: minidl vs PyTorch", ""]
        for row in rows:
            lines += _gpu_step.row_lines(row) + [""]
        e = result["environment"]
        lines += [f"Device: {e.get('gpu_name', args.device)}; CuPy {e.get('cupy')}, CUDA runtime "
                  f"{e.get('cuda_runtime_version')}, driver {e.get('nvidia_driver')}; torch {e.get('torch')}; "
                  f"{e['date_utc']}.", "",
                  f"Reproduce: `PYTHONPATH=. python -m benchmarks.unet_step {result['argv']}`", ""]
        stem.with_suffix(".md").write_text("\n".join(lines))
        print(f"wrote {stem}.json and .md")
    return 0 if all(r["parity_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
