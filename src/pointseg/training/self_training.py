"""Self-training rounds: superpixels without clicks take the model's confident predictions.

After a training round, every training image is predicted whole (in tiles, at the training
scale). Each superpixel that holds no click takes the class of its mean predicted
probability where that mean reaches a threshold; pixels labelled from clicks always keep
their label. The next round trains on the union (:func:`self_train_labels` is the rule,
:func:`self_training_round` runs it over a split and writes the labels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.constants import IGNORE_INDEX
from pointseg.io.atomic import atomic_write
from pointseg.io.windows import ArrayWindows
from pointseg.labels.raster import label_blocks
from pointseg.labels.settings import PseudoLabelSettings

__all__ = ["image_superpixels", "self_train_labels", "self_training_round"]

logger = logging.getLogger(__name__)


def self_train_labels(
    click_labels: np.ndarray,
    probabilities: np.ndarray,
    superpixels: np.ndarray,
    points: np.ndarray,
    *,
    threshold: float,
    valid: np.ndarray | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Click pseudo-labels completed by confident predictions, one superpixel at a time.

    Parameters
    ----------
    click_labels : np.ndarray, shape (H, W), uint8
        Pseudo-labels from the clicks (``ignore_index`` where unlabelled).
    probabilities : np.ndarray, shape (C, H, W), float
        The model's class probabilities.
    superpixels : np.ndarray, shape (H, W), int
        Superpixel ids >= 0.
    points : np.ndarray, shape (N, 3), int
        The clicks (x, y, class): a superpixel holding one takes no prediction.
    threshold : float in (0, 1]
        A superpixel takes the class of its mean probability vector where that class's mean
        probability is at least ``threshold``.
    valid : np.ndarray of bool, shape (H, W), optional
        False at nodata (never labelled).
    ignore_index : int

    Returns
    -------
    np.ndarray, shape (H, W), uint8
        ``click_labels`` where they are labelled; elsewhere the superpixel's predicted class
        when it is confident and click-free; ``ignore_index`` otherwise.
    """
    labels = np.asarray(click_labels)
    probs = np.asarray(probabilities)
    seg = np.asarray(superpixels)
    if labels.ndim != 2 or probs.ndim != 3 or probs.shape[1:] != labels.shape:
        raise ValueError(
            f"click_labels (H, W) and probabilities (C, H, W) must match, got {labels.shape} "
            f"and {probs.shape}"
        )
    if seg.shape != labels.shape or not np.issubdtype(seg.dtype, np.integer) or seg.min() < 0:
        raise ValueError(
            f"superpixels must be non-negative integer ids of shape {labels.shape}, got "
            f"{seg.shape} {seg.dtype}"
        )
    if not 0 < float(threshold) <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    n_classes = probs.shape[0]
    ids = seg.ravel().astype(np.int64)
    n_seg = int(ids.max()) + 1
    counts = np.bincount(ids, minlength=n_seg).astype(np.float64)
    means = (
        np.stack(
            [np.bincount(ids, weights=probs[c].ravel(), minlength=n_seg) for c in range(n_classes)],
            axis=1,
        )
        / np.maximum(counts, 1)[:, None]
    )
    take = means.max(axis=1) >= float(threshold)
    pts = np.asarray(points, np.int64).reshape(-1, 3)
    if len(pts):
        take[seg[pts[:, 1], pts[:, 0]]] = False
    predicted = np.where(take, means.argmax(axis=1), ignore_index).astype(np.uint8)
    out = np.array(labels, np.uint8, copy=True)
    fill = out == ignore_index
    if valid is not None:
        fill &= np.asarray(valid, bool)
    out[fill] = predicted[seg[fill]]
    return out


def image_superpixels(
    image: np.ndarray,
    *,
    pixels_per_segment: float,
    pseudo: PseudoLabelSettings,
    fill_pixels_per_segment: Sequence[float] = (),
    valid: np.ndarray | None = None,
    block_size: int = 1024,
    margin: int = 64,
    levels: Any = None,
) -> np.ndarray:
    """The finest superpixels that labelling used for ``image``, block by block.

    The blocks and settings of :func:`pointseg.training.image_windows.label_image`, so with
    the same ``levels`` store no block is segmented again. Ids are made unique over blocks.

    Returns
    -------
    np.ndarray, shape (H, W), int64
    """
    reader = ArrayWindows(image, valid)
    out = np.zeros((reader.height, reader.width), np.int64)
    offset = 0
    segments: list[np.ndarray] = []
    for (r0, r1, c0, c1), _, _, _ in label_blocks(
        reader,
        np.zeros((0, 3), np.int64),
        block_size=block_size,
        margin=margin,
        n_classes=1,
        pixels_per_segment=pixels_per_segment,
        fill_pixels_per_segment=fill_pixels_per_segment,
        method=pseudo.method,
        seed=pseudo.seed,
        levels_cache=levels,
        segments_out=segments,
        always_segment=True,
        **pseudo.propagation_options(),
        **pseudo.method_options,
    ):
        _, part = np.unique(np.asarray(segments.pop(), np.int64), return_inverse=True)
        out[r0:r1, c0:c1] = part.reshape(r1 - r0, c1 - c0) + offset
        offset += int(part.max()) + 1
    return out


def self_training_round(
    predict: Callable[[np.ndarray], np.ndarray],
    dataset: Any,
    sources: Sequence[Any],
    *,
    threshold: float,
    superpixels: Callable[[int, Mapping[str, Any]], np.ndarray],
    out_dir: Path,
    share: Callable[[int], Sequence[int]] | None = None,
    reduce: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[list[Any], dict[str, float]]:
    """One round: every source with click labels gets completed labels written to ``out_dir``.

    Parameters
    ----------
    predict : callable
        ``image (H, W, C) -> probabilities (C, H, W)`` at native resolution.
    dataset : RecordDataset
        The training split.
    sources : sequence of WindowSource
        With ``labels`` (the click pseudo-labels, ``.npy``) and ``points``.
    threshold : float
    superpixels : callable
        ``(source index, sample) -> (H, W) superpixel ids`` of that image.
    out_dir : Path
        Receives ``{index:06d}.npy`` per image, written atomically.
    share, reduce : callable, optional
        Distributed runs: ``share(n)`` gives the positions of ``sources`` this process
        completes (the others do the rest, into the same shared ``out_dir``), and
        ``reduce`` sums the counts over processes (and waits for them).

    Returns
    -------
    sources : list of WindowSource
        Copies pointing at the new label files.
    stats : dict
        ``labelled_fraction`` of the new labels, ``added_fraction`` (pixels that were
        unlabelled), and with masks ``pseudo_coverage``/``pseudo_accuracy`` of the union and
        ``added_accuracy`` of what the predictions added.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    new_sources = []
    total = labelled = added = 0
    n_valid = n_evaluated = n_correct = n_added_eval = n_added_correct = 0
    mine = set(range(len(sources)) if share is None else share(len(sources)))
    for position, src in enumerate(sources):
        if src.labels is None or not len(src.points):
            new_sources.append(src)
            continue
        path = out_dir / f"{src.index:06d}.npy"
        new_sources.append(replace(src, labels=path))
        if position not in mine:  # another process writes it
            continue
        sample = dataset[src.index]
        clicks = np.load(src.labels)
        probs = predict(sample["image"])
        labels = self_train_labels(
            clicks,
            probs,
            superpixels(src.index, sample),
            src.points,
            threshold=threshold,
            valid=sample.get("valid"),
        )
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.save(f, labels)
        new = (labels != IGNORE_INDEX) & (clicks == IGNORE_INDEX)
        total += labels.size
        labelled += int((labels != IGNORE_INDEX).sum())
        added += int(new.sum())
        mask = sample.get("mask")
        if mask is not None:
            ok = mask != IGNORE_INDEX
            lab = labels[ok]
            n_valid += int(ok.sum())
            n_evaluated += int((lab != IGNORE_INDEX).sum())
            n_correct += int((lab == mask[ok]).sum())
            n_added_eval += int((new & ok).sum())
            n_added_correct += int((labels[new & ok] == mask[new & ok]).sum())
    counts = [total, labelled, added, n_valid, n_evaluated, n_correct]
    counts += [n_added_eval, n_added_correct]
    if reduce is not None:  # every process's images (its files are written by now)
        counts = reduce(np.asarray(counts, dtype=np.int64)).tolist()
    total, labelled, added, n_valid, n_evaluated, n_correct = counts[:6]
    n_added_eval, n_added_correct = counts[6:]
    stats = {
        "labelled_fraction": labelled / max(total, 1),
        "added_fraction": added / max(total, 1),
    }
    if n_valid:
        stats["pseudo_coverage"] = n_evaluated / n_valid
        stats["pseudo_accuracy"] = n_correct / max(n_evaluated, 1)
        stats["added_accuracy"] = n_added_correct / max(n_added_eval, 1)
    return new_sources, stats
