"""One training step of an MLP: minidl against PyTorch, same process, same weights.

Model: 1024 -> [Linear(1024, 1024) + ReLU] x layers -> Linear(1024, 10), float32,
loss = mean squared error ((y - t)**2).mean(), optimiser Adam(lr=1e-3).
One step = forward, loss, backward, optimizer.step(), optimizer.zero_grad().

Method:
  1. build the minidl model, copy its weights into an identical torch model;
  2. parity: run ONE step on both from the same weights and batch and compare
     loss, outputs, gradients and updated parameters (float32 tolerance);
  3. warm up both, then time `--repeats` steps, alternating minidl and torch
     so that both see the same machine state (frequency, caches, neighbours);
  4. report the median ms per step (and per phase), the ratio minidl/torch,
     and write benchmarks/results/mlp_step.{json,md}.

Threads: BLAS reads its thread count when numpy is imported, so `--threads`
is parsed from sys.argv by benchmarks/_common.py before anything imports
numpy; torch gets torch.set_num_threads(threads).

    python -m benchmarks.mlp_step                # defaults: batch 256, width 1024, 2 threads
    python -m benchmarks.mlp_step --threads 1 --repeats 50
    python -m benchmarks.mlp_step --profile      # cProfile of the minidl step
"""
# _common must come first: it sets the BLAS thread count before NumPy loads.
from benchmarks._common import (THREADS, machine_info, machine_line, median_ms, rel_error,  # noqa: I001
                                timed_step, warn_if_threads_not_applied)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.nn as nn  # noqa: E402
import minidl.optim as optim  # noqa: E402

LR = 1e-3
PARITY_RTOL = 1e-4
UPDATE_TOL = 0.05  # max |update difference| / lr after one Adam step (a missing bias
                   # correction would give ~0.9; float32 noise on tiny gradients ~1e-2)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.mlp_step",
        description="Time one Adam training step of an MLP in minidl and in PyTorch "
                    "(same process, same weights, alternating) and check they agree.")
    p.add_argument("--batch", type=int, default=256, help="batch size N (default 256)")
    p.add_argument("--width", type=int, default=1024, help="input and hidden width (default 1024)")
    p.add_argument("--layers", type=int, default=3,
                   help="number of hidden Linear(width, width)+ReLU layers (default 3)")
    p.add_argument("--classes", type=int, default=10, help="output width (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per framework (default 3)")
    p.add_argument("--repeats", "--steps", dest="repeats", type=int, default=20,
                   help="timed steps per framework (default 20)")
    p.add_argument("--threads", type=int, default=int(THREADS),
                   help="BLAS / torch intra-op threads (default 2); set before numpy loads")
    p.add_argument("--pause", type=float, default=0.05,
                   help="seconds of sleep before each timed step, so that the other library's idle "
                        "BLAS/OpenMP worker threads have stopped spinning (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                   help="directory for mlp_step.json and mlp_step.md (default benchmarks/results)")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    p.add_argument("--profile", action="store_true",
                   help="also run cProfile over the minidl steps and print the top functions")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- models

def build_minidl(width, layers, classes):
    mods = []
    for _ in range(layers):
        mods += [nn.Linear(width, width), nn.ReLU()]
    mods.append(nn.Linear(width, classes))
    model = nn.Sequential(*mods)
    return model, optim.Adam(model.parameters(), lr=LR)


def build_torch_twin(torch, model, width, layers, classes):
    """The same architecture in torch.nn with the minidl weights copied in."""
    mods = []
    for _ in range(layers):
        mods += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    mods.append(torch.nn.Linear(width, classes))
    twin = torch.nn.Sequential(*mods)
    ours, theirs = list(model.parameters()), list(twin.parameters())
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    with torch.no_grad():
        for p, q in zip(ours, theirs):
            assert tuple(p.shape) == tuple(q.shape), (p.shape, q.shape)
            q.copy_(torch.from_numpy(np.ascontiguousarray(p.data)))
    return twin, torch.optim.Adam(twin.parameters(), lr=LR)


# ----------------------------------------------------------------------------- one step

def _mse(y, t):
    return ((y - t) ** 2).mean()


def step_minidl(model, opt, x, t, clock=None):
    """One step; with a `clock` dict, add the seconds spent in each phase. Returns the loss."""
    return timed_step(lambda: _mse(model(x), t), opt, clock, phases=("forward", "backward", "step"))


# The same code drives both libraries: their APIs are the same.
step_torch = step_minidl


# ----------------------------------------------------------------------------- parity

def check_parity(model, opt, twin, topt, x, t, xt, tt):
    """One step on both from the same state; returns a dict of relative errors."""
    y = model(x)
    loss = _mse(y, t)
    loss.backward()
    yt = twin(xt)
    loss_t = _mse(yt, tt)
    loss_t.backward()
    ours, theirs = list(model.parameters()), list(twin.parameters())
    errs = {
        "loss": abs(loss.item() - loss_t.item()) / abs(loss_t.item()),
        "output": rel_error(y.detach().numpy(), yt.detach().numpy()),
        "grad": max(rel_error(p.grad.numpy(), q.grad.numpy()) for p, q in zip(ours, theirs)),
    }
    opt.step()
    opt.zero_grad()
    topt.step()
    topt.zero_grad()
    # Adam moves every weight by about lr, so compare the updates, not the weights.
    errs["param_after_step"] = max(rel_error(p.detach().numpy(), q.detach().numpy()) for p, q in zip(ours, theirs))
    errs["update"] = max(
        float(np.max(np.abs(p.detach().numpy() - q.detach().numpy()))) / LR for p, q in zip(ours, theirs))
    return errs


# ----------------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    warn_if_threads_not_applied(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    minidl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_np = rng.standard_normal((args.batch, args.width)).astype(np.float32)
    t_np = rng.standard_normal((args.batch, args.classes)).astype(np.float32)
    x, t = minidl.tensor(x_np), minidl.tensor(t_np)
    xt, tt = torch.from_numpy(x_np), torch.from_numpy(t_np)

    model, opt = build_minidl(args.width, args.layers, args.classes)
    twin, topt = build_torch_twin(torch, model, args.width, args.layers, args.classes)

    errs = check_parity(model, opt, twin, topt, x, t, xt, tt)
    parity_ok = (errs["loss"] <= PARITY_RTOL and errs["output"] <= PARITY_RTOL
                 and errs["grad"] <= PARITY_RTOL and errs["update"] <= UPDATE_TOL)
    print("parity after one step (relative errors): "
          + ", ".join(f"{k} {v:.2e}" for k, v in errs.items())
          + ("  OK" if parity_ok else "  MISMATCH"))

    for _ in range(args.warmup):
        step_minidl(model, opt, x, t)
        step_torch(twin, topt, xt, tt)

    phases = ("forward", "backward", "step")
    clock_m = {k: [] for k in phases}
    clock_t = {k: [] for k in phases}
    total_m, total_t = [], []
    for _ in range(args.repeats):
        time.sleep(args.pause)  # let the other library's idle worker threads stop spinning
        s = time.perf_counter()
        step_minidl(model, opt, x, t, clock_m)
        total_m.append(time.perf_counter() - s)
        time.sleep(args.pause)
        s = time.perf_counter()
        step_torch(twin, topt, xt, tt, clock_t)
        total_t.append(time.perf_counter() - s)

    ms_m, ms_t = median_ms(total_m), median_ms(total_t)
    ratio = ms_m / ms_t
    result = {
        "benchmark": "mlp_step",
        "config": {"batch": args.batch, "width": args.width, "hidden_layers": args.layers,
                   "classes": args.classes, "dtype": "float32", "loss": "mse",
                   "optimizer": f"Adam(lr={LR})", "warmup": args.warmup,
                   "repeats": args.repeats, "seed": args.seed, "pause_s": args.pause},
        "machine": machine_info(torch, args.threads),
        "parity": {"ok": parity_ok, "rtol": PARITY_RTOL, **errs},
        "median_ms": {"minidl": ms_m, "torch": ms_t},
        "median_ms_by_phase": {
            "minidl": {k: median_ms(clock_m[k]) for k in phases},
            "torch": {k: median_ms(clock_t[k]) for k in phases},
        },
        "min_ms": {"minidl": 1e3 * min(total_m), "torch": 1e3 * min(total_t)},
        "ratio_minidl_over_torch": ratio,
        "target_ratio": 1.3,
    }

    print(f"{'':8s} {'median ms/step':>15s} {'forward':>9s} {'backward':>9s} {'adam+zero':>10s}")
    for name, clock, ms in (("minidl", clock_m, ms_m), ("torch", clock_t, ms_t)):
        print(f"{name:8s} {ms:15.2f} " + " ".join(f"{median_ms(clock[k]):9.2f}" for k in phases))
    print(f"ratio minidl/torch = {ratio:.2f}  (target <= 1.3)")

    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "mlp_step.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "mlp_step.md").write_text(markdown(result))
        chart(result, args.out / "mlp_step.png")
        print(f"wrote {args.out / 'mlp_step'}.json, .md and .png")

    if args.profile:
        profile_minidl(model, opt, x, t, args.repeats)
    return 0 if parity_ok else 1


def markdown(r):
    c, m = r["config"], r["machine"]
    ph = r["median_ms_by_phase"]
    lines = [
        "# MLP training step: minidl vs PyTorch",
        "",
        f"{c['hidden_layers']} x Linear({c['width']}, {c['width']}) + ReLU, then "
        f"Linear({c['width']}, {c['classes']}); batch {c['batch']}, {c['dtype']}, "
        f"MSE loss, {c['optimizer']}. One step = forward + loss + backward + step + zero_grad.",
        f"Median of {c['repeats']} steps after {c['warmup']} warm-up steps, the two "
        "frameworks alternating in one process, identical initial weights.",
        "",
        "| framework | median ms/step | forward | backward | Adam + zero_grad |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("minidl", "torch"):
        lines.append(f"| {name} | {r['median_ms'][name]:.2f} | {ph[name]['forward']:.2f} | "
                     f"{ph[name]['backward']:.2f} | {ph[name]['step']:.2f} |")
    p = r["parity"]
    lines += [
        "",
        f"**ratio minidl / torch = {r['ratio_minidl_over_torch']:.2f}** "
        f"(target <= {r['target_ratio']})",
        "",
        f"Parity after one step: {'OK' if p['ok'] else 'MISMATCH'} (loss {p['loss']:.1e}, "
        f"outputs {p['output']:.1e}, gradients {p['grad']:.1e} relative; "
        f"max update difference {p['update']:.1e} x lr).",
        "",
        machine_line(m),
        "",
        "Reproduce: `python -m benchmarks.mlp_step "
        f"--batch {c['batch']} --width {c['width']} --layers {c['hidden_layers']} "
        f"--threads {m['threads']} --repeats {c['repeats']}`",
        "",
    ]
    return "\n".join(lines)


def chart(r, path):
    """minidl / torch per phase and for the whole step, with the 1.3 target line."""
    from benchmarks._charts import save_ratio_chart

    ph = r["median_ms_by_phase"]
    labels = ["step"] + list(ph["minidl"])
    ratios = [r["ratio_minidl_over_torch"]] + [ph["minidl"][k] / ph["torch"][k] for k in ph["minidl"]]
    c = r["config"]
    save_ratio_chart(path, [{"labels": labels, "ratios": ratios, "target": r["target_ratio"],
                             "title": "median time, minidl / PyTorch"}],
                     f"MLP step, batch {c['batch']}, width {c['width']}, {r['machine']['threads']} threads")


def profile_minidl(model, opt, x, t, repeats):
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(repeats):
        step_minidl(model, opt, x, t)
    prof.disable()
    print(f"\ncProfile of {repeats} minidl steps (sorted by own time):")
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    sys.exit(main())
