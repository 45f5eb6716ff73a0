"""Evaluate a saved model on a folder dataset at the images' own resolution."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from pointseg.data.folder import FolderDataset
from pointseg.metrics import ConfusionMatrix
from pointseg.models.registry import ModelSpec
from pointseg.predict.inference import predict_logits

__all__ = ["evaluate_dataset"]


def evaluate_dataset(
    model: nn.Module,
    spec: ModelSpec,
    dataset: FolderDataset,
    *,
    device: torch.device,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> dict[str, Any]:
    """Metrics from one confusion matrix over all images of ``dataset`` (native resolution).

    The model runs at its training size; its logits are resized to each image (bilinear), and
    the masks are never resized.
    """
    if list(spec.class_names) != list(dataset.class_map.names):
        raise ValueError(
            f"the model's classes {spec.class_names} differ from the dataset's "
            f"{list(dataset.class_map.names)}; evaluate with the class file used for training"
        )
    cm = ConfusionMatrix(spec.num_classes, class_names=spec.class_names, background=spec.background)
    model.eval().to(device)
    indices: Iterable[int] = range(len(dataset))
    for i in progress(indices) if progress else indices:
        sample = dataset[i]
        if "mask" not in sample:
            raise ValueError(f"image {sample['name']!r} has no mask to evaluate against")
        logits = predict_logits(model, spec, sample["image"], device=device)
        cm.update(logits.argmax(0).cpu(), torch.from_numpy(sample["mask"]))
    return cm.compute()
