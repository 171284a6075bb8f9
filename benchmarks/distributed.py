"""Throughput of ``unet train`` on 1 and 2 ranks (``mpiexec -n N``), one thread per rank.

Three runs of the same recipe, each a real ``unet train`` command in its own job:

    1 rank,  global batch B         the one-process baseline
    2 ranks, global batch B         strong scaling: each rank trains B/2 samples a step
    2 ranks, global batch 2B        weak scaling: each rank trains B samples a step, as the
                                    baseline's one process does

Each trains ``--epochs`` timed epochs of ``--steps`` steps after one warm-up epoch (Numba's
compilation and caches), without validation (``--val-fraction 0``); a step's time is an epoch's
``seconds`` in history.csv over its steps (the median epoch). Reported: steps/s and samples/s.

The recipe: ``unet`` depth 3, 16 base channels, crops of 128, flips, rotations, jitter and the
elastic deformation, border weights, Adam; on the ISBI 2012 slices when --data (default
../shared/data/isbi2012) holds them, else 24 synthetic 192x192 cell images.

When benchmarks/dist_cost_model.py is there, the weak-scaling run is set beside its prediction:
one process's step plus a ring all-reduce of the model's float32 gradients on this machine's
fitted latency and bandwidth (benchmarks/results/allreduce.json).

    python -m benchmarks.distributed                 # writes results/distributed.{json,md}
    python -m benchmarks.distributed --steps 2 --epochs 1 --no-save     # smoke run
"""
# _common must come first: it sets the BLAS / Numba thread counts before NumPy loads.
from benchmarks._common import machine_info  # noqa: I001

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
ISBI = ROOT.parent / "shared" / "data" / "isbi2012"


def recipe(args):
    """The ``unet train`` options every run shares (but the batch size and the steps)."""
    options = ["--model", "unet", "--depth", "3", "--base-channels", "16", "--crop-size", "128",
               "--border-weight", "--val-fraction", "0", "--no-progress", "--seed", "0"]
    data = Path(args.data)
    if (data / "image").is_dir() and (data / "label").is_dir():
        return options + ["--images", str(data / "image"), "--masks", str(data / "label")], \
            f"ISBI 2012 slices ({data})"
    return options + ["--synthetic", "24", "--synthetic-size", "192"], \
        "24 synthetic 192x192 cell images (no ISBI slices found)"


def mpiexec():
    here = os.path.dirname(sys.executable)
    found = shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))
    if found is None:
        raise SystemExit("benchmarks.distributed: mpiexec not found (pip install -e '.[dist]')")
    return found


def run(ranks, batch, args, options, scratch):
    """One ``mpiexec -n ranks unet train`` job; its per-epoch step times (warm-up dropped)."""
    out = Path(scratch) / f"n{ranks}_b{batch}"
    command = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "unet", "train", *options,
               "--batch-size", str(batch), "--steps-per-epoch", str(args.steps),
               "--epochs", str(args.epochs + 1), "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(ROOT))
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    with open(out / "history.csv") as fh:
        epochs = list(csv.DictReader(fh))
    seconds = [float(row["seconds"]) for row in epochs[1:]]             # the warm-up dropped
    step_s = statistics.median(seconds) / args.steps
    return {"ranks": ranks, "global_batch": batch, "per_rank_batch": batch / ranks,
            "step_s": step_s, "steps_per_s": 1 / step_s, "samples_per_s": batch / step_s,
            "epoch_seconds": seconds, "job_wall_s": wall}


def parameter_bytes():
    """float32 bytes of the recipe's trainable parameters (what each step all-reduces)."""
    from unet.config import TrainConfig, build_model
    config = TrainConfig(model="unet", depth=3, base_channels=16)
    model = build_model(config, 1, 2)
    return sum(4 * int(p.numel()) for p in model.parameters() if p.requires_grad)


def prediction(nbytes, t1_s, tp_s):
    """The cost model's 2-rank prediction beside the measurement, or None without the model."""
    try:
        from benchmarks import dist_cost_model
    except ImportError:
        return None
    try:
        return dist_cost_model.check_scaling(nbytes=nbytes, t1_s=t1_s, tp_s=tp_s, p=2)
    except (OSError, KeyError, ValueError) as error:   # no fit of this machine yet
        return {"error": f"{type(error).__name__}: {error}"}


def markdown(result):
    lines = ["# `unet train` on 1 and 2 ranks (mpiexec, one thread per rank)", "",
             f"`python -m benchmarks.distributed --steps {result['steps']} --epochs {result['epochs']}`: "
             f"{result['data']}; unet depth 3, 16 base channels, crops 128x128 with flips, rotations, "
             "jitter, elastic deformation and border weights, Adam; the median of "
             f"{result['epochs']} timed epochs of {result['steps']} steps after a warm-up epoch, "
             "no validation.", "",
             "| run | ranks | global batch | per rank | step (s) | steps/s | samples/s | vs 1 rank |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = result["runs"][0]["samples_per_s"]
    for name, r in zip(("one process", "strong scaling", "weak scaling"), result["runs"]):
        lines.append(f"| {name} | {r['ranks']} | {r['global_batch']} | {r['per_rank_batch']:g} | "
                     f"{r['step_s']:.3f} | {r['steps_per_s']:.2f} | {r['samples_per_s']:.2f} | "
                     f"{r['samples_per_s'] / base:.2f}x |")
    lines.append("")
    p = result["prediction"]
    if p is None:
        lines.append("No cost model (benchmarks/dist_cost_model.py is not here): no prediction.")
    elif "error" in p:
        lines.append(f"The cost model could not predict: {p['error']}.")
    else:
        lines.append(f"Cost model ({p['network']}): all-reduce of {p['bytes'] / 1e6:.2f} MB "
                     f"{1e3 * p['allreduce_s']:.2f} ms; weak-scaling step predicted "
                     f"{p['predicted_step_s']:.3f} s, measured {p['measured_step_s']:.3f} s "
                     f"(speed-up predicted {p['predicted_speedup']:.2f}x, measured "
                     f"{p['measured_speedup']:.2f}x).")
    m = result["machine"]
    lines += ["", f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), 1 thread per rank; "
              f"Python {m['python']}, numpy {m['numpy']}, minidl backend {m['minidl_backend']}; "
              f"{m['date']}; load average {result['load_before']} before, {result['load_after']} after.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch (20)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up (3)")
    parser.add_argument("--batch", type=int, default=4, help="one process's batch B (4)")
    parser.add_argument("--data", default=str(ISBI), help="ISBI 2012 folder (image/, label/)")
    parser.add_argument("--threads", default="1", help="(fixed: one thread per rank)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    parser.add_argument("--no-save", action="store_true", help="only print")
    args = parser.parse_args(argv)
    options, data = recipe(args)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="dist_bench_") as scratch:
        runs = [run(1, args.batch, args, options, scratch),
                run(2, args.batch, args, options, scratch),
                run(2, 2 * args.batch, args, options, scratch)]
    nbytes = parameter_bytes()
    result = {"steps": args.steps, "epochs": args.epochs, "data": data, "parameter_bytes": nbytes,
              "runs": runs, "prediction": prediction(nbytes, runs[0]["step_s"], runs[2]["step_s"]),
              "machine": {**machine_info(_NoTorch, 1), "torch": None},
              "load_before": load_before,
              "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    text = markdown(result)
    print(text)
    if not args.no_save:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "distributed.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "distributed.md").write_text(text)
        print(f"wrote {out / 'distributed.json'} and {out / 'distributed.md'}")


class _NoTorch:
    """machine_info asks for torch's version; this benchmark does not use PyTorch."""
    __version__ = None


if __name__ == "__main__":
    main()
