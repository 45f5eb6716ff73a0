"""Point labels → dense pseudo-labels by superpixel majority vote.

Each superpixel that contains at least one query point takes the majority class of
its points (ties go to the lowest class index); every other pixel is ``ignore_index``.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from pointseg.constants import IGNORE_INDEX

__all__ = [
    "PSEUDO_LABEL_VERSION",
    "propagate_labels",
    "propagate_multiscale",
    "propagation_stats",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the pseudo-label algorithm changes, so cached results are not reused.
PSEUDO_LABEL_VERSION: int = 1


def _check_n_classes(n_classes: Any, ignore_index: Any) -> tuple[int, int]:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise ValueError(f"ignore_index must be an int in 0..255, got {ignore_index!r}.")
    if not 0 <= ignore_index <= 255:
        raise ValueError(
            f"ignore_index must fit the uint8 output (0..255), got {ignore_index}; "
            f"use the default {IGNORE_INDEX}."
        )
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral):
        raise ValueError(f"n_classes must be an int >= 1, got {n_classes!r}.")
    if not 1 <= n_classes <= ignore_index:
        raise ValueError(
            f"n_classes must be in 1..{ignore_index} so that classes 0..n_classes-1 fit "
            f"uint8 without colliding with ignore_index={ignore_index}, got {n_classes}."
        )
    return int(n_classes), int(ignore_index)


def _check_points(points: Any, *, height: int, width: int, n_classes: int) -> np.ndarray:
    """Validate points and return them as an (N, 3) int64 array (x, y, class)."""
    arr = np.asarray(points)
    if arr.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(
            f"points must have shape (N, 3) with columns x, y, class, got shape {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"points must be an integer array, got dtype {arr.dtype}; "
            "round the coordinates and use points.astype(np.int64)."
        )
    arr = arr.astype(np.int64, copy=False)
    x, y, cls = arr[:, 0], arr[:, 1], arr[:, 2]
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"point {i} (x={x[i]}, y={y[i]}) lies outside the {height}x{width} (HxW) image; "
            f"x must be in 0..{width - 1} and y in 0..{height - 1} ({int(outside.sum())} "
            "point(s) out of bounds)."
        )
    bad = (cls < 0) | (cls >= n_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"point {i} (x={x[i]}, y={y[i]}) has class {cls[i]}, outside 0..{n_classes - 1} "
            f"for n_classes={n_classes}; fix the class or raise n_classes."
        )
    return arr


def _check_segments(segments: Any) -> np.ndarray:
    seg = np.asarray(segments)
    if seg.ndim != 2:
        raise ValueError(f"segments must be a 2-D (H, W) label map, got shape {seg.shape}.")
    if seg.size == 0:
        raise ValueError(f"segments must be non-empty, got shape {seg.shape}.")
    if not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(
            f"segments must be an integer label map, got dtype {seg.dtype}; "
            "use the output of pointseg.superpixels.compute_superpixels."
        )
    if seg.min() < 0:
        raise ValueError(
            f"segments must be non-negative, got minimum {int(seg.min())}; relabel to 0..K-1."
        )
    return seg


def propagate_labels(
    segments: np.ndarray,
    points: np.ndarray,
    *,
    n_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Spread point labels over the superpixels that contain them.

    Parameters
    ----------
    segments : np.ndarray, shape (H, W), integer
        Superpixel ids >= 0 (need not be consecutive).
    points : np.ndarray, shape (N, 3), integer
        Columns x (column), y (row), class. N may be 0.
    n_classes : int
        Number of classes; classes must be in 0..n_classes-1 and
        ``n_classes <= ignore_index``.
    ignore_index : int, default IGNORE_INDEX (255)
        Value of pixels in superpixels without points; must be in 0..255.

    Returns
    -------
    np.ndarray, shape (H, W), uint8
        Each superpixel holding at least one point gets the majority class of its
        points (ties: lowest class index); all other pixels are ``ignore_index``.

    Raises
    ------
    ValueError
        On a malformed ``segments`` map, a point outside the image, a class outside
        0..n_classes-1, or ``n_classes``/``ignore_index`` that do not fit uint8.
    """
    n_classes, ignore_index = _check_n_classes(n_classes, ignore_index)
    seg = _check_segments(segments)
    pts = _check_points(points, height=seg.shape[0], width=seg.shape[1], n_classes=n_classes)
    if len(pts) == 0:
        return np.full(seg.shape, ignore_index, dtype=np.uint8)

    n_seg = int(seg.max()) + 1
    point_seg = seg[pts[:, 1], pts[:, 0]].astype(np.int64)
    votes = np.bincount(point_seg * n_classes + pts[:, 2], minlength=n_seg * n_classes)
    votes = votes.reshape(n_seg, n_classes)
    # argmax returns the first maximum, i.e. the lowest class index on ties.
    lut = np.where(votes.any(axis=1), votes.argmax(axis=1), ignore_index).astype(np.uint8)
    return lut[seg]


def propagation_stats(
    pseudo: np.ndarray, mask: np.ndarray, *, ignore_index: int = IGNORE_INDEX
) -> dict[str, float | int]:
    """Coverage and accuracy of pseudo-labels against a reference mask.

    Parameters
    ----------
    pseudo : np.ndarray, shape (H, W), integer
        Pseudo-labels; ``ignore_index`` marks unlabelled pixels.
    mask : np.ndarray, shape (H, W), integer
        Reference labels; ``ignore_index`` marks pixels without a reference.
    ignore_index : int, default IGNORE_INDEX (255)

    Returns
    -------
    dict
        ``coverage`` (float): fraction of the mask's non-ignore pixels that are
        labelled in ``pseudo``; ``accuracy`` (float): fraction of those labelled
        pixels whose pseudo-label equals the mask; both are 0.0 when their
        denominator is 0 (check ``n_valid`` / ``n_evaluated``). Integer counts for
        exact aggregation over images: ``n_labelled`` (labelled pixels in
        ``pseudo``, whole image), ``n_valid`` (non-ignore pixels in ``mask``),
        ``n_evaluated`` (labelled and valid: the accuracy denominator) and
        ``n_correct`` (the accuracy numerator).
    """
    pseudo = np.asarray(pseudo)
    mask = np.asarray(mask)
    if pseudo.ndim != 2 or pseudo.shape != mask.shape:
        raise ValueError(
            f"pseudo and mask must be 2-D arrays of the same shape, got {pseudo.shape} "
            f"and {mask.shape}."
        )
    labelled = pseudo != ignore_index
    valid = mask != ignore_index
    both = labelled & valid
    n_valid = int(valid.sum())
    n_both = int(both.sum())
    n_correct = int((pseudo[both] == mask[both]).sum())
    return {
        "coverage": n_both / n_valid if n_valid else 0.0,
        "accuracy": n_correct / n_both if n_both else 0.0,
        "n_labelled": int(labelled.sum()),
        "n_valid": n_valid,
        "n_evaluated": n_both,
        "n_correct": n_correct,
    }


def propagate_multiscale(
    segmentations: Sequence[np.ndarray],
    points: np.ndarray,
    *,
    n_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Multi-scale propagation: finer levels first, coarser ones fill what is still unlabelled.

    After Fast-MSS (Pierce et al., 2020): with nested superpixels (HERS cuts) a pixel takes
    the label of the finest superpixel around it that holds a point, so coverage grows with
    the coarse levels while the fine levels keep precise boundaries where points are dense.

    Parameters
    ----------
    segmentations : sequence of (H, W) int arrays
        Superpixel label maps, ordered fine to coarse.
    points : (N, 3) int array
        Columns x, y, class.

    Returns
    -------
    (H, W) uint8 pseudo-labels, ``ignore_index`` where no level labels a pixel.
    """
    if not segmentations:
        raise ValueError("propagate_multiscale needs at least one segmentation")
    out = None
    for seg in segmentations:
        level = propagate_labels(seg, points, n_classes=n_classes, ignore_index=ignore_index)
        if out is None:
            out = level
            continue
        fill = out == ignore_index
        out[fill] = level[fill]
    return out
