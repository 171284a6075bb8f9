"""``minidl ex milestone unet``: the demo U-Net trained on the student's own ops.

Two steps:

1. **Pre-flight** (a few seconds): for each exercise the student has filled in, one float64
   forward and backward of a small U-Net on one batch of synthetic cells, once on the library's
   code and once with only that exercise's code swapped in. Every parameter's gradient must
   agree to 1e-6 (relative to its largest entry); an op that does not is named, with the
   parameter that shows it. This is what says *which* op would break training.
2. **Training**: ``unet demo``'s recipe (minidl/../unet/__main__.py ``DEMO``: synthetic 96x96
   cells, a depth-3 U-Net with 16 base channels, Adam, six short epochs) with every filled-in
   exercise swapped in (:class:`~minidl.exercises.use_student`), then the validation Dice.
   The milestone is passed at a mean Dice (over both classes) >= 0.9, the demo's own level.
"""
import os
import time

import numpy as np

from . import overridden, student_module, use_student

DICE_TARGET = 0.9
GRADIENT_RTOL = 1e-6


def _unet_gradients(seed=0):
    """{parameter name: gradient} and the loss of one float64 step of a small U-Net."""
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
    return float(loss.item()), {name: p.grad.numpy().copy() for name, p in model.named_parameters()}


def preflight(directory, exercises, out=print):
    """Names of the student's exercises whose code changes the U-Net's gradients (and why)."""
    with np.errstate(all="ignore"):
        library_loss, library = _unet_gradients()
    broken = {}
    for exercise in exercises:
        module = student_module(exercise.name, directory)
        try:
            with np.errstate(all="ignore"), overridden(exercise, module):
                loss, grads = _unet_gradients()
        except Exception as error:  # the student's op crashed inside the U-Net
            broken[exercise.name] = f"raised {type(error).__name__}: {error}"
            out(f"  {exercise.name:24s} BROKEN: {broken[exercise.name]}")
            continue
        worst_name, worst = None, 0.0
        for name, want in library.items():
            scale = max(float(np.max(np.abs(want))), 1e-12)
            error = float(np.max(np.abs(grads[name] - want))) / scale if np.all(np.isfinite(grads[name])) else np.inf
            if error > worst:
                worst_name, worst = name, error
        loss_error = abs(loss - library_loss) / max(abs(library_loss), 1e-12) if np.isfinite(loss) else np.inf
        if loss_error > GRADIENT_RTOL:
            broken[exercise.name] = f"the loss is {loss:.8g}, the library's {library_loss:.8g}"
        elif worst > GRADIENT_RTOL:
            broken[exercise.name] = f"the gradient of {worst_name} is off by {worst:.3g} (relative to its largest entry)"
        if exercise.name in broken:
            out(f"  {exercise.name:24s} BROKEN: {broken[exercise.name]}")
        else:
            out(f"  {exercise.name:24s} ok (largest gradient difference {worst:.1e})")
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
    out("pre-flight: one float64 U-Net step, your op swapped in against the library's")
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
