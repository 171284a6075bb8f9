r"""Segmentation metrics: confusion matrix, pixel accuracy, IoU, Dice, and the ISBI 2012 V_rand.

Notation: K classes; ``cm[t, p]`` = number of pixels of true class t predicted as class p
(rows = target, columns = prediction). For class k:

    TP_k = cm[k, k],   T_k = sum_p cm[k, p] (pixels of class k),   P_k = sum_t cm[t, k] (predicted k)
    IoU_k  = TP_k / (T_k + P_k - TP_k)        (intersection over union)
    Dice_k = 2 TP_k / (T_k + P_k)             (= F1 score of class k)

A class that occurs neither in the target nor in the prediction has 0/0 for both: its IoU and
Dice are NaN (undefined), and means skip it (``np.nanmean``). A class that is in the target
but never predicted (or the other way round) has IoU = Dice = 0, which is counted.

V_rand (foreground-restricted Rand score) is documented at :func:`rand_score_foreground` and
in docs/prediction.md.
"""
import numpy as np
from scipy import ndimage

__all__ = ["confusion_matrix", "pixel_accuracy", "iou_per_class", "mean_iou", "frequency_weighted_iou",
           "dice_per_class", "rand_score_foreground", "segmentation_metrics"]


def _check_label_array(where, name, array):
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise TypeError(f"{where}: {name} must hold integer class labels, got dtype {array.dtype} "
                        f"(shape {array.shape}); take the argmax of probabilities first")
    return array.astype(np.int64, copy=False)


def _check_pair(where, pred, target):
    pred = _check_label_array(where, "pred", pred)
    target = _check_label_array(where, "target", target)
    if pred.shape != target.shape:
        raise ValueError(f"{where}: pred and target must have the same shape, got pred {pred.shape} "
                         f"and target {target.shape}")
    return pred, target


def _check_cm(where, cm):
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"{where}: expected a square (K, K) confusion matrix, got shape {cm.shape}")
    return cm.astype(np.float64)


def _divide(numerator, denominator):
    """numerator / denominator elementwise, NaN where the denominator is 0 (no warning)."""
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _nanmean(values):
    """Mean over the defined (non-NaN) entries; NaN if there are none (no warning)."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def confusion_matrix(pred, target, num_classes):
    """(K, K) int64 counts, ``cm[t, p]`` = pixels with target t and prediction p.

    ``pred`` and ``target``: integer arrays of the same shape (any shape, e.g. (H, W) or
    (N, H, W)) with values in 0..K-1.
    """
    pred, target = _check_pair("confusion_matrix", pred, target)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"confusion_matrix: num_classes must be an int >= 1, got {num_classes!r}")
    for name, array in (("pred", pred), ("target", target)):
        bad = np.unique(array[(array < 0) | (array >= num_classes)])
        if bad.size:
            raise ValueError(f"confusion_matrix: {name} has values {bad[:10].tolist()} outside the "
                             f"classes 0..{num_classes - 1}")
    # each pixel's (target, prediction) pair as one index t*K + p, counted at once
    counts = np.bincount(target.ravel() * num_classes + pred.ravel(), minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes).astype(np.int64)  # (K, K): rows target


def pixel_accuracy(cm):
    """sum_k TP_k / (number of pixels); NaN for an empty matrix."""
    cm = _check_cm("pixel_accuracy", cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def iou_per_class(cm):
    """IoU_k = TP_k / (T_k + P_k - TP_k) for every class; NaN for a class absent from both."""
    cm = _check_cm("iou_per_class", cm)
    tp = np.diag(cm)
    return _divide(tp, cm.sum(axis=1) + cm.sum(axis=0) - tp)


def mean_iou(cm):
    """Mean of IoU_k over the classes present in the target or the prediction (nanmean)."""
    return _nanmean(iou_per_class(cm))


def frequency_weighted_iou(cm):
    """sum_k (T_k / N) IoU_k: each class weighted by its share of the TARGET pixels.

    Classes absent from the target have weight 0 (their IoU may be 0 or NaN; either way they
    add nothing). This is the "frequency weighted IU" of Long et al. (FCN, 2015).
    """
    cm = _check_cm("frequency_weighted_iou", cm)
    total = cm.sum()
    if not total:
        return float("nan")
    freq = cm.sum(axis=1) / total
    iou = iou_per_class(cm)
    present = freq > 0                        # a class in the target has T_k > 0: IoU defined
    return float(np.sum(freq[present] * iou[present]))


def dice_per_class(cm):
    """Dice_k = 2 TP_k / (T_k + P_k) for every class; NaN for a class absent from both."""
    cm = _check_cm("dice_per_class", cm)
    return _divide(2 * np.diag(cm), cm.sum(axis=1) + cm.sum(axis=0))


def rand_score_foreground(pred, target, cell_class=1):
    r"""The ISBI 2012 foreground-restricted Rand score V_rand of one 2-D segmentation (1 = perfect).

    Arganda-Carreras et al. 2015 ("Crowdsourcing the creation of image segmentation algorithms
    for connectomics"), as computed by the challenge's Fiji code
    (``trainableSegmentation.metrics.RandError.foregroundRestrictedStatsN2``):

    1. Segments: the 4-connected components of ``pred == cell_class`` and of
       ``target == cell_class``; every other pixel is "boundary" (label 0).
    2. Only pixels that are foreground in the TARGET count: n of them. ``p_ij`` = (pixels in
       target segment i and prediction segment j) / n, for i >= 1 and j >= 0, where j = 0 means
       the prediction calls the pixel boundary.
    3. A foreground pixel that the prediction calls boundary (j = 0) counts as a segment of
       its own (a singleton): it adds (1/n)^2 to the sums with p_ij and s_j below.
    4. With t_i = sum_j p_ij (sizes of the target segments, "T" in the paper) and
       s_j = sum_{i>=1} p_ij for j >= 1 (sizes of the predicted segments, "S"):

           V_rand = sum_{i,j>=1} p_ij^2 + c / n^2
                    -------------------------------------------------------------------
                    alpha * (sum_{j>=1} s_j^2 + c / n^2) + (1 - alpha) * sum_i t_i^2

       with alpha = 1/2 and c = number of target-foreground pixels predicted as boundary.
       With alpha = 1/2 this is the harmonic mean of the split score V_split =
       numerator / sum t^2 (drops when a cell is cut into pieces) and the merge score
       V_merge = numerator / sum s^2 (drops when cells are merged).

    Differences from the official leaderboard number: it scores one given segmentation (no
    maximum over thresholds of a probability map) and does not thin the borders first.

    Returns NaN when the target has no foreground pixel (the score is undefined).
    """
    pred, target = _check_pair("rand_score_foreground", pred, target)
    if pred.ndim != 2:
        raise ValueError(f"rand_score_foreground: expected 2-D (H, W) label maps, got shape {pred.shape}")
    target_segments, n_target = ndimage.label(target == cell_class)  # 4-connectivity (the default)
    pred_segments, n_pred = ndimage.label(pred == cell_class)
    inside = target_segments > 0                    # only target-foreground pixels count
    n = int(inside.sum())
    if n == 0:
        return float("nan")
    # contingency table over the foreground: rows target segments 0..n_target, columns 0..n_pred
    index = target_segments[inside] * (n_pred + 1) + pred_segments[inside]
    counts = np.bincount(index, minlength=(n_target + 1) * (n_pred + 1)).reshape(n_target + 1, n_pred + 1)
    p = counts[1:].astype(np.float64) / n           # (n_target, n_pred + 1): drop the empty row 0
    singletons = p[:, 0].sum() / n                  # c / n^2: each such pixel is its own segment
    sum_p2 = np.sum(p[:, 1:] ** 2) + singletons
    sum_t2 = np.sum(p.sum(axis=1) ** 2)                         # target segments t_i
    sum_s2 = np.sum(p[:, 1:].sum(axis=0) ** 2) + singletons     # predicted segments s_j
    alpha = 0.5
    return float(sum_p2 / (alpha * sum_s2 + (1 - alpha) * sum_t2))


def _as_list(where, name, arrays):
    if isinstance(arrays, np.ndarray):
        arrays = [arrays] if arrays.ndim == 2 else list(arrays)   # (H, W) or (N, H, W)
    arrays = list(arrays)
    for i, a in enumerate(arrays):
        if np.ndim(a) != 2:
            raise ValueError(f"{where}: {name}[{i}] must be a 2-D (H, W) label map, got shape {np.shape(a)}")
    return arrays


def segmentation_metrics(preds, targets, num_classes, cell_class=None):
    """All metrics of a set of predicted label maps against their targets, as floats.

    ``preds`` and ``targets``: lists of (H, W) integer maps (sizes may differ between images),
    or arrays (N, H, W) / (H, W). The confusion matrix is summed over all pixels of all images
    (pooled), so big images weigh more. V_rand is computed per image and averaged (images
    without target foreground are skipped).

    Keys: ``pixel_accuracy``, ``mean_iou``, ``fw_iou``, ``dice`` (mean Dice over the classes
    1..K-1, i.e. without the background class 0; over class 0 when K = 1), ``iou_k`` and
    ``dice_k`` for every class k (NaN when absent from both), and ``v_rand`` when
    ``cell_class`` is given.
    """
    preds = _as_list("segmentation_metrics", "preds", preds)
    targets = _as_list("segmentation_metrics", "targets", targets)
    if len(preds) != len(targets):
        raise ValueError(f"segmentation_metrics: got {len(preds)} predictions but {len(targets)} targets")
    if not preds:
        raise ValueError("segmentation_metrics: no images given")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for i, (pred, target) in enumerate(zip(preds, targets)):
        if np.shape(pred) != np.shape(target):
            raise ValueError(f"segmentation_metrics: image {i}: prediction shape {np.shape(pred)} "
                             f"!= target shape {np.shape(target)}")
        cm += confusion_matrix(pred, target, num_classes)
    iou, dice = iou_per_class(cm), dice_per_class(cm)
    result = {
        "pixel_accuracy": pixel_accuracy(cm),
        "mean_iou": mean_iou(cm),
        "fw_iou": frequency_weighted_iou(cm),
        "dice": _nanmean(dice[1:] if num_classes > 1 else dice),
    }
    for k in range(num_classes):
        result[f"iou_{k}"] = float(iou[k])
        result[f"dice_{k}"] = float(dice[k])
    if cell_class is not None:
        result["v_rand"] = _nanmean([rand_score_foreground(p, t, cell_class) for p, t in zip(preds, targets)])
    return result
