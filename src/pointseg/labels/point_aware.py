"""Point-aware label propagation through a merge hierarchy (HERS).

Majority vote (:func:`~pointseg.labels.propagation.propagate_labels`) spreads each click
over one superpixel of a fixed cut, whatever is nearby. Here every click instead picks its
own level of the hierarchy: the largest region around it that

(a) has at most ``max_area`` pixels, and
(b) holds no click of another class.

Both conditions are monotone in the level (regions only grow as merges are applied), so
the region is found by walking up the merge tree from the click's pixel and stopping at
the first merge that breaks one of them. Conflicting clicks therefore split down the
hierarchy: each keeps the largest region that excludes the other.

The hierarchy is given as in :class:`~pointseg.superpixels.hers.HersHierarchy`: a leaf
order ``order`` of the N pixels in which every region of every cut is a contiguous run,
and ``junction[i]``, the index of the merge that joined ``order[i]`` and ``order[i + 1]``
(``int32`` max: never joined). The region of leaf position ``q`` at level ``t`` (the first
``t`` merges applied) is the maximal run around ``q`` whose internal junctions are all
``< t``. From a run ``[lo, hi]`` the next merge touching it is
``m = min(junction[lo - 1], junction[hi])``; applying it extends the run on that side
while the junctions are ``<= m`` (on both sides if both boundary junctions equal ``m``,
which never happens in a HERS hierarchy, where junction values are distinct). Each
extension is scanned pixel by pixel and abandoned as soon as the region would exceed
``max_area``, so one click costs O(``max_area``) whatever the image size.

Regions of different classes never overlap: regions of a hierarchy are nested or
disjoint, so if the region of a class-``a`` click met that of a class-``b`` click, one
would contain the other and with it a click of another class, which (b) forbids.
Same-class regions may nest; they get the same label.
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from pointseg.constants import IGNORE_INDEX
from pointseg.labels.propagation import _check_n_classes, _check_points

if TYPE_CHECKING:
    from pointseg.superpixels.hers import HersHierarchy

__all__ = ["point_aware_labels", "propagate_point_aware"]

logger = logging.getLogger(__name__)

#: Junction value of two adjacent leaves that are never joined (different components).
_WALL: int = int(np.iinfo(np.int32).max)
#: ``cls_at`` markers in the kernel: no click at this leaf / clicks of several classes.
_NO_CLICK: int = -1
_MIXED: int = -2


# ------------------------------------------------------------------------ numba kernel


@njit(cache=True)
def _point_aware_kernel(order, junction, seed_pos, seed_cls, cls_at, cap, floor, out):
    """Grow every seed up the hierarchy and write its class into ``out`` (flat pixels).

    ``seed_pos`` are distinct leaf positions whose clicks all have class ``seed_cls``;
    ``cls_at[p]`` is the click class at leaf ``p`` (-1 none, -2 several classes); ``cap``
    is the largest accepted region size (an int, 0 = the click pixel only); merges with an
    index below ``floor`` are accepted whatever the size (never across another class).
    """
    n = order.shape[0]
    wall = np.int64(2147483647)
    for s in range(seed_pos.shape[0]):
        q = seed_pos[s]
        c = seed_cls[s]
        lo = q
        hi = q
        while True:
            jl = np.int64(junction[lo - 1]) if lo > 0 else wall
            jr = np.int64(junction[hi]) if hi < n - 1 else wall
            m = min(jl, jr)
            if m >= wall:
                break  # the whole connected component
            size = hi - lo + 1
            capped = m >= floor
            ok = True
            new_lo = lo
            new_hi = hi
            if jl <= m:
                while new_lo > 0 and junction[new_lo - 1] <= m:
                    new_lo -= 1
                    size += 1
                    k = cls_at[new_lo]
                    if (capped and size > cap) or (k != -1 and k != c):
                        ok = False
                        break
            if ok and jr <= m:
                while new_hi < n - 1 and junction[new_hi] <= m:
                    new_hi += 1
                    size += 1
                    k = cls_at[new_hi]
                    if (capped and size > cap) or (k != -1 and k != c):
                        ok = False
                        break
            if not ok:
                break
            lo = new_lo
            hi = new_hi
        label = np.uint8(c)
        for p in range(lo, hi + 1):
            out[order[p]] = label


# ------------------------------------------------------------------------- validation


def _check_shape(shape: Any) -> tuple[int, int]:
    try:
        h, w = shape
    except (TypeError, ValueError):
        raise ValueError(f"shape must be an (H, W) pair of ints >= 1, got {shape!r}.") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"shape must be an (H, W) pair of ints >= 1, got {shape!r}.")
    h, w = int(h), int(w)
    if h * w >= 2**31:
        raise ValueError(
            f"shape {(h, w)} has {h * w} pixels; at most 2**31 - 1 fit the int32 hierarchy."
        )
    return h, w


def _check_order(order: Any, n: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``order``; return it as int32 and its inverse (leaf position of each pixel)."""
    arr = np.asarray(order)
    if arr.shape != (n,):
        raise ValueError(
            f"order must have shape (H*W,) = ({n},) for shape={shape}, got {arr.shape}; "
            "pass the hierarchy's order array and the image shape it was built on."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"order must be an integer array, got dtype {arr.dtype}.")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= n:
        raise ValueError(
            f"order must be a permutation of 0..{n - 1} (flat pixel indices), got values "
            f"in {lo}..{hi}."
        )
    arr = np.ascontiguousarray(arr, dtype=np.int32)
    inv = np.full(n, -1, dtype=np.int32)
    inv[arr] = np.arange(n, dtype=np.int32)
    if (inv < 0).any():
        missing = int(np.flatnonzero(inv < 0)[0])
        raise ValueError(
            f"order must be a permutation of 0..{n - 1}, but pixel {missing} is missing "
            f"({int((inv < 0).sum())} missing, so as many repeated)."
        )
    return arr, inv


def _check_junction(junction: Any, n: int, shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(junction)
    if arr.shape != (n - 1,):
        raise ValueError(
            f"junction must have shape (H*W - 1,) = ({n - 1},) for shape={shape}, got "
            f"{arr.shape}; pass the hierarchy's junction array."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"junction must be an integer array, got dtype {arr.dtype}.")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > _WALL:
            raise ValueError(
                f"junction values must be merge indices >= 0 or {_WALL} (int32 max, never "
                f"joined), got values in {lo}..{hi}."
            )
    return np.ascontiguousarray(arr, dtype=np.int32)


def _check_max_area(max_area: Any, n: int) -> int:
    if isinstance(max_area, bool) or not isinstance(max_area, numbers.Real):
        raise ValueError(
            f"max_area must be a positive finite number of pixels, got {max_area!r} "
            f"({type(max_area).__name__})."
        )
    value = float(max_area)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"max_area must be a positive finite number of pixels, got {max_area!r}; "
            f"use H*W = {n} for no size cap."
        )
    return min(math.floor(value), n)


# ---------------------------------------------------------------------------- public


def propagate_point_aware(
    order: np.ndarray,
    junction: np.ndarray,
    points: np.ndarray,
    *,
    shape: tuple[int, int],
    n_classes: int,
    max_area: float,
    min_level: int = 0,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Label, for every click, the largest hierarchy region that suits it.

    A click at pixel ``(x, y)`` of class ``c`` labels its region at the largest level of
    the hierarchy at which the region (a) has at most ``max_area`` pixels and (b) holds
    no click of another class (see the module docstring). Conflicting clicks split the
    hierarchy between them; same-class regions may nest.

    Parameters
    ----------
    order : np.ndarray, shape (H*W,), integer
        Leaf order of the merge tree: a permutation of the flat pixel indices
        ``y * W + x`` in which every region of every cut is a contiguous run
        (:attr:`HersHierarchy.order <pointseg.superpixels.hers.HersHierarchy>`).
    junction : np.ndarray, shape (H*W - 1,), integer
        ``junction[i]`` is the index (>= 0) of the merge that joined ``order[i]`` and
        ``order[i + 1]``, or ``2**31 - 1`` (int32 max) if they are never joined
        (different connected components); such a wall is never crossed.
    points : np.ndarray, shape (K, 3), integer
        Columns x (column), y (row), class. K may be 0.
    shape : tuple of int
        Image shape ``(H, W)``.
    n_classes : int
        Number of classes; classes must be in 0..n_classes-1 and
        ``n_classes <= ignore_index``.
    max_area : float
        Largest region (in pixels) a click may label; a positive finite number. A
        click's own pixel is labelled even when ``max_area < 1``. Use ``H * W`` for no
        cap (each click then stops only at walls and at clicks of other classes).
    min_level : int, default 0
        A floor: the first ``min_level`` merges are applied whatever the region's size (still
        never across a click of another class). With ``H*W - n`` a click takes at least its
        region of the cut at ``n`` regions, i.e. its superpixel, unless a click of another
        class shares it; ``max_area`` then only bounds growth beyond it.
    ignore_index : int, default IGNORE_INDEX (255)
        Value of unlabelled pixels; must be in 0..255.

    Returns
    -------
    np.ndarray, shape (H, W), uint8
        The class of the click region(s) covering each pixel, ``ignore_index`` where no
        region does. A pixel holding clicks of several classes takes their majority
        (ties: lowest class index, as :func:`~pointseg.labels.propagate_labels`), and
        those clicks do not grow; clicks of one class on one pixel count once.

    Raises
    ------
    ValueError
        On a malformed ``shape``, ``order`` that is not a permutation of the H*W pixel
        indices, ``junction`` of the wrong length or with negative values, a
        ``max_area`` that is not a positive finite number, a point outside the image, a
        class outside 0..n_classes-1, or ``n_classes``/``ignore_index`` that do not fit
        uint8.

    Notes
    -----
    Cost: O(H*W) to validate the hierarchy and allocate the output, plus
    O(``max_area``) per distinct clicked pixel for the walk.
    """
    n_classes, ignore_index = _check_n_classes(n_classes, ignore_index)
    h, w = _check_shape(shape)
    n = h * w
    order_arr, inv = _check_order(order, n, (h, w))
    junction_arr = _check_junction(junction, n, (h, w))
    cap = _check_max_area(max_area, n)
    if isinstance(min_level, bool) or not isinstance(min_level, numbers.Integral) or min_level < 0:
        raise ValueError(
            f"min_level must be an int >= 0 (merges applied whatever the size), got {min_level!r}"
        )
    pts = _check_points(points, height=h, width=w, n_classes=n_classes)

    out = np.full(n, ignore_index, dtype=np.uint8)
    if len(pts) == 0:
        return out.reshape(h, w)

    # One entry per (leaf position, class) with its vote count, sorted by position.
    pos = inv[pts[:, 1] * w + pts[:, 0]].astype(np.int64)
    keys, votes = np.unique(pos * n_classes + pts[:, 2], return_counts=True)
    kpos = keys // n_classes
    kcls = keys % n_classes
    # Per position: majority class (most votes, then lowest class) and number of classes.
    rank = np.lexsort((kcls, -votes, kpos))
    first = np.ones(len(rank), dtype=bool)
    first[1:] = kpos[rank[1:]] != kpos[rank[:-1]]
    upos = kpos[rank[first]]
    ucls = kcls[rank[first]]
    n_cls_here = np.diff(np.append(np.flatnonzero(first), len(rank)))
    mixed = n_cls_here > 1

    cls_at = np.full(n, _NO_CLICK, dtype=np.int16)
    cls_at[upos] = np.where(mixed, _MIXED, ucls)
    seed_pos = np.ascontiguousarray(upos[~mixed])
    seed_cls = np.ascontiguousarray(ucls[~mixed])
    _point_aware_kernel(
        order_arr, junction_arr, seed_pos, seed_cls, cls_at, cap, np.int64(min_level), out
    )
    # Nothing else can cover a mixed pixel: it holds a click of another class for everyone.
    out[order_arr[upos[mixed]]] = ucls[mixed]

    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "point-aware: %d clicks on %d pixels (%d with conflicting classes), cap %d px, "
            "%d of %d pixels labelled",
            len(pts),
            len(upos),
            int(mixed.sum()),
            cap,
            int((out != ignore_index).sum()),
            n,
        )
    return out.reshape(h, w)


def point_aware_labels(
    hierarchy: HersHierarchy,
    points: np.ndarray,
    *,
    n_classes: int,
    max_area: float,
    min_level: int = 0,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """:func:`propagate_point_aware` on a :class:`~pointseg.superpixels.hers.HersHierarchy`.

    Parameters
    ----------
    hierarchy : HersHierarchy
        From :func:`~pointseg.superpixels.hers.build_hers_hierarchy`; its ``order``,
        ``junction`` and ``shape`` are used.
    points : np.ndarray, shape (K, 3), integer
        Columns x (column), y (row), class.
    n_classes, max_area, min_level, ignore_index
        As in :func:`propagate_point_aware`.

    Returns
    -------
    np.ndarray, shape (H, W), uint8
        Point-aware pseudo-labels, ``ignore_index`` where no click region reaches.
    """
    return propagate_point_aware(
        hierarchy.order,
        hierarchy.junction,
        points,
        shape=hierarchy.shape,
        n_classes=n_classes,
        max_area=max_area,
        min_level=min_level,
        ignore_index=ignore_index,
    )
