"""What data-parallel training costs in communication, for each model of the project, and the
speed-up it leaves.

Data parallelism (minidl.nn.parallel.DistributedDataParallel) adds one thing to a step: the
gradients of every trainable parameter, float32, are summed over the p ranks by an all-reduce.
The ring model prices an all-reduce of n bytes as

    T(p, n) = 2 (p - 1) alpha + 2 (p - 1) / p * n / beta            (T(1, n) = 0)

(alpha: latency of one message; beta: bandwidth of one link; benchmarks/allreduce.py fits both
on this machine). With the per-rank batch fixed (weak scaling), p ranks do p times the work of one
process in the time of one step plus the all-reduce, which here is not overlapped with the
backward pass:

    S(p) = p * t1 / (t1 + T(p, n))         E(p) = S(p) / p = t1 / (t1 + T(p, n))

so the efficiency E falls below 50% exactly when T(p, n) > t1: a step must take longer than the
all-reduce for p ranks to pay. ``scaling_limit`` gives the first such p.

Networks: this machine (the fit in benchmarks/results/allreduce.json: alpha from the small
messages, beta from the large ones) and two stated assumptions, not measurements: 10 Gigabit
Ethernet (30 us, 1.1 GB/s: 10 Gb/s less protocol overhead, a typical TCP latency) and
InfiniBand HDR (2 us, 20 GB/s: 200 Gb/s less overhead, a typical RDMA latency).

Models: every entry of unet.zoo.MODELS built as ``unet train --model NAME`` builds it by default
(TrainConfig defaults, the synthetic data's channels and classes), its trainable parameters
counted; step times t1 from benchmarks/results/unet_step.json (forward + loss + backward + Adam,
batch 4 of 256x256) and benchmarks/results/models.json (forward + loss + backward, batch 2 of
128x128, no optimizer step), 2 threads, for the configurations those benchmarks ran.

    python -m benchmarks.dist_cost_model              # tables; writes results/dist_cost_model.{json,md}
    python -m benchmarks.dist_cost_model --docs       # the cost-model section of docs/distributed.md
    python -m benchmarks.dist_cost_model --parameters 7759554 --t1 1.93 --ranks 2 8 64

From Python (the 2-rank check of docs/distributed.md)::

    from benchmarks.dist_cost_model import check_scaling
    check_scaling(nbytes=4 * 481762, t1_s=0.50, tp_s=0.55, p=2)   # predicted against measured
"""
import argparse
import json
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RANKS = (2, 4, 8, 16, 64)
MAX_RANKS = 1 << 16       # scaling_limit looks no further
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class Network:
    name: str
    alpha_s: float           # latency of one message, seconds
    beta_bytes_per_s: float  # bandwidth of one link, bytes per second
    source: str              # measured where, or what the assumption is


TEN_GBE = Network("10 GbE", 30e-6, 1.1e9, "assumed: 10 Gb/s Ethernet, TCP (30 us, 1.1 GB/s)")
INFINIBAND_HDR = Network("InfiniBand HDR", 2e-6, 20e9, "assumed: 200 Gb/s InfiniBand HDR, RDMA (2 us, 20 GB/s)")


def this_machine(path=RESULTS / "allreduce.json"):
    """The network of this machine as benchmarks/allreduce.py measured it (shared memory)."""
    result = json.loads(Path(path).read_text())
    m = result["machine"]
    return Network("this machine", result["alpha_s"], result["beta_bytes_per_s"],
                   f"measured by benchmarks/allreduce.py: {m['ranks']} ranks on {m['cpu']}, {m['mpi_library']}, "
                   f"{m['date']}")


def networks():
    return [this_machine(), TEN_GBE, INFINIBAND_HDR]


# --- the model's arithmetic ----------------------------------------------------------------

def allreduce_time(p, nbytes, alpha, beta):
    """Seconds of a ring all-reduce of ``nbytes`` over ``p`` ranks (0 for one rank)."""
    if p < 1 or nbytes < 0:
        raise ValueError(f"allreduce_time: p must be >= 1 and nbytes >= 0, got p={p}, nbytes={nbytes}")
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / beta


def speedup(p, t1, nbytes, alpha, beta):
    """Weak-scaling speed-up of p ranks: p * t1 / (t1 + T(p, nbytes))."""
    return p * t1 / (t1 + allreduce_time(p, nbytes, alpha, beta))


def efficiency(p, t1, nbytes, alpha, beta):
    return speedup(p, t1, nbytes, alpha, beta) / p


def scaling_limit(t1, nbytes, alpha, beta, max_ranks=MAX_RANKS):
    """The smallest p >= 2 whose efficiency is below 50% (T(p, n) > t1), or None up to ``max_ranks``.
    T grows with p, so a bisection finds it."""
    if allreduce_time(max_ranks, nbytes, alpha, beta) <= t1:
        return None
    low, high = 1, max_ranks  # T(low) <= t1 < T(high)
    while high - low > 1:
        middle = (low + high) // 2
        if allreduce_time(middle, nbytes, alpha, beta) > t1:
            high = middle
        else:
            low = middle
    return high


def check_scaling(nbytes, t1_s, tp_s, p=2, network=None):
    """Measured against predicted for one job: ``t1_s`` one process's step, ``tp_s`` the step of
    each of ``p`` ranks at the same per-rank batch (so the throughputs are 1 / t1_s and p / tp_s)."""
    network = network or this_machine()
    t_allreduce = allreduce_time(p, nbytes, network.alpha_s, network.beta_bytes_per_s)
    predicted_step = t1_s + t_allreduce
    return {"p": p, "bytes": nbytes, "network": network.name, "allreduce_s": t_allreduce,
            "predicted_step_s": predicted_step, "measured_step_s": tp_s,
            "predicted_speedup": p * t1_s / predicted_step, "measured_speedup": p * t1_s / tp_s,
            "measured_over_predicted_step": tp_s / predicted_step}


# --- the models -----------------------------------------------------------------------------

def trainable_bytes(model):
    """Bytes all-reduced per step: every parameter that requires a gradient (all float32 here)."""
    total = 0
    for parameter in model.parameters():
        if parameter.requires_grad:
            if str(parameter.dtype) not in ("float32", "minidl.float32"):
                raise TypeError(f"trainable_bytes: expected float32 parameters, got {parameter.dtype}")
            total += int(parameter.numel()) * FLOAT32_BYTES
    return total


def default_models():
    """Each model of unet.zoo as ``unet train --model NAME`` builds it by default, with its
    trainable parameters counted (builds FCN-VGG16 three times: about 10 s and 0.6 GB)."""
    from unet import zoo
    from unet.config import TrainConfig
    from unet.data import SegmentationData
    from unet.train import synthetic_kind

    rows = []
    for name in zoo.MODELS:
        config = TrainConfig(model=name)
        data = SegmentationData.synthetic(1, (32, 32), kind=synthetic_kind(config))
        model = zoo.build(config, data.in_channels, data.num_classes)
        nbytes = trainable_bytes(model)
        del model
        rows.append({"model": name, "configuration": _describe_default(config, name),
                     "in_channels": data.in_channels, "num_classes": data.num_classes,
                     "parameters": nbytes // FLOAT32_BYTES, "bytes": nbytes,
                     "article_parameters": zoo.PARAMETERS[name]})
    return rows


def _describe_default(config, name):
    if name == "unet":
        return f"base {config.base_channels}, depth {config.depth}"
    if name == "fcn":
        return f"FCN-{config.fcn_variant}, width {config.fcn_width}"
    return f"width {config.width:g}, the article's"


def measured_steps():
    """Configurations with a measured single-process step: ``t1_s`` and where it comes from."""
    rows = []
    step = json.loads((RESULTS / "unet_step.json").read_text())
    for r in step["rows"]:
        batch, size = r.get("batch", step["config"]["batch"]), r.get("size", step["config"]["size"])
        rows.append({"model": "unet", "configuration": f"base {r['base']}, depth {step['config']['depth']}",
                     "parameters": r["parameters"], "bytes": FLOAT32_BYTES * r["parameters"],
                     "t1_s": r["median_ms"]["minidl"] / 1e3, "batch": f"{batch} of {size}x{size}",
                     "source": "unet_step.json (forward + backward + Adam)",
                     "threads": step["machine"]["threads"]})
    models = json.loads((RESULTS / "models.json").read_text())
    size = models["config"]["size"]
    for r in models["rows"]:
        configuration = f"{r['width_name']} {r['width']:g} (the article's: {r['article_width']:g})"
        rows.append({"model": r["model"], "configuration": configuration,
                     "parameters": r["parameters"], "bytes": FLOAT32_BYTES * r["parameters"],
                     "t1_s": r["median_ms"]["minidl"] / 1e3, "batch": f"{models['config']['batch']} of {size}x{size}",
                     "source": "models.json (forward + backward, no optimizer)",
                     "threads": models["machine"]["threads"]})
    return rows


# --- tables ---------------------------------------------------------------------------------

def _ms(seconds):
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} us"


def _limit(t1, nbytes, network):
    p = scaling_limit(t1, nbytes, network.alpha_s, network.beta_bytes_per_s)
    return f"> {MAX_RANKS:,}" if p is None else f"{p:,}"


def article(d):
    """The parameters at the article's size, when the default configuration is not that size."""
    if abs(d["article_parameters"] - d["parameters"]) <= 0.001 * d["parameters"]:
        return ""
    return (f" At the article's size: {d['article_parameters']:,} parameters, "
            f"{FLOAT32_BYTES * d['article_parameters'] / 1e6:.1f} MB.")


def model_tables(defaults, measured, nets, ranks=RANKS):
    """Markdown: per model, T(p) on each network for its default configuration and for each
    measured one, and for the measured ones the rank count where efficiency drops below 50%."""
    head = "| configuration | MB per step | network | " + " | ".join(f"p = {p}" for p in ranks) + \
        " | t1 (per-rank batch) | below 50% from p = |"
    rule = "|---|---:|---|" + "---:|" * len(ranks) + "---:|---:|"
    lines = []
    for d in defaults:
        rows = [dict(d, configuration=f"`unet train` default: {d['configuration']}", t1_s=None)]
        rows += [m for m in measured if m["model"] == d["model"]]
        lines += [f"#### {d['model']}", "",
                  f"{d['parameters']:,} trainable parameters as `unet train --model {d['model']}` builds it "
                  f"({d['configuration']}; {d['in_channels']} input channel(s), {d['num_classes']} classes): "
                  f"**{d['bytes'] / 1e6:.1f} MB** all-reduced per step." + article(d), "", head, rule]
        for row in rows:
            for net in nets:
                times = [allreduce_time(p, row["bytes"], net.alpha_s, net.beta_bytes_per_s) for p in ranks]
                if row["t1_s"] is None:
                    t1, limit = "-", "t1 not measured"
                else:
                    t1 = f"{row['t1_s']:.3g} s ({row['batch']})"
                    limit = _limit(row["t1_s"], row["bytes"], net)
                lines.append(f"| {row['configuration']} | {row['bytes'] / 1e6:.2f} | {net.name} | "
                             + " | ".join(_ms(t) for t in times) + f" | {t1} | {limit} |")
        lines.append("")
    return "\n".join(lines)


def speedup_table(measured, nets, ranks=RANKS):
    """Markdown: S(p) for every measured configuration on every network."""
    lines = ["| model | configuration | t1 | network | " + " | ".join(f"S({p})" for p in ranks) + " |",
             "|---|---|---:|---|" + "---:|" * len(ranks)]
    for row in measured:
        for net in nets:
            s = [speedup(p, row["t1_s"], row["bytes"], net.alpha_s, net.beta_bytes_per_s) for p in ranks]
            lines.append(f"| {row['model']} | {row['configuration']} | {row['t1_s']:.3g} s | {net.name} | "
                         + " | ".join(f"{v:.2f}" for v in s) + " |")
    return "\n".join(lines)


def docs_selection(measured):
    """The measured configurations docs/distributed.md shows: for the U-Net the smallest and the
    paper's width of unet_step (batch 4 of 256x256), for the others their models.json row."""
    return [m for m in measured if m["model"] != "unet"
            or (m["source"].startswith("unet_step") and m["batch"] == "4 of 256x256"
                and m["configuration"] in ("base 16, depth 5", "base 64, depth 5"))]


def worst_overhead(measured, nets, p):
    """One line per network: the largest T(p) / t1 over the measured configurations."""
    lines = []
    for net in nets:
        ratio, row = max((allreduce_time(p, m["bytes"], net.alpha_s, net.beta_bytes_per_s) / m["t1_s"], i)
                         for i, m in enumerate(measured))
        m = measured[row]
        lines.append(f"{net.name}: largest T({p}) / t1 = {ratio:.1%} ({m['model']}, {m['configuration']}, "
                     f"t1 {m['t1_s']:.3g} s)")
    return "\n".join(lines)


def network_lines(nets):
    return "\n".join(f"* {n.name}: alpha = {n.alpha_s * 1e6:.3g} us, beta = {n.beta_bytes_per_s / 1e9:.3g} GB/s "
                     f"({n.source})." for n in nets)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.dist_cost_model", description=__doc__.split("\n")[0])
    p.add_argument("--parameters", type=int, help="one model: its float32 parameter count")
    p.add_argument("--t1", type=float, help="one model: its single-process step, seconds")
    p.add_argument("--alpha", type=float, help="latency, seconds (default: each network's)")
    p.add_argument("--beta", type=float, help="bandwidth, bytes/s (default: each network's)")
    p.add_argument("--ranks", type=int, nargs="+", default=list(RANKS))
    p.add_argument("--docs", action="store_true", help="print the tables of docs/distributed.md only")
    p.add_argument("--out", default=str(RESULTS / "dist_cost_model"))
    p.add_argument("--no-save", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    nets = networks()
    if args.alpha is not None or args.beta is not None:
        base = nets[0]
        nets = [Network("given", args.alpha if args.alpha is not None else base.alpha_s,
                        args.beta if args.beta is not None else base.beta_bytes_per_s, "given on the command line")]
    if args.parameters is not None:  # one model, from the command line
        nbytes = FLOAT32_BYTES * args.parameters
        for net in nets:
            print(f"{net.name}: {nbytes / 1e6:.2f} MB per step")
            for p in args.ranks:
                t = allreduce_time(p, nbytes, net.alpha_s, net.beta_bytes_per_s)
                extra = "" if args.t1 is None else \
                    f", S = {speedup(p, args.t1, nbytes, net.alpha_s, net.beta_bytes_per_s):.2f}"
                print(f"  p = {p:5d}: T = {_ms(t)}{extra}")
            if args.t1 is not None:
                print(f"  efficiency below 50% from p = {_limit(args.t1, nbytes, net)}")
        return
    defaults, measured = default_models(), measured_steps()
    if args.docs:
        print(model_tables(defaults, docs_selection(measured), nets, args.ranks))
        print(worst_overhead(measured, nets, max(args.ranks)))
        return
    tables = model_tables(defaults, measured, nets, args.ranks)
    text = "\n".join(["# All-reduce cost per step, per model (ring model)", "", network_lines(nets), "",
                      tables, "## Predicted weak-scaling speed-up S(p) = p t1 / (t1 + T(p))", "",
                      speedup_table(measured, nets, args.ranks), "",
                      worst_overhead(measured, nets, max(args.ranks)).replace("\n", "  \n"), ""])
    print(text)
    if not args.no_save:
        out = Path(args.out)
        result = {"benchmark": "dist_cost_model", "networks": [vars(n) for n in nets], "ranks": args.ranks,
                  "default_models": defaults, "measured_steps": measured}
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(text)
        print(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
