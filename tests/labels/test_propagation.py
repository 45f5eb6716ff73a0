"""Tests for superpixel label propagation and make_pseudo_label."""

import numpy as np
import pytest

import pointseg.labels.settings as propagation_module
from pointseg.constants import IGNORE_INDEX
from pointseg.labels import (
    PseudoLabelCache,
    make_pseudo_label,
    propagate_labels,
    propagation_stats,
)
from pointseg.superpixels import compute_superpixels

IGN = IGNORE_INDEX

# 4x6 map, 3 superpixels.
SEGMENTS = np.array(
    [
        [0, 0, 0, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],
        [2, 2, 2, 1, 1, 1],
        [2, 2, 2, 2, 1, 1],
    ],
    dtype=np.int32,
)


def pts(*rows):
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def test_majority_vote_exact():
    points = pts(
        (0, 0, 3),  # seg 0
        (1, 1, 3),  # seg 0
        (2, 0, 1),  # seg 0 -> majority 3
        (5, 0, 2),  # seg 1
        (4, 2, 2),  # seg 1
        (2, 1, 0),  # seg 1 -> majority 2
    )  # seg 2: no points -> ignore
    out = propagate_labels(SEGMENTS, points, n_classes=4)
    expected = np.array(
        [
            [3, 3, 3, 2, 2, 2],
            [3, 3, 2, 2, 2, 2],
            [IGN, IGN, IGN, 2, 2, 2],
            [IGN, IGN, IGN, IGN, 2, 2],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_tie_goes_to_lowest_class(order):
    tie = pts((0, 3, 2), (1, 3, 1))[order]
    out = propagate_labels(SEGMENTS, tie, n_classes=3)
    assert np.all(out[SEGMENTS == 2] == 1)
    assert np.all(out[SEGMENTS != 2] == IGN)


@pytest.mark.parametrize("empty", [np.zeros((0, 3), np.int64), [], np.zeros((0,), np.int64)])
def test_empty_points_all_ignore(empty):
    out = propagate_labels(SEGMENTS, empty, n_classes=5)
    assert out.shape == SEGMENTS.shape and out.dtype == np.uint8
    assert np.all(out == IGN)


def test_custom_ignore_index_and_sparse_ids():
    seg = np.array([[10, 10, 40], [10, 40, 40]])
    out = propagate_labels(seg, pts((2, 0, 1)), n_classes=3, ignore_index=9)
    np.testing.assert_array_equal(out, [[9, 9, 1], [9, 1, 1]])


@pytest.mark.parametrize(
    "point, match",
    [
        ((6, 0, 0), r"point 1 \(x=6, y=0\) lies outside the 4x6"),
        ((0, 4, 0), r"point 1 \(x=0, y=4\)"),
        ((-1, 0, 0), r"point 1 \(x=-1, y=0\)"),
    ],
)
def test_out_of_bounds_point(point, match):
    with pytest.raises(ValueError, match=match):
        propagate_labels(SEGMENTS, pts((0, 0, 0), point), n_classes=3)


@pytest.mark.parametrize("cls", [3, 7, -1])
def test_class_out_of_range(cls):
    with pytest.raises(ValueError, match=f"class {cls}, outside 0..2"):
        propagate_labels(SEGMENTS, pts((0, 0, 0), (1, 1, cls)), n_classes=3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_classes": 256}, "n_classes"),
        ({"n_classes": 0}, "n_classes"),
        ({"n_classes": 4, "ignore_index": 3}, "n_classes"),
        ({"n_classes": 4, "ignore_index": 300}, "ignore_index"),
    ],
)
def test_bad_class_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        propagate_labels(SEGMENTS, pts((0, 0, 0)), **kwargs)


@pytest.mark.parametrize(
    "segments, points, match",
    [
        (SEGMENTS[None], pts((0, 0, 0)), "2-D"),
        (SEGMENTS.astype(float), pts((0, 0, 0)), "integer label map"),
        (SEGMENTS - 1, pts((0, 0, 0)), "non-negative"),
        (SEGMENTS, np.zeros((2, 2), np.int64), r"shape \(N, 3\)"),
        (SEGMENTS, np.array([[0.0, 0.0, 1.0]]), "integer array"),
    ],
)
def test_bad_inputs(segments, points, match):
    with pytest.raises(ValueError, match=match):
        propagate_labels(segments, points, n_classes=3)


def test_matches_loop_reference():
    rng = np.random.default_rng(0)
    seg = rng.integers(0, 30, size=(40, 50))
    n_classes = 6
    points = np.stack(
        [rng.integers(0, 50, 200), rng.integers(0, 40, 200), rng.integers(0, n_classes, 200)],
        axis=1,
    )
    out = propagate_labels(seg, points, n_classes=n_classes)
    expected = np.full(seg.shape, IGN, np.uint8)
    for s in range(30):
        classes = [c for x, y, c in points if seg[y, x] == s]
        if classes:
            counts = np.bincount(classes, minlength=n_classes)
            expected[seg == s] = int(np.flatnonzero(counts == counts.max())[0])
    np.testing.assert_array_equal(out, expected)


def test_propagation_stats():
    pseudo = np.array([[0, 1, IGN], [2, IGN, 1]])
    mask = np.array([[0, 2, 1], [IGN, 1, 1]])
    stats = propagation_stats(pseudo, mask)
    # mask valid: 5 pixels; labelled among them: (0,0),(0,1),(1,2) -> coverage 3/5
    assert stats["coverage"] == pytest.approx(3 / 5)
    # agree: (0,0) and (1,2) -> 2/3
    assert stats["accuracy"] == pytest.approx(2 / 3)
    assert stats["n_labelled"] == 4
    assert stats["n_valid"] == 5
    assert stats["n_evaluated"] == 3
    assert stats["n_correct"] == 2
    empty = propagation_stats(np.full((2, 2), IGN), np.zeros((2, 2), int))
    assert empty["coverage"] == 0.0 and empty["accuracy"] == 0.0
    assert empty["n_evaluated"] == 0
    no_mask = propagation_stats(np.zeros((2, 2), int), np.full((2, 2), IGN))
    assert no_mask["coverage"] == 0.0 and no_mask["n_valid"] == 0
    with pytest.raises(ValueError, match="same shape"):
        propagation_stats(pseudo, mask[:1])


def _image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8)


def test_make_pseudo_label_matches_pipeline():
    img = _image()
    points = pts((0, 0, 1), (39, 31, 2), (20, 15, 0))
    out = make_pseudo_label(img, points, n_classes=3, method="grid", n_segments=20)
    seg = compute_superpixels(img, method="grid", n_segments=20)
    np.testing.assert_array_equal(out, propagate_labels(seg, points, n_classes=3))
    assert (out != IGN).sum() > 0


def test_make_pseudo_label_validates_early():
    img = _image()
    with pytest.raises(ValueError, match="valid names"):
        make_pseudo_label(img, pts((0, 0, 0)), n_classes=3, method="nope")
    with pytest.raises(ValueError, match="outside"):
        make_pseudo_label(img, pts((40, 0, 0)), n_classes=3)
    with pytest.raises(ValueError, match="class 3"):
        make_pseudo_label(img, pts((0, 0, 3)), n_classes=3)
    assert np.all(make_pseudo_label(img, pts(), n_classes=3) == IGN)


def test_make_pseudo_label_uses_cache(tmp_path, monkeypatch):
    calls = []
    real = propagation_module.compute_superpixels

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(propagation_module, "compute_superpixels", counting)
    cache = PseudoLabelCache(tmp_path)
    img = _image()
    points = pts((1, 1, 1), (30, 20, 2))
    kwargs = {"n_classes": 3, "method": "slic", "n_segments": 30, "cache": cache}
    a = make_pseudo_label(img, points, **kwargs)
    b = make_pseudo_label(img, points, **kwargs)
    assert len(calls) == 1
    np.testing.assert_array_equal(a, b)
    assert len(list(tmp_path.rglob("*.png"))) == 1
    # different options -> different entry
    make_pseudo_label(img, points, compactness=5.0, **kwargs)
    assert len(calls) == 2
    assert calls[-1]["compactness"] == 5.0
    assert len(list(tmp_path.rglob("*.png"))) == 2
