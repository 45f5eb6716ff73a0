"""Superpixel benchmark over a dataset: quality of the partitions and of their pseudo-labels.

:func:`benchmark_superpixels` runs superpixel methods at several counts over ``(name, image,
mask)`` samples and scores them with the pure measures of
:mod:`pointseg.superpixels.evaluation`, adding the coverage and accuracy of the pseudo-labels
that ``n_points`` sampled query points give; :func:`format_superpixel_table` and
:func:`write_superpixel_csv` report the rows.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from pointseg.io.atomic import write_text_atomic
from pointseg.labels.propagation import propagate_labels, propagation_stats
from pointseg.points.sampling import image_seed, sample_points
from pointseg.superpixels import get_superpixel_method
from pointseg.superpixels.evaluation import (
    achievable_segmentation_accuracy,
    boundary_recall,
    class_boundary_map,
    undersegmentation_error,
)

__all__ = [
    "NO_CLASS_BOUNDARY_NOTE",
    "SuperpixelScore",
    "benchmark_superpixels",
    "format_superpixel_table",
    "write_superpixel_csv",
]

logger = logging.getLogger(__name__)

#: Why a row has no boundary recall (shown under the table).
NO_CLASS_BOUNDARY_NOTE = "n/a: no class boundary between labelled pixels (borders are ignore)"


@dataclass
class SuperpixelScore:
    """One row of the superpixel benchmark (means over images, except the pixel-pooled ones).

    ``boundary_recall`` is the mean over the ``boundary_images`` images whose mask has a class
    boundary between two labelled pixels; NaN when none has (masks whose class borders are
    all ignore pixels, as ISPRS's eroded masks): there is nothing to recall.
    """

    method: str
    n_segments: int
    achieved_segments: float
    boundary_recall: float
    undersegmentation_error: float
    achievable_accuracy: float
    pseudo_coverage: float
    pseudo_accuracy: float
    ms_per_image: float
    n_images: int
    boundary_images: int


def _mean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN (without numpy's empty-slice warning) when none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def benchmark_superpixels(
    samples: Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    methods: Sequence[str],
    counts: Sequence[int],
    n_classes: int,
    n_points: int = 50,
    seed: int = 0,
    tolerance: int = 2,
    method_options: dict[str, dict] | None = None,
    on_segments: Callable[[str, str, int, np.ndarray, np.ndarray], None] | None = None,
) -> list[SuperpixelScore]:
    """Score each method at each superpixel count over ``(name, image, mask)`` samples.

    Pseudo-label coverage (labelled share of the mask's valid pixels) and accuracy (share of
    labelled pixels that are right) are pooled over all pixels of all images; the other measures
    are means over images. Boundary recall is averaged over the images whose mask has a class
    boundary between two labelled pixels (``boundary_images``); when there is none (class
    borders drawn as ignore pixels) it is NaN and a warning is logged. ``ms_per_image`` is the
    wall time of the method call. ``on_segments(name, method, count, image, segments)`` is
    called for every result (overlays).
    """
    fns = {m: get_superpixel_method(m) for m in methods}
    acc: dict[tuple[str, int], dict[str, list[float]]] = {
        (m, k): {key: [] for key in ("k", "br", "ue", "asa", "ms", "valid", "eval", "ok")}
        for m in methods
        for k in counts
    }
    n_samples = 0
    no_boundary: list[str] = []
    for name, image, mask in samples:
        n_samples += 1
        has_boundary = bool(class_boundary_map(mask).any())
        if not has_boundary:
            no_boundary.append(name)
            logger.debug("%s: no class boundary between labelled pixels", name)
        points = sample_points(mask, n_points=n_points, seed=image_seed(seed, name))
        for m in methods:
            for k in counts:
                t = time.perf_counter()
                seg = fns[m](image, n_segments=k, seed=seed, **(method_options or {}).get(m, {}))
                ms = (time.perf_counter() - t) * 1000
                a = acc[(m, k)]
                a["k"].append(int(seg.max()) + 1)
                if has_boundary:
                    a["br"].append(boundary_recall(seg, mask, tolerance=tolerance))
                a["ue"].append(undersegmentation_error(seg, mask))
                a["asa"].append(achievable_segmentation_accuracy(seg, mask))
                a["ms"].append(ms)
                st = propagation_stats(propagate_labels(seg, points, n_classes=n_classes), mask)
                a["valid"].append(st["n_valid"])
                a["eval"].append(st["n_evaluated"])
                a["ok"].append(st["n_correct"])
                if on_segments is not None:
                    on_segments(name, m, k, image, seg)
    if no_boundary:
        shown = ", ".join(no_boundary[:5]) + (", ..." if len(no_boundary) > 5 else "")
        logger.warning(
            "%d of %d mask(s) have no class boundary between two labelled pixels (their class "
            "borders are ignore pixels): %s; boundary recall is %s",
            len(no_boundary),
            n_samples,
            shown,
            "n/a"
            if len(no_boundary) == n_samples
            else f"the mean over the other {n_samples - len(no_boundary)}",
        )
    rows = []
    for (m, k), a in acc.items():
        if not a["k"]:
            continue
        rows.append(
            SuperpixelScore(
                method=m,
                n_segments=k,
                achieved_segments=float(np.mean(a["k"])),
                boundary_recall=_mean(a["br"]),
                undersegmentation_error=_mean(a["ue"]),
                achievable_accuracy=_mean(a["asa"]),
                pseudo_coverage=sum(a["eval"]) / max(sum(a["valid"]), 1),
                pseudo_accuracy=sum(a["ok"]) / max(sum(a["eval"]), 1),
                # the first call of a method may include one-off compilation: report the median
                ms_per_image=float(np.median(a["ms"])),
                n_images=len(a["k"]),
                boundary_images=len(a["br"]),
            )
        )
    return rows


def _recall_cell(r: SuperpixelScore) -> str:
    if not math.isfinite(r.boundary_recall):
        return "n/a"
    text = f"{r.boundary_recall:.3f}"
    if r.boundary_images < r.n_images:
        text += f" ({r.boundary_images}/{r.n_images} images)"
    return text


def format_superpixel_table(rows: Sequence[SuperpixelScore]) -> str:
    """A markdown table of benchmark rows, with a note on rows without boundary recall."""
    head = (
        "| method | count | achieved | boundary recall | underseg. error | ASA | "
        "pseudo coverage | pseudo accuracy | ms/image |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        cells = [
            r.method,
            str(r.n_segments),
            f"{r.achieved_segments:.0f}",
            _recall_cell(r),
            f"{r.undersegmentation_error:.3f}",
            f"{r.achievable_accuracy:.3f}",
            f"{r.pseudo_coverage:.3f}",
            f"{r.pseudo_accuracy:.3f}",
            f"{r.ms_per_image:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    if any(not math.isfinite(r.boundary_recall) for r in rows):
        notes.append(f"boundary recall {NO_CLASS_BOUNDARY_NOTE}")
    if any(math.isfinite(r.boundary_recall) and r.boundary_images < r.n_images for r in rows):
        notes.append(
            "boundary recall (k/n images): averaged over the k images with a class boundary "
            "between labelled pixels; the others' class borders are ignore pixels"
        )
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


def write_superpixel_csv(path: str | Path, rows: Sequence[SuperpixelScore]) -> Path:
    """Write benchmark rows as CSV, atomically (a missing boundary recall is written as nan)."""
    buf = io.StringIO()
    names = [f.name for f in fields(SuperpixelScore)]
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(asdict(r))
    return write_text_atomic(path, buf.getvalue())
