"""Tests for point-aware label propagation through a merge hierarchy."""

import time
from collections import Counter

import numpy as np
import pytest

from pointseg.constants import IGNORE_INDEX
from pointseg.labels import propagate_labels
from pointseg.labels.point_aware import point_aware_labels, propagate_point_aware
from pointseg.superpixels.hers import build_hers_hierarchy

IGN = IGNORE_INDEX
WALL = int(np.iinfo(np.int32).max)

# 1x8 line, identity leaf order, balanced tree: merges 0..3 join pairs (0,1) (2,3) (4,5)
# (6,7), merge 4 joins 0-3, merge 5 joins 4-7, merge 6 joins everything.
LINE_ORDER = np.arange(8, dtype=np.int32)
LINE_JUNCTION = np.array([0, 4, 1, 6, 2, 5, 3], dtype=np.int32)

# 2x4 image (flat index y*4 + x) with a non-trivial leaf order and two components:
#   leaf order   0  4  5  1 | 2  6  7  3
#   junctions     0  3  1  W  2  4  5
# left half: merge 0 {0,4}, merge 1 {5,1}, merge 3 {0,4,5,1};
# right half: merge 2 {2,6}, merge 4 {2,6,7}, merge 5 {2,6,7,3}.
GRID_ORDER = np.array([0, 4, 5, 1, 2, 6, 7, 3], dtype=np.int32)
GRID_JUNCTION = np.array([0, 3, 1, WALL, 2, 4, 5], dtype=np.int32)


def pts(*rows):
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def line(points, max_area=8, junction=LINE_JUNCTION, n_classes=3, **kw):
    """Labels of the 1x8 line as a flat list."""
    out = propagate_point_aware(
        LINE_ORDER,
        junction,
        pts(*points),
        shape=(1, 8),
        n_classes=n_classes,
        max_area=max_area,
        **kw,
    )
    assert out.shape == (1, 8)
    assert out.dtype == np.uint8
    return out[0].tolist()


def grid(points, max_area=8):
    return propagate_point_aware(
        GRID_ORDER, GRID_JUNCTION, pts(*points), shape=(2, 4), n_classes=3, max_area=max_area
    ).tolist()


# ------------------------------------------------------------------ hand-made hierarchies


@pytest.mark.parametrize(
    ("max_area", "expected"),
    [
        (8, [1, 1, 1, 1, 1, 1, 1, 1]),
        (100, [1, 1, 1, 1, 1, 1, 1, 1]),  # capped at the image size
        (7.9, [1, 1, 1, 1, IGN, IGN, IGN, IGN]),  # next region has 8 > 7.9 pixels
        (4, [1, 1, 1, 1, IGN, IGN, IGN, IGN]),
        (3, [IGN, IGN, 1, 1, IGN, IGN, IGN, IGN]),
        (2, [IGN, IGN, 1, 1, IGN, IGN, IGN, IGN]),
        (1, [IGN, IGN, 1, IGN, IGN, IGN, IGN, IGN]),
        (0.5, [IGN, IGN, 1, IGN, IGN, IGN, IGN, IGN]),  # below 1: the click pixel only
    ],
)
def test_growth_stops_at_the_area_cap(max_area, expected):
    assert line([(2, 0, 1)], max_area=max_area) == expected


def test_conflicting_clicks_split_the_hierarchy():
    # The two halves: each click takes the largest region excluding the other.
    assert line([(0, 0, 0), (7, 0, 1)]) == [0, 0, 0, 0, 1, 1, 1, 1]
    # Conflict inside the left half: {0,1} vs {2,3}; the right half stays unlabelled.
    assert line([(0, 0, 0), (3, 0, 1)]) == [0, 0, 1, 1, IGN, IGN, IGN, IGN]
    # Neighbours in the first merge keep one pixel each; a third click grows to its half.
    assert line([(0, 0, 0), (1, 0, 1), (6, 0, 0)]) == [0, 1, IGN, IGN, 0, 0, 0, 0]
    # Same result whatever the click order.
    assert line([(6, 0, 0), (1, 0, 1), (0, 0, 0)]) == [0, 1, IGN, IGN, 0, 0, 0, 0]


def test_same_class_clicks_share_a_region():
    # Two class-2 clicks in the left half share it; class 1 takes the right half.
    assert line([(0, 0, 2), (3, 0, 2), (5, 0, 1)]) == [2, 2, 2, 2, 1, 1, 1, 1]
    # Same-class regions may nest: {0,1} and {2} (stopped by the class-1 click at 3).
    assert line([(0, 0, 2), (2, 0, 2), (3, 0, 1)]) == [2, 2, 2, 1, IGN, IGN, IGN, IGN]
    # Same-class duplicates on one pixel are one click, not a conflict.
    assert line([(4, 0, 1), (4, 0, 1)], max_area=2) == [IGN, IGN, IGN, IGN, 1, 1, IGN, IGN]


def test_walls_are_never_crossed():
    walled = LINE_JUNCTION.copy()
    walled[3] = WALL  # pixels 0-3 and 4-7 are never joined
    assert line([(1, 0, 1)], junction=walled) == [1, 1, 1, 1, IGN, IGN, IGN, IGN]
    assert line([(5, 0, 2)], junction=walled) == [IGN, IGN, IGN, IGN, 2, 2, 2, 2]
    alone = np.full(7, WALL, dtype=np.int32)  # nothing is ever merged
    assert line([(5, 0, 2)], junction=alone) == [IGN, IGN, IGN, IGN, IGN, 2, IGN, IGN]


def test_merge_joins_the_whole_adjacent_run():
    # A chain that grows from the left: merge m joins pixel m+1 to the run 0..m.
    chain = np.arange(7, dtype=np.int32)
    # Pixel 7 is joined last, by merge 6, to the 7-pixel run 0..6 -> 8 pixels.
    assert line([(7, 0, 1)], max_area=7, junction=chain) == [IGN] * 7 + [1]
    assert line([(7, 0, 1)], max_area=8, junction=chain) == [1] * 8
    # Pixel 0 grows one pixel per merge until the cap.
    assert line([(0, 0, 1)], max_area=3, junction=chain) == [1, 1, 1] + [IGN] * 5
    # A class-2 click at 5 stops class 1 at {0..4}; it then joins nothing.
    assert line([(0, 0, 1), (5, 0, 2)], junction=chain) == [1, 1, 1, 1, 1, 2, IGN, IGN]


def test_equal_junction_values_merge_at_once():
    # Not produced by HERS, but well defined: at level t the region is the maximal run with
    # junctions < t, so the three junctions valued 5 are crossed together.
    tied = np.array([5, 5, 5, 0, 1, WALL, WALL], dtype=np.int32)
    # {3} -> {3,4} (merge 0) -> {3,4,5} (merge 1) -> {0..5} (merge 5: 6 pixels).
    assert line([(3, 0, 1)], max_area=5, junction=tied) == [IGN] * 3 + [1, 1, 1, IGN, IGN]
    assert line([(3, 0, 1)], max_area=6, junction=tied) == [1] * 6 + [IGN, IGN]
    assert line([(3, 0, 1), (0, 0, 2)], junction=tied) == [2, IGN, IGN, 1, 1, 1, IGN, IGN]


def test_conflicting_clicks_on_one_pixel_take_the_majority():
    # Pixel 2: two votes for 1, one for 0 -> 1; it does not grow.
    assert line([(2, 0, 1), (2, 0, 0), (2, 0, 1)]) == [IGN, IGN, 1, IGN, IGN, IGN, IGN, IGN]
    # Tie -> lowest class.
    assert line([(2, 0, 2), (2, 0, 1)]) == [IGN, IGN, 1, IGN, IGN, IGN, IGN, IGN]
    # The mixed pixel blocks other clicks of every class (it holds another class).
    assert line([(2, 0, 2), (2, 0, 1), (3, 0, 1), (6, 0, 0)]) == [IGN, IGN, 1, 1, 0, 0, 0, 0]


def test_no_points_gives_all_ignore():
    assert line([]) == [IGN] * 8
    empty = propagate_point_aware(
        LINE_ORDER, LINE_JUNCTION, [], shape=(1, 8), n_classes=3, max_area=8, ignore_index=7
    )
    assert empty.tolist() == [[7] * 8]


def test_custom_ignore_index():
    assert line([(0, 0, 0)], max_area=2, ignore_index=9) == [0, 0, 9, 9, 9, 9, 9, 9]


def test_leaf_order_maps_back_to_pixels():
    assert grid([(3, 0, 1)], max_area=3) == [[IGN, IGN, IGN, 1], [IGN, IGN, IGN, IGN]]
    assert grid([(3, 0, 1)], max_area=4) == [[IGN, IGN, 1, 1], [IGN, IGN, 1, 1]]
    # Pixel 5 first joins 1 (merge 1), then 0-4 (merge 3); the wall stops it there.
    assert grid([(1, 1, 0)], max_area=3) == [[IGN, 0, IGN, IGN], [IGN, 0, IGN, IGN]]
    assert grid([(1, 1, 0), (3, 0, 1)]) == [[0, 0, 1, 1], [0, 0, 1, 1]]
    # Pixel 6 takes {2, 6}; pixel 7 would join 6 first, so it stays alone; 3 is left out.
    assert grid([(2, 1, 1), (3, 1, 2)]) == [[IGN, IGN, 1, IGN], [IGN, IGN, 1, 2]]


def test_single_pixel_image():
    out = propagate_point_aware(
        np.zeros(1, dtype=np.int32),
        np.zeros(0, dtype=np.int32),
        pts((0, 0, 4)),
        shape=(1, 1),
        n_classes=5,
        max_area=1,
    )
    assert out.tolist() == [[4]]


# ------------------------------------------------------------------ brute-force reference


def leaf_cuts(order, junction, shape):
    """Label maps of every level t = 0..max merge + 1 (regions: runs with junctions < t)."""
    finite = junction[junction != WALL]
    top = int(finite.max()) + 1 if finite.size else 0
    maps = []
    for t in range(top + 1):
        seg = np.zeros(order.size, dtype=np.int64)
        seg[1:] = np.cumsum(junction >= t)
        labels = np.empty(order.size, dtype=np.int64)
        labels[order] = seg
        maps.append(labels.reshape(shape))
    return maps


def reference(cuts, points, *, max_area, ignore_index=IGN):
    """Definition by levels: each click labels its region at the largest acceptable level.

    ``cuts`` are nested label maps from the single pixels (level 0) up; a level is
    acceptable if its region has <= max_area pixels and no click of another class.
    """
    out = np.full(cuts[0].shape, ignore_index, dtype=np.uint8)
    by_pixel = {}
    for x, y, c in points:
        by_pixel.setdefault((int(y), int(x)), []).append(int(c))
    for (y, x), classes in by_pixel.items():
        if len(set(classes)) > 1:
            counts = Counter(classes)
            out[y, x] = min(counts, key=lambda k: (-counts[k], k))
            continue
        c = classes[0]
        others = [(yy, xx) for (yy, xx), cl in by_pixel.items() if set(cl) != {c}]
        region = np.zeros(out.shape, dtype=bool)
        region[y, x] = True
        failed = False
        for seg in cuts[1:]:
            cand = seg == seg[y, x]
            ok = cand.sum() <= max_area and not any(cand[p] for p in others)
            if ok:
                assert not failed, "acceptability must be monotone in the level"
                region = cand
            failed = failed or not ok
        out[region] = c
    return out


@pytest.mark.parametrize("seed", range(12))
def test_matches_reference_on_random_hierarchies(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 6)), int(rng.integers(2, 9))
    n = h * w
    order = rng.permutation(n).astype(np.int32)
    if seed % 3 == 2:
        junction = rng.integers(0, max(n // 3, 1), n - 1).astype(np.int32)  # repeated values
    else:
        junction = rng.permutation(n - 1).astype(np.int32)  # any permutation is a tree
    junction[rng.random(n - 1) < 0.15] = WALL
    k = int(rng.integers(0, 9))
    points = np.stack(
        [rng.integers(0, w, k), rng.integers(0, h, k), rng.integers(0, 3, k)], axis=1
    ).reshape(-1, 3)
    cuts = leaf_cuts(order, junction, (h, w))
    for max_area in (0.5, 1, 2, 3.5, n / 2, n):
        got = propagate_point_aware(
            order, junction, points, shape=(h, w), n_classes=3, max_area=max_area
        )
        np.testing.assert_array_equal(
            got, reference(cuts, points, max_area=max_area), err_msg=f"max_area={max_area}"
        )


# -------------------------------------------------------------------- real HERS hierarchy


def random_points(rng, h, w, k, n_classes):
    return np.stack(
        [rng.integers(0, w, k), rng.integers(0, h, k), rng.integers(0, n_classes, k)], axis=1
    )


@pytest.fixture(scope="module")
def small_hier():
    rng = np.random.default_rng(5)
    img = rng.random((14, 18, 3))
    img[4:10, 5:12] = [0.9, 0.2, 0.1]  # a flat block so that regions are uneven
    return build_hers_hierarchy(img)


def test_whole_component_without_cap_or_conflict():
    rng = np.random.default_rng(1)
    img = rng.random((12, 20))
    img[:, 8] = np.nan  # nodata column: left and right are separate components
    hier = build_hers_hierarchy(img)
    clicks = pts((1, 2, 2), (6, 9, 2), (3, 11, 2))  # all left of the nodata column
    out = point_aware_labels(hier, clicks, n_classes=3, max_area=hier.n_pixels)
    assert (out[:, :8] == 2).all()
    assert (out[:, 8:] == IGN).all()


def test_real_hierarchy_matches_reference(small_hier):
    hier = small_hier
    n = hier.n_pixels
    assert hier.n_fixed == 0 and hier.cut(n).max() == n - 1  # level 0 = single pixels
    cuts = [hier.cut(n - t) for t in range(hier.n_merges + 1)]
    rng = np.random.default_rng(11)
    for k, max_area in [(6, 40), (6, n), (15, 25), (30, 10), (3, 0.5)]:
        points = random_points(rng, *hier.shape, k, 4)
        got = point_aware_labels(hier, points, n_classes=4, max_area=max_area)
        np.testing.assert_array_equal(got, reference(cuts, points, max_area=max_area))
        # Every click pixel without a conflict on it keeps its own class.
        for x, y, c in points:
            if len(set(points[(points[:, 0] == x) & (points[:, 1] == y), 2])) == 1:
                assert got[y, x] == c


def test_labels_are_unions_of_maximal_cut_regions(small_hier):
    # Read back from the output alone: each click's area is the largest region of some cut
    # around it that is admissible (<= max_area, no click of another class) and entirely
    # its class; the next coarser region is inadmissible; and these regions cover exactly
    # the labelled pixels. (Same-class neighbours may fill a larger region together.)
    hier = small_hier
    n = hier.n_pixels
    levels = [hier.cut(n - t) for t in range(hier.n_merges + 1)]
    rng = np.random.default_rng(2)
    points = random_points(rng, *hier.shape, 20, 3)
    max_area = 30
    out = point_aware_labels(hier, points, n_classes=3, max_area=max_area)
    click_class = {}
    for x, y, c in points:
        click_class.setdefault((y, x), set()).add(c)
    covered = np.zeros(out.shape, dtype=bool)
    for (y, x), classes in click_class.items():
        if len(classes) > 1:
            assert out[y, x] in classes  # majority of the clicks on this pixel
            covered[y, x] = True
            continue
        (c,) = classes
        regions = [seg == seg[y, x] for seg in levels]
        fits = [bool((out[r] == c).all()) for r in regions]
        assert fits[0], "the click pixel keeps its class"
        assert fits == sorted(fits, reverse=True)  # nested: fully c up to some level
        others = [p for p, cl in click_class.items() if cl != {c}]
        admissible = [r.sum() <= max_area and not any(r[p] for p in others) for r in regions]
        assert admissible == sorted(admissible, reverse=True)  # monotone in the level
        top = max(i for i in range(len(regions)) if fits[i] and admissible[i])
        covered |= regions[top]
        bigger = [i for i in range(top + 1, len(regions)) if regions[i].sum() > regions[top].sum()]
        if bigger:
            assert not admissible[bigger[0]], "a larger admissible region was not taken"
    np.testing.assert_array_equal(covered, out != IGN)


def test_superset_of_majority_vote_when_cut_regions_are_conflict_free(small_hier):
    hier = small_hier
    k = 12
    seg = hier.cut(k)
    rng = np.random.default_rng(4)
    region_class = rng.integers(0, 3, k)
    points = []
    for r in range(k):
        if r % 4 == 3:
            continue  # leave some regions without clicks
        ys, xs = np.nonzero(seg == r)
        for i in rng.choice(len(ys), size=min(len(ys), 3), replace=False):
            points.append((xs[i], ys[i], region_class[r]))
    points = np.array(points, dtype=np.int64)
    largest = int(np.bincount(seg.ravel()).max())

    majority = propagate_labels(seg, points, n_classes=3)
    aware = point_aware_labels(hier, points, n_classes=3, max_area=largest)
    voted = majority != IGN
    np.testing.assert_array_equal(aware[voted], majority[voted])
    # Point-aware labels strictly more: clicks grow into the click-free regions.
    assert (aware != IGN).sum() > voted.sum()
    # ...but never over a region of cut k that holds clicks of another class.
    for r in range(k):
        if r % 4 != 3:
            assert (aware[seg == r] == region_class[r]).all()


# ------------------------------------------------------------------------- validation


def call(**overrides):
    kwargs = {
        "order": LINE_ORDER,
        "junction": LINE_JUNCTION,
        "points": pts((0, 0, 1)),
        "shape": (1, 8),
        "n_classes": 3,
        "max_area": 4,
    }
    kwargs.update(overrides)
    return propagate_point_aware(
        kwargs.pop("order"), kwargs.pop("junction"), kwargs.pop("points"), **kwargs
    )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"order": np.arange(7)}, r"order must have shape \(H\*W,\) = \(8,\)"),
        ({"shape": (2, 8)}, r"order must have shape \(H\*W,\) = \(16,\)"),
        ({"order": np.arange(8.0)}, "order must be an integer array"),
        ({"order": np.arange(1, 9)}, r"permutation of 0\.\.7.*values in 1\.\.8"),
        ({"order": np.array([0, 1, 2, 3, 4, 5, 6, 6])}, "pixel 7 is missing"),
        ({"junction": LINE_JUNCTION[:6]}, r"junction must have shape \(H\*W - 1,\) = \(7,\)"),
        ({"junction": LINE_JUNCTION - 1}, "junction values must be merge indices >= 0"),
        ({"junction": LINE_JUNCTION.astype(float)}, "junction must be an integer array"),
        ({"shape": (0, 8)}, "shape must be an"),
        ({"shape": (8,)}, "shape must be an"),
        ({"shape": (1.0, 8)}, "shape must be an"),
        ({"max_area": 0}, "max_area must be a positive finite number"),
        ({"max_area": -3}, "max_area must be a positive finite number"),
        ({"max_area": float("inf")}, r"use H\*W = 8 for no size cap"),
        ({"max_area": float("nan")}, "max_area must be a positive finite number"),
        ({"max_area": True}, "max_area must be a positive finite number"),
        ({"max_area": "4"}, "max_area must be a positive finite number"),
        ({"points": pts((8, 0, 1))}, "outside the 1x8"),
        ({"points": pts((0, 0, 3))}, "has class 3, outside 0..2"),
        ({"points": np.zeros((2, 2), dtype=np.int64)}, r"shape \(N, 3\)"),
        ({"n_classes": 0}, "n_classes must be in"),
        ({"ignore_index": 256}, "ignore_index must fit"),
    ],
)
def test_invalid_inputs_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        call(**overrides)


def test_valid_call_for_the_validation_baseline():
    assert call()[0].tolist() == [1, 1, 1, 1, IGN, IGN, IGN, IGN]


# ------------------------------------------------------------------------------ speed


def test_speed_on_a_megapixel_hierarchy():
    rng = np.random.default_rng(0)
    hier = build_hers_hierarchy(rng.random((1024, 1024, 3)))
    points = random_points(rng, 1024, 1024, 200, 5)
    point_aware_labels(hier, points[:2], n_classes=5, max_area=4000)  # compile / load
    start = time.perf_counter()
    out = point_aware_labels(hier, points, n_classes=5, max_area=4000)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    labelled = int((out != IGN).sum())
    assert 200 <= labelled <= 200 * 4000
    for x, y, c in points:
        assert out[y, x] == c or len(set(points[(points[:, 0] == x) & (points[:, 1] == y), 2])) > 1
