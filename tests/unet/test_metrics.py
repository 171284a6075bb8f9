"""Segmentation metrics against values computed by hand (in the comments)."""
import math

import numpy as np
import pytest

from unet.metrics import (confusion_matrix, dice_per_class, frequency_weighted_iou, iou_per_class,
                          mean_iou, pixel_accuracy, rand_score_foreground, segmentation_metrics)

# 6 pixels, 4 classes; class 3 occurs in neither map.
#   (target, pred) pairs: (0,0) (1,1) (2,1) (2,2) (0,2) (0,0)
PRED = np.array([[0, 1, 1], [2, 2, 0]])
TARGET = np.array([[0, 1, 2], [2, 0, 0]])
CM = np.array([[2, 0, 1, 0],      # target 0: 2 right, 1 called 2
               [0, 1, 0, 0],      # target 1: right
               [0, 1, 1, 0],      # target 2: 1 called 1, 1 right
               [0, 0, 0, 0]])     # class 3: empty


def test_confusion_matrix_rows_are_target_columns_prediction():
    cm = confusion_matrix(PRED, TARGET, 4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, CM)
    assert confusion_matrix(np.zeros((2, 2), int), np.ones((2, 2), int), 2).tolist() == [[0, 0], [4, 0]]


def test_pixel_accuracy():
    assert pixel_accuracy(CM) == pytest.approx(4 / 6)
    assert math.isnan(pixel_accuracy(np.zeros((2, 2))))


def test_iou_with_an_empty_class():
    # IoU_k = TP / (T + P - TP): class 0: 2/(3+2-2); class 1: 1/(1+2-1); class 2: 1/(2+2-1)
    iou = iou_per_class(CM)
    np.testing.assert_allclose(iou[:3], [2 / 3, 1 / 2, 1 / 3])
    assert math.isnan(iou[3])
    assert mean_iou(CM) == pytest.approx((2 / 3 + 1 / 2 + 1 / 3) / 3)   # NaN class skipped


def test_class_predicted_but_absent_from_target_counts_as_zero_in_mean_iou():
    # target all 0; pred: 3 pixels 0, 1 pixel 1. IoU_0 = 3/4, IoU_1 = 0/(0+1-0) = 0
    cm = confusion_matrix(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]), 3)
    iou = iou_per_class(cm)
    assert iou[0] == pytest.approx(0.75) and iou[1] == 0.0 and math.isnan(iou[2])
    assert mean_iou(cm) == pytest.approx(0.375)
    assert frequency_weighted_iou(cm) == pytest.approx(0.75)   # class 1 has no target pixels


def test_frequency_weighted_iou():
    # target frequencies 3/6, 1/6, 2/6: 1/2*2/3 + 1/6*1/2 + 1/3*1/3 = 19/36
    assert frequency_weighted_iou(CM) == pytest.approx(19 / 36)


def test_dice_with_an_empty_class():
    # Dice_k = 2 TP / (T + P): 4/5, 2/3, 2/4, NaN
    dice = dice_per_class(CM)
    np.testing.assert_allclose(dice[:3], [4 / 5, 2 / 3, 1 / 2])
    assert math.isnan(dice[3])


def test_all_classes_empty_gives_nan_without_warnings():
    cm = np.zeros((3, 3), dtype=np.int64)
    with np.errstate(all="raise"):
        assert math.isnan(mean_iou(cm))
        assert np.isnan(dice_per_class(cm)).all()
        assert math.isnan(frequency_weighted_iou(cm))


def test_segmentation_metrics_keys_and_values():
    result = segmentation_metrics([PRED], [TARGET], 4)
    assert result["pixel_accuracy"] == pytest.approx(4 / 6)
    assert result["mean_iou"] == pytest.approx(0.5)
    assert result["fw_iou"] == pytest.approx(19 / 36)
    assert result["dice"] == pytest.approx((2 / 3 + 1 / 2) / 2)   # classes 1..3, class 3 NaN
    assert result["iou_1"] == pytest.approx(0.5) and result["dice_0"] == pytest.approx(0.8)
    assert math.isnan(result["iou_3"]) and math.isnan(result["dice_3"])
    assert "v_rand" not in result


def test_segmentation_metrics_pools_pixels_of_all_images():
    # image A: 1 pixel, right; image B: 3 pixels, all wrong -> pooled accuracy 1/4 (not mean 1/2)
    preds = [np.array([[1]]), np.array([[0, 0, 0]])]
    targets = [np.array([[1]]), np.array([[1, 1, 1]])]
    assert segmentation_metrics(preds, targets, 2)["pixel_accuracy"] == pytest.approx(0.25)
    stacked = segmentation_metrics(np.stack([PRED, PRED]), np.stack([TARGET, TARGET]), 4)
    assert stacked["mean_iou"] == pytest.approx(0.5)


# ---------------------------------------------------------------- V_rand (ISBI 2012)
# Target: two cells (1) of 2 pixels each, separated by one membrane pixel (0).
CELLS = np.array([[1, 1, 0, 1, 1]])


def test_v_rand_perfect_is_one():
    assert rand_score_foreground(CELLS, CELLS) == pytest.approx(1.0)
    two_d = np.array([[1, 1, 0, 1], [1, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert rand_score_foreground(two_d, two_d) == pytest.approx(1.0)


def test_v_rand_merge_of_two_cells():
    # n = 4 foreground pixels; p = [[1/2], [1/2]] (both cells in the one predicted segment)
    # sum p^2 = 1/2, target sizes t = (1/2, 1/2): sum t^2 = 1/2, predicted s = (1): sum s^2 = 1
    # V = (1/2) / (0.5 * 1 + 0.5 * 1/2) = 2/3
    merged = np.array([[1, 1, 1, 1, 1]])
    assert rand_score_foreground(merged, CELLS) == pytest.approx(2 / 3)


def test_v_rand_predicted_boundary_inside_a_cell_is_a_singleton():
    # pixel 1 predicted membrane: p_11 = 1/4, p_22 = 1/2, one singleton (1/4 of the pixels)
    # numerator = 1/16 + 4/16 + 1/16 = 6/16 (the singleton adds (1/4)^2)
    # sum t^2 = 1/4 + 1/4 = 8/16; sum s^2 = 1/16 + 4/16 + 1/16 = 6/16
    # V = (6/16) / (0.5 * 6/16 + 0.5 * 8/16) = 6/7
    cut = np.array([[1, 0, 0, 1, 1]])
    assert rand_score_foreground(cut, CELLS) == pytest.approx(6 / 7)


def test_v_rand_uses_4_connectivity():
    # the diagonal pixels are two target cells; a full square merges them: 2/3 as above
    diagonal = np.array([[1, 0], [0, 1]])
    assert rand_score_foreground(diagonal, diagonal) == pytest.approx(1.0)
    assert rand_score_foreground(np.ones((2, 2), int), diagonal) == pytest.approx(2 / 3)


def test_v_rand_ignores_predictions_on_target_membrane_pixels():
    target = np.array([[1, 1, 0, 0, 1, 1]])
    # pixel 3 is membrane in the target; calling it cell (still separate from pixels 0-1) is free
    assert rand_score_foreground(np.array([[1, 1, 0, 1, 1, 1]]), target) == pytest.approx(1.0)


def test_v_rand_cell_class_and_no_foreground():
    swapped = 1 - CELLS                   # cells labelled 0, membrane 1
    merged = 1 - np.array([[1, 1, 1, 1, 1]])
    assert rand_score_foreground(merged, swapped, cell_class=0) == pytest.approx(2 / 3)
    assert math.isnan(rand_score_foreground(CELLS, np.zeros_like(CELLS)))


def test_segmentation_metrics_v_rand_is_the_mean_over_images():
    result = segmentation_metrics([CELLS, np.array([[1, 1, 1, 1, 1]])], [CELLS, CELLS], 2, cell_class=1)
    assert result["v_rand"] == pytest.approx((1 + 2 / 3) / 2)


# ---------------------------------------------------------------- errors
def test_errors_name_the_function_and_the_problem():
    with pytest.raises(ValueError, match=r"confusion_matrix: pred has values \[5\] outside the classes 0..3"):
        confusion_matrix(np.array([0, 5]), np.array([0, 1]), 4)
    with pytest.raises(ValueError, match=r"confusion_matrix: pred and target must have the same "
                                         r"shape.*\(2,\).*\(3,\)"):
        confusion_matrix(np.zeros(2, int), np.zeros(3, int), 2)
    with pytest.raises(TypeError, match="confusion_matrix: pred must hold integer class labels, "
                                        "got dtype float"):
        confusion_matrix(np.zeros(2), np.zeros(2, int), 2)
    with pytest.raises(ValueError, match=r"segmentation_metrics: got 1 predictions but 2 targets"):
        segmentation_metrics([PRED], [TARGET, TARGET], 4)
    with pytest.raises(ValueError, match=r"rand_score_foreground: expected 2-D"):
        rand_score_foreground(np.zeros((1, 2, 2), int), np.zeros((1, 2, 2), int))
