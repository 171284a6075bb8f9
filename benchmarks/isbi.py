"""ISBI 2012 EM membranes: train the same U-Net in minidl and in PyTorch, score both.

Data (--data DIR): DIR/image/N.png and DIR/label/N.png, 512 x 512 8-bit slices, or the
challenge's own stacks as DIR/image/<name>.tif (train-volume.tif) and DIR/label/<name>.tif
(train-labels.tif) under one name; labels 255 = cell interior (class 1), 0 = membrane (class 0).
Slices --train (0-19) are trained on, slices --test (20-24) are scored.

Recipe (the same for both libraries, every setting a flag):
    model      unet.UNet(1, 2, base_channels=16, depth=5, padding="same"), the paper's
               He-normal initialisation in minidl; PyTorch gets a copy of those weights
               (benchmarks/_torch_unet.py, unet.interop.export_torch_state_dict)
    batches    --steps batches of --batch-size random --crop x --crop crops of the training
               slices with flips, 90-degree rotations and intensity jitter
               (unet.augment.Augmenter), drawn from ONE numpy Generator(--seed): both
               libraries get the very same batch at every step
    loss       pixel-wise cross-entropy times the paper's border weight map
               w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2)) (unet.weights; --loss ce: plain)
    optimiser  Adam(lr=--lr), cosine annealing to 0 over the steps (--schedule): the small
               final steps also make the final weights, and so the scores, less noisy
    scoring    unet.predict.predict_probabilities (overlap-tile) for BOTH: the PyTorch net
               is wrapped as a unet.UNet whose forward calls it (TorchAsUNet), so the same
               tiling, padding and softmax code runs; prediction = argmax over the classes;
               unet.metrics.segmentation_metrics(num_classes=2, cell_class=1): pixel
               accuracy and membrane Dice (dice_0) pooled over the test slices' pixels,
               and the ISBI foreground-restricted Rand score V_rand, the mean over slices.

The two libraries train step by step in turn (minidl, then PyTorch, on the same batch), so
both are timed under the same machine load. Step 1 is a parity check: both start from the
same weights and batch, so their first losses must agree to float32 rounding. After that
float32 rounding makes the runs drift apart, and a score of one run is one draw from a noisy
distribution (V_rand most of all: one gap in a membrane merges two cells). So --runs R repeats
the whole comparison with seeds --seed .. --seed+R-1 (new initial weights and batches each
time) and compares the libraries' mean scores; the table also gives each library's
seed-to-seed spread, the noise a single run carries. Target: mean scores within 0.01.

    python -m benchmarks.isbi --data data/isbi2012 --runs 3     # full run
    python -m benchmarks.isbi --data data/isbi2012 --steps 5 --no-save   # smoke run

Writes benchmarks/results/isbi.json, isbi.md and isbi_prediction.png (--out to change).

Budget mode (--minutes M): training throughput. Each library trains its own copy of the same
initial weights for M minutes of wall-clock time, one library after the other (the order
alternates from run to run), with the same recipe: batch k of either library is made from
``numpy.random.default_rng([seed, k])`` (BudgetBatches), so both see the same batches, by
``--workers N`` worker processes of the library's own DataLoader (minidl.utils.data /
torch.utils.data; 0: in the training process, timed with the step); the learning rate follows
a cosine from --lr to 0 over the budget's elapsed time (the number of steps is not known
ahead). The clock starts before the DataLoader's workers do and stops after the last step that
started within the budget. Reported: steps done, steps/s, seconds spent waiting for batches,
and the held-out scores. Target: minidl's steps at least 0.9x PyTorch's, its scores within
0.01 of PyTorch's or better. Writes isbi_budget.json, isbi_budget.md and
isbi_budget_prediction.png.

    python -m benchmarks.isbi --data data/isbi2012 --minutes 8 --depth 4 --crop 256 --elastic --workers 2
"""
# _common must come first: it sets the BLAS / Numba thread counts before NumPy loads.
from benchmarks._common import THREADS, machine_info, machine_line, warn_if_threads_not_applied  # noqa: I001

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
import minidl.optim  # noqa: E402
from unet import UNet  # noqa: E402
from unet.augment import Augmenter  # noqa: E402
from unet.data import SegmentationData  # noqa: E402
from unet.metrics import segmentation_metrics  # noqa: E402
from unet.predict import predict_probabilities  # noqa: E402
from unet.weights import border_weight_map  # noqa: E402

MEMBRANE, CELL = 0, 1            # class indices after the automatic {0, 255} -> {0, 1} mapping
TARGET = 0.01                    # |minidl score - PyTorch score| for every headline score
STEPS_TARGET = 0.9               # budget mode: minidl's steps / PyTorch's steps
PARITY_RTOL = 1e-4               # first-step losses, relative (float32, same weights and batch)
HEADLINE = (("pixel_accuracy", "pixel accuracy"), ("dice_0", "membrane Dice"),
            ("v_rand", "V_rand"))
LIBRARIES = ("minidl", "torch")


# ============================================================================ arguments
def parse_slices(text):
    """'0-19' -> [0, ..., 19]; '20,22,24' -> [20, 22, 24]; '3' -> [3]; mixes allowed."""
    slices = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(p) for p in part.split("-", 1))
                if last < first:
                    raise ValueError
                slices.extend(range(first, last + 1))
            else:
                slices.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected slice numbers like '0-19' or '20,21,22', got {text!r}") from None
    if min(slices) < 0:
        raise argparse.ArgumentTypeError(f"slice numbers must be >= 0, got {text!r}")
    return slices


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def format_slices(slices):
    """[0, 1, 2, 5] -> '0-2, 5' (the inverse of parse_slices, for the reports)."""
    runs, start = [], slices[0]
    for prev, n in zip(slices, slices[1:] + [None]):
        if n != prev + 1:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
            start = n
    return ", ".join(runs)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.isbi",
        description="Train the same U-Net with the same recipe, batches and initial weights in "
                    "minidl and in PyTorch on ISBI 2012 slices, and score both on held-out slices "
                    "(pixel accuracy, membrane Dice, V_rand).")
    p.add_argument("--data", type=Path, required=True,
                   help="folder with image/ and label/ (N.png slices, or one .tif stack each)")
    p.add_argument("--train", type=parse_slices, default=parse_slices("0-19"),
                   help="training slices (default 0-19)")
    p.add_argument("--test", type=parse_slices, default=parse_slices("20-24"),
                   help="scored slices (default 20-24)")
    p.add_argument("--steps", type=_positive, default=400, help="training steps (default 400)")
    p.add_argument("--batch-size", type=_positive, default=4, help="crops per step (default 4)")
    p.add_argument("--crop", type=_positive, default=128,
                   help="side of the random training crops; a multiple of 2**(depth-1) (default 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning rate: cosine annealing from --lr to 0 over the steps, or "
                        "constant (default cosine)")
    p.add_argument("--depth", type=_positive, default=5, help="U-Net levels (default 5, the paper's)")
    p.add_argument("--base-channels", type=_positive, default=16,
                   help="channels at the top level (default 16)")
    p.add_argument("--loss", choices=("weighted", "ce"), default="weighted",
                   help="'weighted': cross-entropy times the paper's border weight map (default; "
                        "separates touching cells, so a better V_rand); 'ce': plain cross-entropy")
    p.add_argument("--w0", type=float, default=10.0, help="border weight w0 (default 10)")
    p.add_argument("--sigma", type=float, default=5.0, help="border weight sigma in pixels (default 5)")
    p.add_argument("--jitter", type=float, default=0.1,
                   help="intensity jitter of the augmentation (default 0.1)")
    p.add_argument("--elastic", action="store_true",
                   help="also the paper's elastic deformation (off by default: slower)")
    p.add_argument("--tile", type=_positive, default=None,
                   help="prediction tile side (default: unet.predict's choice)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and of the batches of the first run "
                        "(default 0)")
    p.add_argument("--runs", type=_positive, default=1,
                   help="repeat the comparison with seeds --seed, --seed+1, ... and compare the "
                        "mean scores (default 1)")
    p.add_argument("--minutes", type=float, default=None,
                   help="budget mode: each library trains for this many minutes of wall-clock time "
                        "(instead of --steps) and the steps done are compared")
    p.add_argument("--workers", type=int, default=0,
                   help="budget mode: DataLoader worker processes that make the batches, for each "
                        "library (default 0: in the training process)")
    p.add_argument("--threads", type=_positive, default=int(THREADS),
                   help="BLAS / Numba / torch threads (default 2); set before numpy loads")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                   help="folder for isbi.json, isbi.md, isbi_prediction.png (default benchmarks/results)")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    if not args.data.is_dir():
        p.error(f"--data: {args.data} is not a folder")
    for sub in ("image", "label"):
        if not (args.data / sub).is_dir():
            p.error(f"--data: {args.data} has no '{sub}' folder (expected {sub}/N.png)")
    if set(args.train) & set(args.test):
        p.error(f"--train and --test share slices {sorted(set(args.train) & set(args.test))}")
    if args.crop % 2 ** (args.depth - 1):
        p.error(f"--crop {args.crop} must be a multiple of 2**(depth-1) = {2 ** (args.depth - 1)} "
                f"for a same-padding U-Net of depth {args.depth}")
    if not args.lr > 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        p.error(f"--minutes must be > 0, got {args.minutes}")
    if args.workers < 0:
        p.error(f"--workers must be >= 0, got {args.workers}")
    return args


# ============================================================================ data
def _slice_number(name):
    """Slice N of a sample: the file N.png, or page N of a stack (unet.data names it <stem>_N)."""
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def load_slices(data_dir, train, test):
    """(train images, train masks, test images, test masks): lists of (1, H, W) float32 and
    (H, W) int64 arrays (classes 0 = membrane, 1 = cell), read by unet.data."""
    data = SegmentationData.from_folders(data_dir / "image", data_dir / "label")
    if data.num_classes != 2:
        raise ValueError(f"isbi: expected two classes (labels 0 and 255) in {data_dir / 'label'}, "
                         f"got {data.num_classes}")
    by_number = {_slice_number(name): i for i, name in enumerate(data.names)}
    missing = [n for n in train + test if n not in by_number]
    if missing:
        raise ValueError(f"isbi: slices {missing} are not in {data_dir} (found: {data.names})")

    def pick(numbers):
        pairs = [data[by_number[n]] for n in numbers]
        return [image for image, _ in pairs], [mask for _, mask in pairs]

    return (*pick(train), *pick(test))


def batches(images, masks, weights, steps, batch_size, augment, seed):
    """Yield ``steps`` batches (x (B, 1, c, c) float32, y (B, c, c) int64, w (B, c, c) float32
    or None). One Generator draws the slice and then its augmentation, crop by crop, so the
    same arguments give the same batches."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        xs, ys, ws = [], [], []
        for _ in range(batch_size):
            i = int(rng.integers(len(images)))
            x, y, w = augment(images[i], masks[i], None if weights is None else weights[i], rng=rng)
            xs.append(x)
            ys.append(y)
            ws.append(w)
        yield (np.stack(xs), np.stack(ys),                      # (B, 1, c, c), (B, c, c)
               None if weights is None else np.stack(ws))       # (B, c, c)


class BudgetBatches:
    """Batch ``k`` of a budget run, ``(x (B, 1, c, c) float32, y (B, c, c) int64, w or None)``:
    the slices and their augmentation are drawn from ``default_rng([seed, k])``, so any process
    makes the same batch ``k`` (a map-style dataset for either library's DataLoader)."""

    def __init__(self, images, masks, weights, batch_size, augment, seed):
        self.images, self.masks, self.weights = images, masks, weights
        self.batch_size, self.augment, self.seed = batch_size, augment, seed

    def __getitem__(self, k):
        rng = np.random.default_rng([self.seed, k])
        xs, ys, ws = [], [], []
        for _ in range(self.batch_size):
            i = int(rng.integers(len(self.images)))
            x, y, w = self.augment(self.images[i], self.masks[i],
                                   None if self.weights is None else self.weights[i], rng=rng)
            xs.append(x)
            ys.append(y)
            ws.append(w)
        return (np.stack(xs), np.stack(ys),                     # (B, 1, c, c), (B, c, c)
                None if self.weights is None else np.stack(ws))  # (B, c, c)


def _as_is(batch):
    """collate_fn: an item of BudgetBatches is already a batch of NumPy arrays."""
    return batch


def budget_loader(library, dataset, workers):
    """An endless iterator over batches 0, 1, 2, ... of ``dataset``: in this process
    (``workers == 0``) or by ``library``'s DataLoader ("minidl" or "torch") with ``workers``
    worker processes."""
    if workers == 0:
        return (dataset[k] for k in itertools.count())
    if library == "minidl":
        from minidl.utils.data import DataLoader
    else:
        from torch.utils.data import DataLoader
    return iter(DataLoader(dataset, batch_size=None, sampler=itertools.count(), num_workers=workers,
                           collate_fn=_as_is))


def train_for(seconds, step, batches, lr, schedule, set_lr):
    """Call ``step(x, y, w) -> loss`` on batches from the iterator ``batches`` until ``seconds``
    of wall-clock time have passed (a step that starts in time is finished); before each step
    ``set_lr(rate)``, the rate on a cosine from ``lr`` to 0 over the elapsed time (or constant).
    Returns ``(losses, elapsed seconds, seconds spent waiting for batches)``."""
    losses, waited = [], 0.0
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        fraction = elapsed / seconds
        set_lr(lr * (1 + math.cos(math.pi * fraction)) / 2 if schedule == "cosine" else lr)
        before = time.perf_counter()
        x, y, w = next(batches)
        waited += time.perf_counter() - before
        losses.append(step(x, y, w))
    return losses, time.perf_counter() - start, waited


# ============================================================================ models
class TorchAsUNet(UNet):
    """A unet.UNet whose forward runs a PyTorch twin: unet.predict tiles it with exactly the
    code that tiles the minidl model. Its own minidl layers only describe the geometry
    (depth, padding, receptive field, dtype) that unet.predict reads; they never run."""

    def __init__(self, model, twin):
        super().__init__(model.in_channels, model.n_classes, model.base_channels, model.depth,
                         model.padding)
        self.twin = twin  # a torch.nn.Module: a plain attribute for minidl

    def train(self, mode=True):
        super().train(mode)
        self.twin.train(mode)
        return self

    def forward(self, x):
        import torch

        with torch.no_grad():
            scores = self.twin(torch.from_numpy(np.ascontiguousarray(x.numpy())))  # (N, K, H, W)
        return minidl.tensor(scores.numpy())


def loss_minidl(model, x, y, w):
    scores = model(minidl.tensor(x))                                       # (B, 2, c, c)
    if w is None:
        return F.cross_entropy(scores, minidl.tensor(y))
    per_pixel = F.cross_entropy(scores, minidl.tensor(y), reduction="none")  # (B, c, c)
    return (per_pixel * minidl.tensor(w)).mean()


def loss_torch(torch, twin, x, y, w):
    scores = twin(torch.from_numpy(x))                                     # (B, 2, c, c)
    if w is None:
        return torch.nn.functional.cross_entropy(scores, torch.from_numpy(y))
    per_pixel = torch.nn.functional.cross_entropy(scores, torch.from_numpy(y), reduction="none")
    return (per_pixel * torch.from_numpy(w)).mean()


def train_both(torch, model, twin, batch_iter, steps, lr, schedule="cosine", progress=True):
    """Adam steps of both models in turn on each batch (learning rate annealed along a cosine
    to 0 over ``steps`` with ``schedule="cosine"``); returns per-library step seconds and
    losses (lists, one entry per step)."""
    opt = minidl.optim.Adam(model.parameters(), lr=lr)
    topt = torch.optim.Adam(twin.parameters(), lr=lr)
    schedulers = []
    if schedule == "cosine":
        schedulers = [minidl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps),
                      torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=steps)]
    model.train()
    twin.train()
    seconds = {lib: [] for lib in LIBRARIES}
    losses = {lib: [] for lib in LIBRARIES}
    bar = tqdm(batch_iter, total=steps, desc="training minidl | torch", disable=not progress,
               dynamic_ncols=True)
    for x, y, w in bar:
        start = time.perf_counter()
        loss = loss_minidl(model, x, y, w)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses["minidl"].append(loss.item())
        seconds["minidl"].append(time.perf_counter() - start)

        start = time.perf_counter()
        tloss = loss_torch(torch, twin, x, y, w)
        tloss.backward()
        topt.step()
        topt.zero_grad()
        losses["torch"].append(tloss.item())
        seconds["torch"].append(time.perf_counter() - start)
        for scheduler in schedulers:
            scheduler.step()
        bar.set_postfix(loss=f"{losses['minidl'][-1]:.3f} | {losses['torch'][-1]:.3f}")
    return seconds, losses


def evaluate(model, images, masks, tile):
    """(scores dict, predicted label maps, seconds) of ``model`` on the test slices."""
    start = time.perf_counter()
    preds = [np.argmax(predict_probabilities(model, image, tile_size=tile), axis=0)  # (H, W)
             for image in images]
    seconds = time.perf_counter() - start
    scores = segmentation_metrics(preds, masks, num_classes=2, cell_class=CELL)
    return {k: float(v) for k, v in scores.items()}, preds, seconds


# ============================================================================ outputs
def save_picture(path, image, mask, pred_minidl, pred_torch, name):
    """image | ground truth | minidl | PyTorch, one row, labels shown as white cell / black
    membrane."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    panels = [(image[0], f"slice {name}"), (mask, "ground truth (black: membrane)"),
              (pred_minidl, "minidl prediction"), (pred_torch, "PyTorch prediction")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    for ax, (picture, title) in zip(axes, panels):
        ax.imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")  # 0 black, 1 white
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def markdown(r):
    c, m = r["config"], r["machine"]
    s, d, spread, runs = r["scores"], r["differences"], r["spread"], r["runs"]
    several = len(runs) > 1
    lines = [
        "# ISBI 2012 membranes: the same U-Net trained in minidl and in PyTorch",
        "",
        f"Trained on slices {format_slices(c['train_slices'])}, scored on slices "
        f"{format_slices(c['test_slices'])} "
        f"({c['image_size'][0]} x {c['image_size'][1]} pixels). `UNet(1, 2, base_channels={c['base_channels']}, "
        f"depth={c['depth']}, padding=\"same\")` with identical initial weights; {c['steps']} Adam "
        f"steps (lr {c['lr']}, {c['schedule']} schedule) of {c['batch_size']} random "
        f"{c['crop']} x {c['crop']} crops "
        f"(flips, 90-degree rotations, jitter {c['jitter']}{', elastic' if c['elastic'] else ''}), "
        f"the same batches for both; loss: {c['loss_description']}. Prediction: "
        "`unet.predict.predict_probabilities` (overlap-tile) for both, argmax.",
        "",
    ]
    if several:
        lines += [
            f"{len(runs)} runs with seeds {', '.join(str(v) for v in c['seeds'])} (each: new initial "
            "weights and batches, the same for both libraries). Scores are the mean over the runs; "
            "*spread* is the standard deviation over the runs, the noise of a single run.",
            "",
            "| score (mean of runs) | minidl | PyTorch | minidl - PyTorch | spread minidl | spread PyTorch |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key, label in HEADLINE:
            lines.append(f"| {label} | {s['minidl'][key]:.4f} | {s['torch'][key]:.4f} | {d[key]:+.4f} "
                         f"| {spread['minidl'][key]:.4f} | {spread['torch'][key]:.4f} |")
    else:
        lines += ["| score | minidl | PyTorch | minidl - PyTorch |", "|---|---:|---:|---:|"]
        for key, label in HEADLINE:
            lines.append(f"| {label} | {s['minidl'][key]:.4f} | {s['torch'][key]:.4f} | {d[key]:+.4f} |")
    lines += [
        "",
        f"**Target: every {'mean ' if several else ''}score within {r['target']} of PyTorch's: "
        f"{'met' if r['target_met'] else 'NOT met'}** (largest difference "
        f"{max(abs(v) for v in d.values()):.4f}).",
        "",
        "Each run:",
        "",
        "| seed | " + " | ".join(f"{label} minidl / PyTorch" for _, label in HEADLINE)
        + " | training (s) minidl / PyTorch | median step (s) | first loss minidl / PyTorch |",
        "|---:|" + "---:|" * (len(HEADLINE) + 3),
    ]
    for run in runs:
        rs, t, p = run["scores"], run["seconds"], run["parity"]
        lines.append(
            f"| {run['seed']} | "
            + " | ".join(f"{rs['minidl'][key]:.4f} / {rs['torch'][key]:.4f}" for key, _ in HEADLINE)
            + f" | {t['train']['minidl']:.1f} / {t['train']['torch']:.1f}"
            f" | {t['median_step']['minidl']:.3f} / {t['median_step']['torch']:.3f}"
            f" | {p['loss_minidl']:.6f} / {p['loss_torch']:.6f} ({'OK' if p['ok'] else 'MISMATCH'}) |")
    lines += [
        "",
        "Parity of step 1 (same weights, same batch): the first losses must agree to relative "
        f"{runs[0]['parity']['rtol']:.0e} ({'OK in every run' if r['parity_ok'] else 'MISMATCH'}). "
        "After it, float32 rounding lets the two runs drift apart, so the scores agree only "
        "statistically.",
        "",
        "Pixel accuracy and Dice are pooled over the test slices' pixels; membrane Dice is the "
        "Dice of class 0 (membrane); V_rand is the ISBI 2012 foreground-restricted Rand score "
        "(`unet.metrics.rand_score_foreground`, cells = connected components of class 1), the "
        "mean over the test slices. "
        "Times: the two libraries ran step by step in turn on a shared machine; "
        f"{m['threads']} threads each; the timings are noisy.",
        "",
        f"![image | ground truth | minidl | PyTorch (seed {runs[0]['seed']})](isbi_prediction.png)",
        "",
        machine_line(m),
        "",
        f"Reproduce: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


# ============================================================================ one run
def run_once(torch, args, seed, train_images, train_masks, weights, test_images, test_masks,
             progress):
    """One comparison: initial weights and batches from ``seed``, both libraries trained in
    turn and scored; returns a dict (seed, scores, differences, parity, seconds, losses,
    final_loss, predictions)."""
    from benchmarks._torch_unet import torch_twin

    minidl.manual_seed(seed)
    model = UNet(1, 2, base_channels=args.base_channels, depth=args.depth, padding="same")
    twin = torch_twin(model)                            # identical weights, strict names
    augment = Augmenter(flip=True, rot90=True, crop_size=args.crop, jitter=args.jitter,
                        elastic=args.elastic)
    batch_iter = batches(train_images, train_masks, weights, args.steps, args.batch_size, augment,
                         seed)

    step_seconds, losses = train_both(torch, model, twin, batch_iter, args.steps, args.lr,
                                      args.schedule, progress)
    first = {lib: losses[lib][0] for lib in LIBRARIES}
    parity_diff = abs(first["minidl"] - first["torch"]) / abs(first["torch"])
    parity_ok = parity_diff <= PARITY_RTOL
    train_seconds = {lib: float(sum(step_seconds[lib])) for lib in LIBRARIES}
    print(f"parity of step 1: losses {first['minidl']:.6f} (minidl) and {first['torch']:.6f} "
          f"(torch), relative difference {parity_diff:.1e} {'OK' if parity_ok else 'MISMATCH'}")
    print(f"training wall time: minidl {train_seconds['minidl']:.1f} s, torch "
          f"{train_seconds['torch']:.1f} s ({args.steps} steps)")

    scores, preds, predict_seconds = {}, {}, {}
    for lib, net in (("minidl", model), ("torch", TorchAsUNet(model, twin))):
        scores[lib], preds[lib], predict_seconds[lib] = evaluate(net, test_images, test_masks, args.tile)
        print(f"prediction wall time: {lib} {predict_seconds[lib]:.1f} s ({len(test_images)} slices)")
    for key, label in HEADLINE:
        print(f"  {label:16s} minidl {scores['minidl'][key]:.4f}  torch {scores['torch'][key]:.4f}")
    window = min(20, args.steps)
    return {
        "seed": seed,
        "scores": scores,
        "differences": {key: scores["minidl"][key] - scores["torch"][key] for key, _ in HEADLINE},
        "parity": {"loss_minidl": first["minidl"], "loss_torch": first["torch"],
                   "relative_difference": parity_diff, "rtol": PARITY_RTOL, "ok": parity_ok},
        "seconds": {"train": train_seconds, "predict": predict_seconds,
                    "median_step": {lib: float(np.median(step_seconds[lib])) for lib in LIBRARIES}},
        "final_loss": {lib: float(np.mean(losses[lib][-window:])) for lib in LIBRARIES},
        "losses": losses,
        "predictions": preds,
    }


# ============================================================================ budget mode
def run_budget(torch, args, seed, train_images, train_masks, weights, test_images, test_masks,
               first):
    """One budget comparison: both libraries from the same initial weights (``seed``), each
    trained for ``args.minutes`` minutes, ``first`` ("minidl" or "torch") first; returns a dict
    (seed, order, steps, seconds, waited, losses, scores, differences, predictions)."""
    from benchmarks._torch_unet import torch_twin

    minidl.manual_seed(seed)
    model = UNet(1, 2, base_channels=args.base_channels, depth=args.depth, padding="same")
    twin = torch_twin(model)                            # identical weights, strict names
    augment = Augmenter(flip=True, rot90=True, crop_size=args.crop, jitter=args.jitter,
                        elastic=args.elastic)
    dataset = BudgetBatches(train_images, train_masks, weights, args.batch_size, augment, seed)
    budget = 60.0 * args.minutes
    order = [first] + [lib for lib in LIBRARIES if lib != first]
    losses, elapsed, waited = {}, {}, {}
    for lib in order:
        if lib == "minidl":
            opt = minidl.optim.Adam(model.parameters(), lr=args.lr)
            model.train()

            def step(x, y, w):
                loss = loss_minidl(model, x, y, w)
                opt.zero_grad()
                loss.backward()
                opt.step()
                return loss.item()
        else:
            opt = torch.optim.Adam(twin.parameters(), lr=args.lr)
            twin.train()

            def step(x, y, w):
                loss = loss_torch(torch, twin, x, y, w)
                opt.zero_grad()
                loss.backward()
                opt.step()
                return loss.item()

        def set_lr(rate, opt=opt):
            for group in opt.param_groups:
                group["lr"] = rate

        start = time.perf_counter()                      # the workers' start counts
        batches_ = budget_loader(lib, dataset, args.workers)
        losses[lib], _, waited[lib] = train_for(budget - (time.perf_counter() - start), step,
                                                batches_, args.lr, args.schedule, set_lr)
        elapsed[lib] = time.perf_counter() - start
        getattr(batches_, "_shutdown_workers", lambda: None)()
        del batches_
        print(f"{lib}: {len(losses[lib])} steps in {elapsed[lib]:.1f} s "
              f"({len(losses[lib]) / elapsed[lib]:.2f} steps/s), {waited[lib]:.1f} s waiting for batches, "
              f"mean loss of the last 20 steps {np.mean(losses[lib][-20:]):.4f}")
    scores, preds = {}, {}
    for lib, net in (("minidl", model), ("torch", TorchAsUNet(model, twin))):
        scores[lib], preds[lib], _ = evaluate(net, test_images, test_masks, args.tile)
    for key, label in HEADLINE:
        print(f"  {label:16s} minidl {scores['minidl'][key]:.4f}  torch {scores['torch'][key]:.4f}")
    steps = {lib: len(losses[lib]) for lib in LIBRARIES}
    return {
        "seed": seed,
        "order": order,
        "steps": steps,
        "steps_ratio": steps["minidl"] / max(steps["torch"], 1),
        "seconds": elapsed,
        "steps_per_second": {lib: steps[lib] / elapsed[lib] for lib in LIBRARIES},
        "waited_seconds": waited,
        "final_loss": {lib: float(np.mean(losses[lib][-20:])) if losses[lib] else None
                       for lib in LIBRARIES},
        "losses": losses,
        "scores": scores,
        "differences": {key: scores["minidl"][key] - scores["torch"][key] for key, _ in HEADLINE},
        "predictions": preds,
    }


def markdown_budget(r):
    c, m, runs = r["config"], r["machine"], r["runs"]
    lines = [
        f"# ISBI 2012 membranes: minidl and PyTorch trained for {c['minutes']:g} minutes each",
        "",
        f"Trained on slices {format_slices(c['train_slices'])}, scored on slices "
        f"{format_slices(c['test_slices'])}. `UNet(1, 2, base_channels={c['base_channels']}, "
        f"depth={c['depth']}, padding=\"same\")` from the same initial weights; Adam (lr {c['lr']}, "
        f"{c['schedule']} over the elapsed time) on batches of {c['batch_size']} random "
        f"{c['crop']} x {c['crop']} crops (flips, 90-degree rotations, jitter {c['jitter']}"
        f"{', elastic deformation' if c['elastic'] else ''}); loss: {c['loss_description']}. "
        f"Batch k is the same for both libraries; it is made by {c['workers']} DataLoader worker "
        f"process{'es' if c['workers'] != 1 else ''} of each library." if c["workers"] else
        "Batch k is the same for both libraries; it is made in the training process (timed).",
        "",
        "Each library trained alone for the budget, one after the other (the order alternates "
        "from run to run); the clock includes starting the workers and waiting for batches.",
        "",
        "| seed | order | steps minidl / PyTorch | ratio | steps/s minidl / PyTorch | waiting for batches (s) | "
        + " | ".join(f"{label} minidl / PyTorch" for _, label in HEADLINE) + " |",
        "|---:|---|---:|---:|---:|---:|" + "---:|" * len(HEADLINE),
    ]
    for run in runs:
        st, sps, wt, sc = run["steps"], run["steps_per_second"], run["waited_seconds"], run["scores"]
        lines.append(
            f"| {run['seed']} | {' then '.join(run['order'])} | {st['minidl']} / {st['torch']} | "
            f"{run['steps_ratio']:.2f} | {sps['minidl']:.2f} / {sps['torch']:.2f} | "
            f"{wt['minidl']:.1f} / {wt['torch']:.1f} | "
            + " | ".join(f"{sc['minidl'][key]:.4f} / {sc['torch'][key]:.4f}" for key, _ in HEADLINE)
            + " |")
    d = r["differences"]
    lines += [
        "",
        f"**Target: minidl's steps at least {STEPS_TARGET}x PyTorch's "
        f"({'met' if r['steps_target_met'] else 'NOT met'}: {r['steps_ratio']:.2f}x"
        f"{', mean of the runs' if len(runs) > 1 else ''}); every score within {TARGET} of PyTorch's "
        f"or better ({'met' if r['scores_target_met'] else 'NOT met'}: "
        + ", ".join(f"{label} {d[key]:+.4f}" for key, label in HEADLINE) + ").**",
        "",
        "A short budget trains far from convergence, so its scores say little about the "
        "libraries; the steps done are the throughput comparison.",
        "",
        machine_line(m, extra=f"; {c['workers']} DataLoader workers"),
        "",
        f"Reproduce: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


def main_budget(torch, args, argv, train_images, train_masks, weights, test_images, test_masks,
                progress):
    """--minutes: the budget comparison (module docstring); writes isbi_budget.*."""
    runs = []
    for i, seed in enumerate(range(args.seed, args.seed + args.runs)):
        print(f"\nbudget run {i + 1} of {args.runs} (seed {seed}): {args.minutes:g} minutes per library")
        runs.append(run_budget(torch, args, seed, train_images, train_masks, weights, test_images,
                               test_masks, first=LIBRARIES[i % 2]))
    scores = {lib: {key: float(np.mean([r["scores"][lib][key] for r in runs])) for key, _ in HEADLINE}
              for lib in LIBRARIES}
    differences = {key: scores["minidl"][key] - scores["torch"][key] for key, _ in HEADLINE}
    steps_ratio = float(np.mean([r["steps_ratio"] for r in runs]))
    loss_description = ("pixel-wise cross-entropy" if args.loss == "ce" else
                        f"pixel-wise cross-entropy times the border weight map (w0 {args.w0}, "
                        f"sigma {args.sigma})")
    result = {
        "benchmark": "isbi_budget",
        "command": "python -m benchmarks.isbi " + shlex.join(argv),
        "config": {"data": str(args.data), "train_slices": args.train, "test_slices": args.test,
                   "minutes": args.minutes, "workers": args.workers, "batch_size": args.batch_size,
                   "crop": args.crop, "lr": args.lr, "schedule": args.schedule, "optimizer": "Adam",
                   "depth": args.depth, "base_channels": args.base_channels, "padding": "same",
                   "loss": args.loss, "loss_description": loss_description, "w0": args.w0,
                   "sigma": args.sigma, "jitter": args.jitter, "elastic": args.elastic,
                   "tile": args.tile, "seeds": [r["seed"] for r in runs]},
        "machine": machine_info(torch, args.threads),
        "scores": scores,
        "differences": differences,
        "steps_ratio": steps_ratio,
        "steps_target": STEPS_TARGET,
        "steps_target_met": steps_ratio >= STEPS_TARGET,
        "target": TARGET,
        "scores_target_met": all(v >= -TARGET for v in differences.values()),
        "runs": [{k: v for k, v in r.items() if k != "predictions"} for r in runs],
    }
    print(f"\nsteps minidl / torch: {steps_ratio:.2f} (target >= {STEPS_TARGET}: "
          f"{'met' if result['steps_target_met'] else 'NOT met'}); score differences "
          + ", ".join(f"{label} {differences[key]:+.4f}" for key, label in HEADLINE))
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "isbi_budget.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "isbi_budget.md").write_text(markdown_budget(result))
        preds = runs[0]["predictions"]
        save_picture(args.out / "isbi_budget_prediction.png", test_images[0], test_masks[0],
                     preds["minidl"][0], preds["torch"][0], args.test[0])
        print(f"wrote {args.out / 'isbi_budget.json'}, isbi_budget.md and isbi_budget_prediction.png")
    return 0


# ============================================================================ main
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    warn_if_threads_not_applied(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    progress = not args.no_progress

    train_images, train_masks, test_images, test_masks = load_slices(args.data, args.train, args.test)
    print(f"data: {len(train_images)} training slices {args.train[0]}..{args.train[-1]}, "
          f"{len(test_images)} test slices, membrane fraction (train) "
          f"{np.mean([np.mean(m == MEMBRANE) for m in train_masks]):.3f}")

    weights, weight_seconds = None, 0.0
    if args.loss == "weighted":
        start = time.perf_counter()
        weights = [border_weight_map(m, w0=args.w0, sigma=args.sigma, cell_class=CELL, num_classes=2)
                   for m in tqdm(train_masks, desc="border weight maps", disable=not progress)]
        weight_seconds = time.perf_counter() - start

    if args.minutes is not None:
        return main_budget(torch, args, argv, train_images, train_masks, weights, test_images,
                           test_masks, progress)
    runs = []
    for seed in range(args.seed, args.seed + args.runs):
        if args.runs > 1:
            print(f"\nrun {len(runs) + 1} of {args.runs} (seed {seed})")
        runs.append(run_once(torch, args, seed, train_images, train_masks, weights,
                             test_images, test_masks, progress))
    scores = {lib: {key: float(np.mean([r["scores"][lib][key] for r in runs])) for key, _ in HEADLINE}
              for lib in LIBRARIES}
    spread = {lib: {key: float(np.std([r["scores"][lib][key] for r in runs],
                                      ddof=1 if len(runs) > 1 else 0)) for key, _ in HEADLINE}
              for lib in LIBRARIES}
    differences = {key: scores["minidl"][key] - scores["torch"][key] for key, _ in HEADLINE}
    target_met = all(abs(v) <= TARGET for v in differences.values())
    parity_ok = all(r["parity"]["ok"] for r in runs)

    mean_of = f" (mean of {len(runs)} runs)" if len(runs) > 1 else ""
    print(f"\n{'score' + mean_of:28s} {'minidl':>8s} {'torch':>8s} {'difference':>11s}")
    for key, label in HEADLINE:
        print(f"{label:28s} {scores['minidl'][key]:8.4f} {scores['torch'][key]:8.4f} "
              f"{differences[key]:+11.4f}")
    print(f"target |difference| <= {TARGET}: {'met' if target_met else 'NOT met'}")

    window = min(20, args.steps)
    loss_description = ("pixel-wise cross-entropy" if args.loss == "ce" else
                        f"pixel-wise cross-entropy times the border weight map (w0 {args.w0}, "
                        f"sigma {args.sigma})")
    result = {
        "benchmark": "isbi",
        "command": "python -m benchmarks.isbi " + shlex.join(argv),
        "config": {"data": str(args.data), "train_slices": args.train, "test_slices": args.test,
                   "image_size": list(test_images[0].shape[-2:]),
                   "steps": args.steps, "batch_size": args.batch_size, "crop": args.crop,
                   "lr": args.lr, "schedule": args.schedule, "optimizer": "Adam", "depth": args.depth,
                   "base_channels": args.base_channels, "padding": "same", "loss": args.loss,
                   "loss_description": loss_description, "w0": args.w0, "sigma": args.sigma,
                   "jitter": args.jitter, "elastic": args.elastic, "tile": args.tile,
                   "seeds": [r["seed"] for r in runs]},
        "machine": machine_info(torch, args.threads),
        "scores": scores,            # per library, the mean over the runs
        "spread": spread,            # per library, the standard deviation over the runs
        "differences": differences,  # minidl mean - torch mean
        "target": TARGET,
        "target_met": target_met,
        "parity_ok": parity_ok,
        "weight_map_seconds": weight_seconds,
        "final_loss_window": window,
        "runs": [{k: v for k, v in r.items() if k != "predictions"} for r in runs],
    }
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "isbi.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "isbi.md").write_text(markdown(result))
        shown = 0                                           # the first test slice, first run
        preds = runs[0]["predictions"]
        save_picture(args.out / "isbi_prediction.png", test_images[shown], test_masks[shown],
                     preds["minidl"][shown], preds["torch"][shown], args.test[shown])
        print(f"wrote {args.out / 'isbi.json'}, isbi.md and isbi_prediction.png")
    return 0 if parity_ok else 1


if __name__ == "__main__":
    sys.exit(main())
