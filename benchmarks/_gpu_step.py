"""One U-Net Adam step on a GPU (or the strict test device): minidl against PyTorch.

``python -m benchmarks.unet_step --device cuda`` and the GPU suite (benchmarks/gpu_suite.py)
run :func:`unet_step_on_device`. Model, batch and step are those of benchmarks/unet_step.py
(``unet.UNet(1, 2, base, depth 5, padding="same")``, pixel-wise cross-entropy, Adam lr 1e-3);
the PyTorch twin (benchmarks/_torch_unet.py) gets minidl's initial weights on the CPU, then
both move to the device. Per row:

  1. parity: the first step of each from identical weights and batch; loss, every gradient
     and every Adam update compared (unet_step.compare_first_steps, same tolerances);
  2. ``warmup`` more steps each (CuPy compiles its kernels on first use), then ``repeats``
     timed steps, alternating; each step timed by events on the device's stream
     (cupy.cuda.Event / torch.cuda.Event; wall clock on the strict device) at four marks:
     forward + loss, backward, Adam step + zero_grad; median ms;
  3. achieved TFLOP/s = :func:`unet_step_flops` / median time;
  4. peak memory of one more step: CuPy's pool ``used_bytes`` high-water mark (a
     MemoryHook), PyTorch's ``max_memory_allocated``; both include what was live before
     (weights, Adam state, batch).

PyTorch runs with TF32 off (``torch.backends.cuda.matmul.allow_tf32`` and
``torch.backends.cudnn.allow_tf32``), as CuPy's float32 products (``CUPY_TF32`` unset), so that
both compute in float32, and with ``cudnn.benchmark`` on (its best algorithm per shape).
"""
import statistics

import minidl
import minidl.functional as F
import minidl.optim
from benchmarks import _gpu

DEPTH, LR = 5, 1e-3
PHASES = ("forward", "backward", "adam")


def unet_forward_macs(batch, size, base, depth=DEPTH, in_channels=1, n_classes=2):
    """Multiply-adds of the forward convolutions of the same-padding U-Net (unet/models.py)."""
    c = [base * 2 ** i for i in range(depth)]
    s = [size // 2 ** i for i in range(depth)]

    def conv(cin, cout, side, k=3):
        return batch * side * side * cout * cin * k * k

    macs = conv(in_channels, c[0], s[0]) + conv(c[0], c[0], s[0])  # inc
    for i in range(1, depth):  # down_i: max-pool, then a double conv at level i
        macs += conv(c[i - 1], c[i], s[i]) + conv(c[i], c[i], s[i])
    for level in range(depth - 2, -1, -1):  # up: 2x2 stride-2 transposed conv, double conv
        macs += batch * s[level + 1] ** 2 * c[level + 1] * c[level] * 4
        macs += conv(c[level + 1], c[level], s[level]) + conv(c[level], c[level], s[level])
    return macs + conv(c[0], n_classes, s[0], k=1)  # outc


def unet_step_flops(batch, size, base, depth=DEPTH):
    """FLOPs of one training step's convolutions: 2 x multiply-adds x 3 (the forward product and
    the two backward ones, dx and dweight; the usual convention, which counts the first
    layer's dx that neither library computes)."""
    return 3 * 2 * unet_forward_macs(batch, size, base, depth)


def _build(torch, target, torch_device, base, seed):
    import unet
    from benchmarks._torch_unet import torch_twin

    minidl.manual_seed(seed)
    model = unet.UNet(in_channels=1, n_classes=2, base_channels=base, depth=DEPTH, padding="same")
    twin = torch_twin(model).to(torch_device)  # the same initial weights, copied on the CPU
    model.to(target.name)
    return (model, minidl.optim.Adam(model.parameters(), lr=LR),
            twin, torch.optim.Adam(twin.parameters(), lr=LR))


def _host(t):
    return t.detach().cpu().numpy()


def _first_step(model, opt, x, target, functional):
    """The first step; loss, gradients and updates on the host, for parity."""
    params = list(model.named_parameters())
    before = {name: _host(p).copy() for name, p in params}
    loss = functional.cross_entropy(model(x), target)
    loss.backward()
    grads = {name: _host(p.grad).copy() for name, p in params}
    opt.step()
    opt.zero_grad()
    updates = {name: _host(p) - before[name] for name, p in params}
    return 0.0, loss.item(), grads, updates


def _timed_step(model, opt, x, target, functional, clock):
    clock.mark()
    loss = functional.cross_entropy(model(x), target)
    clock.mark()
    loss.backward()
    clock.mark()
    opt.step()
    opt.zero_grad()
    clock.mark()
    return loss


def _step(model, opt, x, target, functional):
    loss = functional.cross_entropy(model(x), target)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


def set_torch_float32(torch, torch_device):
    """TF32 off (both compute in float32), cuDNN's autotuner on; the settings, for the report."""
    if torch_device != "cuda":
        return {}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return {"matmul_allow_tf32": False, "cudnn_allow_tf32": False, "cudnn_benchmark": True}


def unet_step_on_device(torch, target, base=64, batch=4, size=512, warmup=2, repeats=5, seed=0):
    """One row: parity, step times, TFLOP/s and peak memory (see the module docstring)."""
    from benchmarks.unet_step import (GRAD_RTOL, LOSS_RTOL, LOSS_TRACE_RTOL, UPDATE_TOL,
                                      compare_first_steps, make_batch)

    torch_device = _gpu.torch_device_name(target)
    settings = set_torch_float32(torch, torch_device)
    model, opt, twin, topt = _build(torch, target, torch_device, base, seed)
    x_np, t_np = make_batch(seed, batch, size)
    x, t = minidl.tensor(x_np, device=target.name), minidl.tensor(t_np, device=target.name)
    xt, tt = torch.from_numpy(x_np).to(torch_device), torch.from_numpy(t_np).to(torch_device)
    tf = torch.nn.functional

    mine = _first_step(model, opt, x, t, F)
    theirs = _first_step(twin, topt, xt, tt, tf)
    errors = compare_first_steps(mine, theirs)
    losses = {"minidl": [mine[1]], "torch": [theirs[1]]}
    for _ in range(warmup):
        losses["minidl"].append(_step(model, opt, x, t, F).item())
        losses["torch"].append(_step(twin, topt, xt, tt, tf).item())

    phases = {lib: {k: [] for k in PHASES} for lib in ("minidl", "torch")}
    totals = {"minidl": [], "torch": []}
    for _ in range(repeats):
        for lib, clock, args in (("minidl", target.clock(), (model, opt, x, t, F)),
                                 ("torch", _gpu.torch_clock(torch, torch_device),
                                  (twin, topt, xt, tt, tf))):
            loss = _timed_step(*args, clock)
            intervals = clock.intervals_ms()  # synchronises on the last event
            losses[lib].append(loss.item())
            for name, ms in zip(PHASES, intervals):
                phases[lib][name].append(ms)
            totals[lib].append(sum(intervals))
    errors["loss_trace_max"] = max(abs(a - b) / abs(b) for a, b in zip(losses["minidl"], losses["torch"]))
    parity_ok = (errors["loss"] <= LOSS_RTOL and errors["grad_max"] <= GRAD_RTOL
                 and errors["update_median_over_lr"] <= UPDATE_TOL
                 and errors["loss_trace_max"] <= LOSS_TRACE_RTOL)

    memory = {"minidl": _gpu.minidl_peak_memory(target, lambda: _step(model, opt, x, t, F).item()),
              "torch": _gpu.torch_peak_memory(torch, torch_device,
                                              lambda: _step(twin, topt, xt, tt, tf).item())}
    ms = {lib: statistics.median(v) for lib, v in totals.items()}
    flops = unet_step_flops(batch, size, base)
    row = {
        "base": base, "batch": batch, "size": size, "depth": DEPTH,
        "device": target.name, "torch_device": torch_device, "torch_settings": settings,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "warmup": warmup, "repeats": repeats,
        "median_ms": ms,
        "all_ms": totals,
        "median_ms_by_phase": {lib: {k: statistics.median(v) for k, v in p.items()}
                               for lib, p in phases.items()},
        "ratio": ms["minidl"] / ms["torch"],
        "step_tflop": flops / 1e12,
        "tflops": {lib: flops / (v / 1e3) / 1e12 for lib, v in ms.items()},
        "losses": losses,
        "errors": errors,
        "tolerances": {"loss": LOSS_RTOL, "grad_max": GRAD_RTOL, "update_median_over_lr": UPDATE_TOL,
                       "loss_trace_max": LOSS_TRACE_RTOL},
        "parity_ok": bool(parity_ok),
        "peak_memory": memory,
    }
    if memory["minidl"] and memory["torch"]:
        row["memory_ratio"] = memory["minidl"]["peak_bytes"] / memory["torch"]["peak_bytes"]
    return row


def _settings(settings):
    return " (" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")" if settings else ""


def row_lines(row):
    """Markdown lines for one row."""
    ph, e = row["median_ms_by_phase"], row["errors"]
    lines = [
        f"U-Net step, base {row['base']}, batch {row['batch']} of 1x{row['size']}x{row['size']}, "
        f"depth {row['depth']}, {row['parameters']:,} parameters; minidl on `{row['device']}`, "
        f"PyTorch on `{row['torch_device']}`{_settings(row['torch_settings'])}; median of "
        f"{row['repeats']} steps after {row['warmup']} warm-up steps.",
        "",
        "| library | step ms | forward+loss | backward | adam | TFLOP/s | peak memory MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lib in ("minidl", "torch"):
        mem = row["peak_memory"][lib]
        lines.append(f"| {lib} | {row['median_ms'][lib]:.2f} | {ph[lib]['forward']:.2f} | "
                     f"{ph[lib]['backward']:.2f} | {ph[lib]['adam']:.2f} | {row['tflops'][lib]:.3g} | "
                     f"{mem['peak_bytes'] / 2**20:.0f} |" if mem else
                     f"| {lib} | {row['median_ms'][lib]:.2f} | {ph[lib]['forward']:.2f} | "
                     f"{ph[lib]['backward']:.2f} | {ph[lib]['adam']:.2f} | {row['tflops'][lib]:.3g} | "
                     "not measured |")
    lines += ["",
              f"Ratio minidl / PyTorch: **{row['ratio']:.2f}** (issue 28: at most 1.5)"
              + (f"; peak memory ratio **{row['memory_ratio']:.2f}** (at most 1.5)"
                 if "memory_ratio" in row else "") + ".",
              f"Parity {'OK' if row['parity_ok'] else 'MISMATCH'}: loss {e['loss']:.1e}, gradients "
              f"{e['grad_max']:.1e} ({e['grad_max_param']}), Adam update median "
              f"{e['update_median_over_lr']:.1e} / max {e['update_max_over_lr']:.1e} x lr, later "
              f"losses {e['loss_trace_max']:.1e}.",
              f"One step: {row['step_tflop']:.3g} TFLOP (3 x 2 x forward multiply-adds of the "
              "convolutions)."]
    return lines

