"""Tiles and previews of large rasters (the ``rasters`` dataset), read in windows, never whole.

Training from rasters holds out the points of a seeded share of spatial cells for validation
and pseudo-labels the others block by block (:func:`pointseg.labels.label_block`). The preview
does exactly that: the same cell split of the session's points, the same block grid, the same
block function, so what the page shows is what ``pointseg train --dataset rasters`` learns from.
Blocks are computed when a tile in view needs them; their superpixels are cached (they do not
depend on the clicks), so a click only re-runs the vote of its block.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from pointseg.annotate.preview import (
    LRU,
    TILE,
    boundaries_png,
    encode_png,
    labels_png,
    levels_for,
)
from pointseg.constants import IGNORE_INDEX
from pointseg.io.raster import band_layout
from pointseg.io.windows import RasterWindows
from pointseg.labels.raster import label_block, label_block_size

__all__ = ["RasterPreviewEngine", "tile_sample"]


def _gdal_env() -> Any:
    """GDAL's block cache capped as in training (64 MiB): memory never follows the raster."""
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=64 * 2**20)


def tile_sample(
    rect: tuple[int, int, int, int, int], br0: int, bc0: int, shape: tuple[int, ...]
) -> tuple[tuple, tuple] | None:
    """Where a display tile samples a block: (block index, tile index), or None.

    ``rect`` is the tile's ``(r0, r1, c0, c1, stride)`` in raster pixels, the block starts at
    ``(br0, bc0)`` and has ``shape[-2:]``; the tile takes every ``stride``-th pixel. The two
    ``np.ix_`` indexes read the block's part and write it into the tile.
    """
    r0, r1, c0, c1, s = rect
    h, w = shape[-2:]
    rows = np.arange(max(r0, br0), min(r1, br0 + h))
    cols = np.arange(max(c0, bc0), min(c1, bc0 + w))
    rows, cols = rows[(rows - r0) % s == 0], cols[(cols - c0) % s == 0]
    if not len(rows) or not len(cols):
        return None
    return np.ix_(rows - br0, cols - bc0), np.ix_((rows - r0) // s, (cols - c0) // s)


class _Levels(LRU):
    """The superpixel cache handed to :func:`label_block` (a bounded mapping)."""

    def get(self, key: Any, load: Any = None) -> Any:  # type: ignore[override]
        if load is None:
            with self._lock:
                if key in self._data:
                    self._data.move_to_end(key)
                return self._data.get(key)
        return super().get(key, load)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().get(key, lambda: value)


class RasterPreviewEngine:
    """Windowed tiles, block-wise previews and boundaries of a session on large rasters.

    Parameters
    ----------
    session : AnnotationSession
    dataset : RasterDataset
        Its options (block size, margin, validation cells, nodata) and bands.
    settings : PseudoLabelSettings
        Superpixel settings; ``n_segments`` counts superpixels per training window.
    window : int
        The training window side (``image_size``).
    split_seed : int
        Seed of the held-out cells.
    """

    #: How the page draws previews: one image ("single") or tiles ("tiled").
    mode = "tiled"

    def __init__(
        self, session: Any, dataset: Any, settings: Any, *, window: int, split_seed: int = 0
    ) -> None:
        self.session = session
        self.settings = settings
        opts = dataset.options
        area = float(window) * window
        self.pixels_per_segment = area / settings.n_segments
        self.fills = [area / c for c in settings.fill_counts]
        self.block = label_block_size(opts.block_size)
        self.margin = opts.margin
        self.nodata = opts.nodata
        self.cell = opts.val_cell or 2 * window
        self.val_fraction = opts.val_fraction
        self.split_seed = split_seed
        self.indexes = {
            e.name: [i + 1 for i in band_layout(e.path).select(dataset.bands, e.path)]
            for e in session.images
        }
        self._readers: dict[str, tuple[Any, RasterWindows]] = {}
        self._lock = threading.Lock()
        self._stretch: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        self._levels = _Levels(8)  # superpixels of segmented blocks (~10 MB each)
        self._blocks = LRU(24)  # (name, r0, c0, points) -> (labels, segments)
        self._split = LRU(4)  # version -> training points per raster

    # ----------------------------------------------------------------------------- reading

    def _reader(self, name: str) -> tuple[Any, RasterWindows]:
        with self._lock:
            if name not in self._readers:
                import rasterio

                entry = self.session.by_name[name]
                src = rasterio.open(entry.path)
                reader = RasterWindows(src, entry.path, self.indexes[name], self.nodata)
                self._readers[name] = (src, reader)
            return self._readers[name]

    def _rect(self, name: str, level: int, tx: int, ty: int) -> tuple[int, int, int, int, int]:
        entry = self.session.by_name[name]
        n_levels = levels_for(entry.width, entry.height)
        if not 0 <= level < n_levels:
            raise IndexError(f"level {level} is outside 0..{n_levels - 1}")
        s = 2**level
        r0, c0 = ty * TILE * s, tx * TILE * s
        if tx < 0 or ty < 0 or r0 >= entry.height or c0 >= entry.width:
            raise IndexError(f"tile ({tx}, {ty}) is outside level {level}")
        return r0, min(r0 + TILE * s, entry.height), c0, min(c0 + TILE * s, entry.width), s

    def tile(self, name: str, level: int, tx: int, ty: int) -> bytes:
        """PNG of a display tile, read at the level's resolution from the file."""
        from rasterio.windows import Window

        r0, r1, c0, c1, s = self._rect(name, level, tx, ty)
        src, _ = self._reader(name)
        bands = self._display_bands(name)
        shape = (3, -(-(r1 - r0) // s), -(-(c1 - c0) // s))
        with self._lock, _gdal_env():  # one handle per raster: reads are serialised
            data = src.read(bands, window=Window(c0, r0, c1 - c0, r1 - r0), out_shape=shape)
        rgb = np.moveaxis(data, 0, -1)
        if rgb.dtype != np.uint8:
            lo, hi = self._stretch_of(name)
            f = (rgb.astype(np.float32) - lo) / np.maximum(hi - lo, 1e-6)
            rgb = (np.clip(f, 0, 1) * 255).astype(np.uint8)
        return encode_png(rgb)

    def _display_bands(self, name: str) -> list[int]:
        """The three bands shown: the first three used, or the first one as grey."""
        bands = self.indexes[name][:3]
        return bands if len(bands) == 3 else [bands[0]] * 3

    def _stretch_of(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """2-98 % per display band from a decimated read (once per raster)."""
        if name not in self._stretch:
            src, _ = self._reader(name)
            bands = self._display_bands(name)
            scale = max(1, max(src.height, src.width) // 512)
            shape = (3, max(1, src.height // scale), max(1, src.width // scale))
            with self._lock, _gdal_env():
                small = src.read(bands, out_shape=shape).reshape(3, -1).astype(np.float32)
            self._stretch[name] = (
                np.percentile(small, 2, axis=1),
                np.percentile(small, 98, axis=1),
            )
        return self._stretch[name]  # type: ignore[return-value]

    # ----------------------------------------------------------------------------- labels

    def training_points(self) -> dict[str, np.ndarray]:
        """The points training pseudo-labels from: those outside the held-out cells."""
        from pointseg.training.windows import split_points_by_cell

        with self.session._lock:
            version = self.session.version
            points = {e.name: self.session.point_array(e.name) for e in self.session.images}

        def load() -> dict[str, np.ndarray]:
            clicked = {k: v for k, v in points.items() if len(v)}
            try:
                train, _ = split_points_by_cell(
                    clicked, cell=self.cell, fraction=self.val_fraction, seed=self.split_seed
                )
            except ValueError:  # clicks in one cell: training would ask for more, show them all
                return clicked
            return train

        return self._split.get(version, load)

    def held_out(self, name: str) -> set[tuple[int, int]]:
        """Pixels of the points held out for validation (drawn differently by the page)."""
        train = {tuple(p[:2]) for p in self.training_points().get(name, np.zeros((0, 3)))}
        return {tuple(p[:2]) for p in self.session.point_array(name)} - train

    def block_labels(
        self, name: str, r0: int, c0: int, *, segment: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (and finest superpixels) of the block at ``(r0, c0)`` for the current points.

        ``segment``: segment the block even without points (the superpixels are then given).
        """
        entry = self.session.by_name[name]
        pts = self.training_points().get(name, np.zeros((0, 3), np.int64))
        r1, c1 = min(r0 + self.block, entry.height), min(c0 + self.block, entry.width)
        er0, ec0 = max(0, r0 - self.margin), max(0, c0 - self.margin)
        er1, ec1 = r1 + self.margin, c1 + self.margin
        inside = (pts[:, 0] >= ec0) & (pts[:, 0] < ec1) & (pts[:, 1] >= er0) & (pts[:, 1] < er1)
        near = pts[inside]

        def load() -> tuple[np.ndarray, np.ndarray | None]:
            _, reader = self._reader(name)
            segments: list[np.ndarray] = []
            with self._lock, _gdal_env():
                labels, _, _ = label_block(
                    reader,
                    near,
                    (r0, r1, c0, c1),
                    margin=self.margin,
                    n_classes=len(self.session.class_names),
                    pixels_per_segment=self.pixels_per_segment,
                    fill_pixels_per_segment=self.fills,
                    method=self.settings.method,
                    seed=self.settings.seed,
                    segments_out=segments,
                    levels_cache=self._levels,
                    always_segment=segment,
                    **self.settings.propagation_options(),
                    **self.settings.method_options,
                )
            return labels, (segments[0] if segments else None)

        return self._blocks.get((name, r0, c0, near.tobytes(), segment and not len(near)), load)

    def _compose(self, name: str, level: int, tx: int, ty: int, boundaries: bool) -> np.ndarray:
        """One tile of labels (or of boundary flags) sampled from the blocks it covers."""
        rect = r0, r1, c0, c1, s = self._rect(name, level, tx, ty)
        out = np.full((-(-(r1 - r0) // s), -(-(c1 - c0) // s)), IGNORE_INDEX, np.uint8)
        pts = self.training_points().get(name, np.zeros((0, 3), np.int64))
        if not len(pts):
            return out
        b = self.block
        for br0 in range(r0 // b * b, r1, b):
            for bc0 in range(c0 // b * b, c1, b):
                m = self.margin
                near = (
                    (pts[:, 0] >= bc0 - m)
                    & (pts[:, 0] < bc0 + b + m)
                    & (pts[:, 1] >= br0 - m)
                    & (pts[:, 1] < br0 + b + m)
                )
                if not near.any():
                    continue  # a block without points is unlabelled
                labels, segments = self.block_labels(name, br0, bc0)
                where = tile_sample(rect, br0, bc0, labels.shape)
                if where is None:
                    continue
                src, dst = where
                if boundaries:
                    if segments is None:
                        continue
                    from pointseg.superpixels.evaluation import boundary_map

                    part = boundary_map(segments)[src]
                    values = np.where(part, 1, IGNORE_INDEX).astype(np.uint8)
                else:
                    values = labels[src]
                out[dst] = values
        return out

    def overlay_tile(self, name: str, level: int, tx: int, ty: int) -> bytes:
        return labels_png(self._compose(name, level, tx, ty, False), self.session.class_colors)

    def boundaries_tile(self, name: str, level: int, tx: int, ty: int) -> bytes:
        return boundaries_png(self._compose(name, level, tx, ty, True) == 1)

    def warm(self, name: str) -> None:
        """Nothing to prepare: blocks are computed when a tile needs them."""
