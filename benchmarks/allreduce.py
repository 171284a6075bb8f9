"""MPI all-reduce time against message size, and the ring model's latency and bandwidth fitted to it.

What data-parallel training pays per step on top of one process's work is, to first order, one
all-reduce of every gradient (float32, summed over the ranks). The ring model (Patarasuk and Yuan
2009; Thakur, Rabenseifner and Gropp 2005) prices an all-reduce of n bytes over p ranks as

    T(p, n) = 2 (p - 1) alpha + 2 (p - 1) / p * n / beta

(a reduce-scatter and an all-gather of p - 1 steps each, every step one message of n / p bytes;
alpha the latency of one message, beta the bandwidth of one link, the summation's cost folded
into beta). This script measures T for p ranks (default 2) on this machine with mpi4py's
``Allreduce(MPI.IN_PLACE, buffer, MPI.SUM)`` on C-contiguous float32 NumPy buffers (what
minidl.distributed does) from 4 KiB to 256 MiB (the gradients of the project's models are
0.5 to 540 MB), and fits the model by least squares on the relative
error (so that small and large messages weigh alike):

* ``latency``: alpha and beta fitted to the messages up to --small-kib (256 KiB); its alpha is
  the latency the cost model uses;
* ``large``: beta alone, alpha fixed to the latency fit's, fitted to the messages from
  --large-kib (32 MiB) on: the bandwidth once the buffers no longer fit in the caches, which is
  where the gradients of the project's models lie (1 to 500 MB);
* ``all``: alpha and beta fitted to every size, for reference (one line cannot follow the drop
  in bandwidth when the buffers leave the caches, so its error is large).

benchmarks/dist_cost_model.py uses alpha of ``latency`` and beta of ``large``.

Method: --rounds rounds over all sizes (so that a burst of load from other users touches every
size alike); per size and round a few warm-up calls, then repeats for about --seconds / --rounds
seconds (at least --min-repeats); each repeat starts after a barrier, and its time is the slowest
rank's (MPI_MAX of the ranks' own times); the median over all repeats of all rounds is reported.
One thread per rank.

    python -m benchmarks.allreduce                 # starts mpiexec -n 2 itself
    mpiexec -n 4 python -m benchmarks.allreduce    # or under your own launcher
    python -m benchmarks.allreduce --no-save --max-kib 1024   # smoke run

Writes benchmarks/results/allreduce.{json,md}.
"""
import os

if __name__ == "__main__":  # run, not imported (the tests import fit_ring_model)
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, "1")  # one thread per rank, before NumPy loads

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

# environment variables that MPICH's hydra, Open MPI and Slurm set in the processes they start
_LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.allreduce", description=__doc__.split("\n")[0])
    p.add_argument("-n", "--ranks", type=int, default=2, help="ranks to start when not under mpiexec (default 2)")
    p.add_argument("--min-kib", type=int, default=4, help="smallest message, KiB (default 4)")
    p.add_argument("--max-kib", type=int, default=256 * 1024, help="largest message, KiB (default 262144 = 256 MiB)")
    p.add_argument("--small-kib", type=int, default=256, help="latency fit: messages up to this size (KiB)")
    p.add_argument("--large-kib", type=int, default=32 * 1024, help="bandwidth fit: messages from this size on (KiB)")
    p.add_argument("--rounds", type=int, default=3, help="passes over all sizes (default 3)")
    p.add_argument("--seconds", type=float, default=1.5, help="about this long per size, all rounds (default 1.5)")
    p.add_argument("--min-repeats", type=int, default=5, help="per size and round (default 5)")
    p.add_argument("--max-repeats", type=int, default=400)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/allreduce")
    p.add_argument("--no-save", action="store_true", help="print only")
    return p.parse_args(argv)


def launched_by_mpi():
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def relaunch_under_mpiexec(args, argv):
    """Start this script again under ``mpiexec -n ranks`` (the one beside this Python first)."""
    beside = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(beside) if beside.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("allreduce: no mpiexec found (pip install 'minidl[dist]', or run under your MPI's launcher)")
    command = [mpiexec, "-n", str(args.ranks), sys.executable, "-m", "benchmarks.allreduce", *argv]
    print("running:", " ".join(command), flush=True)
    sys.exit(subprocess.call(command))


def time_allreduce(comm, MPI, nbytes, args):
    """Seconds of in-place float32 SUM all-reduces of ``nbytes``, one round (the slowest rank's)."""
    buffer = np.ones(nbytes // 4, dtype=np.float32)
    for _ in range(args.warmup):
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        buffer.fill(1.0)  # keep the values finite (they double on 2 ranks)
    times = []
    elapsed = np.zeros(1)
    while True:
        buffer.fill(1.0)
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        elapsed[0] = time.perf_counter() - start
        comm.Allreduce(MPI.IN_PLACE, elapsed, op=MPI.MAX)  # the slowest rank's time
        times.append(float(elapsed[0]))
        # every rank takes the same decision: the times are the same on all after MPI_MAX
        if len(times) >= args.max_repeats or (len(times) >= args.min_repeats
                                              and sum(times) >= args.seconds / args.rounds):
            break
    assert buffer[0] == comm.Get_size(), "all-reduce gave a wrong sum"
    return times


def fit_ring_model(p, sizes, seconds, alpha=None):
    """``(alpha, beta)`` of T = 2 (p-1) alpha + 2 (p-1)/p n / beta, least squares on T's relative
    error: the model is linear in (alpha, 1/beta), each row divided by the measured T. With
    ``alpha`` given, only 1/beta is fitted."""
    n = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    latency = np.full_like(n, 2.0 * (p - 1)) / t  # (S,) coefficient of alpha, relative
    transfer = 2.0 * (p - 1) / p * n / t          # (S,) coefficient of 1 / beta, relative
    if alpha is None:
        design = np.stack([latency, transfer], axis=1)  # (S, 2)
        (alpha, inv_beta), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    else:
        rest = 1.0 - alpha * latency  # (S,) what 1 / beta must explain
        inv_beta = float(transfer @ rest / (transfer @ transfer))
    return float(alpha), float(1.0 / inv_beta)


def ring_time(p, nbytes, alpha, beta):
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / beta


def fit_all(p, rows, args):
    """The three fits of the module docstring, each with its sizes and largest relative error
    over the sizes it was fitted to; every row gets each fit's prediction."""
    def fit(chosen, alpha=None):
        a, b = fit_ring_model(p, [r["bytes"] for r in chosen], [r["median_s"] for r in chosen], alpha)
        error = max(abs(ring_time(p, r["bytes"], a, b) / r["median_s"] - 1) for r in chosen)
        return {"alpha_s": a, "beta_bytes_per_s": b, "max_relative_error": error,
                "sizes": [chosen[0]["bytes"], chosen[-1]["bytes"]]}

    small = [r for r in rows if r["bytes"] <= args.small_kib * 1024]
    large = [r for r in rows if r["bytes"] >= args.large_kib * 1024]
    fits = {"latency": fit(small)}
    fits["large"] = fit(large, alpha=fits["latency"]["alpha_s"]) if large else None
    fits["all"] = fit(rows)
    fits = {name: f for name, f in fits.items() if f is not None}
    for row in rows:
        row["model_s"] = {name: ring_time(p, row["bytes"], f["alpha_s"], f["beta_bytes_per_s"])
                          for name, f in fits.items()}
    return fits


def machine_info(MPI, ranks):
    import mpi4py

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    library = MPI.Get_library_version().strip().splitlines()
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "ranks": ranks,
        "threads_per_rank": int(os.environ.get("OMP_NUM_THREADS", "1")),
        "mpi_library": " ".join(library[0].split()) if library else "unknown",
        "mpi_library_full": [" ".join(line.split()) for line in library[:4]],
        "mpi_standard": ".".join(map(str, MPI.Get_version())),
        "mpi4py": mpi4py.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0],
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def markdown(result):
    m, fits = result["machine"], result["fits"]
    p = m["ranks"]
    names = list(fits)
    lines = [
        "# MPI all-reduce on this machine",
        "",
        f"`python -m benchmarks.allreduce`: mpi4py `Allreduce(MPI.IN_PLACE, buffer, MPI.SUM)` on float32 "
        f"NumPy buffers, {p} ranks, {m['threads_per_rank']} thread each; per size the median over "
        f"{result['config']['rounds']} rounds of repeats of the slowest rank's time (each repeat after a barrier).",
        "",
        "Ring model T(p, n) = 2(p-1) alpha + 2(p-1)/p n / beta, least squares on the relative error:",
        "",
        "| fit | sizes | alpha | beta | largest relative error |",
        "|---|---|---:|---:|---:|",
    ]
    for name, fit in fits.items():
        lines.append(f"| {name} | {_size(fit['sizes'][0])} to {_size(fit['sizes'][1])} | "
                     f"{fit['alpha_s'] * 1e6:.2f} us | {fit['beta_bytes_per_s'] / 1e9:.2f} GB/s | "
                     f"{fit['max_relative_error'] * 100:.0f}% |")
    lines += [
        "",
        f"**The cost model (benchmarks/dist_cost_model.py) takes alpha = {result['alpha_s'] * 1e6:.2f} us "
        f"(latency fit) and beta = {result['beta_bytes_per_s'] / 1e9:.2f} GB/s (large-message fit)**: the "
        "gradients of the project's models are megabytes to hundreds of megabytes, past the caches. On one "
        "machine the messages go through shared memory, so beta is a rate of memory copies and additions "
        "shared with whatever else runs, not a network's.",
        "",
        "| message | repeats | median time | quartiles | n / T | " + " | ".join(f"model ({n})" for n in names) + " |",
        "|---:|---:|---:|---:|---:|" + "---:|" * len(names),
    ]
    for row in result["rows"]:
        q1, q3 = row["quartiles_s"]
        lines.append(f"| {_size(row['bytes'])} | {row['repeats']} | {_time(row['median_s'])} | "
                     f"{_time(q1)} to {_time(q3)} | {row['bytes'] / row['median_s'] / 1e9:.2f} GB/s | "
                     + " | ".join(_time(row["model_s"][n]) for n in names) + " |")
    lines += ["", f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), load average {m['load_average_1min']:.2f} "
              f"at the start (other users share it); {m['mpi_library']} (MPI {m['mpi_standard']}), "
              f"mpi4py {m['mpi4py']}, numpy {m['numpy']}, Python {m['python']}; {m['date']}.", ""]
    return "\n".join(lines)


def _size(nbytes):
    return f"{nbytes // 2**20} MiB" if nbytes >= 2**20 else f"{nbytes // 2**10} KiB"


def _time(seconds):
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not launched_by_mpi():
        relaunch_under_mpiexec(args, argv)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, p = comm.Get_rank(), comm.Get_size()
    if p < 2:
        sys.exit("allreduce: needs at least 2 ranks")
    machine = machine_info(MPI, p) if rank == 0 else None
    sizes = []
    size = args.min_kib * 1024
    while size <= args.max_kib * 1024:
        sizes.append(size)
        size *= 2
    times = {nbytes: [] for nbytes in sizes}
    for round_ in range(args.rounds):
        for nbytes in sizes:
            times[nbytes] += time_allreduce(comm, MPI, nbytes, args)
            if rank == 0 and round_ == args.rounds - 1:
                print(f"{_size(nbytes):>8s}  {_time(statistics.median(times[nbytes])):>10s}  "
                      f"({len(times[nbytes])} repeats)", flush=True)
    if rank != 0:
        return
    rows = [{"bytes": n, "median_s": statistics.median(t), "repeats": len(t),
             "quartiles_s": [float(q) for q in np.percentile(t, [25, 75])]} for n, t in times.items()]
    fits = fit_all(p, rows, args)
    result = {"benchmark": "allreduce", "config": vars(args), "machine": machine,
              "model": "T(p, n) = 2 (p-1) alpha + 2 (p-1)/p n / beta",
              "alpha_s": fits["latency"]["alpha_s"], "beta_bytes_per_s": fits["large"]["beta_bytes_per_s"],
              "fits": fits, "rows": rows}
    for name, fit in fits.items():
        print(f"{name:8s} fit: alpha = {fit['alpha_s'] * 1e6:.2f} us, beta = {fit['beta_bytes_per_s'] / 1e9:.3f} "
              f"GB/s (sizes {_size(fit['sizes'][0])} to {_size(fit['sizes'][1])}, largest relative error "
              f"{fit['max_relative_error']:.0%})")
    if not args.no_save:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(result))
        print(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
