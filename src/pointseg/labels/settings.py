"""One frozen settings object for superpixels and label propagation, with its cache key.

Training (tiles and rasters), ``pointseg pseudolabels`` and the demo all build their
pseudo-labels through :class:`PseudoLabelSettings`, so the same settings always give the same
labels and the same cache entries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pointseg.constants import IGNORE_INDEX
from pointseg.labels.cache import PseudoLabelCache
from pointseg.labels.propagation import (
    PSEUDO_LABEL_VERSION,
    _check_n_classes,
    _check_points,
    propagate_multiscale,
)
from pointseg.options import as_number
from pointseg.superpixels import compute_superpixels, get_superpixel_method

__all__ = [
    "DEFAULT_REGION_FACTOR",
    "PROPAGATIONS",
    "PseudoLabelSettings",
    "make_pseudo_label",
]

#: How clicks spread: ``majority`` (the paper: majority vote of the clicks in each superpixel,
#: coarser ``fill_counts`` levels filling what finer ones leave) or ``point_aware`` (each click
#: takes the largest region of the HERS hierarchy around it that holds no click of another
#: class: its superpixel at least, grown while the region stays within ``max_region_factor``
#: mean superpixel areas; it replaces ``fill_counts``).
PROPAGATIONS = ("majority", "point_aware")
#: Default cap of a point-aware region, in mean superpixel areas.
DEFAULT_REGION_FACTOR: float = 2.0


@dataclass(frozen=True)
class PseudoLabelSettings:
    """How query points become pseudo-labels: superpixels, then majority vote.

    Parameters
    ----------
    method : str
        Superpixel method (:func:`pointseg.superpixels.list_superpixel_methods`).
    n_segments : int
        Superpixels per image (per window for the ``rasters`` dataset).
    fill_counts : sequence of int
        Coarser superpixel counts (each < ``n_segments``) whose superpixels fill what finer
        levels leave unlabelled (multi-scale propagation); empty: one scale.
    seed : int
        Seed of the superpixel method.
    options : mapping
        Options of the superpixel method (JSON-serialisable).
    propagation : {"majority", "point_aware"}
        See :data:`PROPAGATIONS`. ``point_aware`` needs the ``hers`` method and no
        ``fill_counts`` (it replaces them: the hierarchy adapts each click's extent).
    max_region_factor : float
        ``point_aware`` only: the largest region a click takes, in mean superpixel areas
        (``pixels / n_segments``), so :meth:`for_area` keeps it an area. A click always takes
        at least its own superpixel (the ``n_segments`` cut) unless a click of another class
        shares it: then the two split down the hierarchy.

    The object is immutable and hashable; :meth:`cache_key` is the one description of it that
    every cache uses.
    """

    method: str = "hers"
    n_segments: int = 300
    fill_counts: tuple[int, ...] = ()
    seed: int = 0
    options: tuple[tuple[str, Any], ...] = field(default=())
    propagation: str = "majority"
    max_region_factor: float = DEFAULT_REGION_FACTOR

    def __post_init__(self) -> None:
        opts = self.options
        if isinstance(opts, Mapping):
            opts = tuple(sorted(opts.items()))
        object.__setattr__(self, "options", tuple(opts))
        get_superpixel_method(self.method)  # an unknown name lists the valid ones
        try:
            n = int(self.n_segments)
            fills = tuple(sorted((int(c) for c in self.fill_counts), reverse=True))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"n_segments and fill_counts must be integers, got {self.n_segments!r} and "
                f"{self.fill_counts!r}"
            ) from exc
        if n < 1:
            raise ValueError(f"n_segments must be >= 1, got {self.n_segments}")
        if any(c >= n or c < 1 for c in fills):
            raise ValueError(
                f"fill_counts {list(self.fill_counts)} must be coarser than n_segments={n} "
                "(each between 1 and n_segments - 1)"
            )
        object.__setattr__(self, "n_segments", n)
        object.__setattr__(self, "fill_counts", fills)
        object.__setattr__(self, "seed", int(self.seed))
        if self.propagation not in PROPAGATIONS:
            raise ValueError(
                f"unknown propagation {self.propagation!r}; valid ones: {', '.join(PROPAGATIONS)}"
            )
        factor = as_number(self.max_region_factor)
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(
                f"max_region_factor must be a positive number of superpixel areas, got "
                f"{self.max_region_factor!r}"
            )
        object.__setattr__(self, "max_region_factor", factor)
        if self.propagation == "point_aware":
            if self.method != "hers":
                raise ValueError(
                    f"point_aware propagation walks the HERS hierarchy; it needs superpixels "
                    f"'hers', not {self.method!r}"
                )
            if fills:
                raise ValueError(
                    f"point_aware propagation replaces fill_counts {list(fills)}: the hierarchy "
                    "sizes each click's region; drop fill_counts or use propagation majority"
                )

    @property
    def method_options(self) -> dict[str, Any]:
        """The superpixel method's options as a dict."""
        return dict(self.options)

    @property
    def point_aware(self) -> bool:
        """Whether clicks spread through the hierarchy (``propagation == "point_aware"``)."""
        return self.propagation == "point_aware"

    def propagation_options(self) -> dict[str, Any]:
        """The propagation keywords of block labelling (empty for the majority vote).

        :func:`pointseg.labels.label_block` and what calls it take them; they also enter
        the cache keys of labels built so, which therefore stay unchanged for the majority
        vote.
        """
        if not self.point_aware:
            return {}
        return {"propagation": self.propagation, "max_region_factor": self.max_region_factor}

    def cache_key(self, *, n_classes: int, ignore_index: int = IGNORE_INDEX) -> dict[str, Any]:
        """The settings entering every pseudo-label cache key (with the algorithm version).

        The majority vote keeps the keys it always had; point-aware settings add theirs.
        """
        return {
            **self.propagation_options(),
            "version": PSEUDO_LABEL_VERSION,
            "method": self.method,
            "n_segments": self.n_segments,
            "fill_counts": list(self.fill_counts),
            "seed": self.seed,
            "n_classes": int(n_classes),
            "ignore_index": int(ignore_index),
            "options": self.method_options,
        }

    def for_area(
        self,
        pixels: int,
        pixels_per_segment: float,
        fill_pixels_per_segment: Sequence[float] = (),
    ) -> PseudoLabelSettings:
        """These settings with counts for superpixels of a given area over ``pixels`` pixels.

        ``n_segments`` becomes ``max(2, round(pixels / pixels_per_segment))`` and each fill
        area gives a fill count the same way (counts not below ``n_segments`` are dropped).
        Blocks of large rasters and images labelled per area all count superpixels so.
        """

        def count(area: float) -> int:
            return max(2, round(pixels / area))

        n = count(pixels_per_segment)
        fills = {c for f in fill_pixels_per_segment if (c := count(f)) < n}
        return replace(self, n_segments=n, fill_counts=tuple(fills))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for logs and YAML)."""
        return {
            "propagation": self.propagation,
            "max_region_factor": self.max_region_factor,
            "method": self.method,
            "n_segments": self.n_segments,
            "fill_counts": list(self.fill_counts),
            "seed": self.seed,
            "options": self.method_options,
        }

    def segments(self, image: np.ndarray) -> list[np.ndarray]:
        """The superpixel levels of ``image``: ``n_segments``, then each of ``fill_counts``.

        They do not depend on the points, so an interactive tool computes them once per image
        and calls :meth:`propagate` after every click; :meth:`label` is exactly the two. With
        ``point_aware`` propagation the list is the ``n_segments`` cut, then the HERS
        hierarchy as two (H, W) maps: its leaf ``order`` and its ``junction`` merge indices
        (the last one padded with a wall); the first map is always the superpixels.

        Returns
        -------
        list of np.ndarray, each shape (H, W), int
        """
        if self.point_aware:  # one hierarchy: its cut is what the hers method returns
            from pointseg.superpixels import hers_hierarchy, relabel_connected

            hier = hers_hierarchy(image, **self.method_options)
            wall = np.iinfo(np.int32).max
            junction = np.append(hier.junction, np.int32(wall)).astype(np.int32)
            return [
                relabel_connected(hier.cut(self.n_segments)),
                hier.order.astype(np.int32).reshape(hier.shape),
                junction.reshape(hier.shape),
            ]
        return [
            compute_superpixels(
                image, method=self.method, n_segments=c, seed=self.seed, **self.method_options
            )
            for c in (self.n_segments, *self.fill_counts)
        ]

    def propagate(
        self,
        segments: list[np.ndarray],
        points: np.ndarray,
        *,
        n_classes: int,
        ignore_index: int = IGNORE_INDEX,
    ) -> np.ndarray:
        """Majority vote of ``points`` in the superpixel levels from :meth:`segments`.

        Returns
        -------
        np.ndarray, shape (H, W), uint8
        """
        n_classes, ignore_index = _check_n_classes(n_classes, ignore_index)
        height, width = segments[0].shape
        pts = _check_points(points, height=height, width=width, n_classes=n_classes)
        if len(pts) == 0:
            return np.full((height, width), ignore_index, dtype=np.uint8)
        if self.point_aware:
            from pointseg.labels.point_aware import propagate_point_aware

            if len(segments) != 3:
                raise ValueError(
                    "point_aware propagation needs the levels of segments(): the superpixels, "
                    f"the hierarchy's order and junction maps; got {len(segments)} level(s)"
                )
            return propagate_point_aware(
                np.asarray(segments[1]).ravel(),
                np.asarray(segments[2]).ravel()[:-1],
                pts,
                shape=(height, width),
                n_classes=n_classes,
                max_area=self.max_region_factor * height * width / self.n_segments,
                min_level=max(0, height * width - self.n_segments),
                ignore_index=ignore_index,
            )
        return propagate_multiscale(segments, pts, n_classes=n_classes, ignore_index=ignore_index)

    def label(
        self,
        image: np.ndarray,
        points: np.ndarray,
        *,
        n_classes: int,
        cache: PseudoLabelCache | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> np.ndarray:
        """Pseudo-label one image.

        Parameters
        ----------
        image : np.ndarray, shape (H, W) or (H, W, C)
            uint8 or float image, any number of bands.
        points : np.ndarray, shape (N, 3), integer
            Columns x, y, class.
        n_classes : int
            Number of classes (<= ``ignore_index``).
        cache : PseudoLabelCache, optional
            Looked up / stored under a key over the image, the points and
            :meth:`cache_key`.
        ignore_index : int
            Value of unlabelled pixels.

        Returns
        -------
        np.ndarray, shape (H, W), uint8
        """
        n_classes, ignore_index = _check_n_classes(n_classes, ignore_index)
        shape = np.shape(image)
        if len(shape) not in (2, 3):
            raise ValueError(f"image must have shape (H, W) or (H, W, C), got shape {shape}.")
        pts = _check_points(points, height=shape[0], width=shape[1], n_classes=n_classes)

        def compute() -> np.ndarray:
            if len(pts) == 0:
                return np.full(shape[:2], ignore_index, dtype=np.uint8)
            return self.propagate(
                self.segments(image), pts, n_classes=n_classes, ignore_index=ignore_index
            )

        if cache is None:
            return compute()
        key = self.cache_key(n_classes=n_classes, ignore_index=ignore_index)
        return cache.get_or_compute(np.asarray(image), pts, key, compute)


def make_pseudo_label(
    image: np.ndarray,
    points: np.ndarray,
    *,
    n_classes: int,
    method: str = "hers",
    n_segments: int = 300,
    seed: int = 0,
    ignore_index: int = IGNORE_INDEX,
    cache: PseudoLabelCache | None = None,
    fill_counts: Sequence[int] = (),
    **method_options: Any,
) -> np.ndarray:
    """Pseudo-label one image: superpixels, then majority vote of the points.

    A shorthand for ``PseudoLabelSettings(method, n_segments, fill_counts, seed,
    method_options).label(image, points, n_classes=..., cache=...)``.

    Parameters
    ----------
    image : np.ndarray, shape (H, W) or (H, W, C)
    points : np.ndarray, shape (N, 3), integer
        Columns x, y, class.
    n_classes : int
    method, n_segments, seed, fill_counts, **method_options
        See :class:`PseudoLabelSettings`.
    ignore_index : int, default IGNORE_INDEX (255)
    cache : PseudoLabelCache, optional

    Returns
    -------
    np.ndarray, shape (H, W), uint8
    """
    settings = PseudoLabelSettings(
        method=method,
        n_segments=n_segments,
        fill_counts=fill_counts,
        seed=seed,
        options=method_options,
    )
    return settings.label(
        image, points, n_classes=n_classes, cache=cache, ignore_index=ignore_index
    )
