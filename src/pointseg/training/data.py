"""From a dataset to training tensors: resizing, query points, superpixel pseudo-labels.

Every split is prepared once into in-memory arrays (images resized to ``image_size``, the
training targets, the dense masks for evaluation); pseudo-labels are cached on disk. The torch
dataset then only normalises and augments, so the training loop is not starved by I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pointseg.constants import IGNORE_INDEX
from pointseg.data.base import RecordDataset
from pointseg.data.classes import ClassMap
from pointseg.data.transforms import resize_image, resize_labels, scale_points
from pointseg.labels import PseudoLabelCache, PseudoLabelSettings, propagation_stats
from pointseg.points import image_seed, points_to_mask, sample_points

__all__ = [
    "PreparedSplit",
    "SegmentationArrayDataset",
    "band_statistics",
    "flip_rotate",
    "prepare_split",
    "training_view",
]

logger = logging.getLogger(__name__)


@dataclass
class PreparedSplit:
    """One split in memory.

    Attributes
    ----------
    names : list of str
        Image stems.
    images : ndarray, shape (N, H, W, C)
        Images resized to the training size, in their source dtype.
    targets : ndarray of uint8, shape (N, H, W)
        What the model is trained / validated against (pseudo-labels, sparse points or dense
        masks), 255 = ignore.
    masks : ndarray of uint8, shape (N, H, W), or None
        Dense masks at the training size, when the dataset has them.
    points : list of ndarray (n_i, 3)
        Query points in training-size pixel coordinates.
    stats : dict
        Points, labelled pixels, pseudo-label coverage and accuracy.
    class_map : ClassMap or None
        The classes of ``targets`` and ``masks``.
    """

    names: list[str]
    images: np.ndarray
    targets: np.ndarray
    masks: np.ndarray | None
    points: list[np.ndarray] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    class_map: ClassMap | None = None


def training_view(
    image: np.ndarray, points: np.ndarray, *, image_size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """An image and its points on the training grid (square ``image_size``, or native).

    Training builds its pseudo-labels on this view; the annotation tool's preview calls the
    same function, so both see the same pixels.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, C)
    points : np.ndarray, shape (N, 3)
        x, y, class in source pixels.
    image_size : int or None
        Square side to resize to (images bilinear); None keeps the size.

    Returns
    -------
    image : np.ndarray, shape (S, S, C) or (H, W, C)
    points : np.ndarray, shape (N, 3), int64
    """
    src_shape = image.shape[:2]
    size = (image_size, image_size) if image_size else src_shape
    pts = np.asarray(points, np.int64).reshape(-1, 3)
    return resize_image(image, size), scale_points(pts, from_shape=src_shape, to_shape=size)


def source_pixel(
    x: int, y: int, *, grid_shape: tuple[int, int], source_shape: tuple[int, int]
) -> tuple[int, int]:
    """The source pixel under the centre of pixel ``(x, y)`` of the training view.

    The inverse of :func:`training_view` for one location (proposals are made on the view).

    Parameters
    ----------
    x, y : int
        Column and row on the view.
    grid_shape, source_shape : (height, width)
        Of the view and of the source image.
    """
    sx = source_shape[1] / grid_shape[1]
    sy = source_shape[0] / grid_shape[0]
    return (
        min(int((x + 0.5) * sx), source_shape[1] - 1),
        min(int((y + 0.5) * sy), source_shape[0] - 1),
    )


def prepare_split(
    dataset: RecordDataset,
    *,
    target: str,
    image_size: int | None,
    n_classes: int,
    points: Mapping[str, np.ndarray] | None = None,
    n_points: int = 50,
    point_scheme: str = "per_class",
    seed: int = 0,
    pseudo: PseudoLabelSettings | None = None,
    cache: PseudoLabelCache | None = None,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> PreparedSplit:
    """Load a split and build its targets.

    Parameters
    ----------
    dataset : RecordDataset
        The split to prepare.
    target : {"pseudo", "points", "full"}
        ``pseudo``: superpixel pseudo-labels from query points (point supervision);
        ``points``: the query points alone as a sparse label map; ``full``: dense masks.
    image_size : int or None
        Square size to resize to (images bilinear, labels nearest). None keeps the size; then
        every image must have the same size.
    n_classes : int
        Number of classes.
    points : mapping stem -> (n, 3) array, optional
        User points in source pixel coordinates. Without it, points are sampled from the masks
        with ``n_points``/``point_scheme`` (seeded per image by ``seed`` and the image name).
    seed : int
        Seed of the simulated points.
    pseudo : PseudoLabelSettings, optional
        Superpixels and propagation of ``target="pseudo"`` (default: HERS, 300 superpixels).
    cache : PseudoLabelCache, optional
        Reuse pseudo-labels across runs.
    progress : callable, optional
        Wraps the loop over images (e.g. ``tqdm``).

    Returns
    -------
    PreparedSplit
    """
    if target not in ("pseudo", "points", "full"):
        raise ValueError(f"target must be 'pseudo', 'points' or 'full', got {target!r}")
    if pseudo is None:
        pseudo = PseudoLabelSettings()
    n = len(dataset)
    if n == 0:
        raise ValueError(f"{dataset!r} is empty; check the split settings")
    indices: Iterable[int] = range(n)
    if progress is not None:
        indices = progress(indices)
    images, targets, masks, all_points = [], [], [], []
    shape0: tuple[int, ...] | None = None
    n_valid = n_evaluated = n_correct = 0
    for i in indices:
        sample = dataset[i]
        name, image = sample["name"], sample["image"]
        src_shape = image.shape[:2]
        size = (image_size, image_size) if image_size else src_shape
        if shape0 is None:
            shape0 = image.shape[2:]
        if image.shape[2:] != shape0:
            raise ValueError(f"image {name!r} has {image.shape[2]} bands, others {shape0[0]}")
        img, _ = training_view(image, np.zeros((0, 3), np.int64), image_size=image_size)
        mask = sample.get("mask")
        mask_small = resize_labels(mask, size) if mask is not None else None
        if target == "full":
            if mask is None:
                raise ValueError(f"image {name!r} has no mask; full supervision needs masks")
            tgt = mask_small
            pts = np.zeros((0, 3), np.int64)
        else:
            if points is not None:
                pts_src = np.asarray(points.get(name, np.zeros((0, 3))), np.int64).reshape(-1, 3)
            elif mask is not None:
                pts_src = sample_points(
                    mask, n_points=n_points, scheme=point_scheme, seed=image_seed(seed, name)
                )
            else:
                raise ValueError(f"image {name!r} has neither a mask nor points in the point file")
            _, pts = training_view(image, pts_src, image_size=image_size)
            if target == "points":
                tgt = points_to_mask(pts, shape=size)
            else:
                tgt = pseudo.label(img, pts, n_classes=n_classes, cache=cache)
            if mask_small is not None and target == "pseudo":
                st = propagation_stats(tgt, mask_small)
                n_valid += int(st["n_valid"])
                n_evaluated += int(st["n_evaluated"])
                n_correct += int(st["n_correct"])
        if tgt.shape != tuple(size) or (images and img.shape != images[0].shape):
            raise ValueError(
                f"image {name!r} is {src_shape[1]}x{src_shape[0]} while others are "
                f"{images[0].shape[1]}x{images[0].shape[0]}; set an image size to resize them"
            )
        images.append(img)
        targets.append(np.asarray(tgt, np.uint8))
        masks.append(mask_small)
        all_points.append(pts)
    has_masks = all(m is not None for m in masks)
    n_pts = int(sum(len(p) for p in all_points))
    tg = np.stack(targets)
    stats = {
        "n_images": float(n),
        "n_points": float(n_pts),
        "labelled_pixels": float((tg != IGNORE_INDEX).sum()),
        "labelled_fraction": float((tg != IGNORE_INDEX).mean()),
    }
    if target == "pseudo" and n_valid:
        stats["pseudo_coverage"] = n_evaluated / n_valid
        stats["pseudo_accuracy"] = n_correct / max(n_evaluated, 1)
    return PreparedSplit(
        names=dataset.names,
        images=np.stack(images),
        targets=tg,
        masks=np.stack(masks) if has_masks else None,
        points=all_points,
        stats=stats,
        class_map=dataset.class_map,
    )


def flip_rotate(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One of the 8 flips / 90 degree rotations, at random (torch's generator), of both.

    ``image`` is (C, H, W), ``mask`` (H, W); rotations only apply to square ones.
    """
    r = int(torch.randint(0, 8, (1,)).item())
    if r & 1:
        image, mask = image.flip(-1), mask.flip(-1)
    if r & 2:
        image, mask = image.flip(-2), mask.flip(-2)
    if r & 4 and image.shape[-1] == image.shape[-2]:
        image, mask = image.transpose(-1, -2), mask.transpose(-1, -2)
    return image, mask


def band_statistics(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation of (N, H, W, C) images.

    Accumulates sums in float64 over chunks of images, so memory stays at one chunk's float
    copy however large the split is.
    """
    n_bands = images.shape[-1]
    total = np.zeros(n_bands)
    total_sq = np.zeros(n_bands)
    count = 0
    step = max(1, (1 << 24) // max(1, int(np.prod(images.shape[1:]))))
    for i in range(0, len(images), step):
        flat = images[i : i + step].reshape(-1, n_bands).astype(np.float64)
        total += flat.sum(axis=0)
        total_sq += np.square(flat).sum(axis=0)
        count += len(flat)
    mean = total / max(count, 1)
    var = np.maximum(total_sq / max(count, 1) - np.square(mean), 0.0)
    std = np.sqrt(var)
    std[std < 1e-6] = 1.0
    return mean.tolist(), std.tolist()


class SegmentationArrayDataset(Dataset):
    """Torch dataset over a :class:`PreparedSplit`: normalised tensors and flips/rotations.

    Each item is ``{"image": float32 (C, H, W), "mask": int64 (H, W), "name": str}``.

    Parameters
    ----------
    split : PreparedSplit
    mean, std : sequence of float
        Per-band normalisation.
    use_masks : bool
        Use the dense masks (evaluation) instead of the training targets.
    augment : bool
        Random horizontal/vertical flips and 90 degree rotations (aerial views have no up).
    """

    def __init__(
        self,
        split: PreparedSplit,
        *,
        mean: list[float],
        std: list[float],
        use_masks: bool = False,
        augment: bool = False,
    ) -> None:
        # images stay in their source dtype (uint8: a quarter of float32) and are normalised
        # per item, so a large split does not need a float copy in memory
        images = split.images
        if images.dtype.byteorder not in ("=", "|"):
            images = images.astype(images.dtype.newbyteorder("="))
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        labels = split.masks if use_masks and split.masks is not None else split.targets
        self.masks = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.uint8))
        self.names = list(split.names)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.names)

    def batch(self, start: int, stop: int) -> torch.Tensor:
        """Normalised images ``start:stop`` without augmentation, float32 (B, C, H, W)."""
        images = self.images[start:stop].permute(0, 3, 1, 2).float()
        return (images - self.mean) / self.std

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = (self.images[index].permute(2, 0, 1).float() - self.mean) / self.std
        mask = self.masks[index].long()
        if self.augment:
            image, mask = flip_rotate(image, mask)
        return {"image": image, "mask": mask, "name": self.names[index]}
