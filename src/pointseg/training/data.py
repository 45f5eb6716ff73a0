"""From a dataset to training tensors: resizing, query points, superpixel pseudo-labels.

Every split is prepared once into in-memory arrays (images resized to ``image_size``, the
training targets, the dense masks for evaluation); pseudo-labels are cached on disk. The torch
dataset then only normalises and augments, so the training loop is not starved by I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pointseg.constants import IGNORE_INDEX
from pointseg.data.base import RecordDataset
from pointseg.data.classes import ClassMap
from pointseg.data.transforms import letterbox_shape, resize_image, resize_labels, scale_points
from pointseg.labels import PseudoLabelCache, PseudoLabelSettings, propagation_stats
from pointseg.points import image_seed, points_to_mask, sample_points

__all__ = [
    "BandMoments",
    "PreparedSplit",
    "SegmentationArrayDataset",
    "area_settings",
    "band_statistics",
    "flip_rotate",
    "prepare_split",
    "training_view",
    "view_labels",
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
    image: np.ndarray, points: np.ndarray, *, image_size: int | None, mode: str = "squash"
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
    mode : {"squash", "letterbox"}
        ``squash`` stretches the image to the square; ``letterbox`` keeps its aspect
        (:func:`pointseg.data.transforms.letterbox_shape`, top-left) and pads with zeros.

    Returns
    -------
    image : np.ndarray, shape (S, S, C) or (H, W, C)
    points : np.ndarray, shape (N, 3), int64
    """
    src_shape = image.shape[:2]
    size = _view_shape(src_shape, image_size, mode)
    pts = np.asarray(points, np.int64).reshape(-1, 3)
    view = resize_image(image, size)
    if image_size and mode == "letterbox":
        box = np.zeros((image_size, image_size, image.shape[2]), image.dtype)
        box[: size[0], : size[1]] = view
        view = box
    return view, scale_points(pts, from_shape=src_shape, to_shape=size)


def _view_shape(src_shape: tuple[int, ...], image_size: int | None, mode: str) -> tuple[int, int]:
    """The shape the image content takes on the training grid."""
    if not image_size:
        return int(src_shape[0]), int(src_shape[1])
    if mode == "letterbox":
        return letterbox_shape((src_shape[0], src_shape[1]), image_size)
    if mode != "squash":
        raise ValueError(f"resize mode must be 'squash' or 'letterbox', got {mode!r}")
    return image_size, image_size


def view_labels(labels: np.ndarray, *, image_size: int | None, mode: str = "squash") -> np.ndarray:
    """A label map on the training grid of :func:`training_view` (nearest; padding ignored)."""
    size = _view_shape(labels.shape, image_size, mode)
    out = resize_labels(labels, size)
    if image_size and mode == "letterbox":
        box = np.full((image_size, image_size), IGNORE_INDEX, np.uint8)
        box[: size[0], : size[1]] = out
        out = box
    return out


def area_settings(
    pseudo: PseudoLabelSettings, shape: tuple[int, int], superpixel_area: float
) -> PseudoLabelSettings:
    """``pseudo`` with ``n_segments`` set so superpixels cover ``superpixel_area`` px² each.

    ``shape`` is the image's native (height, width); fill levels get superpixels
    ``n_segments / c`` times larger, as in windowed training (the counts a single-block image
    gets from :func:`pointseg.labels.raster.label_block`).
    """
    area = float(superpixel_area)
    fills = [area * pseudo.n_segments / c for c in pseudo.fill_counts]
    return pseudo.for_area(shape[0] * shape[1], area, fills)


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
    resize_mode: str = "squash",
    superpixel_area: float | None = None,
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
    resize_mode : {"squash", "letterbox"}
        How images fit the square (:func:`training_view`).
    superpixel_area : float, optional
        Superpixel area in native pixels²: each image gets ``H * W / superpixel_area``
        superpixels (so one click spreads over the same ground area on every image) instead of
        ``pseudo.n_segments``.
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
        view = {"image_size": image_size, "mode": resize_mode}
        if shape0 is None:
            shape0 = image.shape[2:]
        if image.shape[2:] != shape0:
            raise ValueError(f"image {name!r} has {image.shape[2]} bands, others {shape0[0]}")
        img, _ = training_view(image, np.zeros((0, 3), np.int64), **view)
        mask = sample.get("mask")
        mask_small = view_labels(mask, **view) if mask is not None else None
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
            _, pts = training_view(image, pts_src, **view)
            if target == "points":
                tgt = points_to_mask(pts, shape=size)
            else:
                settings = pseudo
                if superpixel_area:
                    settings = area_settings(pseudo, src_shape, superpixel_area)
                tgt = settings.label(img, pts, n_classes=n_classes, cache=cache)
                if resize_mode == "letterbox" and image_size:
                    tgt = np.where(
                        view_labels(np.zeros(src_shape, np.uint8), **view) == 0, tgt, IGNORE_INDEX
                    ).astype(np.uint8)
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


class BandMoments:
    """Running per-band sums for a mean and standard deviation (float64, weighted)."""

    def __init__(self, n_bands: int) -> None:
        self.total = np.zeros(n_bands)
        self.total_sq = np.zeros(n_bands)
        self.count = 0.0

    def add(self, pixels: np.ndarray, weight: float = 1.0) -> None:
        """Add ``pixels`` of shape (n, bands), each counting ``weight`` times."""
        px = np.asarray(pixels, np.float64)
        self.total += px.sum(axis=0) * weight
        self.total_sq += np.square(px).sum(axis=0) * weight
        self.count += len(px) * weight

    def result(self) -> tuple[list[float], list[float]]:
        """Mean and standard deviation per band (a constant band gets std 1)."""
        mean = self.total / max(self.count, 1)
        std = np.sqrt(np.maximum(self.total_sq / max(self.count, 1) - np.square(mean), 0.0))
        std[std < 1e-6] = 1.0
        return mean.tolist(), std.tolist()


def band_statistics(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation of (N, H, W, C) images.

    Accumulates sums in float64 over chunks of images, so memory stays at one chunk's float
    copy however large the split is.
    """
    n_bands = images.shape[-1]
    moments = BandMoments(n_bands)
    step = max(1, (1 << 24) // max(1, int(np.prod(images.shape[1:]))))
    for i in range(0, len(images), step):
        moments.add(images[i : i + step].reshape(-1, n_bands))
    return moments.result()


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
        return self.take(range(start, min(stop, len(self.images))))

    def take(self, indices: Sequence[int]) -> torch.Tensor:
        """Normalised images at ``indices`` without augmentation, float32 (B, C, H, W)."""
        images = self.images[list(indices)].permute(0, 3, 1, 2).float()
        return (images - self.mean) / self.std

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = (self.images[index].permute(2, 0, 1).float() - self.mean) / self.std
        mask = self.masks[index].long()
        if self.augment:
            image, mask = flip_rotate(image, mask)
        return {"image": image, "mask": mask, "name": self.names[index]}
