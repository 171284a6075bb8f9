"""Adam's step alone on a U-Net's parameters: minidl's two routes against torch.optim.Adam.

Parameters: those of unet.UNet(in_channels=1, n_classes=2, base_channels=B, depth=5,
padding="same") for each B of --base (46 float32 tensors: 1.9 M elements at B = 16, 7.8 M at
32, 31 M at 64), each with a fixed random gradient. Every optimizer has its own copy of the
parameters and keeps stepping on the same gradients. Timed: one ``step()``.

Routes: minidl ``foreach=False`` (one textbook update per parameter, the route before the
multi-tensor one), ``foreach=None`` (the multi-tensor route, blocks of ``Adam._foreach_block``
elements), the same with the other block sizes of --blocks (0 = the whole group in one block);
torch.optim.Adam with its default (on the CPU: one update per tensor) and ``foreach=True``, at
each thread count of --torch-threads (NumPy's elementwise updates run on one thread; torch's
use its intra-op threads, which on a busy machine wait for each other).

Method: --warmup untimed steps of each, then --repeats rounds; each round times every route
once, in an order that rotates from round to round (same machine state for all); median ms.
At the end every minidl route must hold bitwise the same parameters (same arithmetic, same
number of steps) and torch's must agree to float32 rounding.

    python -m benchmarks.adam_step                       # B = 16 32 64
    python -m benchmarks.adam_step --base 16 --repeats 5 # smoke run
"""
# _common must come first: it sets the BLAS / Numba thread counts before NumPy loads.
from benchmarks._common import THREADS, machine_info, machine_line, median_ms, timed  # noqa: I001

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import minidl  # noqa: E402
from minidl.optim import Adam  # noqa: E402
import unet  # noqa: E402

LR = 1e-3
DEPTH = 5


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.adam_step", description=__doc__.split("\n")[0])
    p.add_argument("--base", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--blocks", type=int, nargs="*", default=[2 ** 13, 2 ** 14, 2 ** 16, 2 ** 17, 0],
                   help="other block sizes of the multi-tensor route to time (0: one block)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=int(THREADS), help="BLAS / Numba threads (default 2)")
    p.add_argument("--torch-threads", type=int, nargs="+", default=[1],
                   help="torch's thread counts to time (default 1, as NumPy's updates)")
    p.add_argument("--pause", type=float, default=0.02,
                   help="seconds of sleep before each timed step (idle threads stop spinning)")
    p.add_argument("--out", default="benchmarks/results/adam_step")
    return p.parse_args(argv)


def blocked(block):
    return type(f"Adam_block_{block}", (Adam,), {"_foreach_block": block or None})


def routes(torch, arrays, grads):
    """name -> (step function, parameter list) for every route, each on its own copies."""
    out = {}

    def ours(name, cls, **kwargs):
        params = [minidl.nn.Parameter(minidl.tensor(a.copy())) for a in arrays]
        for p, g in zip(params, grads):
            p.grad = minidl.tensor(g.copy())
        step = cls(params, lr=LR, **kwargs).step
        out[name] = (lambda: step, params)

    def theirs(name, threads, **kwargs):
        params = [torch.nn.Parameter(torch.tensor(a.copy())) for a in arrays]
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g.copy())
        step = torch.optim.Adam(params, lr=LR, **kwargs).step

        def timed_step():                  # (the thread count is set outside the timed call)
            torch.set_num_threads(threads)
            return step
        out[name] = (timed_step, params)

    ours("minidl per-parameter (foreach=False)", Adam, foreach=False)
    ours(f"minidl multi-tensor (foreach=None, block {Adam._foreach_block})", Adam)
    for block in ARGS.blocks:
        ours(f"minidl multi-tensor, block {block or 'whole'}", blocked(block))
    for threads in ARGS.torch_threads:
        theirs(f"torch Adam (default), {threads} thread{'s' if threads > 1 else ''}", threads)
        theirs(f"torch Adam (foreach=True), {threads} thread{'s' if threads > 1 else ''}", threads, foreach=True)
    return out


def bench(torch, base):
    model = unet.UNet(in_channels=1, n_classes=2, base_channels=base, depth=DEPTH, padding="same")
    arrays = [p.detach().numpy().copy() for p in model.parameters()]
    rng = np.random.default_rng(base)
    grads = [rng.standard_normal(a.shape).astype(np.float32) * 1e-2 for a in arrays]
    table = routes(torch, arrays, grads)
    names = list(table)
    for name in names:
        for _ in range(ARGS.warmup):
            table[name][0]()()
    times = {name: [] for name in names}
    for r in range(ARGS.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(ARGS.pause)
            times[name].append(timed(table[name][0]()))

    reference = table[names[0]][1]
    for name in names[1:]:
        params = table[name][1]
        for a, b in zip(reference, params):
            a = a.detach().numpy()
            b = b.detach().numpy()
            if name.startswith("minidl"):
                assert np.array_equal(a, b), f"{name}: not bitwise the per-parameter route"
            else:
                assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(a).max()), name
    return {"base": base, "tensors": len(arrays), "elements": int(sum(a.size for a in arrays)),
            "ms": {name: median_ms(t) for name, t in times.items()},
            "spread_ms": {name: [1e3 * min(t), 1e3 * max(t)] for name, t in times.items()}}


def markdown(results, machine):
    names = list(results[0]["ms"])
    lines = ["# Adam's step on a U-Net's parameters (depth 5, float32)", "",
             "`python -m benchmarks.adam_step`: one `step()` of each optimizer on the parameters of "
             "`unet.UNet(base_channels=B, depth=5)` with fixed gradients, every route timed once per round "
             f"in a rotating order after a {ARGS.pause} s pause, {ARGS.repeats} rounds after {ARGS.warmup} warm-up steps; median ms "
             "(min - max in brackets). All minidl routes end bitwise equal.", "",
             "| route | " + " | ".join(f"B = {r['base']} ({r['tensors']} tensors, {r['elements'] / 1e6:.1f} M)"
                                     for r in results) + " |",
             "|---|" + "---:|" * len(results)]
    for name in names:
        cells = [f"{r['ms'][name]:.2f} ({r['spread_ms'][name][0]:.2f} - {r['spread_ms'][name][1]:.2f})"
                 for r in results]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    torch_names = [name for name in names if name.startswith("torch Adam (default)")]
    lines.append("| multi-tensor / per-parameter | " + " | ".join(
        f"{r['ms'][names[1]] / r['ms'][names[0]]:.2f}x" for r in results) + " |")
    for torch_name in torch_names:
        lines.append(f"| multi-tensor / {torch_name[6:]} | " + " | ".join(
            f"{r['ms'][names[1]] / r['ms'][torch_name]:.2f}x" for r in results) + " |")
    lines += ["", machine_line(machine)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    global ARGS
    ARGS = parse_args(argv)
    import torch
    machine = machine_info(torch, ARGS.threads)
    results = []
    for base in ARGS.base:
        results.append(bench(torch, base))
        print(json.dumps(results[-1]["ms"], indent=1), flush=True)
    text = markdown(results, machine)
    print(text)
    out = Path(ARGS.out)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    out.with_suffix(".md").write_text(text)


ARGS = None

if __name__ == "__main__":
    main()
