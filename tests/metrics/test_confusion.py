"""Tests for the dataset-level confusion matrix and metrics."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from pointseg.constants import IGNORE_INDEX
from pointseg.metrics import (
    ConfusionMatrix,
    compute_metrics,
    confusion_matrix,
    format_metrics_table,
    save_metrics_json,
)

# 3-class matrix used for the hand-computed metrics (rows = true, cols = predicted).
#   class 0: TP 5, FP 2, FN 1 -> IoU 5/8;  precision 5/7, recall 5/6
#   class 1: TP 3, FP 2, FN 3 -> IoU 3/8;  precision 3/5, recall 3/6
#   class 2: TP 2, FP 1, FN 1 -> IoU 2/4;  precision 2/3, recall 2/3
M3 = np.array([[5, 1, 0], [2, 3, 1], [0, 1, 2]], dtype=np.int64)
NAMES3 = ["background", "building", "water"]


def test_confusion_matrix_small_with_ignore() -> None:
    pred = np.array([[0, 1, 2], [1, 1, 0]])
    target = np.array([[0, 1, IGNORE_INDEX], [2, 1, 0]], dtype=np.uint8)
    m = confusion_matrix(pred, target, n_classes=3)
    expected = np.array([[2, 0, 0], [0, 2, 0], [0, 1, 0]])
    assert m.dtype == np.int64
    np.testing.assert_array_equal(m, expected)


def test_prediction_at_ignored_pixel_is_not_checked() -> None:
    pred = np.array([0, 255])
    target = np.array([0, IGNORE_INDEX])
    np.testing.assert_array_equal(confusion_matrix(pred, target, n_classes=2), [[1, 0], [0, 0]])


def test_torch_and_numpy_give_same_matrix() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, size=(2, 8, 8))
    target[rng.random(target.shape) < 0.3] = IGNORE_INDEX
    pred = rng.integers(0, 4, size=(2, 8, 8))
    m_np = confusion_matrix(pred, target, n_classes=4)
    m_t = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), n_classes=4)
    assert isinstance(m_t, torch.Tensor)
    assert m_t.dtype == torch.int64
    np.testing.assert_array_equal(m_np, m_t.numpy())
    assert int(m_np.sum()) == int((target != IGNORE_INDEX).sum())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_confusion_matrix_keeps_cuda_device() -> None:
    pred = torch.tensor([0, 1, 1], device="cuda")
    target = torch.tensor([0, 1, IGNORE_INDEX], device="cuda")
    m = confusion_matrix(pred, target, n_classes=2)
    assert m.device.type == "cuda"
    assert m.cpu().tolist() == [[1, 0], [0, 1]]


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        confusion_matrix(np.zeros((2, 3), int), np.zeros((3, 2), int), n_classes=2)


def test_out_of_range_target_raises() -> None:
    with pytest.raises(ValueError, match="7"):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), n_classes=3)
    with pytest.raises(ValueError, match="-1"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, -1]), n_classes=3)


def test_out_of_range_pred_raises() -> None:
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), n_classes=3)


def test_float_pred_rejected() -> None:
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(np.array([0.0, 1.0]), np.array([0, 1]), n_classes=2)


def test_metrics_hand_computed_three_classes() -> None:
    m = compute_metrics(M3, class_names=NAMES3, background="background")
    iou = m["per_class_iou"]
    assert iou["background"] == pytest.approx(5 / 8)
    assert iou["building"] == pytest.approx(3 / 8)
    assert iou["water"] == pytest.approx(2 / 4)
    assert m["miou"] == pytest.approx(0.5)
    assert m["miou_no_background"] == pytest.approx((3 / 8 + 2 / 4) / 2)
    assert m["pixel_accuracy"] == pytest.approx(10 / 15)
    # micro IoU = sum TP / sum (TP + FP + FN) = 10 / (8 + 8 + 4)
    assert m["micro_iou"] == pytest.approx(0.5)
    assert m["per_class_precision"] == pytest.approx(
        {"background": 5 / 7, "building": 3 / 5, "water": 2 / 3}
    )
    assert m["per_class_recall"] == pytest.approx(
        {"background": 5 / 6, "building": 3 / 6, "water": 2 / 3}
    )
    assert m["n_pixels"] == 15
    assert m["confusion_matrix"] == M3.tolist()


def test_background_by_index_and_absent_without_background() -> None:
    by_index = compute_metrics(M3, background=0)
    assert by_index["miou_no_background"] == pytest.approx(0.4375)
    assert list(by_index["per_class_iou"]) == ["class_0", "class_1", "class_2"]
    assert compute_metrics(M3).get("miou_no_background") is None


def test_unknown_background_name_lists_names() -> None:
    with pytest.raises(ValueError, match="building"):
        compute_metrics(M3, class_names=NAMES3, background="sky")


def test_absent_class_is_nan_and_excluded_from_miou() -> None:
    m = np.array([[3, 1, 0], [1, 2, 0], [0, 0, 0]])
    res = compute_metrics(m)
    assert math.isnan(res["per_class_iou"]["class_2"])
    assert res["miou"] == pytest.approx((3 / 5 + 2 / 4) / 2)


def test_empty_matrix_all_nan_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pointseg.metrics.confusion"):
        res = compute_metrics(np.zeros((3, 3), dtype=np.int64), background=0)
    assert "empty" in caplog.text
    for key in ("miou", "miou_no_background", "pixel_accuracy", "micro_iou"):
        assert math.isnan(res[key])
    assert all(math.isnan(v) for v in res["per_class_iou"].values())
    assert res["n_pixels"] == 0


def test_accumulation_is_dataset_level_not_per_image_average() -> None:
    # Image A: four class-0 pixels, all right -> image mIoU 1.0 (class 1 absent).
    pred_a, target_a = np.zeros((1, 2, 2), int), np.zeros((1, 2, 2), int)
    # Image B: two class-1 pixels, one predicted 0 -> IoUs 0 and 1/2 -> image mIoU 0.25.
    pred_b, target_b = np.array([[[0, 1]]]), np.array([[[1, 1]]])
    # Per-image average would be 0.625; dataset matrix [[4, 0], [1, 1]] gives
    # IoU_0 = 4/5, IoU_1 = 1/2 -> mIoU 0.65.
    cm = ConfusionMatrix(2)
    cm.update(pred_a, target_a)
    cm.update(pred_b, target_b)
    np.testing.assert_array_equal(cm.matrix, [[4, 0], [1, 1]])
    res = cm.compute()
    assert res["miou"] == pytest.approx(0.65)
    assert res["miou"] != pytest.approx(0.625)

    one_call = ConfusionMatrix(2)
    one_call.update(
        np.concatenate([pred_a.ravel(), pred_b.ravel()]),
        np.concatenate([target_a.ravel(), target_b.ravel()]),
    )
    np.testing.assert_array_equal(one_call.matrix, cm.matrix)


def test_update_with_logits_torch_and_numpy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0, :] = IGNORE_INDEX
    cm = ConfusionMatrix(3)
    cm.update(logits, target)
    expected = confusion_matrix(logits.argmax(1).numpy(), target.numpy(), n_classes=3)
    np.testing.assert_array_equal(cm.matrix, expected)

    cm_np = ConfusionMatrix(3)
    cm_np.update(logits.numpy(), target.numpy())
    np.testing.assert_array_equal(cm_np.matrix, expected)


def test_update_logits_wrong_class_dim_raises() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="n_classes=3"):
        cm.update(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_reset_merge_and_matrix_copy() -> None:
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    a.update(np.array([0, 1]), np.array([0, 0]))
    b.update(np.array([1]), np.array([1]))
    assert a.merge(b) is a
    np.testing.assert_array_equal(a.matrix, [[1, 1], [0, 1]])
    a.matrix[0, 0] = 99  # a copy: the accumulator is unchanged
    assert a.matrix[0, 0] == 1
    a.reset()
    assert a.matrix.sum() == 0
    with pytest.raises(ValueError, match="n_classes"):
        a.merge(ConfusionMatrix(3))


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="class_names"):
        ConfusionMatrix(3, class_names=["a", "b"])
    with pytest.raises(ValueError, match="'a', 'b', 'c'"):
        ConfusionMatrix(3, class_names=["a", "b", "c"], background="z")
    with pytest.raises(ValueError, match="n_classes"):
        ConfusionMatrix(0)


def test_format_table_and_json_roundtrip(tmp_path) -> None:
    m = np.array([[3, 1, 0], [1, 2, 0], [0, 0, 0]])
    res = compute_metrics(m, class_names=NAMES3, background="background")
    table = format_metrics_table(res)
    for word in ("class", "IoU", "precision", "recall", "building", "water", "mIoU"):
        assert word in table
    assert "0.6000" in table  # IoU of background

    path = save_metrics_json(res, tmp_path / "sub" / "metrics.json")
    text = path.read_text()
    assert "NaN" not in text
    loaded = json.loads(text)
    assert loaded["per_class_iou"]["water"] is None
    assert loaded["miou"] == pytest.approx(res["miou"])
    assert loaded["confusion_matrix"] == m.tolist()
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp left
    # The table also renders the JSON form (None for NaN).
    assert "water" in format_metrics_table(loaded)
