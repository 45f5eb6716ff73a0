"""Pseudo-labels for a raster of any size, block by block, written as a label GeoTIFF.

:func:`pseudo_label_raster` spreads query points over superpixels computed per block (plus a
margin of context), so memory depends on the block size and never on the raster; the result
is a uint8 GeoTIFF on the source grid that can be opened in a GIS and is read back in windows
while training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.constants import IGNORE_INDEX
from pointseg.io.atomic import atomic_write
from pointseg.io.windows import RasterWindows, read_errors
from pointseg.labels.propagation import PSEUDO_LABEL_VERSION
from pointseg.labels.settings import DEFAULT_REGION_FACTOR, PseudoLabelSettings

__all__ = [
    "label_block",
    "label_block_size",
    "label_blocks",
    "pseudo_label_raster",
    "raster_label_key",
]

logger = logging.getLogger(__name__)

#: Internal tile of the written label rasters.
_TILE = 256


def label_block_size(block_size: int) -> int:
    """The block side actually used for ``block_size``: a multiple of the 256 px output tile."""
    return max(_TILE, -(-int(block_size) // _TILE) * _TILE)


def label_block(
    reader: RasterWindows,
    points: np.ndarray,
    core: tuple[int, int, int, int],
    *,
    margin: int,
    n_classes: int,
    pixels_per_segment: float,
    fill_pixels_per_segment: Sequence[float] = (),
    method: str = "hers",
    seed: int = 0,
    segments_out: list[np.ndarray] | None = None,
    levels_cache: Any = None,
    always_segment: bool = False,
    propagation: str = "majority",
    max_region_factor: float = DEFAULT_REGION_FACTOR,
    **method_options: Any,
) -> tuple[np.ndarray, int, bool]:
    """The pseudo-labels of one block of a raster (what :func:`pseudo_label_raster` writes).

    The block ``core = (r0, r1, c0, c1)`` is read with ``margin`` pixels of context, segmented
    into superpixels of ``pixels_per_segment`` pixels (coarser fill levels as given) and
    labelled by majority vote of the points inside the read window; nodata is unlabelled.

    Parameters
    ----------
    reader : RasterWindows
        The raster's window reader (bands and nodata chosen).
    points : np.ndarray, shape (N, 3)
        x, y, class of every point of the raster, in its pixels.
    segments_out : list, optional
        Receives the block's finest superpixels (core part) when the block is segmented.
    levels_cache : mutable mapping, optional
        Superpixels of blocks already segmented (they do not depend on the points): an
        interactive tool passes one so that a click only re-runs the vote.
    always_segment : bool, default False
        Segment the block even when it holds no point (its labels are then all ignore), so
        that ``segments_out`` receives its superpixels (click proposals need them).
    propagation, max_region_factor
        See :class:`~pointseg.labels.settings.PseudoLabelSettings` (``point_aware`` regions
        are capped at ``max_region_factor * pixels_per_segment``).

    Returns
    -------
    labels : np.ndarray, shape (r1 - r0, c1 - c0), uint8
    valid : int
        Pixels of the block that are not nodata.
    segmented : bool
        Whether the block held points (and was segmented).
    """
    r0, r1, c0, c1 = core
    height, width = reader.height, reader.width
    er0, ec0 = max(0, r0 - margin), max(0, c0 - margin)
    er1, ec1 = min(height, r1 + margin), min(width, c1 + margin)
    pts = np.asarray(points, np.int64).reshape(-1, 3)
    inside = (pts[:, 0] >= ec0) & (pts[:, 0] < ec1) & (pts[:, 1] >= er0) & (pts[:, 1] < er1)
    invalid = reader.invalid((r0, r1), (c0, c1))
    valid = int((~invalid).sum()) if invalid is not None else (r1 - r0) * (c1 - c0)
    if not inside.any() and not always_segment:
        labels = np.full((r1 - r0, c1 - c0), IGNORE_INDEX, np.uint8)
    else:
        local = pts[inside] - np.array([ec0, er0, 0])
        area = (er1 - er0) * (ec1 - ec0)
        # the settings sort the fill counts and the options: one key for equal settings
        settings = PseudoLabelSettings(
            method=method,
            seed=seed,
            options=method_options,
            propagation=propagation,
            max_region_factor=max_region_factor,
        ).for_area(area, pixels_per_segment, fill_pixels_per_segment)
        key = (er0, er1, ec0, ec1, settings)
        levels = None if levels_cache is None else levels_cache.get(key)
        if levels is None:
            image = np.moveaxis(reader.region((er0, er1), (ec0, ec1)), 0, -1)
            if reader.floating and not np.isfinite(image).all():
                image = np.where(np.isfinite(image), image, 0).astype(image.dtype)
            levels = settings.segments(image)
            if levels_cache is not None:
                levels_cache[key] = levels
        full = settings.propagate(levels, local, n_classes=n_classes)
        labels = np.ascontiguousarray(full[r0 - er0 : r1 - er0, c0 - ec0 : c1 - ec0])
        if segments_out is not None:
            segments_out.append(levels[0][r0 - er0 : r1 - er0, c0 - ec0 : c1 - ec0])
    if invalid is not None:
        labels[invalid] = IGNORE_INDEX
    return labels, valid, bool(inside.any())


def label_blocks(
    reader: Any,
    points: np.ndarray,
    *,
    block_size: int,
    margin: int,
    n_classes: int,
    pixels_per_segment: float,
    fill_pixels_per_segment: Sequence[float] = (),
    method: str = "hers",
    seed: int = 0,
    levels_cache: Any = None,
    propagation: str = "majority",
    max_region_factor: float = DEFAULT_REGION_FACTOR,
    segments_out: list[np.ndarray] | None = None,
    always_segment: bool = False,
    **method_options: Any,
) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray, int, bool]]:
    """:func:`label_block` over the grid of ``block_size`` blocks (rounded up to 256), row-major.

    ``segments_out`` and ``always_segment`` are :func:`label_block`'s: with both, the list
    holds the superpixels of the block just yielded as its last item.

    Yields
    ------
    core : (r0, r1, c0, c1)
    labels, valid, segmented
        As :func:`label_block` returns them.
    """
    block = label_block_size(block_size)
    for r0 in range(0, reader.height, block):
        for c0 in range(0, reader.width, block):
            core = (r0, min(r0 + block, reader.height), c0, min(c0 + block, reader.width))
            yield (
                core,
                *label_block(
                    reader,
                    points,
                    core,
                    margin=margin,
                    n_classes=n_classes,
                    pixels_per_segment=pixels_per_segment,
                    fill_pixels_per_segment=fill_pixels_per_segment,
                    method=method,
                    seed=seed,
                    levels_cache=levels_cache,
                    propagation=propagation,
                    max_region_factor=max_region_factor,
                    segments_out=segments_out,
                    always_segment=always_segment,
                    **method_options,
                ),
            )


def raster_label_key(
    source: str | os.PathLike[str], points: np.ndarray, settings: dict[str, Any]
) -> str:
    """Cache key of a label raster: the source file (path, size, mtime), points and settings.

    Returns
    -------
    str
        64 hex digits (sha256).
    """
    path = Path(source).resolve()
    st = path.stat()
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.int64).reshape(-1, 3))
    h = hashlib.sha256()
    head = f"pointseg.raster-labels.{PSEUDO_LABEL_VERSION}\0{path}\0{st.st_size}\0{st.st_mtime_ns}"
    h.update(head.encode())
    h.update(pts.tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def pseudo_label_raster(
    source: str | os.PathLike[str],
    points: np.ndarray,
    out: str | os.PathLike[str],
    *,
    n_classes: int,
    pixels_per_segment: float,
    bands: Sequence[int] | None = None,
    nodata: float | None = None,
    method: str = "hers",
    fill_pixels_per_segment: Sequence[float] = (),
    block_size: int = 1024,
    margin: int = 64,
    seed: int = 0,
    progress: bool = False,
    **method_options: Any,
) -> dict[str, Any]:
    """Write the superpixel pseudo-labels of a raster's query points as a label GeoTIFF.

    The raster is cut into a grid of ``block_size`` blocks. Each block holding a point within
    ``margin`` pixels is read with that margin of context, segmented into
    ``area / pixels_per_segment`` superpixels (the same superpixel size in every block) and
    labelled by majority vote of the points in it (:func:`pointseg.labels.make_pseudo_label`);
    the block's core is written. Blocks without points are written unlabelled. Nodata pixels
    (GDAL masks of the bands used, or ``nodata``) are always unlabelled.

    Parameters
    ----------
    source : path
        Raster readable by rasterio, shape (bands, H, W); only read in windows.
    points : np.ndarray, shape (N, 3), int
        ``x`` (column), ``y`` (row), class of each point in the raster's pixels.
    out : path
        Label raster to write: (H, W) uint8, ``IGNORE_INDEX`` (255) = unlabelled and nodata,
        the source's CRS and transform, 256-pixel tiles, deflate; written atomically.
    n_classes : int
        Number of classes.
    pixels_per_segment : float
        Mean superpixel area in pixels (e.g. ``256**2 / 300`` for 300 superpixels per
        256-pixel window).
    bands : sequence of int, optional
        Zero-based bands to segment on; default all.
    nodata : float, optional
        Pixels whose bands all equal it are nodata (instead of the file's nodata value).
    method : str
        Superpixel method (:func:`pointseg.superpixels.list_superpixel_methods`).
    fill_pixels_per_segment : sequence of float
        Coarser superpixel sizes filling what finer levels leave unlabelled (multi-scale).
    block_size, margin : int
        Block side (rounded up to a multiple of 256, the output tile) and context margin, in
        pixels.
    seed : int
        Seed of the superpixel method.
    progress : bool
        Show a tqdm bar over the blocks.
    **method_options
        Options of the superpixel method.

    Returns
    -------
    dict
        ``out``, ``shape`` (H, W), ``blocks`` (blocks segmented), ``grid_blocks`` (all
        blocks), ``points``, ``labelled_pixels``, ``valid_pixels`` (not nodata), ``seconds``,
        ``block_size``, ``margin``.
    """
    import rasterio
    from rasterio.windows import Window

    t0 = time.perf_counter()
    source, out = Path(source), Path(out)
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 3)
    if not source.is_file():
        raise FileNotFoundError(f"raster {source} does not exist")
    if not pixels_per_segment > 0:
        raise ValueError(f"pixels_per_segment must be > 0, got {pixels_per_segment}")
    if block_size < 16 or margin < 0:
        raise ValueError(f"block_size must be >= 16 and margin >= 0, got {block_size}, {margin}")
    fills = sorted((float(f) for f in fill_pixels_per_segment), reverse=False)
    if any(f <= pixels_per_segment for f in fills):
        raise ValueError(
            f"fill superpixel sizes {fills} must be coarser (larger) than {pixels_per_segment}"
        )
    n_blocks = n_labelled = n_valid = 0
    env = rasterio.Env(GDAL_CACHEMAX=64 * 2**20, GDAL_TIFF_INTERNAL_MASK=True)
    with env:
        try:
            src = rasterio.open(source)
        except read_errors() as exc:
            raise ValueError(f"cannot read {source} as a raster: {exc}") from exc
        with src:
            count = src.count
            idx = list(range(1, count + 1)) if bands is None else [int(b) + 1 for b in bands]
            bad = [i - 1 for i in idx if not 1 <= i <= count]
            if bad:
                raise ValueError(
                    f"{source} has {count} band(s); band indices {bad} are out of range "
                    f"(0..{count - 1})"
                )
            height, width = src.height, src.width
            if len(pts) and (
                pts[:, 0].min() < 0
                or pts[:, 1].min() < 0
                or pts[:, 0].max() >= width
                or pts[:, 1].max() >= height
            ):
                raise ValueError(f"points lie outside {source} ({width}x{height} pixels)")
            reader = RasterWindows(src, source, idx, nodata)
            profile = {
                "driver": "GTiff",
                "height": height,
                "width": width,
                "count": 1,
                "dtype": "uint8",
                "crs": src.crs,
                "transform": src.transform,
                "nodata": IGNORE_INDEX,
                "compress": "deflate",
                "tiled": True,
                "blockxsize": _TILE,
                "blockysize": _TILE,
                "BIGTIFF": "IF_SAFER",
            }
            block = label_block_size(block_size)
            n_grid = -(-height // block) * -(-width // block)
            items: Any = label_blocks(
                reader,
                pts,
                block_size=block,
                margin=margin,
                n_classes=n_classes,
                pixels_per_segment=pixels_per_segment,
                fill_pixels_per_segment=fills,
                method=method,
                seed=seed,
                **method_options,
            )
            if progress:
                from tqdm.auto import tqdm

                items = tqdm(items, total=n_grid, desc=f"pseudo-labels {source.name}", unit="block")
            with atomic_write(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
                for (r0, r1, c0, c1), labels, valid, segmented in items:
                    n_valid += valid
                    n_blocks += segmented
                    n_labelled += int((labels != IGNORE_INDEX).sum())
                    dst.write(labels, 1, window=Window(c0, r0, c1 - c0, r1 - r0))
                dst.update_tags(labelled_pixels=n_labelled, valid_pixels=n_valid)
    seconds = time.perf_counter() - t0
    logger.info(
        "pseudo-labelled %s: %d point(s), %d of %d block(s) segmented, %.2f%% of valid pixels "
        "labelled, %.1f s",
        source.name,
        len(pts),
        n_blocks,
        n_grid,
        100 * n_labelled / max(n_valid, 1),
        seconds,
    )
    return {
        "out": str(out),
        "shape": (height, width),
        "blocks": n_blocks,
        "points": len(pts),
        "labelled_pixels": n_labelled,
        "valid_pixels": n_valid,
        "seconds": round(seconds, 3),
        "grid_blocks": n_grid,
        "block_size": block,
        "margin": margin,
    }
