"""Superpixel quality measures against a dense label map, and a benchmark over a dataset.

Pure functions on arrays: boundary recall with a pixel tolerance, undersegmentation error,
achievable segmentation accuracy; :func:`benchmark_superpixels` runs methods and counts over a
folder dataset and adds the coverage and accuracy of the pseudo-labels that ``n_points``
sampled query points give.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from pointseg.constants import IGNORE_INDEX

__all__ = [
    "SuperpixelScore",
    "achievable_segmentation_accuracy",
    "benchmark_superpixels",
    "boundary_map",
    "boundary_recall",
    "format_superpixel_table",
    "undersegmentation_error",
    "write_superpixel_csv",
]

logger = logging.getLogger(__name__)


def boundary_map(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or bottom 4-neighbour has another label."""
    labels = np.asarray(labels)
    b = np.zeros(labels.shape, bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


def boundary_recall(
    segments: np.ndarray, mask: np.ndarray, *, tolerance: int = 2, ignore_index: int = IGNORE_INDEX
) -> float:
    """Fraction of the mask's class boundaries within ``tolerance`` pixels of a superpixel boundary.

    Boundaries touching ignored pixels are not counted. NaN when the mask has no boundary.
    """
    gt = boundary_map(mask)
    ignored = np.asarray(mask) == ignore_index
    if ignored.any():
        gt &= ~ndimage.binary_dilation(ignored, iterations=1)
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


@dataclass
class SuperpixelScore:
    """One row of the superpixel benchmark (means over images, except the pixel-pooled ones)."""

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
    are means over images. ``ms_per_image`` is the wall time of the method call.
    ``on_segments(name, method, count, image, segments)`` is called for every result (overlays).
    """
    from pointseg.labels import propagate_labels, propagation_stats
    from pointseg.points import image_seed, sample_points
    from pointseg.superpixels.registry import get_superpixel_method

    fns = {m: get_superpixel_method(m) for m in methods}
    acc: dict[tuple[str, int], dict[str, list[float]]] = {
        (m, k): {key: [] for key in ("k", "br", "ue", "asa", "ms", "valid", "eval", "ok")}
        for m in methods
        for k in counts
    }
    for name, image, mask in samples:
        points = sample_points(mask, n_points=n_points, seed=image_seed(seed, name))
        for m in methods:
            for k in counts:
                t = time.perf_counter()
                seg = fns[m](image, n_segments=k, seed=seed, **(method_options or {}).get(m, {}))
                ms = (time.perf_counter() - t) * 1000
                a = acc[(m, k)]
                a["k"].append(int(seg.max()) + 1)
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
    rows = []
    for (m, k), a in acc.items():
        if not a["k"]:
            continue
        rows.append(
            SuperpixelScore(
                method=m,
                n_segments=k,
                achieved_segments=float(np.mean(a["k"])),
                boundary_recall=float(np.nanmean(a["br"])),
                undersegmentation_error=float(np.nanmean(a["ue"])),
                achievable_accuracy=float(np.nanmean(a["asa"])),
                pseudo_coverage=sum(a["eval"]) / max(sum(a["valid"]), 1),
                pseudo_accuracy=sum(a["ok"]) / max(sum(a["eval"]), 1),
                # the first call of a method may include one-off compilation: report the median
                ms_per_image=float(np.median(a["ms"])),
                n_images=len(a["k"]),
            )
        )
    return rows


def format_superpixel_table(rows: Sequence[SuperpixelScore]) -> str:
    """A markdown table of benchmark rows."""
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
            f"{r.boundary_recall:.3f}",
            f"{r.undersegmentation_error:.3f}",
            f"{r.achievable_accuracy:.3f}",
            f"{r.pseudo_coverage:.3f}",
            f"{r.pseudo_accuracy:.3f}",
            f"{r.ms_per_image:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_superpixel_csv(path: str | Path, rows: Sequence[SuperpixelScore]) -> Path:
    """Write benchmark rows as CSV, atomically."""
    from pointseg.io.atomic import write_text_atomic

    buf = io.StringIO()
    fields = list(asdict(rows[0])) if rows else list(SuperpixelScore.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(asdict(r))
    return write_text_atomic(path, buf.getvalue())
