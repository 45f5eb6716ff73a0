import numpy as np
import pytest

from pointseg.constants import IGNORE_INDEX
from pointseg.superpixels.evaluation import (
    achievable_segmentation_accuracy,
    boundary_map,
    boundary_recall,
    class_boundary_map,
    undersegmentation_error,
)


def test_boundary_map():
    labels = np.array([[0, 0, 1], [2, 2, 1]])
    np.testing.assert_array_equal(boundary_map(labels), [[True, True, False], [False, True, False]])


def test_boundary_recall_tolerance():
    mask = np.zeros((8, 8), np.uint8)
    mask[:, 4:] = 1  # true boundary pixels: column 3
    seg = np.zeros((8, 8), np.int32)
    seg[:, 6:] = 1  # superpixel boundary pixels: column 5, two pixels away
    assert boundary_recall(seg, mask, tolerance=2) == 1.0
    assert boundary_recall(seg, mask, tolerance=1) == 0.0
    assert np.isnan(boundary_recall(seg, np.zeros((8, 8), np.uint8)))
    # a boundary next to ignored pixels does not count
    mask3 = mask.copy()
    mask3[:4, 3:5] = IGNORE_INDEX
    assert boundary_recall(seg, mask3, tolerance=2) == 1.0


def isprs_style_mask(size: int = 16) -> np.ndarray:
    """Four class quadrants whose borders are 2-pixel bands of ignore (ISPRS eroded masks)."""
    mask = np.zeros((size, size), np.uint8)
    half = size // 2
    mask[:half, half:] = 1
    mask[half:, :half] = 2
    mask[half:, half:] = 3
    mask[half - 1 : half + 1, :] = IGNORE_INDEX
    mask[:, half - 1 : half + 1] = IGNORE_INDEX
    return mask


def test_class_boundaries_only_between_labelled_pixels():
    mask = np.array([[0, 0, 1], [IGNORE_INDEX, 2, 1]])
    # 0|1 at (0, 1); 0 over 2 at (0, 1); 255 next to 2 and 0 over 255 do not count
    np.testing.assert_array_equal(
        class_boundary_map(mask), [[False, True, False], [False, True, False]]
    )
    assert not class_boundary_map(isprs_style_mask()).any()
    assert class_boundary_map(isprs_style_mask(), ignore_index=7).any()


def test_boundary_recall_is_nan_when_all_class_borders_are_ignore():
    mask = isprs_style_mask()
    seg = np.zeros(mask.shape, np.int32)
    seg[:, 8:] = 1
    assert np.isnan(boundary_recall(seg, mask))
    # a labelled pixel pair of different classes is a boundary again
    mask[0, 7:9] = (0, 1)
    assert boundary_recall(seg, mask, tolerance=0) == 1.0
    # the other measures are still defined
    assert 0 <= undersegmentation_error(seg, isprs_style_mask()) <= 1
    assert achievable_segmentation_accuracy(seg, isprs_style_mask()) == 0.5


def test_undersegmentation_and_asa_by_hand():
    mask = np.array([[0, 0, 1, 1]])
    seg = np.array([[0, 0, 0, 1]])
    # S0={0,1,2}: with G0 min(2, 1) = 1, with G1 min(1, 2) = 1; S1 inside G1: 0
    assert undersegmentation_error(seg, mask) == pytest.approx(2 / 4)
    assert achievable_segmentation_accuracy(seg, mask) == pytest.approx(3 / 4)
    # perfect superpixels
    assert undersegmentation_error(mask, mask) == 0.0
    assert achievable_segmentation_accuracy(mask, mask) == 1.0
    # two separate regions of one class are separate ground-truth segments
    mask2 = np.array([[0, 1, 0]])
    seg2 = np.array([[0, 0, 0]])
    assert undersegmentation_error(seg2, mask2) == pytest.approx((1 + 1 + 1) / 3)
    # ignored pixels are left out of every count
    mask3 = np.array([[0, 0, IGNORE_INDEX, 1]])
    assert achievable_segmentation_accuracy(np.array([[0, 0, 0, 1]]), mask3) == 1.0
