"""Windowed training on any dataset: windows at native resolution, read from disk per window.

The path of ``--window`` for tile datasets (folder, LandCover.ai, LoveDA, ISPRS, Oxford Pet,
synthetic), whatever the images' sizes and aspects:

1. **Points** come from a point file (source pixels) or are simulated on each training mask at
   its native resolution (the same clicks as the resize mode: same seeds, same masks).
2. **Pseudo-labels** are built once per image at native resolution, block by block with the
   rasters path's :func:`pointseg.labels.raster.label_block` (superpixels of
   ``pixels_per_segment`` native pixels², so a click spreads over the same ground area on every
   image), stored as ``.npy`` under the cache (keyed by the image file, the points and the
   settings) and memory-mapped per window. The superpixel levels of each block are cached per
   image independently of the clicks (:class:`LevelsStore`), so a sweep over click counts
   never recomputes them.
3. **Windows** (:class:`ImageWindowDataset`) of ``round(window / scale)`` native pixels are
   cut at random per key (a :class:`pointseg.training.windows.DrawSampler` gives fresh keys
   every epoch), a share placed on a random click, resampled by ``scale`` (images bilinear
   with antialiasing, as prediction does; labels nearest, a window pixel whose footprint mixes
   labels becoming ignore) and padded with ignore beyond the image. Decoded images are kept in
   a byte-bounded LRU cache (:class:`SampleCache`), so memory does not grow with the dataset.
4. **Validation** (:class:`WholeImageDataset`) predicts whole validation images in tiles at
   the training scale (:func:`pointseg.predict.tiled.predict_array`) and scores one confusion
   matrix at native resolution against their masks (or their clicks, without masks).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from pointseg.constants import IGNORE_INDEX
from pointseg.data.base import RecordDataset
from pointseg.io.atomic import atomic_write
from pointseg.io.windows import ArrayWindows
from pointseg.labels.propagation import propagation_stats
from pointseg.labels.raster import label_blocks, raster_label_key
from pointseg.labels.settings import PseudoLabelSettings
from pointseg.points import image_seed, points_to_mask, sample_points
from pointseg.training.data import BandMoments, flip_rotate

__all__ = [
    "ImageWindowDataset",
    "LevelsStore",
    "SampleCache",
    "WholeImageDataset",
    "WindowSource",
    "WindowTraining",
    "label_image",
    "native_side",
    "prepare_window_training",
    "resample_labels",
    "resample_window",
    "window_band_statistics",
]

logger = logging.getLogger(__name__)


def native_side(window: int, scale: float) -> int:
    """Side in native pixels of a ``window``-pixel window at ``scale``."""
    return max(1, round(int(window) / float(scale)))


def resample_window(image: torch.Tensor, size: int) -> torch.Tensor:
    """(C, n, n) float image to (C, size, size): bilinear, antialiased when shrinking.

    The same resampling as the tiles of :func:`pointseg.predict.tiled.predict_array`.
    """
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(
        image[None],
        size=(size, size),
        mode="bilinear",
        align_corners=False,
        antialias=size < image.shape[-1],
    )[0]


def resample_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """(n, n) uint8 labels to (size, size): nearest, ignore winning.

    When shrinking, an output pixel takes the label of its footprint if every source pixel in
    it has that label, else ``IGNORE_INDEX``; when enlarging, the nearest source pixel.

    Parameters
    ----------
    labels : np.ndarray, shape (n, n), uint8
    size : int

    Returns
    -------
    np.ndarray, shape (size, size), uint8
    """
    if labels.shape == (size, size):
        return labels
    t = torch.from_numpy(np.ascontiguousarray(labels, np.uint8)).float()[None, None]
    if size < labels.shape[-1]:
        hi = F.adaptive_max_pool2d(t, size)
        lo = -F.adaptive_max_pool2d(-t, size)
        out = torch.where(hi == lo, hi, torch.full_like(hi, IGNORE_INDEX))
    else:
        out = F.interpolate(t, size=(size, size), mode="nearest")
    return out[0, 0].to(torch.uint8).numpy()


class LevelsStore:
    """Superpixel levels of one image's blocks on disk (the ``levels_cache`` of label_block).

    Keys are label_block's ``(er0, er1, ec0, ec1, settings)``; the levels do not depend on the
    points, so every click count reuses them. Files are written atomically; an unreadable one
    is a miss.

    Parameters
    ----------
    root : Path
        Cache folder.
    image_key : str
        Identifies the image (file and bands).
    """

    def __init__(self, root: Path, image_key: str) -> None:
        self.folder = Path(root) / image_key[:2] / image_key

    def _path(self, key: tuple[Any, ...]) -> Path:
        *core, settings = key
        text = json.dumps([list(core), settings.cache_key(n_classes=1)], sort_keys=True)
        return self.folder / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.npz"

    def get(self, key: tuple[Any, ...]) -> list[np.ndarray] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                return [data[f"level{i}"] for i in range(len(data.files))]
        except (OSError, ValueError, KeyError):
            return None

    def __setitem__(self, key: tuple[Any, ...], levels: Sequence[np.ndarray]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f, **{f"level{i}": lv.astype(np.int32) for i, lv in enumerate(levels)}
            )


def label_image(
    image: np.ndarray,
    points: np.ndarray,
    *,
    n_classes: int,
    pixels_per_segment: float,
    fill_pixels_per_segment: Sequence[float] = (),
    valid: np.ndarray | None = None,
    method: str = "hers",
    seed: int = 0,
    block_size: int = 1024,
    margin: int = 64,
    levels: Any = None,
    **method_options: Any,
) -> np.ndarray:
    """Pseudo-labels of one image at its native resolution, block by block.

    Exactly what :func:`pointseg.labels.pseudo_label_raster` writes for a raster: blocks of
    ``block_size`` (rounded up to 256) read with ``margin`` pixels of context, superpixels of
    ``pixels_per_segment`` pixels² in each block holding a point, majority vote.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, C)
    points : np.ndarray, shape (N, 3)
        x, y, class in the image's pixels.
    n_classes : int
    pixels_per_segment : float
        Mean superpixel area in pixels².
    fill_pixels_per_segment : sequence of float
        Coarser superpixel areas filling what finer levels leave unlabelled.
    valid : np.ndarray of bool, shape (H, W), optional
        False at nodata pixels (never labelled).
    method, seed, **method_options
        The superpixel method.
    block_size, margin : int
    levels : mutable mapping, optional
        Block levels cache (:class:`LevelsStore`).

    Returns
    -------
    np.ndarray, shape (H, W), uint8
        ``IGNORE_INDEX`` where unlabelled.
    """
    reader = ArrayWindows(image, valid)
    height, width = reader.height, reader.width
    pts = np.asarray(points, np.int64).reshape(-1, 3)
    out = np.full((height, width), IGNORE_INDEX, np.uint8)
    if not len(pts):
        return out
    for (r0, r1, c0, c1), labels, _, _ in label_blocks(
        reader,
        pts,
        block_size=block_size,
        margin=margin,
        n_classes=n_classes,
        pixels_per_segment=pixels_per_segment,
        fill_pixels_per_segment=fill_pixels_per_segment,
        method=method,
        seed=seed,
        levels_cache=levels,
        **method_options,
    ):
        out[r0:r1, c0:c1] = labels
    return out


class SampleCache:
    """Decoded samples of a dataset, least recently used first out, bounded in bytes.

    One sample larger than the bound is still held alone (the one being read).
    """

    def __init__(self, dataset: RecordDataset, max_bytes: float) -> None:
        self.dataset = dataset
        self.max_bytes = float(max_bytes)
        self._items: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    @staticmethod
    def _size(sample: Mapping[str, Any]) -> int:
        return sum(int(v.nbytes) for v in sample.values() if isinstance(v, np.ndarray))

    def get(self, index: int) -> dict[str, Any]:
        if index in self._items:
            self._items.move_to_end(index)
            self.hits += 1
            return self._items[index]
        self.misses += 1
        sample = self.dataset[index]
        keep = {k: sample[k] for k in ("image", "mask", "valid", "name") if k in sample}
        self._items[index] = keep
        self._bytes += self._size(keep)
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= self._size(old)
        return keep

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers start empty
        state = dict(self.__dict__)
        state["_items"], state["_bytes"] = OrderedDict(), 0
        return state


@dataclass
class WindowSource:
    """One training image of a windowed run."""

    index: int
    name: str
    height: int
    width: int
    points: np.ndarray
    labels: Path | None = None


def _origin(center: int, offset: int, size: int, window: int) -> int:
    """Window start so that ``center`` sits ``offset`` pixels in, kept inside the image."""
    return int(min(max(center - offset, 0), max(size - window, 0)))


class ImageWindowDataset(Dataset):
    """Random training windows of a dataset's images, at native resolution times ``scale``.

    ``dataset[key]`` draws the window of the integer ``key`` (deterministic for a key) and
    returns ``{"image": float32 (C, W, W) normalised, "mask": int64 (W, W) 255 = ignore,
    "name": "stem@row,col"}``.

    Parameters
    ----------
    dataset : RecordDataset
        The training split (read one sample at a time).
    sources : sequence of WindowSource
        Its images; with ``target="pseudo"`` those with points and a label file are used.
    window : int
        Window side in model pixels.
    scale : float
        Model pixels per native pixel (0.5: half resolution).
    mean, std : sequence of float
        Per-band normalisation.
    target : {"pseudo", "full"}
        Labels from each source's label file, or from the dataset's dense masks.
    length : int
        Windows per epoch.
    point_fraction : float
        Share of windows placed on a random click (``pseudo``); the others are drawn
        uniformly, up to ``tries`` times, until one holds a label.
    cache_bytes : float
        Bound of the decoded-sample cache.
    seed : int
    augment : bool
        Random flips and 90 degree rotations.
    with_valid : bool
        Add ``"valid"``: bool (W, W), False on padding beyond the image and on nodata (a
        regulariser on unlabelled pixels must skip them; the mask cannot tell them apart).
    """

    def __init__(
        self,
        dataset: RecordDataset,
        sources: Sequence[WindowSource],
        *,
        window: int,
        scale: float = 1.0,
        mean: Sequence[float],
        std: Sequence[float],
        target: str = "pseudo",
        length: int = 256,
        point_fraction: float = 0.75,
        cache_bytes: float = 256 * 2**20,
        seed: int = 0,
        augment: bool = True,
        tries: int = 8,
        with_valid: bool = False,
    ) -> None:
        if target not in ("pseudo", "full"):
            raise ValueError(f"target must be 'pseudo' or 'full', got {target!r}")
        if target == "pseudo":
            usable = [s for s in sources if s.labels is not None and len(s.points)]
            weights = np.array([len(s.points) for s in usable], np.float64)
        else:
            usable = list(sources)
            side = native_side(window, scale)
            weights = np.array(
                [max(1, -(-s.height // side)) * max(1, -(-s.width // side)) for s in usable],
                np.float64,
            )
        if not usable:
            raise ValueError("no training image has points: nothing to train on")
        self.samples = SampleCache(dataset, cache_bytes)
        self.sources = usable
        self.weights = weights / weights.sum()
        self.window = int(window)
        self.scale = float(scale)
        self.side = native_side(window, scale)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.target = target
        self.length = int(length)
        self.point_fraction = float(point_fraction)
        self.seed = int(seed)
        self.augment = augment
        self.tries = int(tries)
        self.with_valid = bool(with_valid)

    def __len__(self) -> int:
        return self.length

    def _labels(self, src: WindowSource, r0: int, c0: int) -> np.ndarray:
        n = self.side
        if src.labels is not None:
            return np.asarray(np.load(src.labels, mmap_mode="r")[r0 : r0 + n, c0 : c0 + n])
        sample = self.samples.get(src.index)
        if "mask" not in sample:
            raise ValueError(f"image {src.name!r} has no mask; full supervision needs masks")
        return sample["mask"][r0 : r0 + n, c0 : c0 + n]

    def draw(self, key: int) -> tuple[int, int, int]:
        """Source index and window origin (row, col) in native pixels of ``key``."""
        rng = np.random.default_rng([self.seed, int(key)])
        s = int(rng.choice(len(self.sources), p=self.weights))
        src, n = self.sources[s], self.side

        def uniform() -> tuple[int, int]:
            r0 = int(rng.integers(0, max(src.height - n, 0) + 1))
            c0 = int(rng.integers(0, max(src.width - n, 0) + 1))
            return r0, c0

        if self.target == "full":
            return (s, *uniform())
        if rng.random() >= self.point_fraction:
            for _ in range(self.tries):
                r0, c0 = uniform()
                if (self._labels(src, r0, c0) != IGNORE_INDEX).any():
                    return s, r0, c0
        x, y, _ = src.points[int(rng.integers(len(src.points)))]
        r0 = _origin(int(y), int(rng.integers(n)), src.height, n)
        c0 = _origin(int(x), int(rng.integers(n)), src.width, n)
        return s, r0, c0

    def read(
        self, s: int, r0: int, c0: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The normalised image (C, W, W), labels (W, W) and, with ``with_valid``, the valid
        pixels (W, W) of the window at ``(r0, c0)``."""
        src, n = self.sources[s], self.side
        sample = self.samples.get(src.index)
        pixels = sample["image"][r0 : r0 + n, c0 : c0 + n]
        labels = np.array(self._labels(src, r0, c0), np.uint8)
        valid = sample.get("valid")
        if valid is not None:
            labels[~valid[r0 : r0 + n, c0 : c0 + n]] = IGNORE_INDEX
        h, w = labels.shape
        inside = None
        if self.with_valid:  # 0 where valid, ignore elsewhere: resampled so that ignore wins
            ok = np.full((n, n), IGNORE_INDEX, np.uint8)
            inner = valid[r0 : r0 + h, c0 : c0 + w] if valid is not None else True
            ok[:h, :w] = np.where(inner, 0, IGNORE_INDEX)
            inside = torch.from_numpy(resample_labels(ok, self.window) == 0)
        x = torch.from_numpy(np.ascontiguousarray(pixels, np.float32)).permute(2, 0, 1)
        x = (x - self.mean) / self.std
        x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
        if (h, w) != (n, n):  # beyond the image: the band means (0) and ignore
            x = F.pad(x, (0, n - w, 0, n - h))
            labels = np.pad(labels, ((0, n - h), (0, n - w)), constant_values=IGNORE_INDEX)
        image = resample_window(x, self.window)
        mask = torch.from_numpy(resample_labels(labels, self.window)).long()
        return image, mask, inside

    def __getitem__(self, key: int) -> dict[str, Any]:
        s, r0, c0 = self.draw(key)
        image, mask, valid = self.read(s, r0, c0)
        if valid is not None:  # one flip for both: stacked on a leading axis
            mask = torch.stack([mask, valid.long()])
        if self.augment:
            image, mask = flip_rotate(image, mask)
        item = {"image": image, "mask": mask, "name": f"{self.sources[s].name}@{r0},{c0}"}
        if valid is not None:
            item["mask"], item["valid"] = mask[0], mask[1].bool()
        return item


class WholeImageDataset(Dataset):
    """Whole images with their native masks, for validation and test in tiles.

    Items are ``{"image": (H, W, C) as read, "mask": (H, W) uint8, "name", "whole": True}``;
    without a mask, the image's points (``points``) are the target. Use
    ``collate_fn=WholeImageDataset.collate`` (one image per batch, numpy kept).
    """

    def __init__(
        self,
        dataset: RecordDataset,
        *,
        indices: Sequence[int] | None = None,
        points: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else list(indices)
        self.points = points or {}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self.dataset[self.indices[i]]
        mask = sample.get("mask")
        if mask is None:
            pts = np.asarray(self.points.get(sample["name"], np.zeros((0, 3))), np.int64)
            mask = points_to_mask(pts.reshape(-1, 3), shape=sample["image"].shape[:2])
        return {"image": sample["image"], "mask": mask, "name": sample["name"], "whole": True}

    @staticmethod
    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        return batch[0]


def window_band_statistics(
    dataset: RecordDataset, *, max_images: int = 32, max_side: int = 512
) -> tuple[list[float], list[float]]:
    """Per-band mean and std over up to ``max_images`` evenly spread images, decimated.

    Nodata pixels (the samples' ``valid`` mask: alpha, GDAL masks) are excluded.
    """
    n = len(dataset)
    picks = np.unique(np.linspace(0, n - 1, num=min(n, max_images)).round().astype(int))
    moments: BandMoments | None = None
    for i in picks.tolist():
        sample = dataset[i]
        image = sample["image"]
        step = max(1, -(-max(image.shape[:2]) // max_side))
        px = image[::step, ::step].reshape(-1, image.shape[-1]).astype(np.float64)
        valid = sample.get("valid")
        keep = np.isfinite(px).all(axis=1)
        if valid is not None:
            keep &= valid[::step, ::step].reshape(-1)
        moments = moments or BandMoments(px.shape[1])
        moments.add(px[keep])
    if moments is None or moments.count == 0:
        raise ValueError(f"no valid pixel in {dataset!r} for the band statistics")
    return moments.result()


def levels_store(cache_dir: Path, image: Any, settings: Mapping[str, Any]) -> LevelsStore:
    """The cached superpixel levels of ``image`` under labelling ``settings``."""
    return LevelsStore(cache_dir / "levels", raster_label_key(image, np.zeros((0, 3)), settings))


def label_window_image(
    dataset: RecordDataset,
    index: int,
    points: np.ndarray | None,
    *,
    settings: Mapping[str, Any],
    cache_dir: Path,
    pseudo: PseudoLabelSettings,
    n_classes: int,
    pixels_per_segment: float,
    fills: Sequence[float],
    n_points: int,
    point_scheme: str,
    seed: int,
    block_size: int,
    margin: int,
) -> dict[str, Any]:
    """Points and cached native pseudo-labels of one training image (a task of its own).

    ``points`` (source pixels) or, when None, ``n_points`` simulated on the mask. The labels
    are looked up in ``cache_dir/labels`` under the key of the image, points and
    ``settings``, and computed (and written atomically) when missing.

    Returns
    -------
    dict
        ``points`` (N, 3), ``shape`` (H, W), ``labels`` (the cached ``.npy``, or None without
        points) and ``counts``: labelled pixels, then valid mask pixels, pseudo-labelled
        and correct among them (zeros without a mask).
    """
    rec = dataset.records[index]
    sample: dict[str, Any] | None = None
    if points is not None:
        pts = np.asarray(points, np.int64).reshape(-1, 3)
        h, w = dataset.image_size(index)
    else:
        sample = dataset[index]
        if sample.get("mask") is None:
            raise ValueError(f"image {rec.name!r} has neither a mask nor points in a point file")
        pts = sample_points(
            sample["mask"], n_points=n_points, scheme=point_scheme, seed=image_seed(seed, rec.name)
        )
        h, w = sample["mask"].shape
    out: dict[str, Any] = {"points": pts, "shape": (h, w), "labels": None}
    counts = np.zeros(4, np.int64)
    out["counts"] = counts
    if not len(pts):
        return out
    key = raster_label_key(rec.image, pts, settings)
    path = cache_dir / "labels" / key[:2] / f"{key}.npy"
    if not path.is_file():
        sample = sample if sample is not None else dataset[index]
        labels = label_image(
            sample["image"],
            pts,
            n_classes=n_classes,
            pixels_per_segment=pixels_per_segment,
            fill_pixels_per_segment=list(fills),
            valid=sample.get("valid"),
            method=pseudo.method,
            seed=pseudo.seed,
            block_size=block_size,
            margin=margin,
            levels=levels_store(cache_dir, rec.image, settings),
            **pseudo.propagation_options(),
            **pseudo.method_options,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.save(f, labels)
    labels = np.load(path, mmap_mode="r")
    out["labels"] = path
    counts[0] = np.count_nonzero(labels != IGNORE_INDEX)
    if sample is not None and sample.get("mask") is not None:
        st = propagation_stats(labels, sample["mask"])
        counts[1:] = [st["n_valid"], st["n_evaluated"], st["n_correct"]]
    return out


@dataclass
class WindowTraining:
    """What :func:`prepare_window_training` built."""

    sources: list[WindowSource]
    mean: list[float]
    std: list[float]
    in_channels: int
    stats: dict[str, Any] = field(default_factory=dict)
    #: ``image path -> LevelsStore`` of the superpixel levels labelling used (and filled)
    levels: Callable[[Any], LevelsStore] | None = None
    #: the superpixel areas labelling used: ``(pixels_per_segment, fill areas)``
    areas: tuple[float, list[float]] = (0.0, [])


def prepare_window_training(
    dataset: RecordDataset,
    *,
    target: str,
    n_classes: int,
    pixels_per_segment: float,
    pseudo: PseudoLabelSettings,
    cache_dir: Path,
    points: Mapping[str, np.ndarray] | None = None,
    n_points: int = 50,
    point_scheme: str = "per_class",
    seed: int = 0,
    block_size: int = 1024,
    margin: int = 64,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
    client: Any = None,
    opener: Callable[[], RecordDataset] | None = None,
) -> WindowTraining:
    """Points and native pseudo-labels (cached) of a training split, one image at a time.

    Parameters
    ----------
    dataset : RecordDataset
        The training split.
    target : {"pseudo", "full"}
    n_classes : int
    pixels_per_segment : float
        Superpixel area in native pixels²; ``pseudo.fill_counts`` become coarser areas
        (``pixels_per_segment * n_segments / c``).
    pseudo : PseudoLabelSettings
        Method, seed, options, fill counts.
    cache_dir : Path
        ``labels/`` (per image and points) and ``levels/`` (per image) live here.
    points : mapping stem -> (N, 3), optional
        Points in source pixels; without it, ``n_points`` are simulated per mask
        (``point_scheme``, seeded by ``seed`` and the image name).
    block_size, margin : int
        Blocks of the pseudo-labelling.
    progress : callable, optional
        Wraps the loop over images (with ``client``: a progress bar when given).
    client : distributed.Client, optional
        Label the images as Dask tasks, one per image (:func:`label_window_image`), filling
        the same cache; an image that fails twice is named once the others are done
        (:class:`pointseg.distributed.TasksFailed`).
    opener : callable, optional
        With ``client``: opens ``dataset`` on a worker (picklable, e.g.
        ``functools.partial(cfg.open_dataset, "train")``).
    """
    n = len(dataset)
    if n == 0:
        raise ValueError(f"{dataset!r} is empty; check the split settings")
    fills = [pixels_per_segment * pseudo.n_segments / c for c in pseudo.fill_counts]
    settings = {
        "method": pseudo.method,
        "pixels_per_segment": float(pixels_per_segment),
        "fill": fills,
        "seed": pseudo.seed,
        "options": pseudo.method_options,
        "n_classes": int(n_classes),
        "block_size": int(block_size),
        "margin": int(margin),
        "bands": getattr(dataset, "bands", None),
        "remap": repr(getattr(dataset, "remap", None)),
        "loader": type(dataset).__name__,
        **pseudo.propagation_options(),
    }

    def levels_of(image: Any) -> LevelsStore:
        return levels_store(cache_dir, image, settings)

    label = functools.partial(
        label_window_image,
        settings=settings,
        cache_dir=cache_dir,
        pseudo=pseudo,
        n_classes=n_classes,
        pixels_per_segment=pixels_per_segment,
        fills=fills,
        n_points=n_points,
        point_scheme=point_scheme,
        seed=seed,
        block_size=block_size,
        margin=margin,
    )

    def given(name: str) -> np.ndarray | None:
        if points is None:
            return None
        return np.asarray(points.get(name, np.zeros((0, 3))), np.int64).reshape(-1, 3)

    names = [r.name for r in dataset.records]
    if target == "full":
        done = {}
        for i in range(n):
            h, w = dataset.image_size(i)
            done[i] = {"points": np.zeros((0, 3), np.int64), "shape": (h, w), "labels": None}
    elif client is None:
        indices: Iterable[int] = range(n)
        if progress is not None:
            indices = progress(indices)
        done = {i: label(dataset, i, given(names[i])) for i in indices}
    else:  # one Dask task per image; the workers open the dataset themselves
        from pointseg.distributed import map_images

        results = map_images(
            client,
            names,
            label,
            args=lambda i, name: (given(name),),
            opener=opener,
            progress=progress is not None,
        )
        done = dict(enumerate(results))
    sources: list[WindowSource] = []
    n_pts = total = 0
    counts = np.zeros(4, np.int64)  # labelled, mask pixels, pseudo-labelled, correct
    for i in range(n):
        r = done[i]
        h, w = r["shape"]
        src = WindowSource(i, names[i], h, w, r["points"])
        src.labels = r["labels"]
        sources.append(src)
        n_pts += len(r["points"])
        total += h * w
        counts += r.get("counts", 0)
    labelled, n_valid, n_evaluated, n_correct = (int(c) for c in counts)
    mean, std = window_band_statistics(dataset)
    stats: dict[str, Any] = {
        "n_images": float(n),
        "n_points": float(n_pts),
        "labelled_pixels": float(labelled if target == "pseudo" else total),
        "labelled_fraction": float(labelled / max(total, 1)) if target == "pseudo" else 1.0,
        "pixels_per_segment": float(pixels_per_segment),
    }
    if n_valid:
        stats["pseudo_coverage"] = n_evaluated / n_valid
        stats["pseudo_accuracy"] = n_correct / max(n_evaluated, 1)
    return WindowTraining(
        sources, mean, std, len(mean), stats, levels_of, (float(pixels_per_segment), fills)
    )
