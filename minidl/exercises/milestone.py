"""``minidl ex milestone unet``: the demo U-Net trained on the student's own ops.

Two steps:

1. **Pre-flight** (a few seconds): for each exercise the student has filled in, one float64
   training step (forward, backward, Adam) of a small U-Net on one batch of synthetic cells,
   once on the library's code and once with only that exercise's code swapped in. The loss,
   every parameter's gradient and every parameter after the step must agree to 1e-6 (relative
   to the largest entry); an op that does not is named, with the parameter that shows it. This
   is what says *which* op would break training. An exercise whose functions the U-Net never
   called (it has no linear layer, no batch norm) is said to be unused.
2. **Training**: ``unet demo``'s recipe (minidl/../unet/__main__.py ``DEMO``: synthetic 96x96
   cells, a depth-3 U-Net with 16 base channels, Adam, six short epochs) with every filled-in
   exercise swapped in (:class:`~minidl.exercises.use_student`), then the validation Dice.
   The milestone is passed at a mean Dice (over both classes) >= 0.9, the demo's own level.
"""
import os
import time
import types

import numpy as np

from . import overridden, student_module, use_student

DICE_TARGET = 0.9
GRADIENT_RTOL = 1e-6


def _unet_step(seed=0):
    """The loss, {parameter name: gradient} and {parameter name: value after one Adam step} of
    one float64 training step of a small U-Net of the demo's kind."""
    import minidl
    from unet.models import UNet
    from unet.synthetic import make_cells

    rng = np.random.default_rng(seed)
    images, masks = zip(*(make_cells((32, 32), rng) for _ in range(2)))
    x = minidl.tensor(np.stack(images).astype(np.float64))                  # (2, 1, 32, 32)
    target = minidl.tensor(np.stack(masks).astype(np.int64))                # (2, 32, 32)
    minidl.manual_seed(seed)
    model = UNet(1, 2, base_channels=4, depth=2, padding="same").double()
    loss = minidl.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
    minidl.optim.Adam(model.parameters(), lr=1e-2).step()
    stepped = {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
    return float(loss.item()), grads, stepped


def _counting(module, names):
    """A copy of the student's module whose functions ``names`` count their calls."""
    proxy = types.ModuleType(module.__name__)
    proxy.__dict__.update(module.__dict__)
    calls = [0]

    def counted(function):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            return function(*args, **kwargs)
        return wrapper
    for name in names:
        if callable(getattr(module, name, None)):
            setattr(proxy, name, counted(getattr(module, name)))
    return proxy, calls


def _largest_difference(got, want):
    """(name, error relative to the largest entry of want) of the worst array of a dict."""
    worst_name, worst = None, 0.0
    for name, w in want.items():
        g = got[name]
        scale = max(float(np.max(np.abs(w))), 1e-12)
        error = float(np.max(np.abs(g - w))) / scale if np.all(np.isfinite(g)) else np.inf
        if error > worst:
            worst_name, worst = name, error
    return worst_name, worst


def preflight(directory, exercises, out=print):
    """Names of the student's exercises whose code changes a U-Net step (and why)."""
    with np.errstate(all="ignore"):
        library_loss, library_grads, library_step = _unet_step()
    broken = {}
    for exercise in exercises:
        module, calls = _counting(student_module(exercise.name, directory), exercise.spec.FUNCTIONS)
        try:
            with np.errstate(all="ignore"), overridden(exercise, module):
                loss, grads, stepped = _unet_step()
        except Exception as error:  # the student's op crashed inside the U-Net
            broken[exercise.name] = f"raised {type(error).__name__}: {error}"
            out(f"  {exercise.name:24s} BROKEN: {broken[exercise.name]}")
            continue
        grad_name, grad_error = _largest_difference(grads, library_grads)
        step_name, step_error = _largest_difference(stepped, library_step)
        loss_error = abs(loss - library_loss) / max(abs(library_loss), 1e-12) if np.isfinite(loss) else np.inf
        if loss_error > GRADIENT_RTOL:
            broken[exercise.name] = f"the loss is {loss:.8g}, the library's {library_loss:.8g}"
        elif grad_error > GRADIENT_RTOL:
            broken[exercise.name] = f"the gradient of {grad_name} is off by {grad_error:.3g} (relative to its largest entry)"
        elif step_error > GRADIENT_RTOL:
            broken[exercise.name] = f"{step_name} after one Adam step is off by {step_error:.3g}"
        if exercise.name in broken:
            out(f"  {exercise.name:24s} BROKEN: {broken[exercise.name]}")
        elif calls[0] == 0:
            out(f"  {exercise.name:24s} not used by this U-Net (it has no such layer, or takes another route)")
        else:
            out(f"  {exercise.name:24s} ok: called {calls[0]} times, largest difference "
                f"{max(grad_error, step_error):.1e}")
    return broken


def milestone_unet(directory=".", out_dir=None, seed=0, epochs=None, progress=True, out=print):
    """Run the milestone; return (passed, mean validation Dice or None, {exercise: why broken})."""
    from unet.__main__ import DEMO
    from unet.train import TrainConfig, TrainingDiverged, train

    exercises = use_student(directory).started()
    if exercises:
        out(f"milestone unet: your code for {', '.join(e.name for e in exercises)} (from {directory}); "
            "the library's for the rest")
    else:
        out(f"milestone unet: no exercise is filled in under {directory}: this run is the library's code alone")
    out("pre-flight: one float64 U-Net training step (forward, backward, Adam), each of your ops swapped in alone")
    broken = preflight(directory, exercises, out)

    options = dict(DEMO, out_dir=out_dir or os.path.join(directory, "milestone_unet"), seed=seed)
    if epochs is not None:
        options["epochs"] = epochs
    config = TrainConfig(**options)
    out(f"training unet demo's U-Net on synthetic cells ({config.epochs} epochs x {config.steps_per_epoch} "
        f"steps, batch {config.batch_size}) on your ops; results in {config.out_dir}")
    start = time.perf_counter()
    dice = None
    try:
        with np.errstate(all="ignore"), use_student(directory):
            result = train(config, progress=progress, verbose=progress)
        last = result.history[-1]
        dice = float(np.nanmean([last["dice_0"], last["dice_1"]]))
        out(f"validation mean Dice {dice:.4f} (membrane {last['dice_0']:.4f}, cell {last['dice_1']:.4f}) "
            f"after {time.perf_counter() - start:.1f} s")
    except TrainingDiverged as error:
        out(f"training diverged: {error}")
    passed = dice is not None and dice >= DICE_TARGET and not broken
    if passed:
        out(f"milestone unet PASSED: Dice {dice:.4f} >= {DICE_TARGET} on your own ops")
    elif broken:
        out(f"milestone unet FAILED: your {', '.join(broken)} "
            f"{'breaks' if len(broken) == 1 else 'break'} training (see the pre-flight above); "
            f"run `minidl ex check {next(iter(broken))} --dir {directory}`")
    else:
        out(f"milestone unet FAILED: Dice {dice if dice is None else round(dice, 4)} < {DICE_TARGET}, although each "
            "of your ops gives the library's gradients on a U-Net step; try another --seed, and report it")
    return passed, dice, broken
