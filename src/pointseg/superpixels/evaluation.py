"""Superpixel quality measures against a dense label map.

Pure functions on arrays: boundary recall with a pixel tolerance, undersegmentation error,
achievable segmentation accuracy. The benchmark that runs methods and counts over a dataset
(and scores the pseudo-labels of sampled points) is
:func:`pointseg.benchmarking.benchmark_superpixels`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pointseg.constants import IGNORE_INDEX

__all__ = [
    "achievable_segmentation_accuracy",
    "boundary_map",
    "boundary_recall",
    "class_boundary_map",
    "undersegmentation_error",
]


def boundary_map(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or bottom 4-neighbour has another label."""
    labels = np.asarray(labels)
    b = np.zeros(labels.shape, bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


def class_boundary_map(mask: np.ndarray, *, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(H, W) bool: class boundaries between two *labelled* pixels.

    Like :func:`boundary_map` (a pixel is marked when its right or bottom 4-neighbour has
    another class), but only where both pixels are labelled: a border between a class and
    ``ignore_index`` is not a class boundary. Masks whose class borders are drawn as ignore
    pixels (ISPRS Potsdam/Vaihingen "eroded" masks) therefore have none: check with
    ``class_boundary_map(mask).any()``.
    """
    mask = np.asarray(mask)
    labelled = mask != ignore_index
    b = np.zeros(mask.shape, bool)
    b[:, :-1] |= (mask[:, :-1] != mask[:, 1:]) & labelled[:, :-1] & labelled[:, 1:]
    b[:-1, :] |= (mask[:-1, :] != mask[1:, :]) & labelled[:-1, :] & labelled[1:, :]
    return b


def boundary_recall(
    segments: np.ndarray, mask: np.ndarray, *, tolerance: int = 2, ignore_index: int = IGNORE_INDEX
) -> float:
    """Fraction of the mask's class boundaries within ``tolerance`` pixels of a superpixel boundary.

    The class boundaries are those between two labelled pixels of different classes
    (:func:`class_boundary_map`); borders with ignored pixels are not counted. NaN when the
    mask has no such boundary (e.g. all its class borders are ignore pixels): there is
    nothing to recall, which callers should report as such rather than as a score.
    """
    gt = class_boundary_map(mask, ignore_index=ignore_index)
    n = int(gt.sum())
    if n == 0:
        return float("nan")
    sp = boundary_map(segments)
    if tolerance > 0:
        sp = ndimage.maximum_filter(sp, size=2 * tolerance + 1)
    return float((gt & sp).sum() / n)


def _contingency(segments: np.ndarray, regions: np.ndarray) -> np.ndarray:
    seg = np.asarray(segments, np.int64).ravel()
    reg = np.asarray(regions, np.int64).ravel()
    n_reg = int(reg.max()) + 1 if reg.size else 1
    n_seg = int(seg.max()) + 1 if seg.size else 1
    return np.bincount(seg * n_reg + reg, minlength=n_seg * n_reg).reshape(n_seg, n_reg)


def undersegmentation_error(
    segments: np.ndarray, mask: np.ndarray, *, ignore_index: int = IGNORE_INDEX
) -> float:
    """Undersegmentation error (Neubert & Protzel 2012) against the mask's connected regions.

    UE = (1/N) Σ_G Σ_{S ∩ G ≠ ∅} min(|S ∩ G|, |S \\ G|), over the 4-connected regions G of one
    class; ignored pixels are left out of every count.
    """
    mask = np.asarray(mask)
    valid = mask != ignore_index
    if not valid.any():
        return float("nan")
    regions = np.zeros(mask.shape, np.int64)
    offset = 0
    for c in np.unique(mask[valid]):
        lab, n = ndimage.label(mask == c)
        regions[lab > 0] = lab[lab > 0] + offset
        offset += n
    table = _contingency(np.asarray(segments)[valid], regions[valid] - 1)
    size = table.sum(axis=1, keepdims=True)
    return float(np.minimum(table, size - table)[table > 0].sum() / valid.sum())


def achievable_segmentation_accuracy(
    segments: np.ndarray, mask: np.ndarray, *, ignore_index: int = IGNORE_INDEX
) -> float:
    """Pixel accuracy if every superpixel took its majority class: Σ_S max_c |S ∩ c| / N."""
    mask = np.asarray(mask)
    valid = mask != ignore_index
    if not valid.any():
        return float("nan")
    table = _contingency(np.asarray(segments)[valid], mask[valid])
    return float(table.max(axis=1).sum() / valid.sum())
