"""Forward + loss + backward of every seed model: minidl against PyTorch, same process, weights.

The models (unet/zoo.py's networks), each at one small size: batch --batch (2) of C x S x S
float32, C the model's usual input channels (1 or 3), S the nearest size >= --size (128) that
the model takes (``valid_input_size``), at the width in MODELS (the article's where minidl's
step fits well within a second on 2 cores; ``--width NAME=W`` changes it):

    unet            unet.UNet(1, 2, base_channels=W, depth=5, padding="same"), cross-entropy
                    (the paper U-Net, the reference row: the network of benchmarks.unet_step)
    zhixuhao        unet.zhixuhao.ZhixuhaoUNet(1, 1, width=W), BCE with logits
    tf_unet         unet.tf_unet.TfUNet(3, 2, width=W), tf_unet's cross-entropy (tf_unet_loss)
    bn_unet         unet.bn_unet.BNUNet(1, 1, width=W), BCE with logits
    resnet34_unet   unet.resnet34_unet.ResNet34UNet(3, 1, width=W), BCE with logits
    fcn8s           unet.FCN(3 classes, "8s", 3 channels, width=W), cross-entropy (trimaps)
    mini_unet       unet.mini_unet.MiniUNet(3, 2, width=W), cross-entropy

The PyTorch twins: benchmarks/torch_twins.py (the ones the float64 tests check) and
benchmarks/_torch_unet.py (the paper U-Net); minidl's weights and BatchNorm buffers are
copied in by name (``unet.interop.export_torch_state_dict``, ``load_state_dict(strict=True)``).
Every model runs in train mode (dropout on, BatchNorm on batch statistics), as in training.

Method, per model:
  1. parity, float32: one forward + loss + backward in each library with every Dropout's p set
     to 0 for that step (the two libraries draw different masks); relative errors
     (max |a - b| / max |b|) of the output, the loss and the gradient of the first parameter
     (the input-side convolution, the longest backward path); then the same in float64 (both
     models converted with ``.double()``); on --parity-batches (9) batches, the float32 errors
     their medians: a ReLU input within float32 rounding of zero can land on the other side of
     the kink in either library, and that one pixel's gradient moves the whole sum (ResNet34UNet:
     one value 4.5e-6 in float64, -1.9e-6 in minidl's float32, put its first gradient 6e-3 from
     float64 where PyTorch's was 8e-6; on another batch PyTorch's flipped: 4e-2 against 2e-3);
  2. --warmup untimed steps each, then --repeats rounds of one minidl step and one PyTorch step
     (alternating, --pause s of sleep before each), medians; a step = zero_grad (untimed),
     forward + loss, backward. No optimizer step: unet_step times Adam.

    python -m benchmarks.models                          # every model
    python -m benchmarks.models --only fcn8s mini_unet --repeats 3
    python -m benchmarks.models --width bn_unet=32 --size 64

Run it with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` where the environment sets them
(benchmarks/README.md). Writes models.{json,md,png} into --out.
"""
# _common must come first: it sets the BLAS / Numba thread counts before NumPy loads.
from benchmarks._common import (THREADS, machine_info, machine_line, median_ms, rel_error,  # noqa: I001
                                warn_if_threads_not_applied)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, NamedTuple  # noqa: E402

import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
import unet  # noqa: E402
from benchmarks import torch_twins  # noqa: E402
from unet.bn_unet import BNUNet  # noqa: E402
from unet.interop import export_torch_state_dict  # noqa: E402
from unet.mini_unet import MiniUNet  # noqa: E402
from unet.resnet34_unet import ResNet34UNet  # noqa: E402
from unet.tf_unet import TfUNet, tf_unet_loss  # noqa: E402
from unet.zhixuhao import ZhixuhaoUNet  # noqa: E402

OUT_RTOL32, GRAD_RTOL32 = 1e-4, 1e-3   # float32: sums over 2*128*128 pixels, ReLU masks that flip
RTOL64 = 1e-10                          # float64
PARITY_BATCHES = 9  # a ReLU input within rounding of 0 flips its mask in one library or the other, by chance


class Model(NamedTuple):
    """One row: how to build the minidl model at a width, its PyTorch twin, and its loss."""
    label: str                   # for the table
    in_channels: int
    width_name: str              # the constructor argument that the width sets
    width: float                 # the default width of the benchmark
    article_width: float         # the article's width (1.0 or the channel count)
    loss: str                    # "ce", "bce" or "tf_unet"
    build: Callable              # width -> minidl model
    twin: Callable               # (torch, width) -> torch.nn.Module with the same names


def _paper_twin(torch, width):
    from benchmarks._torch_unet import TorchUNet

    return TorchUNet(1, 2, width, 5)


# Widths: minidl's forward + backward at batch 2, 128x128 well within a second on 2 cores. At
# the article's widths (one probe, 2026-12-05): the paper U-Net and zhixuhao (64) 1.1-1.3 s,
# BNUNet (64) 8.5 s, ResNet34UNet (1.0) 7.7 s; FCN-8s at its full width holds 134 M parameters,
# 102 M of them in fc6, and pads 128 to 326. tf_unet and unet_mini run at the article's width.
MODELS = {
    "unet": Model("unet.UNet (paper; reference)", 1, "base_channels", 32, 64, "ce",
                  lambda w: unet.UNet(1, 2, base_channels=int(w), depth=5, padding="same"), _paper_twin),
    "zhixuhao": Model("ZhixuhaoUNet", 1, "width", 32, 64, "bce",
                      lambda w: ZhixuhaoUNet(1, 1, width=int(w)),
                      lambda torch, w: torch_twins.torch_zhixuhao(torch, 1, 1, int(w), "transpose", 0.5)),
    "tf_unet": Model("TfUNet", 3, "width", 16, 16, "tf_unet",
                     lambda w: TfUNet(3, 2, width=int(w)),
                     lambda torch, w: torch_twins.torch_tf_unet(torch, 3, 2, int(w), 3, 3, 0.75)),
    "bn_unet": Model("BNUNet", 1, "width", 16, 64, "bce",
                     lambda w: BNUNet(1, 1, width=int(w)),
                     lambda torch, w: torch_twins.torch_bn_unet(torch, 1, 1, int(w), 5)),
    "resnet34_unet": Model("ResNet34UNet", 3, "width", 0.25, 1.0, "bce",
                           lambda w: ResNet34UNet(3, 1, width=w),
                           lambda torch, w: torch_twins.torch_unet34(torch, 3, 1, w, 0.2)),
    "fcn8s": Model("FCN-8s", 3, "width", 0.25, 1.0, "ce",
                   lambda w: unet.FCN(3, "8s", 3, width=w),
                   lambda torch, w: torch_twins.torch_fcn(torch, 3, "8s", w, 3)),
    # the Keras unet_mini (merged from wt-m1); a model added later gets its row here
    "mini_unet": Model("MiniUNet", 3, "width", 32, 32, "ce",
                       lambda w: MiniUNet(3, 2, width=int(w)),
                       lambda torch, w: torch_twins.torch_mini_unet(torch, 3, 2, int(w), 0.2)),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.models",
        description="Time forward + loss + backward of every seed model in minidl and in PyTorch "
                    "(same process, same weights, alternating) and check that they agree.")
    p.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS),
                   help="the models to run (default: all)")
    p.add_argument("--width", action="append", default=[], metavar="NAME=W",
                   help="the width of model NAME (repeatable); defaults: "
                        + ", ".join(f"{k}={m.width:g}" for k, m in MODELS.items()))
    p.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    p.add_argument("--size", type=int, default=128,
                   help="image height = width, raised to the nearest size each model takes (default 128)")
    p.add_argument("--threads", type=int, default=int(THREADS),
                   help="BLAS / Numba / torch threads (default 2); set before numpy loads")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per library (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per library (default 1)")
    p.add_argument("--pause", type=float, default=0.2,
                   help="seconds of sleep before each timed step, so that the other library's idle "
                        "BLAS/OpenMP threads have stopped spinning (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-float64", action="store_true", help="skip the float64 agreement check")
    p.add_argument("--parity-batches", type=int, default=PARITY_BATCHES,
                   help=f"batches of the parity check; its errors are medians over them (default {PARITY_BATCHES})")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results directory")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    args = p.parse_args(argv)
    for name in ("batch", "size", "repeats", "threads", "parity_batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    args.widths = {name: m.width for name, m in MODELS.items()}
    for item in args.width:
        name, _, value = item.partition("=")
        if name not in MODELS:
            p.error(f"--width: unknown model {name!r}; the models are {', '.join(MODELS)}")
        kind = type(MODELS[name].width)      # channel counts are ints, ResNet/FCN scales floats
        try:
            args.widths[name] = kind(value)
        except ValueError:
            p.error(f"--width {item}: expected {name}=<{kind.__name__}>")
    return args


# ----------------------------------------------------------------------------- set-up

def losses(torch, kind):
    """(minidl loss, PyTorch loss), each (output, target) -> scalar."""
    tF = torch.nn.functional
    if kind == "bce":
        return F.binary_cross_entropy_with_logits, tF.binary_cross_entropy_with_logits
    if kind == "tf_unet":
        return tf_unet_loss, torch_twins.torch_tf_unet_cost(torch, "cross_entropy", None)
    return F.cross_entropy, tF.cross_entropy


def make_batch(rng, batch, channels, size, out_shape, kind):
    """x (batch, channels, size, size) ~ N(0, 1) float32 and a random target for ``out_shape``
    (N, K, OH, OW): 0/1 floats of that shape for BCE, class indices (N, OH, OW) otherwise."""
    x = rng.standard_normal((batch, channels, size, size)).astype(np.float32)
    if kind == "bce":
        return x, (rng.random(out_shape) < 0.5).astype(np.float32)
    n, k, oh, ow = out_shape
    return x, rng.integers(0, k, (n, oh, ow)).astype(np.int64)


def randomise_zero_weights(model, rng):
    """Give every all-zero weight (FCN's score layers start at zero) He-normal values, so that
    no branch of the network is zero in both libraries and every one counts in the parity."""
    with minidl.no_grad():
        for name, p in model.named_parameters():
            a = p.detach().numpy()
            if name.endswith("weight") and a.ndim > 1 and not a.any():
                p.data[...] = (rng.standard_normal(a.shape) * np.sqrt(2.0 / a[0].size)).astype(a.dtype)


def copy_weights(torch, model, twin):
    """minidl's parameters and buffers into the twin, by name, every key matched."""
    state = {name: torch.from_numpy(a) for name, a in export_torch_state_dict(model).items()}
    twin.load_state_dict(state, strict=True)


def set_dropout(module, p_by_name=None):
    """Set every Dropout's p to 0 and return {name: old p}; with ``p_by_name``, restore them."""
    old = {}
    for name, m in module.named_modules():
        if type(m).__name__.startswith("Dropout"):
            old[name] = m.p
            m.p = 0.0 if p_by_name is None else p_by_name[name]
    return old


def step(model, loss_fn, x, target, clock=None):
    """zero_grad (untimed), forward + loss, backward; the same code for both libraries."""
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    out = model(x)
    loss = loss_fn(out, target)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    if clock is not None:
        clock["forward"].append(t1 - t0)
        clock["backward"].append(t2 - t1)
        clock["step"].append(t2 - t0)
    return out, loss


def parity_step(torch, model, twin, loss_fns, x_np, t_np):
    """One step each with every Dropout's p at 0: {library: (output, loss, gradient of the first
    parameter)} as float64 NumPy arrays / floats, and that parameter's name."""
    first = next(iter(dict(model.named_parameters())))
    old_m, old_t = set_dropout(model), set_dropout(twin)
    try:
        out_m, loss_m = step(model, loss_fns[0], minidl.tensor(x_np), minidl.tensor(t_np))
        out_t, loss_t = step(twin, loss_fns[1], torch.from_numpy(x_np), torch.from_numpy(t_np))
    finally:
        set_dropout(model, old_m)
        set_dropout(twin, old_t)
    found = {}
    for lib, m, out, loss in (("minidl", model, out_m, loss_m), ("torch", twin, out_t, loss_t)):
        grad = dict(m.named_parameters())[first].grad.numpy()
        found[lib] = (out.detach().numpy().astype(np.float64), loss.item(), grad.astype(np.float64))
    return found, first


def parity_batches(rng_seed, count, first, make):
    """The parity check's batches: ``first`` (the timed batch), then count - 1 more from
    ``make(rng)`` with generators seeded (rng_seed, k)."""
    return [first] + [make(np.random.default_rng((rng_seed, k))) for k in range(1, count)]


def median_errors(per_batch):
    """{key: median over the batches} of a list of ``errors`` dicts."""
    return {key: float(np.median([e[key] for e in per_batch])) for key in per_batch[0]}


def errors(mine, theirs):
    """Relative errors (output, loss, gradient) of ``mine`` against ``theirs`` (parity_step's)."""
    (out_m, loss_m, grad_m), (out_t, loss_t, grad_t) = mine, theirs
    return {"output": rel_error(out_m, out_t), "loss": abs(loss_m - loss_t) / abs(loss_t),
            "grad": rel_error(grad_m, grad_t)}


def parity_ok(row):
    """OK: float32 agreement within the tolerances (medians over the parity batches), or, where
    rounding is amplified (BatchNorm of few values, ReLU masks flipped by rounding), minidl's
    float32 no further from the float64 result than 10x PyTorch's (medians) or, for the
    gradient, than PyTorch's largest on the same batches (a flipped mask moves the gradient by
    up to ~1e-2 in either library, so PyTorch's median alone can be a lucky draw); float64
    agreement within RTOL64 on every batch; never a zero output or gradient (a vacuous agreement)."""
    e32, ref = row["errors_float32"], row.get("errors_float32_vs_float64")
    if not row["nonzero"]:
        return False
    for key, tol in (("output", OUT_RTOL32), ("loss", OUT_RTOL32), ("grad", GRAD_RTOL32)):
        if e32[key] <= tol:
            continue
        if not ref:
            return False
        within = ref["minidl"][key] <= 10 * ref["torch"][key]
        if key == "grad" and "grad_errors_float32_vs_float64_per_batch" in row:
            within = within or ref["minidl"][key] <= max(row["grad_errors_float32_vs_float64_per_batch"]["torch"])
        if not within:
            return False
    return "errors_float64" not in row or max(row["errors_float64"].values()) <= RTOL64


# ----------------------------------------------------------------------------- one model

def bench_model(torch, args, name):
    spec, width = MODELS[name], args.widths[name]
    minidl.manual_seed(args.seed)
    model = spec.build(width)
    rng = np.random.default_rng(args.seed)
    randomise_zero_weights(model, rng)
    size = model.valid_input_size(args.size)
    model.eval()             # the output's shape, for the target; eval: BatchNorm keeps its buffers
    with minidl.no_grad():
        out_shape = tuple(model(minidl.zeros(1, spec.in_channels, size, size)).shape)
    model.train()
    x_np, t_np = make_batch(rng, args.batch, spec.in_channels, size, (args.batch, *out_shape[1:]),
                            spec.loss)
    twin = spec.twin(torch, width)
    copy_weights(torch, model, twin)
    twin.train()
    loss_fns = losses(torch, spec.loss)
    batches = parity_batches(args.seed, args.parity_batches, (x_np, t_np),
                             lambda r: make_batch(r, args.batch, spec.in_channels, size,
                                                  (args.batch, *out_shape[1:]), spec.loss))
    found32 = [parity_step(torch, model, twin, loss_fns, x, t) for x, t in batches]
    first = found32[0][1]
    found32 = [found for found, _ in found32]

    x, target = minidl.tensor(x_np), minidl.tensor(t_np)
    xt, tt = torch.from_numpy(x_np), torch.from_numpy(t_np)
    runs = {"minidl": (model, loss_fns[0], x, target), "torch": (twin, loss_fns[1], xt, tt)}
    for _ in range(args.warmup):
        for lib, (m, fn, a, b) in runs.items():
            step(m, fn, a, b)
    clocks = {lib: {"forward": [], "backward": [], "step": []} for lib in runs}
    for _ in range(args.repeats):
        for lib, (m, fn, a, b) in runs.items():
            time.sleep(args.pause)   # let the other library's idle worker threads stop spinning
            step(m, fn, a, b, clocks[lib])
    ms = {lib: median_ms(clocks[lib]["step"]) for lib in clocks}
    row = {
        "model": name, "label": spec.label, "width_name": spec.width_name, "width": width,
        "article_width": spec.article_width, "in_channels": spec.in_channels, "size": size,
        "output_shape": [args.batch, *out_shape[1:]], "loss": spec.loss,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "median_ms": ms,
        "min_ms": {lib: 1e3 * min(c["step"]) for lib, c in clocks.items()},
        "median_ms_by_phase": {lib: {k: median_ms(c[k]) for k in ("forward", "backward")}
                               for lib, c in clocks.items()},
        "ratio": ms["minidl"] / ms["torch"],
        "grad_param": first,
        "parity_batches": len(batches),
        "errors_float32": median_errors([errors(f["minidl"], f["torch"]) for f in found32]),
        # a zero output or gradient in both would agree vacuously
        "nonzero": all(bool(np.abs(f["torch"][0]).max() > 0 and np.abs(f["torch"][2]).max() > 0)
                       for f in found32),
    }
    del model, twin, runs, x, target, xt, tt
    if not args.no_float64:
        minidl.manual_seed(args.seed)  # the same weights again, in float64
        model64 = spec.build(width)
        randomise_zero_weights(model64, np.random.default_rng(args.seed))
        model64.double().train()
        twin64 = spec.twin(torch, width).double().train()
        copy_weights(torch, model64, twin64)
        found64 = [parity_step(torch, model64, twin64, loss_fns, x.astype(np.float64),
                               t.astype(np.float64) if spec.loss == "bce" else t)[0] for x, t in batches]
        e64 = [errors(f["minidl"], f["torch"]) for f in found64]
        row["errors_float64"] = {key: max(e[key] for e in e64) for key in e64[0]}  # every batch
        # each library's float32 step against PyTorch's float64 step: the rounding of float32
        per_batch = {lib: [errors(f32[lib], f64["torch"]) for f32, f64 in zip(found32, found64)]
                     for lib in ("minidl", "torch")}
        row["errors_float32_vs_float64"] = {lib: median_errors(e) for lib, e in per_batch.items()}
        row["grad_errors_float32_vs_float64_per_batch"] = {lib: [e["grad"] for e in errs]
                                                            for lib, errs in per_batch.items()}
    row["parity_ok"] = parity_ok(row)
    return row


# ----------------------------------------------------------------------------- reports

def width_text(r):
    w = r["width"]
    text = f"{r['width_name']}={w:g}"
    return text if w == r["article_width"] else f"{text} (article {r['article_width']:g})"


def print_row(r):
    e, e64, ref = r["errors_float32"], r.get("errors_float64"), r.get("errors_float32_vs_float64")
    print(f"{r['model']:<14s} {width_text(r):<28s} {r['in_channels']}x{r['size']}x{r['size']}  "
          f"minidl {r['median_ms']['minidl']:8.1f} ms  torch {r['median_ms']['torch']:8.1f} ms  "
          f"ratio {r['ratio']:.2f}  parity {'OK' if r['parity_ok'] else 'MISMATCH'}: float32 out "
          f"{e['output']:.1e} loss {e['loss']:.1e} grad {e['grad']:.1e}"
          + (f"; float32 grad vs float64: minidl {ref['minidl']['grad']:.1e} torch {ref['torch']['grad']:.1e}"
             f"; float64 out {e64['output']:.1e} grad {e64['grad']:.1e}" if e64 else ""), flush=True)


def markdown(result):
    c, m, load = result["config"], result["machine"], result["load_average_1min"]
    lines = [
        "# Seed models, forward + loss + backward: minidl vs PyTorch",
        "",
        f"Batch {c['batch']}, float32, train mode (dropout on, BatchNorm on batch statistics); input "
        f"C x S x S with S the nearest size >= {c['size']} that the model takes. One step = forward "
        "+ the model's loss + backward (no optimizer step). Median of "
        f"{c['repeats']} steps after {c['warmup']} warm-up step(s), minidl and PyTorch alternating "
        f"in one process, the same weights (copied by name into the PyTorch twins of "
        f"`benchmarks/torch_twins.py` and `benchmarks/_torch_unet.py`) and batch, {m['threads']} "
        f"threads. minidl backend: `{m['minidl_backend']}`.",
        "",
        "| model | width | input | parameters | minidl ms | PyTorch ms | ratio | parity | float32, "
        "minidl vs PyTorch: output / loss / grad | float32 grad vs float64: minidl / PyTorch "
        "| float64, minidl vs PyTorch: output / grad |",
        "|---|---|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    for r in result["rows"]:
        e, e64, ref = r["errors_float32"], r.get("errors_float64"), r.get("errors_float32_vs_float64")
        f64 = f"{e64['output']:.0e} / {e64['grad']:.0e}" if e64 else "not run"
        f32_64 = f"{ref['minidl']['grad']:.0e} / {ref['torch']['grad']:.0e}" if ref else "not run"
        lines.append(
            f"| {r['label']} | {width_text(r)} | {r['in_channels']}x{r['size']}x{r['size']} | "
            f"{r['parameters']:,} | {r['median_ms']['minidl']:.1f} | {r['median_ms']['torch']:.1f} | "
            f"**{r['ratio']:.2f}** | {'OK' if r['parity_ok'] else 'MISMATCH'} | "
            f"{e['output']:.0e} / {e['loss']:.0e} / {e['grad']:.0e} | {f32_64} | {f64} |")
    lines += ["", "Median ms per phase (forward includes the loss):", "",
              "| model | minidl forward | minidl backward | PyTorch forward | PyTorch backward |",
              "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        ph = r["median_ms_by_phase"]
        lines.append(f"| {r['model']} | {ph['minidl']['forward']:.1f} | {ph['minidl']['backward']:.1f} | "
                     f"{ph['torch']['forward']:.1f} | {ph['torch']['backward']:.1f} |")
    lines += [
        "",
        "Models: `unet.UNet(1, 2, depth=5, padding=\"same\")` with cross-entropy (the network of "
        "`unet_step`); `ZhixuhaoUNet(1, 1)`, `BNUNet(1, 1)` and `ResNet34UNet(3, 1)` with BCE with "
        "logits; `TfUNet(3, 2)` with tf_unet's cross-entropy (`tf_unet_loss`, valid convolutions: "
        "the output is smaller than the input); `FCN(3, \"8s\", 3)` (3-class trimaps) and "
        "`MiniUNet(3, 2)` with cross-entropy. A width below the article's (its value in brackets) keeps "
        "minidl's step well within a second on 2 cores; `--width NAME=W` sets another.",
        "",
        "Parity: max |a - b| / max |b| of the output, of the loss and of the gradient of the first "
        "parameter (the input-side convolution: the longest backward path), one step each with every "
        f"Dropout's p set to 0 (the libraries draw different masks), on {c.get('parity_batches', 1)} "
        "batches; the float32 columns are medians over them, the float64 column the largest. The same "
        "steps in float64 (both models `.double()`, the same weights) give the exact answer to compare "
        "float32 with: the 'float32 grad vs float64' column is each library's own float32 rounding. "
        "Medians, because a ReLU input within float32 rounding of zero can land on the other side of "
        "the kink in either library, by chance, and that one pixel's gradient moves the whole sum. OK: float32 "
        f"output and loss within {OUT_RTOL32:g} and gradient within {GRAD_RTOL32:g} of PyTorch's, or, "
        "where float32 rounding is amplified (BatchNorm over few values deep in the network, flipped "
        "ReLU masks), minidl's float32 no further from float64 than 10 times PyTorch's or, for the "
        "gradient, than PyTorch's largest on the same batches (per-batch errors in models.json); float64 within "
        f"{RTOL64:g}; never an all-zero output or gradient.",
        "",
        machine_line(m) + f" Load average (1 min) at the start {load['start']:.1f}, at the end "
        f"{load['end']:.1f}" + (": above the thread count, other work shared the cores and slowed both libraries."
                                if max(load["start"], load["end"]) > m["threads"] else "."),
        "",
        "Reproduce: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.models"
        + (f" {c['argv']}`" if c["argv"] else "`"),
        "",
    ]
    return "\n".join(lines)


def chart(result, path):
    from benchmarks._charts import save_ratio_chart

    rows = result["rows"]
    panels = [{"labels": [r["model"] for r in rows], "ratios": [r["ratio"] for r in rows],
               "target": None, "title": "forward + loss + backward"}]
    c = result["config"]
    save_ratio_chart(path, panels, f"Seed models, batch {c['batch']}, ~{c['size']}x{c['size']}, "
                                   f"{result['machine']['threads']} threads: minidl / PyTorch")


# ----------------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    warn_if_threads_not_applied(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    config = {"models": args.only, "widths": {k: args.widths[k] for k in args.only},
              "batch": args.batch, "size": args.size, "repeats": args.repeats,
              "warmup": args.warmup, "seed": args.seed, "pause_s": args.pause,
              "parity_batches": args.parity_batches,
              "argv": " ".join(sys.argv[1:] if argv is None else argv)}
    load_before = os.getloadavg()   # the machine is shared: other work slows both libraries
    rows = []
    for name in args.only:
        row = bench_model(torch, args, name)
        rows.append(row)
        print_row(row)
    result = {"benchmark": "models", "config": config,
              "machine": machine_info(torch, args.threads), "rows": rows,
              "load_average_1min": {"start": load_before[0], "end": os.getloadavg()[0]}}
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "models.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "models.md").write_text(markdown(result))
        chart(result, args.out / "models.png")
        print(f"wrote {args.out / 'models'}.json, .md and .png")
    return 0 if all(r["parity_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
