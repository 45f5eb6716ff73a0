"""Simulate clicked query points from a dense label mask.

The points of one image are an ``np.ndarray`` of shape ``(N, 3)`` and dtype ``int64`` with
columns ``x`` (column index), ``y`` (row index) and ``class`` (class index).  Every sampler
here returns points sorted by ``(y, x)`` and is deterministic for an integer seed.

Schemes
-------
``per_class``
    The paper's scheme: the budget is shared equally among the classes present in the mask.
``uniform``
    Distinct pixels drawn uniformly at random among the labelled pixels.
``grid``
    A jittered grid: one random labelled pixel per cell of a near-square grid.
"""

from __future__ import annotations

import logging
import math
import operator
import zlib
from collections.abc import Callable

import numpy as np

from pointseg.constants import IGNORE_INDEX

__all__ = [
    "POINT_SCHEMES",
    "image_seed",
    "list_point_schemes",
    "points_to_mask",
    "sample_points",
]

logger = logging.getLogger(__name__)

SeedLike = int | np.integer | np.random.Generator | None


def image_seed(seed: int, name: str) -> np.random.Generator:
    """A generator that depends on the run seed and the image name only (not on image order).

    Simulated points of an image stay the same when other images are added or removed.
    """
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _check_scheme(scheme: str) -> str:
    if scheme not in POINT_SCHEMES:
        raise ValueError(
            f"unknown point scheme {scheme!r}; valid schemes are {list_point_schemes()}"
        )
    return scheme


def list_point_schemes() -> list[str]:
    """Names of the available point-sampling schemes.

    Returns
    -------
    list of str
        Sorted scheme names, usable as ``scheme`` in :func:`sample_points`.
    """
    return sorted(POINT_SCHEMES)


def _validate_mask(mask: np.ndarray, ignore_index: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(
            f"mask must be a 2-D (H, W) array of class indices, got shape {mask.shape} "
            f"(dtype {mask.dtype})"
        )
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(
            f"mask must have an integer dtype, got dtype {mask.dtype} (shape {mask.shape}); "
            "convert it with mask.astype(np.int64) after checking the values are class indices"
        )
    labelled_values = mask[mask != ignore_index]
    if labelled_values.size and int(labelled_values.min()) < 0:
        raise ValueError(
            f"mask contains negative class index {int(labelled_values.min())}; class indices "
            f"must be >= 0 and unlabelled pixels must equal ignore_index={ignore_index}"
        )
    return mask


def _validate_n_points(n_points: int) -> int:
    if isinstance(n_points, bool):
        raise ValueError(f"n_points must be a non-negative integer, got {n_points!r}")
    try:
        n = operator.index(n_points)
    except TypeError:
        raise ValueError(f"n_points must be a non-negative integer, got {n_points!r}") from None
    if n < 0:
        raise ValueError(f"n_points must be a non-negative integer, got {n}")
    return n


def _empty_points() -> np.ndarray:
    return np.zeros((0, 3), dtype=np.int64)


def _points_from_flat(flat_indices: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Build sorted ``(N, 3)`` points from flat pixel indices into ``mask``."""
    flat = np.sort(np.asarray(flat_indices, dtype=np.int64))  # row-major order == (y, x) order
    y, x = np.divmod(flat, mask.shape[1])
    classes = mask.ravel()[flat].astype(np.int64)
    return np.stack([x, y, classes], axis=1).astype(np.int64, copy=False)


def _allocate_per_class(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Share ``n`` points equally among classes, capped by each class's pixel count.

    Parameters
    ----------
    counts : np.ndarray, shape (K,)
        Number of labelled pixels per present class (all >= 1).
    n : int
        Total number of points; must satisfy ``n <= counts.sum()``.
    rng : np.random.Generator
        Picks which classes receive the remainder of an uneven split.

    Returns
    -------
    np.ndarray, shape (K,)
        Points per class, summing to ``n``.
    """
    quota = np.zeros(counts.shape, dtype=np.int64)
    active = np.ones(counts.shape, dtype=bool)
    remaining = n
    while remaining > 0:
        idx = np.flatnonzero(active)
        share, rest = divmod(remaining, idx.size)
        add = np.full(idx.size, share, dtype=np.int64)
        if rest:
            add[rng.choice(idx.size, size=rest, replace=False)] += 1
        wanted = quota[idx] + add
        granted = np.minimum(wanted, counts[idx])
        remaining = int((wanted - granted).sum())
        quota[idx] = granted
        active[idx] = granted < counts[idx]
    return quota


def _sample_per_class(
    mask: np.ndarray, labelled: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    flat = mask.ravel()
    values = flat[labelled]
    if int(values.max()) < 1 << 16:  # class indices are >= 0 (checked in _validate_mask)
        counts_all = np.bincount(values.astype(np.int64))
        classes = np.flatnonzero(counts_all)
        counts = counts_all[classes]
    else:
        classes, counts = np.unique(values, return_counts=True)
    quota = _allocate_per_class(counts, n, rng)
    chosen = []
    for cls, count, q in zip(classes, counts, quota, strict=True):
        if q > 0:
            pixels = np.flatnonzero(flat == cls)  # cls != ignore_index, so all labelled
            chosen.append(pixels[rng.choice(count, size=q, replace=False)])
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def _sample_uniform(
    mask: np.ndarray, labelled: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    return labelled[rng.choice(labelled.size, size=n, replace=False)]


def _grid_shape(height: int, width: int, n: int) -> tuple[int, int]:
    """Pick ``(rows, cols)`` with ``rows * cols >= n`` closest to ``n`` and near-square cells.

    Candidates are the two row counts and the two column counts around the ideal
    ``rows = sqrt(n * H / W)`` (square cells); the one with the fewest surplus cells wins,
    ties broken by the squarest cell.
    """
    ideal_rows = math.sqrt(n * height / width)
    ideal_cols = math.sqrt(n * width / height)
    candidates: set[tuple[int, int]] = set()
    for rows in {math.floor(ideal_rows), math.ceil(ideal_rows)}:
        rows = min(max(rows, 1), height)
        candidates.add((rows, math.ceil(n / rows)))
    for cols in {math.floor(ideal_cols), math.ceil(ideal_cols)}:
        cols = min(max(cols, 1), width)
        candidates.add((math.ceil(n / cols), cols))
    feasible = [(r, c) for r, c in candidates if r <= height and c <= width]
    if not feasible:  # n is close to H * W: fall back to one cell per pixel
        return height, width

    def cost(rc: tuple[int, int]) -> tuple[int, float, int]:
        r, c = rc
        aspect = abs(math.log((height / r) / (width / c)))
        return (r * c - n, aspect, r)

    return min(feasible, key=cost)


def _sample_grid(
    mask: np.ndarray, labelled: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    height, width = mask.shape
    rows, cols = _grid_shape(height, width, n)
    # Cell edges floor(k * H / rows) are strictly increasing because rows <= H and cols <= W.
    row_of = np.repeat(np.arange(rows), np.diff(np.arange(rows + 1) * height // rows))
    col_of = np.repeat(np.arange(cols), np.diff(np.arange(cols + 1) * width // cols))
    y, x = np.divmod(labelled, width)
    cell = row_of[y] * cols + col_of[x]
    # The labelled pixel with the smallest random key in each cell is a uniform draw among
    # that cell's labelled pixels; all-ignore cells get no pixel and are skipped.
    keys = rng.random(labelled.size)
    best = np.full(rows * cols, np.inf)
    np.minimum.at(best, cell, keys)
    hits = np.flatnonzero(keys == best[cell])
    _, first = np.unique(cell[hits], return_index=True)  # drop (improbable) tied keys
    picks = labelled[hits[first]]
    if picks.size > n:
        picks = picks[rng.choice(picks.size, size=n, replace=False)]
    return picks


_SAMPLERS: dict[str, Callable[[np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "grid": _sample_grid,
    "per_class": _sample_per_class,
    "uniform": _sample_uniform,
}

#: Available point-sampling schemes (see :func:`sample_points`).
POINT_SCHEMES: tuple[str, ...] = tuple(sorted(_SAMPLERS))


def sample_points(
    mask: np.ndarray,
    *,
    n_points: int,
    scheme: str = "per_class",
    seed: SeedLike = None,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Simulate clicked query points on a dense label mask.

    Parameters
    ----------
    mask : np.ndarray, shape (H, W), integer dtype
        Class index per pixel; pixels equal to ``ignore_index`` are never sampled.
    n_points : int
        Number of points wanted (>= 0).  Fewer are returned when the mask has fewer
        labelled pixels (or, for ``grid``, fewer cells containing labelled pixels).
    scheme : {"grid", "per_class", "uniform"}
        ``per_class`` shares ``n_points`` equally among the classes present; the remainder
        of an uneven split goes to randomly chosen classes; a class with fewer pixels than
        its share gives all its pixels and its leftover is redistributed to the others;
        with fewer points than classes, ``n_points`` random classes get one point each.
        ``uniform`` draws distinct labelled pixels uniformly.  ``grid`` draws one random
        labelled pixel in each cell of a near-square grid of about ``n_points`` cells,
        skipping all-ignore cells and dropping random surplus cells.
    seed : int, np.random.Generator or None
        Random seed or generator; an integer seed makes the result deterministic.
    ignore_index : int
        Label of unlabelled pixels.

    Returns
    -------
    np.ndarray, shape (N, 3), dtype int64
        Columns ``x`` (column), ``y`` (row), ``class`` (= ``mask[y, x]``), distinct pixels,
        sorted by ``(y, x)``.  ``N <= n_points``; shape ``(0, 3)`` for an all-ignore mask.

    Raises
    ------
    ValueError
        If ``mask`` is not a 2-D integer array or holds negative class indices, if
        ``n_points`` is not a non-negative integer, or if ``scheme`` is unknown.
    """
    _check_scheme(scheme)
    mask = _validate_mask(mask, ignore_index)
    n = _validate_n_points(n_points)
    rng = np.random.default_rng(seed)

    labelled = np.flatnonzero(mask != ignore_index)
    if n == 0 or labelled.size == 0:
        if n > 0:
            logger.debug("mask has no labelled pixels: returning no points")
        return _empty_points()
    if n >= labelled.size:
        if n > labelled.size:
            logger.debug(
                "requested %d points but the mask has only %d labelled pixels: returning all",
                n,
                labelled.size,
            )
        return _points_from_flat(labelled, mask)

    flat = _SAMPLERS[scheme](mask, labelled, n, rng)
    if flat.size < n:
        logger.debug(
            "scheme %r returned %d of %d requested points (cells without labelled pixels)",
            scheme,
            flat.size,
            n,
        )
    return _points_from_flat(flat, mask)


def points_to_mask(
    points: np.ndarray,
    *,
    shape: tuple[int, int],
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Rasterise points into a sparse label map.

    Parameters
    ----------
    points : np.ndarray, shape (N, 3), integer
        Columns ``x`` (column), ``y`` (row), ``class``.  If two points share a pixel, the
        later one wins.
    shape : tuple of int
        ``(H, W)`` of the output.
    ignore_index : int
        Value of the unlabelled pixels; must fit in ``uint8``.

    Returns
    -------
    np.ndarray, shape (H, W), dtype uint8
        ``ignore_index`` everywhere except at the points, which hold their class.

    Raises
    ------
    ValueError
        If ``points`` is not ``(N, 3)`` integer, a point lies outside ``shape``, a class does
        not fit ``uint8`` or equals ``ignore_index``, or ``shape`` is not two positive ints.
    """
    if len(shape) != 2 or any(operator.index(s) <= 0 for s in shape):
        raise ValueError(f"shape must be (H, W) with positive sizes, got {shape!r}")
    height, width = (operator.index(s) for s in shape)
    if not 0 <= operator.index(ignore_index) <= 255:
        raise ValueError(f"ignore_index must fit in uint8 (0..255), got {ignore_index}")
    points = np.asarray(points)
    if points.size == 0:
        points = points.reshape(0, 3)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3) [x, y, class], got {points.shape}")
    if not np.issubdtype(points.dtype, np.integer):
        raise ValueError(f"points must have an integer dtype, got {points.dtype}")
    out = np.full((height, width), ignore_index, dtype=np.uint8)
    if points.shape[0] == 0:
        return out
    x, y, cls = points[:, 0], points[:, 1], points[:, 2]
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"{int(outside.sum())} point(s) outside the image of shape {(height, width)}, "
            f"e.g. point {i}: x={int(x[i])}, y={int(y[i])}"
        )
    bad_class = (cls < 0) | (cls > 255) | (cls == ignore_index)
    if bad_class.any():
        i = int(np.flatnonzero(bad_class)[0])
        raise ValueError(
            f"point {i} has class {int(cls[i])}; classes must be in 0..255 and differ from "
            f"ignore_index={ignore_index}"
        )
    out[y, x] = cls.astype(np.uint8)
    return out
