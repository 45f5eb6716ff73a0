"""Tests for pointseg.points.sampling."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest

from pointseg.constants import IGNORE_INDEX
from pointseg.points import (
    POINT_SCHEMES,
    list_point_schemes,
    points_to_mask,
    sample_points,
)

SCHEMES = ["grid", "per_class", "uniform"]


def three_class_mask() -> np.ndarray:
    """30x30 mask: rows 0-9 class 0, 10-19 class 1, 20-29 class 2, with an ignore stripe."""
    mask = np.repeat(np.array([0, 1, 2]), 10)[:, None] * np.ones((1, 30), dtype=np.int64)
    mask[:, :3] = IGNORE_INDEX
    return mask


def class_counts(points: np.ndarray) -> dict[int, int]:
    return dict(Counter(points[:, 2].tolist()))


def assert_valid(points: np.ndarray, mask: np.ndarray) -> None:
    assert points.dtype == np.int64
    assert points.ndim == 2 and points.shape[1] == 3
    x, y, cls = points.T
    assert ((x >= 0) & (x < mask.shape[1]) & (y >= 0) & (y < mask.shape[0])).all()
    np.testing.assert_array_equal(cls, mask[y, x])
    assert (cls != IGNORE_INDEX).all()
    assert len({(int(a), int(b)) for a, b in zip(x, y, strict=True)}) == len(points)
    order = np.lexsort((x, y))
    np.testing.assert_array_equal(order, np.arange(len(points)))


def test_list_point_schemes() -> None:
    assert list_point_schemes() == SCHEMES
    assert sorted(POINT_SCHEMES) == SCHEMES


def test_unknown_scheme_lists_valid() -> None:
    with pytest.raises(ValueError, match=r"grid.*per_class.*uniform"):
        sample_points(np.zeros((4, 4), dtype=np.int64), n_points=2, scheme="random")


def test_per_class_equal_split() -> None:
    mask = three_class_mask()
    pts = sample_points(mask, n_points=9, scheme="per_class", seed=0)
    assert class_counts(pts) == {0: 3, 1: 3, 2: 3}
    assert_valid(pts, mask)


def test_per_class_remainder_goes_to_one_class() -> None:
    mask = three_class_mask()
    pts = sample_points(mask, n_points=10, scheme="per_class", seed=0)
    assert sorted(class_counts(pts).values()) == [3, 3, 4]
    # The class that gets the extra point depends on the seed.
    winners = set()
    for seed in range(30):
        counts = class_counts(sample_points(mask, n_points=10, scheme="per_class", seed=seed))
        winners.add(max(counts, key=counts.get))
    assert winners == {0, 1, 2}


def test_per_class_small_class_leftover_redistributed() -> None:
    mask = np.zeros((10, 10), dtype=np.int64)
    mask[5:] = 1
    mask[0, 0] = 2  # a class with a single pixel
    pts = sample_points(mask, n_points=9, scheme="per_class", seed=3)
    counts = class_counts(pts)
    assert counts[2] == 1
    assert counts[0] + counts[1] == 8
    assert sorted([counts[0], counts[1]]) == [4, 4]
    assert_valid(pts, mask)


def test_per_class_cascading_caps() -> None:
    mask = np.zeros((10, 10), dtype=np.int64)
    mask[0, :2] = 1  # 2 pixels
    mask[1, :3] = 2  # 3 pixels
    pts = sample_points(mask, n_points=30, scheme="per_class", seed=0)
    assert class_counts(pts) == {0: 25, 1: 2, 2: 3}


def test_per_class_fewer_points_than_classes() -> None:
    mask = np.arange(5)[None, :].repeat(4, axis=0)  # 5 classes
    pts = sample_points(mask, n_points=3, scheme="per_class", seed=0)
    assert len(pts) == 3
    assert len(set(pts[:, 2].tolist())) == 3
    chosen = {
        tuple(sorted(set(sample_points(mask, n_points=2, seed=s)[:, 2].tolist())))
        for s in range(20)
    }
    assert len(chosen) > 1


@pytest.mark.parametrize("scheme", SCHEMES)
def test_ignore_never_sampled(scheme: str) -> None:
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 4, size=(40, 50))
    mask[rng.random(mask.shape) < 0.6] = IGNORE_INDEX
    for seed in range(5):
        pts = sample_points(mask, n_points=50, scheme=scheme, seed=seed)
        assert len(pts) > 0
        assert_valid(pts, mask)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_custom_ignore_index(scheme: str) -> None:
    mask = np.zeros((8, 8), dtype=np.int64)
    mask[:, :4] = -1
    pts = sample_points(mask, n_points=10, scheme=scheme, seed=0, ignore_index=-1)
    # grid skips its all-ignore cells, so it may return fewer points
    assert 0 < len(pts) <= 10 if scheme == "grid" else len(pts) == 10
    assert (pts[:, 0] >= 4).all()
    assert_valid(pts, np.where(mask == -1, IGNORE_INDEX, mask))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_deterministic_and_seed_dependent(scheme: str) -> None:
    mask = three_class_mask()
    a = sample_points(mask, n_points=12, scheme=scheme, seed=42)
    b = sample_points(mask, n_points=12, scheme=scheme, seed=42)
    c = sample_points(mask, n_points=12, scheme=scheme, seed=43)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g = sample_points(mask, n_points=12, scheme=scheme, seed=np.random.default_rng(42))
    assert g.shape == (12, 3)


def test_uniform_distinct_in_bounds_labelled() -> None:
    mask = three_class_mask()
    pts = sample_points(mask, n_points=100, scheme="uniform", seed=1)
    assert len(pts) == 100
    assert_valid(pts, mask)


def test_grid_spreads_points() -> None:
    mask = np.zeros((64, 64), dtype=np.int64)
    mask[32:, :] = 1
    pts = sample_points(mask, n_points=16, scheme="grid", seed=0)
    assert len(pts) == 16
    cells = {(int(x) // 16, int(y) // 16) for x, y, _ in pts}
    assert len(cells) == 16
    assert_valid(pts, mask)


def test_grid_non_square_image_and_surplus_cells() -> None:
    mask = np.zeros((30, 90), dtype=np.int64)
    pts = sample_points(mask, n_points=10, scheme="grid", seed=0)
    assert len(pts) == 10
    assert_valid(pts, mask)


def test_grid_skips_ignored_cells() -> None:
    mask = np.full((64, 64), IGNORE_INDEX, dtype=np.int64)
    mask[:16, :16] = 0  # exactly one labelled 16x16 cell
    mask[40, 40] = 1  # one labelled pixel in another cell
    pts = sample_points(mask, n_points=16, scheme="grid", seed=0)
    assert len(pts) == 2
    assert_valid(pts, mask)
    assert [40, 40, 1] in pts.tolist()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_all_ignore_mask(scheme: str) -> None:
    mask = np.full((5, 7), IGNORE_INDEX, dtype=np.uint8)
    pts = sample_points(mask, n_points=4, scheme=scheme, seed=0)
    assert pts.shape == (0, 3)
    assert pts.dtype == np.int64


@pytest.mark.parametrize("scheme", SCHEMES)
def test_more_points_than_labelled_pixels(scheme: str, caplog: pytest.LogCaptureFixture) -> None:
    mask = np.full((6, 6), IGNORE_INDEX, dtype=np.int64)
    mask[1, 2] = 0
    mask[4, 5] = 1
    mask[3, 0] = 1
    with caplog.at_level(logging.DEBUG, logger="pointseg.points.sampling"):
        pts = sample_points(mask, n_points=10, scheme=scheme, seed=0)
    assert pts.tolist() == [[2, 1, 0], [0, 3, 1], [5, 4, 1]]
    assert any("labelled pixels" in r.message for r in caplog.records)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_zero_points(scheme: str) -> None:
    assert sample_points(three_class_mask(), n_points=0, scheme=scheme).shape == (0, 3)


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (np.zeros((4, 4, 3), dtype=np.int64), r"\(4, 4, 3\)"),
        (np.zeros(16, dtype=np.int64), r"\(16,\)"),
        (np.zeros((4, 4), dtype=np.float32), "float32"),
        (np.full((4, 4), -2), "negative"),
    ],
)
def test_mask_validation(mask: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sample_points(mask, n_points=2)


@pytest.mark.parametrize("n", [-1, 2.5, "3", True])
def test_n_points_validation(n: object) -> None:
    with pytest.raises(ValueError, match="n_points"):
        sample_points(np.zeros((4, 4), dtype=np.int64), n_points=n)  # type: ignore[arg-type]


def test_points_to_mask() -> None:
    pts = np.array([[1, 0, 2], [3, 2, 0]], dtype=np.int64)
    out = points_to_mask(pts, shape=(3, 4))
    assert out.dtype == np.uint8
    expected = np.full((3, 4), IGNORE_INDEX, dtype=np.uint8)
    expected[0, 1] = 2
    expected[2, 3] = 0
    np.testing.assert_array_equal(out, expected)
    assert (points_to_mask(np.zeros((0, 3), np.int64), shape=(2, 2)) == IGNORE_INDEX).all()


def test_points_to_mask_round_trip_with_sampling() -> None:
    mask = three_class_mask()
    pts = sample_points(mask, n_points=20, seed=0)
    sparse = points_to_mask(pts, shape=mask.shape)
    labelled = sparse != IGNORE_INDEX
    assert labelled.sum() == 20
    np.testing.assert_array_equal(sparse[labelled], mask[labelled])


def test_points_to_mask_validation() -> None:
    with pytest.raises(ValueError, match="outside"):
        points_to_mask(np.array([[4, 0, 1]]), shape=(3, 4))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        points_to_mask(np.array([[1, 0]]), shape=(3, 4))
    with pytest.raises(ValueError, match="class"):
        points_to_mask(np.array([[0, 0, 255]]), shape=(3, 4))
