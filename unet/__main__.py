"""Command line: ``python -m unet <command>`` (or the ``unet`` console script).

    unet demo --out DIR          synthetic data -> train a small U-Net on the CPU -> predictions
    unet train ...               train on a folder of images and masks (or synthetic data)
    unet predict ...             overlap-tile prediction of images with a checkpoint
    unet evaluate ...            metrics of predicted masks, or of a checkpoint, on labelled data
    unet plan ...                the shape planner: output size, valid input sizes, crop offsets
    unet weights ...             the paper's border weight map of a mask, as a PNG

Every command has ``--help``. Errors in the input (a missing folder, an unreadable image,
a size the network cannot take) print one line naming the problem and exit with status 2.
"""
import argparse
import dataclasses
import json
import os
import signal
import sys
import time

import numpy as np

from .checkpoint import CheckpointError, load_model
from .data import (DataError, SegmentationData, apply_mask_map, auto_mask_map, load_images,
                   load_masks, parse_mask_map)
from .fcn import FCN
from .files import RunLockError, atomic_write
from .metrics import segmentation_metrics
from .planner import SizeError, nearest_unet_input_sizes, plan_unet, unet_valid_input_size
from .predict import check_tile_size, class_count, predict_probabilities, save_prediction
from .train import (ConfigError, TrainConfig, TrainingDiverged, build_model, load_data, predict_image,
                    synthetic_kind, train, validate)
from .zoo import MODELS, PARAMETERS as MODEL_PARAMETERS, size_rule
from .weights import border_weight_map, save_weight_map_png

__all__ = ["main", "build_parser"]

_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")

# The demo: sized to reach a validation mean Dice (over both classes) >= 0.90 in well under a
# minute on 2 CPU cores.
DEMO = dict(synthetic=24, synthetic_size=(96, 96), depth=3, base_channels=16, padding="same",
            batch_size=4, epochs=6, steps_per_epoch=10, lr=3e-3, crop_size=64, val_fraction=0.25,
            schedule="cosine")
DEMO_QUICK = dict(synthetic=6, synthetic_size=(48, 48), depth=2, base_channels=4, padding="same",
                  batch_size=2, epochs=2, steps_per_epoch=2, lr=3e-3, crop_size=32,
                  val_fraction=0.34, schedule="none", elastic=False)


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported on one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def _nonnegative_float(text):
    value = float(text)
    if not (value >= 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


# argparse names a type function in its messages ("invalid _positive_int value")
_positive_int.__name__ = _positive_float.__name__ = _nonnegative_float.__name__ = "number"


# ============================================================================ demo
def cmd_demo(args):
    """Synthetic data -> a small U-Net -> validation Dice, predictions, weight map, plot."""
    start = time.perf_counter()
    options = dict(DEMO_QUICK if args.quick else DEMO)
    options.update(out_dir=args.out, seed=args.seed)
    if args.epochs is not None:
        options["epochs"] = args.epochs
    config = TrainConfig(**options)
    train_data, val_data = load_data(config)
    from .parallel import join
    job = join()          # under mpiexec the ranks train together; rank 0 alone reports
    if job.main:
        print(f"unet demo: {len(train_data) + len(val_data)} synthetic images "
              f"{config.synthetic_size[0]}x{config.synthetic_size[1]} ({len(train_data)} train, "
              f"{len(val_data)} validation); U-Net depth {config.depth}, {config.base_channels} "
              f"base channels, padding '{config.padding}'; {config.epochs} epochs x "
              f"{config.steps_per_epoch} steps of {config.batch_size} crops "
              f"{config.crop_size}x{config.crop_size}")
    result = train(config, train_data, val_data, progress=not args.no_progress, verbose=True)
    if not job.main:
        return 0
    last = result.history[-1]

    pred_dir = os.path.join(args.out, "predictions")
    samples = []
    for image, mask, name in zip(val_data.images, val_data.masks, val_data.names):
        probs = predict_image(result.model, image)                    # (K, H, W)
        save_prediction(pred_dir, name, image, probs)
        samples.append((name, image, mask, probs.argmax(axis=0)))
    from .plot import plot_predictions                                # matplotlib: slow import
    side_by_side = os.path.join(args.out, "validation.png")
    plot_predictions(samples, side_by_side, class_names=("membrane", "cell"))
    weight_png = os.path.join(args.out, "weight_map.png")
    weight = border_weight_map(val_data.masks[0], cell_class=config.cell_class,
                               num_classes=val_data.num_classes)
    save_weight_map_png(weight, weight_png)
    seconds = time.perf_counter() - start
    per_class = [last[f"dice_{k}"] for k in range(val_data.num_classes)]
    print(f"validation mean Dice {np.nanmean(per_class):.4f} over both classes (membrane "
          f"{per_class[0]:.4f}, cell {per_class[1]:.4f}); pixel accuracy "
          f"{last['pixel_accuracy']:.4f}, mean IoU {last['mean_iou']:.4f}"
          + (f", V_rand {last['v_rand']:.4f}" if "v_rand" in last else ""))
    print(f"wrote {side_by_side} (image, truth, prediction, overlay for each validation image), "
          f"{pred_dir}/, {weight_png}, training.png, history.csv, last.npz, best.npz "
          f"to {args.out} in {seconds:.1f} s")
    return 0


# ============================================================================ train
def _class_or_none(text):
    """A class index, or 'none'."""
    return -1 if text.lower() == "none" else int(text)


# (flag, TrainConfig field, type, help); every default is None so that only the options
# given on the command line override the defaults (or a resumed checkpoint's config).
_TRAIN_OPTIONS = [
    ("--images", "image_dir", str, "folder of training images"),
    ("--masks", "mask_dir", str, "folder of masks, matched to the images by file stem"),
    ("--mask-map", "mask_map", str, "raw mask value -> class, e.g. 0:0,255:1 (default: automatic)"),
    ("--synthetic", "synthetic", int, "without --images: number of synthetic samples (40)"),
    ("--val-fraction", "val_fraction", float, "fraction of the samples for validation (0.2)"),
    ("--model", "model", str, "a network of `unet models`: unet, fcn8s, zhixuhao, tf_unet, resnet34_unet, "
     "bn_unet, mini_unet, ... (unet)"),
    ("--width", "width", float, "the seed models' channels as a fraction of the article's (1.0)"),
    ("--encoder-weights", "encoder_weights", str, "a torchvision ResNet34 / VGG16 state dict (.pth or .npz) "
     "to start resnet34_unet's / fcn's encoder from"),
    ("--up-mode", "up_mode", str, "transpose; bilinear (unet) or upsample (zhixuhao) (transpose)"),
    ("--synthetic-kind", "synthetic_kind", str, "without --images: cells or trimaps (3 classes) "
     "(auto: trimaps for fcn8s/16s/32s)"),
    ("--depth", "depth", int, "U-Net levels (4; 5 in the paper)"),
    ("--base-channels", "base_channels", int, "channels of the top level (16; 64 in the paper)"),
    ("--padding", "padding", str, "same or valid (same; valid in the paper)"),
    ("--fcn-variant", "fcn_variant", str, "32s, 16s or 8s (8s)"),
    ("--fcn-width", "fcn_width", float, "FCN channel multiplier (0.125)"),
    ("--optimizer", "optimizer", str, "adam or sgd (adam; sgd uses --momentum)"),
    ("--lr", "lr", float, "learning rate (1e-3)"),
    ("--momentum", "momentum", float, "SGD momentum (0.99, the paper)"),
    ("--weight-decay", "weight_decay", float, "L2 penalty (0)"),
    ("--schedule", "schedule", str, "none, step, cosine, plateau or onecycle (none; onecycle peaks at --lr)"),
    ("--lr-step", "lr_step", int, "StepLR period in epochs (10)"),
    ("--lr-gamma", "lr_gamma", float, "StepLR / plateau factor (0.1)"),
    ("--batch-size", "batch_size", int, "crops per step; under mpiexec, over all the processes (4)"),
    ("--epochs", "epochs", int, "epochs (10)"),
    ("--steps-per-epoch", "steps_per_epoch", int, "steps per epoch (default: one pass)"),
    ("--steps", "steps", int, "total steps (instead of --epochs)"),
    ("--loss", "loss", str, "ce (cross-entropy) or bce (BCE-with-logits) (ce)"),
    ("--dice-weight", "dice_weight", float, "add this times the soft Dice loss (0)"),
    ("--w0", "w0", float, "border weight w0 (10)"),
    ("--sigma", "sigma", float, "border weight sigma in pixels (5)"),
    ("--crop-size", "crop_size", int, "network input tile in pixels (default: largest that fits, at most 256)"),
    ("--jitter", "jitter", float, "intensity jitter (0.1)"),
    ("--workers", "workers", int, "processes that make the batches (crops, deformation, weights) ahead "
     "of the step; the same batches for any number (0: in the main process)"),
    ("--cell-class", "cell_class", _class_or_none, "class of cell interiors, for V_rand; "
     "'none' for data without cells (1)"),
    ("--monitor", "monitor", str, "metric that picks best.npz (dice)"),
    ("--out", "out_dir", str, "output folder (runs/unet)"),
    ("--seed", "seed", int, "random seed (0)"),
    ("--resume", "resume", str, "continue from this checkpoint (its options are kept)"),
]
_TRAIN_FLAGS = [  # (flag, field, value, help)
    ("--border-weight", "border_weight", True, "weight the loss by the paper's border map"),
    ("--batch-norm", "batch_norm", True, "BatchNorm after every convolution"),
    ("--no-augment", "augment", False, "no flips, rotations, jitter or deformation"),
    ("--no-elastic", "elastic", False, "no elastic deformation"),
]


def _config_from_args(args):
    given = {field: getattr(args, field) for _, field, *_ in _TRAIN_OPTIONS + _TRAIN_FLAGS
             if getattr(args, field) is not None}
    if given.get("cell_class") == -1:        # --cell-class none
        given["cell_class"] = None
    if args.val_indices is not None:
        given["val_indices"] = tuple(int(v) for v in args.val_indices.split(","))
    if args.synthetic_size is not None:
        given["synthetic_size"] = (args.synthetic_size, args.synthetic_size)
    if args.resume is None and given.get("model") in MODELS:
        # a seed model trains with its article's recipe unless an option says otherwise
        for key, value in getattr(MODELS[given["model"]].cls, "RECIPE", {}).items():
            if key in ("optimizer", "lr", "momentum", "weight_decay", "schedule"):
                given.setdefault(key, value)
            elif key == "metric":  # the article's reported score picks best.npz
                given.setdefault("monitor", value)
    if args.resume is not None:      # the checkpoint's options, then what was given
        from .checkpoint import load_checkpoint
        values = TrainConfig.from_dict(load_checkpoint(args.resume)["config"]).to_dict()
        # next to the checkpoint, unless --out says otherwise (its saved out_dir may be relative
        # to another folder)
        values["out_dir"] = os.path.dirname(os.path.abspath(args.resume))
        values.update(given)
        return TrainConfig.from_dict(values)
    config = TrainConfig(**given)
    if config.image_dir is None and synthetic_kind(config) == "trimaps" and "cell_class" not in given:
        config = dataclasses.replace(config, cell_class=None)  # trimaps have no cells: no V_rand
    return config


def cmd_train(args):
    from .parallel import join
    job = join()     # under mpiexec: this process is one rank of the run (unet/parallel.py)
    for flag, folder in (("--images", args.image_dir), ("--masks", args.mask_dir)):
        if folder is not None and not os.path.isdir(folder):
            raise DataError(f"{flag} folder '{folder}' does not exist")
    config = _config_from_args(args)
    train_data, val_data = load_data(config)
    if config.image_dir is not None and job.main:
        print(train_data.report())
    result = train(config, train_data, val_data, progress=not args.no_progress, verbose=True)
    if not job.main:                     # rank 0 alone reports
        return 0
    if result.best_checkpoint is not None:
        print(f"best {result.best['metric']} {result.best['value']:.4f} at epoch "
              f"{result.best['epoch']} ({result.best_checkpoint}); last checkpoint "
              f"{result.last_checkpoint}")
    else:
        print(f"last checkpoint {result.last_checkpoint} (no best.npz: no epoch finished)")
    return 0


# ============================================================================ predict
def _image_files(paths, where):
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, f) for f in os.listdir(path)
                            if f.lower().endswith(_IMAGE_SUFFIXES))
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise DataError(f"{where}: '{path}' is neither a file nor a folder")
    if not files:
        raise DataError(f"{where}: no images ({', '.join(_IMAGE_SUFFIXES)}) in {paths}")
    return files


def cmd_predict(args):
    files = _image_files(args.input, "--input")
    model, config = load_model(args.checkpoint)
    try:
        check_tile_size(model, args.tile_size)
    except ValueError as error:
        raise ConfigError(f"--tile-size {args.tile_size}: {error}".replace("predict_probabilities: ", "")) from None
    written = 0
    for path in files:
        pages = load_images(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        for page, image in enumerate(pages):
            if image.shape[0] != model.in_channels:
                raise DataError(f"'{path}' has {image.shape[0]} channels, the model "
                                f"takes {model.in_channels}")
            name = stem if len(pages) == 1 else f"{stem}_{page:03d}"
            probs = predict_probabilities(model, image, tile_size=args.tile_size,
                                          batch_size=args.batch_size)
            save_prediction(args.out, name, image, probs)
            written += 1
    print(f"unet predict: wrote probabilities, masks and overlays of {written} images to {args.out}")
    return 0


# ============================================================================ evaluate
def _mask_files(folder, flag):
    if not os.path.isdir(folder):
        raise DataError(f"{flag} folder '{folder}' does not exist")
    files = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in _IMAGE_SUFFIXES:
            files[stem] = os.path.join(folder, name)
    if not files:
        raise DataError(f"{flag} folder '{folder}' holds no mask images")
    return files


def _read_mapped(files, mapping):
    """Every page of the mask files, mapped to classes (one automatic mapping for all)."""
    raw = {stem: load_masks(path) for stem, path in files.items()}
    if mapping is None:
        values = np.unique(np.concatenate([np.unique(m) for pages in raw.values() for m in pages]))
        mapping = auto_mask_map(values)
    return {stem: [apply_mask_map(m, mapping, files[stem]) for m in pages]
            for stem, pages in raw.items()}, mapping


def cmd_evaluate(args):
    if args.checkpoint is not None:
        if args.pred is not None or args.images is None:
            raise DataError("give --checkpoint with --images and --masks, or "
                            "--pred with --masks")
        for flag, folder in (("--images", args.images), ("--masks", args.masks)):
            if not os.path.isdir(folder):
                raise DataError(f"{flag} folder '{folder}' does not exist")
        model, config = load_model(args.checkpoint)
        mapping = parse_mask_map(args.mask_map) if args.mask_map else None
        data = SegmentationData.from_folders(args.images, args.masks, mapping)
        if data.in_channels != model.in_channels:
            raise DataError(f"the images in '{args.images}' have {data.in_channels} channel(s); the "
                            f"model in '{args.checkpoint}' takes {model.in_channels}")
        if data.num_classes > class_count(model):
            raise DataError(f"the masks in '{args.masks}' have {data.num_classes} classes; the model "
                            f"in '{args.checkpoint}' predicts {class_count(model)} (a --mask-map may "
                            "merge them)")
        metrics = validate(model, data, args.cell_class)
        source = f"checkpoint {args.checkpoint} on {len(data)} images"
    else:
        if args.pred is None:
            raise DataError("give --pred (predicted masks) or --checkpoint")
        truth, _ = _read_mapped(_mask_files(args.masks, "--masks"),
                                parse_mask_map(args.mask_map) if args.mask_map else None)
        pred_files = _mask_files(args.pred, "--pred")
        # A prediction of "a.png" may be called "a_mask.png" (what unet predict writes).
        pred_files = {(s[:-5] if s.endswith("_mask") and s[:-5] in truth else s): p
                      for s, p in pred_files.items()}
        scored = [stem for stem in truth if stem in pred_files]
        missing = [stem for stem in truth if stem not in pred_files]
        if not scored:
            raise DataError(f"no prediction in '{args.pred}' matches a mask in '{args.masks}' (by "
                            f"file name; e.g. {missing[0]}.png or {missing[0]}_mask.png)")
        preds, _ = _read_mapped({s: pred_files[s] for s in scored},
                                parse_mask_map(args.pred_map) if args.pred_map else None)
        targets, predictions = [], []
        for stem in scored:
            for t, p in zip(truth[stem], preds[stem]):
                if t.shape != p.shape:
                    raise DataError(f"'{pred_files[stem]}' is {p.shape[1]}x"
                                    f"{p.shape[0]} but its mask is {t.shape[1]}x{t.shape[0]}")
                targets.append(t)
                predictions.append(p)
        num_classes = max(2, max(int(m.max()) for m in targets + predictions) + 1)
        cell = args.cell_class if args.cell_class is not None and args.cell_class < num_classes else None
        metrics = segmentation_metrics(predictions, targets, num_classes, cell_class=cell)
        source = f"{len(targets)} predicted masks in {args.pred}"
        if missing:
            source += (f"; skipped {len(missing)} of {len(truth)} masks without a prediction "
                       f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})")
    metrics = {k: float(v) for k, v in metrics.items()}
    print(f"unet evaluate: {source}")
    for key, value in metrics.items():
        print(f"  {key:16s} {value:.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(metrics, fh, indent=2)
    return 0


# ============================================================================ plan
def cmd_plan(args):
    if args.model not in ("unet", "fcn", "fcn8s", "fcn16s", "fcn32s"):  # a seed model: its own size rule
        config = TrainConfig(model=args.model, width=min(args.width, 0.0625))  # (small: only sizes matter)
        model = build_model(config, in_channels=3, num_classes=2)
        print(f"{args.model}: input sizes {size_rule(model)}")
        try:
            print(f"  input {args.size}: output {model.output_size(args.size)}")
        except ValueError as error:
            print(f"unet plan: {error}", file=sys.stderr)
            return 2
        return 0
    if args.model in ("fcn8s", "fcn16s", "fcn32s"):
        args.model, args.fcn_variant, args.fcn_width = "fcn", args.model[3:], args.width
    if args.model == "fcn":
        model = FCN(n_classes=2, variant=args.fcn_variant, in_channels=1, width=args.fcn_width)
        sizes = model.plan(args.size)
        print(f"FCN-{args.fcn_variant}, input {args.size}: output {sizes['output']} "
              f"(the same size; the network takes any size)")
        for key, value in sizes.items():
            print(f"  {key:14s} {value}")
        print("  crop offsets: " + ", ".join(f"{k} {v}" for k, v in model.offsets.items()))
        return 0
    try:
        plan = plan_unet(args.size, args.depth, args.padding)
    except SizeError as error:
        below, above = nearest_unet_input_sizes(args.size, args.depth, args.padding)
        print(f"unet plan: {error}", file=sys.stderr)
        print(f"nearest valid input sizes: {below} and {above}" if below is not None else
              f"smallest valid input size: {above}")
        return 2
    margin = (plan.input_size - plan.output_size) // 2
    print(f"U-Net depth {plan.depth}, padding '{plan.padding}', input {plan.input_size}: "
          f"output {plan.output_size} (margin {margin} per side)")
    print(f"  {'level':>5} {'skip':>6} {'up':>6} {'crop offset':>12} {'out':>6}")
    for level in plan.levels:
        print(f"  {level.level:>5} {level.skip:>6} {level.up:>6} {level.crop_offset:>12} {level.out:>6}")
    print(f"  bottom level {plan.depth}: {plan.bottleneck_in} -> {plan.bottleneck_out}")
    print(f"  crop offsets (top level first): {plan.crop_offsets}")
    sizes, n = [], max(1, args.size - 3 * 2 ** (plan.depth - 1))
    while len(sizes) < args.list:
        n = unet_valid_input_size(n, plan.depth, plan.padding)
        sizes.append(n)
        n += 1
    outputs = [plan_unet(s, plan.depth, plan.padding).output_size for s in sizes]
    print("  valid input sizes near it: " + ", ".join(f"{s} -> {o}" for s, o in zip(sizes, outputs)))
    return 0


# ============================================================================ lr-find, models
def cmd_lr_find(args):
    from .lr_find import lr_find
    config = _config_from_args(args)
    lrs, _, _, suggestion = lr_find(config, args.start, args.end, args.lr_steps)
    if suggestion is None:
        raise ConfigError("lr-find: the loss was not finite from the first step; lower --start")
    print(f"lr-find: {len(lrs)} steps from {lrs[0]:.3g} to {lrs[-1]:.3g}; suggested lr {suggestion:.3g} "
          f"(the steepest descent of the smoothed loss); wrote {os.path.join(config.out_dir, 'lr_find.png')} "
          "and lr_find.csv")
    return 0


def cmd_models(args):
    print(f"{'name':14s} {'loss':4s} {'parameters':>12s}  source / input sizes")
    for name, entry in MODELS.items():
        cls = entry.cls
        loss = getattr(cls, "LOSS", "ce")
        tiny = build_model(TrainConfig(model=name, width=0.0625, base_channels=4, fcn_width=0.0625),
                           in_channels=1, num_classes=2)
        recipe = ", ".join(f"{k} {v}" for k, v in getattr(cls, "RECIPE", {}).items()) or "-"
        sizes = "set by --depth and --padding (see `unet plan`)" if name == "unet" else size_rule(tiny)
        print(f"{name:14s} {loss:4s} {MODEL_PARAMETERS[name]:>12,}  {entry.summary}")
        print(f"{'':33s}source: {getattr(cls, 'SOURCE', 'Ronneberger, Fischer, Brox (MICCAI 2015)')}")
        print(f"{'':33s}recipe: {recipe}; input sizes: {sizes}")
    print("parameters: at the article's width (unet: the paper's), 1 input channel, 2 classes (one output "
          "channel for bce); --width scales the seed models' channels; `unet train --model NAME` uses "
          "the recipe's optimizer, lr, momentum, weight decay and schedule unless given")
    return 0


# ============================================================================ weights
def cmd_weights(args):
    kind = os.path.splitext(args.out)[1].lower()
    if kind not in (".png", ".npy"):
        raise ConfigError(f"--out '{args.out}': write a .png (a picture of the map) or a .npy "
                          "(the map itself, float32 (H, W))")
    if not os.path.isfile(args.mask):
        raise DataError(f"mask file '{args.mask}' does not exist")
    pages = load_masks(args.mask)
    if not 0 <= args.page < len(pages):
        raise DataError(f"'{args.mask}' has {len(pages)} pages, no page {args.page}")
    raw = pages[args.page]
    mapping = parse_mask_map(args.mask_map) if args.mask_map else auto_mask_map(np.unique(raw))
    mask = apply_mask_map(raw, mapping, args.mask)
    weight = border_weight_map(mask, w0=args.w0, sigma=args.sigma, cell_class=args.cell_class)
    if kind == ".npy":
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        atomic_write(args.out, lambda fh: np.save(fh, weight.astype(np.float32)))
    else:
        save_weight_map_png(weight, args.out)
    print(f"unet weights: {args.mask} ({mask.shape[1]}x{mask.shape[0]}): w0 {args.w0}, sigma "
          f"{args.sigma}; weights from {weight.min():.3f} to {weight.max():.3f}, mean "
          f"{weight.mean():.3f}; wrote {args.out}")
    return 0


# ============================================================================ parser
def _add_train_options(p):
    """The options of a training run (train and lr-find share them)."""
    for flag, field, kind, text in _TRAIN_OPTIONS:
        p.add_argument(flag, dest=field, type=kind, default=None, help=text)
    for flag, field, value, text in _TRAIN_FLAGS:
        p.add_argument(flag, dest=field, action="store_const", const=value, default=None, help=text)
    p.add_argument("--synthetic-size", type=int, default=None, help="side of synthetic images (128)")
    p.add_argument("--val-indices", default=None, help="validation samples, e.g. 20,21,22")


def build_parser():
    parser = _Parser(prog="unet", description="U-Net / FCN segmentation on minidl.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    p = sub.add_parser("demo", help="train a small U-Net on synthetic cells and predict",
                       description="Generate synthetic cell images, train a small U-Net on the "
                       "CPU, report validation Dice and write predictions, overlays, a weight map "
                       "and the training plot to --out.")
    p.add_argument("--out", default="demo_out", help="output folder (demo_out)")
    p.add_argument("--quick", action="store_true", help="tiny version for CI (seconds, no Dice target)")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train on images and masks (or synthetic data)",
                       description="Train a U-Net or FCN. Writes last.npz, best.npz, "
                       "history.csv and training.png to --out. Ctrl-C saves last.npz; "
                       "--resume continues exactly. Started as `mpiexec -n N unet train ...`, "
                       "N processes train the run together, each on its share of every batch "
                       "(--batch-size is the global batch; the same result as one process); "
                       "rank 0 writes the files; a checkpoint resumes with any N "
                       "(docs/distributed.md).")
    _add_train_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predict images with a checkpoint (overlap-tile)",
                       description="Write <name>_prob.png, <name>_mask.png and "
                       "<name>_overlay.png for every image (every page of a TIFF stack).")
    p.add_argument("--checkpoint", required=True, help="a .npz written by unet train")
    p.add_argument("--input", required=True, nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile-size", type=_positive_int, default=None, help="network input tile (default: automatic)")
    p.add_argument("--batch-size", type=_positive_int, default=4, help="tiles per forward pass (4)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="metrics on a labelled folder",
                       description="Either --pred DIR --masks DIR (predicted masks against true "
                       "masks, matched by file stem; 'a_mask.png' matches 'a.png') or --checkpoint "
                       "CKPT --images DIR --masks DIR (predict, then score).")
    p.add_argument("--masks", required=True, help="folder of true masks")
    p.add_argument("--pred", default=None, help="folder of predicted masks")
    p.add_argument("--checkpoint", default=None, help="a checkpoint to evaluate on --images")
    p.add_argument("--images", default=None, help="folder of images (with --checkpoint)")
    p.add_argument("--mask-map", default=None, help="true mask values -> classes, e.g. 0:0,255:1")
    p.add_argument("--pred-map", default=None, help="predicted mask values -> classes")
    p.add_argument("--cell-class", type=int, default=1, help="class of cells, for V_rand (1)")
    p.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("lr-find", help="the learning-rate range test: a plot of loss against lr",
                       description="Train briefly while the learning rate grows from --start to "
                       "--end; write lr_find.png and lr_find.csv to --out and suggest a rate. "
                       "Takes train's options (model, data, loss, optimizer).")
    _add_train_options(p)
    p.add_argument("--start", type=_positive_float, default=1e-7, help="first learning rate (1e-7)")
    p.add_argument("--end", type=_positive_float, default=10.0, help="last learning rate (10)")
    p.add_argument("--lr-steps", type=_positive_int, default=100, help="batches, one per rate (100)")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("models", help="the networks --model can name, with their sources and sizes",
                       description="Every network of `unet train --model NAME`: source, loss, "
                       "recipe, parameters at the article's width, and the input sizes it takes.")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("plan", help="the shape planner: output size, valid inputs, crop offsets",
                       description="Sizes through a U-Net (or FCN) for one spatial dimension.")
    p.add_argument("--size", type=_positive_int, required=True, help="input size in pixels (e.g. 572)")
    p.add_argument("--depth", type=_positive_int, default=5, help="U-Net levels (5, the paper)")
    p.add_argument("--padding", default="valid", choices=("valid", "same"), help="(valid)")
    p.add_argument("--model", default="unet", choices=tuple(MODELS), help="(unet; see `unet models`)")
    p.add_argument("--width", type=_positive_float, default=1.0, help="seed models: fraction of the article's channels (1.0)")
    p.add_argument("--fcn-variant", default="8s", choices=("32s", "16s", "8s"), help="(8s)")
    p.add_argument("--fcn-width", type=_positive_float, default=1.0, help="FCN channel multiplier (1.0)")
    p.add_argument("--list", type=_positive_int, default=5, help="how many valid input sizes to list (5)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("weights", help="the border weight map of a mask, as a PNG",
                       description="w(x) = w_c(x) + w0 exp(-(d1 + d2)^2 / (2 sigma^2)) "
                       "(Ronneberger et al. 2015, eq. 2).")
    p.add_argument("--mask", required=True, help="mask image file")
    p.add_argument("--out", required=True, help="a .png (picture) or .npy (the float32 map) to write")
    p.add_argument("--w0", type=_nonnegative_float, default=10.0, help="(10)")
    p.add_argument("--sigma", type=_positive_float, default=5.0, help="pixels (5)")
    p.add_argument("--cell-class", type=int, default=1, help="class of cell interiors (1)")
    p.add_argument("--mask-map", default=None, help="mask values -> classes (default: automatic)")
    p.add_argument("--page", type=int, default=0, help="page of a multi-page TIFF (0)")
    p.set_defaults(func=cmd_weights)
    return parser


def main(argv=None):
    """Run one command; return its exit status (0 ok, 1 training diverged, 2 bad input,
    128 + the signal when Ctrl-C (130), SIGTERM (143) or SIGHUP (129) stopped training).

    One rank of an ``mpiexec`` job: an error ends every rank at once (MPI_Abort with the
    status), since the others would wait for this one for ever; a stop the ranks agreed on
    (unet/parallel.py) ends each normally, with the same status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    status, agreed = _run(args)
    if status != 0 and not agreed:
        _end_the_job(status)
    return status


def _rank_tag():
    """" (rank r of N)" in a job of several processes, else ""."""
    import minidl.distributed as dist
    if dist.is_initialized() and dist.get_world_size() > 1:
        return f" (rank {dist.get_rank()} of {dist.get_world_size()})"
    return ""


def _end_the_job(status):
    """In a job of several ranks, end all of them now with ``status``."""
    import minidl.distributed as dist
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.abort(status)


def _run(args):
    """``(exit status, whether every rank of a job stops with it)``."""
    try:
        return args.func(args), True
    except TrainingDiverged as error:
        print(f"unet {args.command}{_rank_tag()}: {error}", file=sys.stderr)
        return 1, False
    except KeyboardInterrupt as error:  # Ctrl-C, SIGTERM or SIGHUP: 128 + the signal, as a shell does
        signum = getattr(error, "signum", signal.SIGINT)
        agreed = getattr(error, "agreed", False) or not _rank_tag()
        if agreed and _rank_tag() and not _is_rank_zero():
            return 128 + int(signum), True        # rank 0 says it
        print(f"unet {args.command}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + int(signum), agreed
    except BrokenPipeError:  # `unet plan ... | head -1`: the reader has gone; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1, False
    except (DataError, SizeError, CheckpointError, ConfigError, RunLockError, FileNotFoundError) as error:
        print(f"unet {args.command}{_rank_tag()}: error: {error}", file=sys.stderr)
        return 2, False


def _is_rank_zero():
    import minidl.distributed as dist
    return not dist.is_initialized() or dist.get_rank() == 0


if __name__ == "__main__":
    sys.exit(main())
