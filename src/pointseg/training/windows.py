"""Training from large rasters and a point file: windows, block pseudo-labels, held-out points.

The rasters are never read whole, so memory does not grow with their size:

1. **Points** (map coordinates, any CRS; or pixel coordinates) are placed on the rasters and
   split by spatial cell: the points of a seeded share of the cells (``val_fraction`` of
   ``val_cell``-pixel cells) are held out for validation, the rest supervise.
2. **Pseudo-labels** are computed block by block (:func:`pointseg.labels.pseudo_label_raster`)
   into a label GeoTIFF per raster, cached by source file, points and settings. Nodata pixels
   are unlabelled, so they never reach the loss.
3. **Training windows** of ``image_size`` pixels are read from the source and the label raster
   on the fly (:class:`RasterWindowDataset`): a share ``point_fraction`` is placed so that it
   holds a random training point, the others are drawn uniformly among windows holding some
   pseudo-label. Each epoch draws ``windows_per_epoch`` new windows.
4. **Validation** scores the held-out points in fixed windows around them
   (:class:`PointWindowDataset`): dataset-level confusion matrix over those points.
5. **Band statistics** come from a decimated read of each raster (nodata excluded).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from pointseg.constants import IGNORE_INDEX
from pointseg.data.rasters import RasterDataset, RasterOptions
from pointseg.data.transforms import scale_points
from pointseg.io.raster import band_layout
from pointseg.io.windows import RasterWindows, read_errors
from pointseg.labels.raster import pseudo_label_raster, raster_label_key
from pointseg.labels.settings import PseudoLabelSettings
from pointseg.points.sampling import points_to_mask
from pointseg.training.data import BandMoments, flip_rotate

__all__ = [
    "DrawSampler",
    "PointWindowDataset",
    "RasterSource",
    "RasterTraining",
    "RasterWindowDataset",
    "prepare_raster_training",
    "raster_band_statistics",
    "raster_shape",
    "split_points_by_cell",
]

logger = logging.getLogger(__name__)

#: GDAL block cache while reading training windows (bytes); GDAL's default (5 % of RAM) would
#: let the cache grow with the rasters.
GDAL_CACHE_BYTES = 64 * 2**20


def split_points_by_cell(
    points: Mapping[str, np.ndarray], *, cell: int, fraction: float, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Hold out the points of a seeded share of spatial cells.

    Parameters
    ----------
    points : mapping of str to ndarray (N, 3)
        Points ``[x, y, class]`` per raster.
    cell : int
        Cell side in pixels; a cell's points all go to the same side.
    fraction : float
        Share of the (non-empty) cells held out, at least one cell; in (0, 1).
    seed : int

    Returns
    -------
    train, val : dict of str to ndarray (N, 3)
        Every raster of ``points`` appears in both (possibly with 0 points).

    Raises
    ------
    ValueError
        When all points fall in a single cell (nothing can be held out).
    """
    keys: list[tuple[str, int, int]] = []
    for name in sorted(points):
        pts = np.asarray(points[name], np.int64).reshape(-1, 3)
        cells = set(zip((pts[:, 1] // cell).tolist(), (pts[:, 0] // cell).tolist(), strict=True))
        keys.extend((name, r, c) for r, c in sorted(cells))
    if len(keys) < 2:
        raise ValueError(
            f"all points lie in {len(keys)} cell(s) of {cell} pixels, so none can be held out "
            "for validation; click over a wider area or lower the val_cell option"
        )
    rng = np.random.default_rng(seed)
    n_val = min(len(keys) - 1, max(1, round(fraction * len(keys))))
    held = {keys[i] for i in rng.permutation(len(keys))[:n_val]}
    train: dict[str, np.ndarray] = {}
    val: dict[str, np.ndarray] = {}
    for name in sorted(points):
        pts = np.asarray(points[name], np.int64).reshape(-1, 3)
        is_val = np.array(
            [(name, int(y) // cell, int(x) // cell) in held for x, y in pts[:, :2]], bool
        ).reshape(-1)
        train[name], val[name] = pts[~is_val], pts[is_val]
    return train, val


def raster_band_statistics(
    paths: Sequence[Path],
    indexes: Sequence[int],
    *,
    nodata: float | None = None,
    max_side: int = 1024,
) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation over rasters, from decimated reads.

    Each raster is read at most ``max_side`` pixels on its long side (nearest-neighbour
    decimation, overviews when the file has them), nodata excluded; the rasters are weighted
    by their pixel counts.
    """
    import rasterio
    from rasterio.enums import Resampling

    n = len(indexes)
    moments = BandMoments(n)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        for path in paths:
            with rasterio.open(path) as src:
                f = max(1.0, max(src.height, src.width) / max_side)
                shape = (max(1, round(src.height / f)), max(1, round(src.width / f)))
                reader = RasterWindows(src, path, list(indexes), nodata)
                data = src.read(
                    list(indexes), out_shape=(n, *shape), resampling=Resampling.nearest
                ).astype(np.float64)
                valid = np.isfinite(data).all(axis=0)
                if reader.use_masks:
                    masks = src.read_masks(
                        list(indexes), out_shape=(n, *shape), resampling=Resampling.nearest
                    )
                    valid &= masks.any(axis=0)
                if nodata is not None:
                    valid &= ~(data == nodata).all(axis=0)
                vals = data[:, valid]
                if vals.shape[1] == 0:
                    logger.warning("%s: no valid pixel found for band statistics", path)
                    continue
                moments.add(vals.T, weight=src.height * src.width / vals.shape[1])
    if moments.count == 0:
        raise ValueError(f"no valid pixels in {[str(p) for p in paths]}: is everything nodata?")
    return moments.result()


@dataclass
class RasterSource:
    """One raster of a raster training run."""

    name: str
    image: Path
    height: int
    width: int
    points: np.ndarray
    val_points: np.ndarray
    labels: Path | None = None
    reference: Path | None = None


class _Readers:
    """Open rasterio handles per process (DataLoader workers each open their own)."""

    def __init__(self, indexes: list[int], nodata: float | None) -> None:
        self.indexes = indexes
        self.nodata = nodata
        self._pid = -1
        self._open: dict[Path, Any] = {}

    def _get(self, path: Path) -> Any:
        import rasterio

        if self._pid != os.getpid():
            self._open = {}
            self._pid = os.getpid()
        if path not in self._open:
            try:
                self._open[path] = rasterio.open(path)
            except read_errors() as exc:
                raise ValueError(f"cannot read {path} as a raster: {exc}") from exc
        return self._open[path]

    def image(self, path: Path, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        src = self._get(path)
        return RasterWindows(src, path, self.indexes, self.nodata).region(rows, cols)

    def labels(self, path: Path, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Label window; beyond the raster it is padded with the ignore value."""
        from rasterio.windows import Window

        src = self._get(path)
        (r0, r1), (c0, c1) = rows, cols
        out = np.full((r1 - r0, c1 - c0), IGNORE_INDEX, np.uint8)
        y0, y1, x0, x1 = max(r0, 0), min(r1, src.height), max(c0, 0), min(c1, src.width)
        if y1 > y0 and x1 > x0:
            out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = src.read(
                1, window=Window(x0, y0, x1 - x0, y1 - y0)
            )
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"indexes": self.indexes, "nodata": self.nodata, "_pid": -1, "_open": {}}


def _origin(center: int, offset: int, size: int, window: int) -> int:
    """Window start so that ``center`` sits ``offset`` pixels in, kept inside the raster."""
    return int(min(max(center - offset, 0), max(size - window, 0)))


class _WindowReader(Dataset):
    """Shared reading and normalisation of windows."""

    def __init__(
        self,
        sources: Sequence[RasterSource],
        *,
        window: int,
        indexes: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        nodata: float | None,
        scale: float = 1.0,
    ) -> None:
        from pointseg.training.image_windows import native_side

        self.sources = list(sources)
        self.window = int(window)
        self.scale = float(scale)
        #: window side in raster pixels (``window / scale``)
        self.side = native_side(self.window, self.scale)
        self.readers = _Readers([int(i) for i in indexes], nodata)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    @staticmethod
    def _env() -> Any:
        """GDAL settings of every read: a capped block cache."""
        import rasterio

        return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)

    def _image(self, src: RasterSource, r0: int, c0: int) -> torch.Tensor:
        from pointseg.training.image_windows import resample_window

        data = self.readers.image(src.image, (r0, r0 + self.side), (c0, c0 + self.side))
        x = torch.from_numpy(data.astype(np.float32, copy=False))
        x = torch.where(torch.isfinite(x), x, self.mean)
        return resample_window((x - self.mean) / self.std, self.window)


class RasterWindowDataset(_WindowReader):
    """Random training windows of large rasters with their pseudo-labels.

    ``dataset[key]`` draws the window of the integer ``key`` (deterministic for a key; use
    :class:`DrawSampler` for fresh keys every epoch) and returns the sample dict
    ``{"image": float32 (C, W, W) normalised, "mask": int64 (W, W) 255 = ignore, "name": str}``.

    Parameters
    ----------
    sources : sequence of RasterSource
        Rasters with training points and a label raster (others are skipped).
    window : int
        Window side in pixels.
    indexes : sequence of int
        One-based bands to read.
    mean, std : sequence of float
        Per-band normalisation.
    nodata : float, optional
        Nodata override (see :class:`pointseg.data.rasters.RasterOptions`).
    point_fraction : float
        Share of windows that hold a random training point.
    scale : float
        Model pixels per raster pixel: windows cover ``window / scale`` raster pixels and are
        resampled to ``window`` (labels: nearest, ignore winning).
    length : int
        Windows per epoch (``len(dataset)``).
    seed : int
    augment : bool
        Random flips and 90 degree rotations.
    tries : int
        Uniform draws tried before falling back to a point window when none holds a label.
    """

    def __init__(
        self,
        sources: Sequence[RasterSource],
        *,
        window: int,
        indexes: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        nodata: float | None = None,
        point_fraction: float = 0.75,
        scale: float = 1.0,
        length: int = 256,
        seed: int = 0,
        augment: bool = True,
        tries: int = 8,
    ) -> None:
        usable = [s for s in sources if s.labels is not None and len(s.points)]
        if not usable:
            raise ValueError("no raster has training points: nothing to train on")
        super().__init__(
            usable, window=window, indexes=indexes, mean=mean, std=std, nodata=nodata, scale=scale
        )
        weights = np.array([len(s.points) for s in usable], np.float64)
        self.weights = weights / weights.sum()
        self.point_fraction = float(point_fraction)
        self.length = int(length)
        self.seed = int(seed)
        self.augment = augment
        self.tries = int(tries)

    def __len__(self) -> int:
        return self.length

    def draw(self, key: int) -> tuple[int, int, int, np.ndarray]:
        """Source index, window origin (row, col) and label window of ``key``."""
        rng = np.random.default_rng([self.seed, int(key)])
        s = int(rng.choice(len(self.sources), p=self.weights))
        src, w = self.sources[s], self.side
        label_path = cast(Path, src.labels)  # every usable source has one (see __init__)
        if rng.random() >= self.point_fraction:
            for _ in range(self.tries):
                r0 = int(rng.integers(0, max(src.height - w, 0) + 1))
                c0 = int(rng.integers(0, max(src.width - w, 0) + 1))
                labels = self.readers.labels(label_path, (r0, r0 + w), (c0, c0 + w))
                if (labels != IGNORE_INDEX).any():
                    return s, r0, c0, labels
        x, y, _ = src.points[int(rng.integers(len(src.points)))]
        r0 = _origin(int(y), int(rng.integers(w)), src.height, w)
        c0 = _origin(int(x), int(rng.integers(w)), src.width, w)
        return s, r0, c0, self.readers.labels(label_path, (r0, r0 + w), (c0, c0 + w))

    def __getitem__(self, key: int) -> dict[str, Any]:
        from pointseg.training.image_windows import resample_labels

        with self._env():
            s, r0, c0, labels = self.draw(key)
            src = self.sources[s]
            image = self._image(src, r0, c0)
        mask = torch.from_numpy(resample_labels(labels, self.window)).long()
        if self.augment:
            image, mask = flip_rotate(image, mask)
        return {"image": image, "mask": mask, "name": f"{src.name}@{r0},{c0}"}


class PointWindowDataset(_WindowReader):
    """Fixed windows around held-out points; each point is scored in exactly one window.

    Windows are placed point by point (in raster, then row order): a point not yet inside a
    window of its raster gets a window centred on it; a window's target holds the points
    assigned to it (255 elsewhere). Same sample dicts as :class:`RasterWindowDataset`. With
    more than ``max_windows`` windows, a seeded subset of them is kept (validation cost stays
    bounded however many points are held out).
    """

    def __init__(
        self,
        sources: Sequence[RasterSource],
        *,
        window: int,
        indexes: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        nodata: float | None = None,
        max_windows: int | None = None,
        seed: int = 0,
        scale: float = 1.0,
    ) -> None:
        super().__init__(
            sources, window=window, indexes=indexes, mean=mean, std=std, nodata=nodata, scale=scale
        )
        w = self.side
        self.items: list[tuple[int, int, int, np.ndarray]] = []
        for s, src in enumerate(self.sources):
            pts = np.asarray(src.val_points, np.int64).reshape(-1, 3)
            placed: list[list[Any]] = []
            for x, y, cls in pts[np.lexsort((pts[:, 0], pts[:, 1]))].tolist():
                for item in placed:
                    r0, c0 = item[0], item[1]
                    if r0 <= y < r0 + w and c0 <= x < c0 + w:
                        item[2].append((x - c0, y - r0, cls))
                        break
                else:
                    r0 = _origin(y, w // 2, src.height, w)
                    c0 = _origin(x, w // 2, src.width, w)
                    placed.append([r0, c0, [(x - c0, y - r0, cls)]])
            for r0, c0, local in placed:
                self.items.append((s, r0, c0, np.asarray(local, np.int64).reshape(-1, 3)))
        if not self.items:
            raise ValueError("no validation points: nothing to validate on")
        if max_windows is not None and len(self.items) > max_windows:
            keep = np.random.default_rng(seed).permutation(len(self.items))[:max_windows]
            dropped = len(self.items) - max_windows
            self.items = [self.items[i] for i in sorted(keep.tolist())]
            logger.info(
                "validation on %d of %d windows around held-out points (max_val_windows)",
                max_windows,
                max_windows + dropped,
            )

    @property
    def n_points(self) -> int:
        return int(sum(len(p) for *_, p in self.items))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, r0, c0, local = self.items[index]
        src = self.sources[s]
        with self._env():
            image = self._image(src, r0, c0)
        local = scale_points(local, from_shape=(self.side,) * 2, to_shape=(self.window,) * 2)
        mask = points_to_mask(local, shape=(self.window, self.window))
        return {
            "image": image,
            "mask": torch.from_numpy(mask).long(),
            "name": f"{src.name}@{r0},{c0}",
        }


class DrawSampler(Sampler[int]):
    """Yields ``length`` fresh random keys per epoch from a seeded generator.

    With ``world_size`` > 1 (distributed training) every rank draws the same seeded keys and
    keeps those at positions ``rank, rank + world_size, ...``: the ranks' keys are disjoint and
    together they hold the single-process draw of the epoch (padded with further draws to
    ``ceil(length / world_size)`` per rank, since every rank must run as many steps).
    """

    def __init__(self, length: int, seed: int = 0, *, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= int(rank) < int(world_size):
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.length = int(length)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __iter__(self) -> Iterator[int]:
        keys = torch.randint(0, 2**62, (self.length,), generator=self.generator)
        extra = len(self) * self.world_size - self.length
        if extra:  # ranks run as many steps: a few more keys, drawn after the epoch's own
            keys = torch.cat([keys, torch.randint(0, 2**62, (extra,), generator=self.generator)])
        yield from keys[self.rank :: self.world_size].tolist()

    def __len__(self) -> int:
        return -(-self.length // self.world_size)


@dataclass
class RasterTraining:
    """Everything :func:`prepare_raster_training` built."""

    sources: list[RasterSource]
    train: RasterWindowDataset
    val: PointWindowDataset
    indexes: list[int]
    mean: list[float]
    std: list[float]
    options: RasterOptions
    stats: dict[str, Any] = field(default_factory=dict)


def prepare_raster_training(
    dataset: RasterDataset,
    points: Mapping[str, np.ndarray],
    *,
    window: int,
    pseudo: PseudoLabelSettings,
    scale: float = 1.0,
    superpixel_area: float | None = None,
    split_seed: int = 0,
    cache_dir: Path,
    progress: bool = False,
) -> RasterTraining:
    """Split points, pseudo-label the rasters block-wise (cached) and build the datasets.

    Parameters
    ----------
    dataset : RasterDataset
        The rasters (all records are used) and :class:`RasterOptions`.
    points : mapping of str to ndarray (N, 3)
        Points in each raster's pixels (``read_geo_points`` / ``read_points``).
    window : int
        Training window side (the run's ``image_size``).
    pseudo : PseudoLabelSettings
        As for tile datasets, with counts per window: blocks get the same superpixel size
        (``(window / scale)**2 / n_segments`` raster pixels) unless ``superpixel_area``.
    scale : float
        Model pixels per raster pixel (windows cover ``window / scale`` raster pixels).
    superpixel_area : float, optional
        Superpixel area in raster pixels².
    split_seed : int
        Seed of the held-out cells.
    cache_dir : Path
        Folder of the cached label rasters.
    progress : bool
        Progress bars over the blocks.
    """
    opts = dataset.options
    records = {r.name: r for r in dataset.records}
    unknown = sorted(set(points) - set(records))
    if unknown:
        raise ValueError(f"points for unknown rasters {unknown}; the rasters are {sorted(records)}")
    n_pts = sum(len(p) for p in points.values())
    if n_pts == 0:
        raise ValueError("the point file places no point on the rasters: nothing to train on")
    from pointseg.training.image_windows import native_side

    side = native_side(window, scale)
    train_pts, val_pts = split_points_by_cell(
        points, cell=opts.val_cell or 2 * side, fraction=opts.val_fraction, seed=split_seed
    )
    sources: list[RasterSource] = []
    shapes = {name: raster_shape(rec.image) for name, rec in records.items()}
    for name, rec in records.items():
        height, width, _ = shapes[name]
        sources.append(
            RasterSource(
                name=name,
                image=rec.image,
                height=height,
                width=width,
                points=train_pts.get(name, np.zeros((0, 3), np.int64)),
                val_points=val_pts.get(name, np.zeros((0, 3), np.int64)),
                reference=rec.mask,
            )
        )
    # the bands every raster gives, chosen exactly as prediction chooses them (alpha bands are
    # masks, not bands, unless selected): the model and `predict --tiled` always agree
    picked = {
        name: band_layout(rec.image).select(dataset.bands, rec.image)
        for name, rec in records.items()
    }
    counts = {len(b) for b in picked.values()}
    if len(counts) > 1:
        raise ValueError(
            f"the rasters have different band counts {sorted(counts)}; select common bands "
            "with --bands"
        )
    indexes = [i + 1 for i in next(iter(picked.values()))]
    n_classes = dataset.class_map.n_classes
    area = side * side
    pixels_per_segment = float(superpixel_area) if superpixel_area else area / pseudo.n_segments
    fill = [pixels_per_segment * pseudo.n_segments / c for c in pseudo.fill_counts]
    band_list = [i - 1 for i in indexes]
    settings = {
        "method": pseudo.method,
        "pixels_per_segment": pixels_per_segment,
        "fill": fill,
        "bands": band_list,
        "nodata": opts.nodata,
        "block_size": opts.block_size,
        "margin": opts.margin,
        "seed": pseudo.seed,
        "n_classes": n_classes,
        "options": pseudo.method_options,
        **pseudo.propagation_options(),
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    labelled = valid = 0
    for src in sources:
        if not len(src.points):
            continue
        key = raster_label_key(src.image, src.points, settings)
        path = cache_dir / f"{src.name}-{key[:16]}.tif"
        if path.is_file():
            logger.info("pseudo-labels of %s from the cache: %s", src.name, path)
            info = _label_counts(path)
        else:
            info = pseudo_label_raster(
                src.image,
                src.points,
                path,
                n_classes=n_classes,
                pixels_per_segment=pixels_per_segment,
                bands=band_list,
                nodata=opts.nodata,
                method=pseudo.method,
                fill_pixels_per_segment=fill,
                block_size=opts.block_size,
                margin=opts.margin,
                seed=pseudo.seed,
                progress=progress,
                **pseudo.propagation_options(),
                **pseudo.method_options,
            )
            seconds += info["seconds"]
        labelled += info["labelled_pixels"]
        valid += info["valid_pixels"]
        src.labels = path
    stats: dict[str, Any] = {
        "n_images": float(len(sources)),
        "n_points": float(sum(len(s.points) for s in sources)),
        "n_val_points": float(sum(len(s.val_points) for s in sources)),
        "labelled_pixels": float(labelled),
        "labelled_fraction": labelled / max(valid, 1),
        "pseudo_label_seconds": round(seconds, 3),
    }
    refs = [(s.labels, s.reference) for s in sources if s.labels and s.reference]
    if refs:
        from pointseg.predict.evaluate import label_agreement

        m = label_agreement(refs, class_map=dataset.class_map, remap=dataset.remap)
        stats["pseudo_coverage"] = float(m[:, :-1].sum() / max(m.sum(), 1))
        stats["pseudo_accuracy"] = float(np.trace(m[:, :-1]) / max(m[:, :-1].sum(), 1))
    mean, std = raster_band_statistics([s.image for s in sources], indexes, nodata=opts.nodata)
    common = {"window": window, "indexes": indexes, "mean": mean, "std": std, "scale": scale}
    train = RasterWindowDataset(
        sources,
        **common,
        nodata=opts.nodata,
        point_fraction=opts.point_fraction,
        length=opts.windows_per_epoch,
        seed=pseudo.seed,
    )
    val = PointWindowDataset(
        sources, **common, nodata=opts.nodata, max_windows=opts.max_val_windows, seed=split_seed
    )
    stats["n_val_points_scored"] = float(val.n_points)
    logger.info(
        "rasters: %d training point(s), %d held out in %d window(s); %.2f%% of valid pixels "
        "pseudo-labelled",
        int(stats["n_points"]),
        val.n_points,
        len(val),
        100 * stats["labelled_fraction"],
    )
    return RasterTraining(sources, train, val, indexes, mean, std, opts, stats)


def raster_shape(path: Path) -> tuple[int, int, int]:
    """(height, width, band count) of a raster, with a clear error for unreadable files."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            return int(src.height), int(src.width), int(src.count)
    except read_errors() as exc:
        raise ValueError(
            f"cannot read {path} as a raster: {exc}; is it a complete GeoTIFF?"
        ) from exc


def _label_counts(path: Path) -> dict[str, int]:
    """Labelled and valid pixel counts of a cached label raster (from its tags)."""
    import rasterio

    with rasterio.open(path) as src:
        tags = src.tags()
    return {k: int(tags.get(k, 0)) for k in ("labelled_pixels", "valid_pixels")}
