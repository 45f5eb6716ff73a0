"""Evaluate models: on a dataset at its native resolution, or maps against reference rasters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pointseg.constants import IGNORE_INDEX
from pointseg.data.classes import ClassMap
from pointseg.data.folder import FolderDataset
from pointseg.data.rasters import read_reference_window
from pointseg.data.remap import ClassRemap
from pointseg.io.raster import band_layout
from pointseg.metrics import ConfusionMatrix
from pointseg.models.registry import ModelSpec
from pointseg.predict.inference import band_mismatch, predict_logits

__all__ = ["evaluate_dataset", "evaluate_label_rasters", "label_agreement"]


def evaluate_dataset(
    model: nn.Module,
    spec: ModelSpec,
    dataset: FolderDataset,
    *,
    device: torch.device,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
    indices: Sequence[int] | None = None,
    reduce: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Metrics from one confusion matrix over all images of ``dataset`` (native resolution).

    ``indices`` limits the images (one process's share of a distributed run) and ``reduce``
    sums the confusion matrix over the processes before the metrics are computed.

    The model runs at its training size; its logits are resized to each image (bilinear), and
    the masks are never resized (nodata pixels, 255 in the masks, are not scored).

    The bands are the dataset's: open it with ``bands=`` the user's ``--bands``, else the
    model's ``spec.bands``. Each image's band count is checked against the model before it is
    predicted: a mismatch is an error naming the file, the model's bands and ``--bands``.
    """
    if list(spec.class_names) != list(dataset.class_map.names):
        raise ValueError(
            f"the model's classes {spec.class_names} differ from the dataset's "
            f"{list(dataset.class_map.names)}; evaluate with the class file used for training"
        )
    cm = ConfusionMatrix(spec.num_classes, class_names=spec.class_names, background=spec.background)
    model.eval().to(device)
    order: Iterable[int] = range(len(dataset)) if indices is None else list(indices)
    for i in progress(order) if progress else order:
        sample = dataset[i]
        if "mask" not in sample:
            raise ValueError(f"image {sample['name']!r} has no mask to evaluate against")
        image = sample["image"]
        records = getattr(dataset, "records", None)
        where = records[i].image if records is not None else repr(sample["name"])
        if image.ndim == 3 and image.shape[2] != spec.in_channels:
            chosen = getattr(dataset, "bands", None)
            if chosen is not None and list(chosen) != list(spec.bands or []):
                layout = band_layout(where) if isinstance(where, Path) else None
                raise band_mismatch(spec, image.shape[2], image=where, chosen=chosen, layout=layout)
            raise band_mismatch(spec, image.shape[2], image=where)
        logits = predict_logits(model, spec, image, device=device, where=where)
        cm.update(logits.argmax(0).cpu(), torch.from_numpy(sample["mask"]))
    if reduce is not None:
        cm = cm.with_counts(reduce(cm.matrix))
    return cm.compute()


def label_agreement(
    pairs: Sequence[tuple[str | Path, str | Path]],
    *,
    class_map: ClassMap,
    remap: ClassRemap | None = None,
    block_size: int = 1024,
) -> np.ndarray:
    """Count label-raster pixels against reference label rasters, block by block.

    Parameters
    ----------
    pairs : sequence of (labels, reference) paths
        ``labels``: uint8 class indices with 255 = none (a predicted map or pseudo-labels);
        ``reference``: a label raster on the same grid, encoded as ``class_map`` says (and
        translated by ``remap``).
    class_map, remap
        How to read the reference rasters.
    block_size : int
        Side of the blocks read at once (memory does not depend on the raster size).

    Returns
    -------
    np.ndarray of int64, shape (n_classes, n_classes + 1)
        Rows: reference class; columns: label class, the last one counting pixels left
        unlabelled (255). Pixels without a reference class are not counted.
    """
    import rasterio
    from rasterio.windows import Window

    n = (remap.target if remap is not None else class_map).n_classes
    matrix = np.zeros((n, n + 1), np.int64)
    for labels_path, ref_path in pairs:
        with rasterio.open(labels_path) as lab, rasterio.open(ref_path) as ref:
            if (lab.height, lab.width) != (ref.height, ref.width):
                raise ValueError(
                    f"{labels_path} is {lab.width}x{lab.height} but the reference {ref_path} is "
                    f"{ref.width}x{ref.height}; they must share a grid"
                )
            for r0 in range(0, lab.height, block_size):
                for c0 in range(0, lab.width, block_size):
                    w = Window(
                        c0, r0, min(block_size, lab.width - c0), min(block_size, lab.height - r0)
                    )
                    truth = read_reference_window(ref, w, class_map, remap, str(ref_path))
                    got = lab.read(1, window=w)
                    keep = truth != IGNORE_INDEX
                    t = truth[keep].astype(np.int64)
                    g = got[keep].astype(np.int64)
                    bad = (g >= n) & (g != IGNORE_INDEX)
                    if bad.any():
                        raise ValueError(
                            f"{labels_path} holds class values up to {int(g.max())}, but there "
                            f"are {n} classes (255 = unlabelled)"
                        )
                    g = np.where(g == IGNORE_INDEX, n, g)
                    matrix += np.bincount(t * (n + 1) + g, minlength=n * (n + 1)).reshape(n, n + 1)
    return matrix


def evaluate_label_rasters(
    pairs: Sequence[tuple[str | Path, str | Path]],
    *,
    class_map: ClassMap,
    remap: ClassRemap | None = None,
    background: str | None = None,
) -> dict[str, Any]:
    """Metrics of predicted class maps against reference rasters (one confusion matrix).

    Predicted nodata (255) pixels are not scored. See :func:`label_agreement`.
    """
    from pointseg.metrics.confusion import compute_metrics

    target = remap.target if remap is not None else class_map
    matrix = label_agreement(pairs, class_map=class_map, remap=remap)
    metrics = compute_metrics(matrix[:, :-1], class_names=list(target.names), background=background)
    metrics["unscored_pixels"] = int(matrix[:, -1].sum())
    return metrics
