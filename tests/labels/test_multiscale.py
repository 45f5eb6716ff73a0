import numpy as np
import pytest

from pointseg.constants import IGNORE_INDEX
from pointseg.labels import make_pseudo_label, propagate_multiscale


def test_fine_levels_win_coarse_levels_fill():
    fine = np.array([[0, 1, 2, 3]])
    coarse = np.array([[0, 0, 1, 1]])
    points = np.array([[0, 0, 2], [3, 0, 1]])  # x, y, class
    out = propagate_multiscale([fine, coarse], points, n_classes=3)
    # pixel 1 is filled from the coarse superpixel of point 0; pixel 2 from point 1's
    np.testing.assert_array_equal(out, [[2, 2, 1, 1]])
    only_fine = propagate_multiscale([fine], points, n_classes=3)
    np.testing.assert_array_equal(only_fine, [[2, IGNORE_INDEX, IGNORE_INDEX, 1]])
    coarser = np.array([[0, 0, 0, 0]])
    # a fine label is never overwritten by a coarser vote (tie -> lowest class 1 there)
    out3 = propagate_multiscale([fine, coarser], points, n_classes=3)
    np.testing.assert_array_equal(out3, [[2, 1, 1, 1]])
    with pytest.raises(ValueError):
        propagate_multiscale([], points, n_classes=3)


def test_make_pseudo_label_multiscale_grows_coverage():
    rng = np.random.default_rng(0)
    image = rng.random((48, 48, 3))
    points = np.array([[5, 5, 0], [40, 40, 1], [20, 30, 2]])
    single = make_pseudo_label(image, points, n_classes=3, method="grid", n_segments=64)
    multi = make_pseudo_label(
        image, points, n_classes=3, method="grid", n_segments=64, fill_counts=[16, 4]
    )
    labelled_single = single != IGNORE_INDEX
    assert (multi != IGNORE_INDEX).sum() > labelled_single.sum()
    np.testing.assert_array_equal(multi[labelled_single], single[labelled_single])
    with pytest.raises(ValueError, match="coarser"):
        make_pseudo_label(image, points, n_classes=3, n_segments=64, fill_counts=[64])
