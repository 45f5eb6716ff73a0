"""Tiled prediction over arbitrarily large GeoTIFFs in bounded memory.

:func:`predict_raster` runs a segmentation model over a raster of any size, reading the source
only in windows and writing the class map block by block, so that memory does not grow with
the raster.

Scheme
------
Tiles
    One global grid of square tiles of ``tile_size`` source pixels (at ``scale=1``) and stride
    ``tile_size - overlap``. Tile ``k`` along an axis starts at ``k * stride - overlap // 2``, so
    that the raster border is not on the tile border: pixels outside the raster are filled by
    reflection (``dcb|abcd|cba``) of the raster itself, and the tile is cropped back.
Blending
    Each tile's softmax probabilities are multiplied by a separable window ``w(y) * w(x)``:
    1 in the middle and a raised-cosine taper over the ``overlap`` pixels at each side, never 0
    (its first value is ``sin^2(pi / (4 * overlap))``). The blended probabilities are
    ``sum(w * p) / sum(w)`` over the tiles that cover a pixel, so a model that predicts the same
    class everywhere gives a constant map and a model whose output depends only on the pixel
    gives the same map for every tile size.
Blocks
    The output is processed in square blocks of ``block_size`` pixels (rounded up to a multiple
    of the 256-pixel output tile, so no output tile is written twice), row by row, each written
    as soon as it is finished. Every tile is evaluated exactly once, and its weighted
    probabilities are added in row-major tile order whatever the blocks: a block's accumulator
    also covers the rows below it reached by the tiles that start in it, and those partial sums
    are handed to the next block row through an unnamed scratch file beside the output
    (``num_classes * tile_size * width * 4`` bytes of disk, no memory); the parts of tiles that
    reach into the next block of the same row are kept in memory until it is done. The tiles
    go through the model in one stream of batches of ``batch_size`` whatever the blocks, so
    the output does not depend on ``block_size``: with ``batch_size=1`` it is
    bit-identical; with larger batches a tile shares its batch with other tiles at other block
    sizes, and CPU convolution kernels can then differ in the last bit (in tests: at most one
    uint8 step of probability, at about one pixel in a million).
Memory
    About ``block_size * (block_size + tile_size) * num_classes * 4`` bytes for the block
    accumulator, up to twice ``block_size * tile_size * num_classes * 4`` for the kept tile
    parts, ``batch_size`` tiles of input (source dtype and float32) and of probabilities, and
    the model's activations, plus a GDAL block cache capped at 16 MiB: independent of the
    raster size. Freed heap memory is handed back to the OS between batches (glibc
    ``malloc_trim``), so fragmentation does not make the peak creep up with the raster size.
Nodata
    A pixel is nodata when GDAL's masks of all the bands used say so (the dataset's internal
    mask or alpha band, or the per-band nodata value), or, with ``nodata=VALUE``, when every band
    used equals ``VALUE`` (an internal mask or alpha band is still honoured). Nodata pixels are
    fed to the model as they are (non-finite values are replaced by the band mean) and written
    as :data:`NODATA_LABEL`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import itertools
import logging
import math
import numbers
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointseg.io.atomic import (
    atomic_write,
    remove_stale_temp_files,
    scratch_file,
    scratch_path,
)
from pointseg.io.raster import BandLayout
from pointseg.io.windows import RasterWindows, read_errors, reflect_indices
from pointseg.models.registry import ModelSpec
from pointseg.predict.inference import band_mismatch, resolve_bands, resolve_device

__all__ = [
    "GDAL_CACHE_MB",
    "NODATA_LABEL",
    "OUTPUT_BLOCK",
    "PREDICT_TILE",
    "blend_window",
    "default_overlap",
    "predict_array",
    "predict_raster",
    "predict_tile",
]

logger = logging.getLogger(__name__)

#: Value of nodata pixels in the class map (so at most 255 classes).
NODATA_LABEL = 255
#: Internal tile size of the written GeoTIFFs; blocks are multiples of it.
OUTPUT_BLOCK = 256
#: GDAL block cache while predicting (MiB); GDAL's default (5 % of RAM) would grow with the raster.
GDAL_CACHE_MB = 16


def default_overlap(tile_size: int) -> int:
    """Default overlap between neighbouring tiles: ``tile_size // 8`` (64 pixels for 512).

    The receptive field of an arbitrary ``nn.Module`` cannot be known, so the overlap is a fixed
    fraction of the tile: wide enough that the pixels nearest a tile border (where zero padding
    inside the network degrades predictions) get little weight, and cheap: each pixel costs
    ``(8 / 7) ** 2 ≈ 1.31`` tile evaluations.
    """
    return tile_size // 8


#: Default prediction tile of window-trained models, in model pixels: with their overlap of
#: ``window // 8`` (32 px for 256-px windows) 88 % of each tile's pixels are new, and on CPU a
#: 512-px tile runs faster per pixel than a 1024-px one (benchmarks/predict_tiles.py).
PREDICT_TILE = 512


def predict_tile(
    window: int | None, shape: tuple[int, int] | None = None, scale: float = 1.0
) -> int:
    """Default tile side (model pixels) for a model trained on ``window``-pixel windows.

    :data:`PREDICT_TILE`, at least the window, and no larger than the image at ``scale``
    (plus the overlap, rounded up to 32) so that a small image is one tile, not mostly
    reflection.
    """
    tile = max(PREDICT_TILE, int(window or 0))
    if shape is not None:
        extent = max(shape) * float(scale) + default_overlap(int(window or tile))
        tile = min(tile, max(int(window or 0), 32 * math.ceil(extent / 32)))
    return max(tile, 1)


def blend_window(size: int, overlap: int) -> np.ndarray:
    """One-dimensional blending weights of a tile.

    Parameters
    ----------
    size : int
        Tile extent in pixels.
    overlap : int
        Width of the taper at each end (0: no taper).

    Returns
    -------
    ndarray of float32, shape (size,)
        ``sin^2(pi/2 * (i + 0.5) / overlap)`` over the first ``overlap`` pixels, mirrored at the
        end, 1 in between; strictly positive. Where two tiles overlap by exactly ``overlap``
        pixels, the rising and falling tapers sum to 1.
    """
    i = np.arange(size, dtype=np.float64)
    if overlap <= 0:
        return np.ones(size, np.float32)
    ramp = np.sin(0.5 * np.pi * np.minimum((i + 0.5) / overlap, 1.0)) ** 2
    return np.minimum(ramp, ramp[::-1]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the global tile grid along one axis


@dataclass(frozen=True)
class _Axis:
    """Tiles of ``tile`` pixels every ``stride`` pixels from ``offset`` over ``length`` pixels."""

    length: int
    tile: int
    stride: int
    offset: int
    count: int

    @classmethod
    def make(cls, length: int, tile: int, overlap: int) -> _Axis:
        stride = tile - overlap
        offset = -(overlap // 2)
        count = 1 + max(0, -(-(length - offset - tile) // stride))
        return cls(length, tile, stride, offset, count)

    def origin(self, k: int) -> int:
        return k * self.stride + self.offset

    def tiles_for(self, a: int, b: int) -> range:
        """Indices of the tiles that intersect pixels ``[a, b)``."""
        lo = max(0, (a - self.offset - self.tile) // self.stride + 1)
        hi = min(self.count - 1, (b - self.offset - 1) // self.stride)
        return range(lo, hi + 1)

    def weight_sum(self, a: int, b: int, window: np.ndarray) -> np.ndarray:
        """Sum of the blending weights of the tiles covering each pixel of ``[a, b)``."""
        out = np.zeros(b - a, np.float32)
        for k in self.tiles_for(a, b):
            o = self.origin(k)
            lo, hi = max(a, o), min(b, o + self.tile)
            out[lo - a : hi - a] += window[lo - o : hi - o]
        return out


# --------------------------------------------------------------------------------------------
# reading


def _rasterio() -> Any:
    try:
        import rasterio
    except ImportError as exc:  # pragma: no cover - rasterio is a core dependency
        raise ImportError("tiled prediction needs rasterio: pip install rasterio") from exc
    return rasterio


def _band_indexes(
    src: Any, spec: ModelSpec, path: Path, bands: list[int] | None = None
) -> list[int]:
    """One-based band indexes of ``src`` to feed the model, checked against it.

    ``bands`` (the user's choice), else ``spec.bands``, else every band but alpha bands.
    """
    layout = BandLayout.of_dataset(src)
    return [b + 1 for b in resolve_bands(spec, layout, bands, image=path)]


def _normalisation(spec: ModelSpec, n: int) -> tuple[list[float], list[float]]:
    mean, std = list(spec.mean), list(spec.std)
    if not mean and not std:
        logger.warning("the model spec has no mean/std: band values are fed unnormalised")
        return [0.0] * n, [1.0] * n
    if len(mean) != n or len(std) != n or any(s == 0 for s in std):
        raise ValueError(
            f"the model spec has mean {mean} and std {std} for {n} band(s); they need one value "
            "per band and a nonzero std: fix the spec (as written by 'pointseg train')"
        )
    return mean, std


# --------------------------------------------------------------------------------------------
# writing


def _cog_supported() -> bool:
    rasterio = _rasterio()
    with rasterio.Env() as env:
        return "COG" in env.drivers()


def _scratch(beside: Path) -> contextlib.AbstractContextManager[Path]:
    """A temporary .tif beside ``beside``, always removed."""
    return scratch_path(beside, suffix=".tiled.tif")


def _profile(src: Any, count: int, nodata: int | None) -> dict[str, Any]:
    return {
        "driver": "GTiff",
        "height": src.height,
        "width": src.width,
        "count": count,
        "dtype": "uint8",
        "crs": src.crs,
        "transform": src.transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": OUTPUT_BLOCK,
        "blockysize": OUTPUT_BLOCK,
        "compress": "deflate",
        "interleave": "pixel" if count > 1 else "band",
        "bigtiff": "IF_SAFER",
    }


def _to_cog(tiled: Path, dst: Path, *, resampling: str) -> None:
    """Copy a tiled GeoTIFF into a Cloud-Optimized GeoTIFF (GDAL's COG driver)."""
    from rasterio.shutil import copy

    copy(
        tiled,
        dst,
        driver="COG",
        compress="DEFLATE",
        blocksize=512,
        overview_resampling=resampling,
        bigtiff="IF_SAFER",
    )


# --------------------------------------------------------------------------------------------
# prediction


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc).

    Blocks allocate and free buffers of varying sizes (input windows, kept tile parts, batches);
    glibc's heap keeps the freed memory fragmented and resident, so without this the peak RSS
    creeps up with the number of blocks (about +150 MiB over a 10,000² raster).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_options(
    tile_size: int, overlap: int, batch_size: int, block_size: int, scale: float
) -> None:
    if not _is_int(tile_size) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive integer (e.g. 512), got {tile_size!r}")
    if not _is_int(overlap) or not 0 <= overlap < tile_size:
        raise ValueError(
            f"overlap must be an integer in [0, tile_size={tile_size}), got {overlap!r}; "
            f"e.g. {default_overlap(tile_size)} (the default)"
        )
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not _is_int(block_size) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer (e.g. 1024), got {block_size!r}")
    if not (isinstance(scale, numbers.Real) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number (e.g. 0.5 or 1.0), got {scale!r}")


def _gdal_env() -> Any:
    """GDAL settings of raster reads: a capped block cache, internal masks."""
    # rasterio hands an integer GDAL_CACHEMAX to GDALSetCacheMax64: bytes, not MiB
    return _rasterio().Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20, GDAL_TIFF_INTERNAL_MASK=True)


def _open_source(source: Path) -> Any:
    """The raster ``source`` opened for reading, or a clear error."""
    try:
        return _rasterio().open(source)
    except read_errors() as exc:
        raise ValueError(
            f"cannot read {source} as a raster: {exc}; is it a complete GeoTIFF?"
        ) from exc


class _Runner:
    """Evaluates batches of tiles: normalise, rescale, model, back to source pixels, softmax."""

    def __init__(
        self,
        model: nn.Module,
        spec: ModelSpec,
        device: torch.device,
        *,
        tile: int,
        model_tile: int,
        window: np.ndarray,
        floating: bool,
        where: Path,
    ) -> None:
        n = spec.in_channels
        mean, std = _normalisation(spec, n)
        self.model = model
        self.device = device
        self.num_classes = spec.num_classes
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, n, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, n, 1, 1)
        self.tile = tile
        self.model_tile = model_tile
        w = torch.from_numpy(window).to(device)
        self.weights = w[:, None] * w[None, :]
        self.floating = floating
        self.where = where

    @classmethod
    def for_tiles(
        cls,
        model: nn.Module,
        spec: ModelSpec,
        device: torch.device,
        *,
        tile_size: int,
        overlap: int,
        scale: float,
        floating: bool,
        where: Path,
    ) -> tuple[_Runner, np.ndarray]:
        """A runner of ``tile_size``-px model tiles at ``scale`` and its blending window."""
        tile, ovl = _source_tile(int(tile_size), int(overlap), float(scale))
        window = blend_window(tile, ovl)
        runner = cls(
            model,
            spec,
            device,
            tile=tile,
            model_tile=int(tile_size),
            window=window,
            floating=floating,
            where=where,
        )
        return runner, window

    @torch.inference_mode()
    def __call__(self, tiles: np.ndarray) -> torch.Tensor:
        """(B, bands, T, T) source pixels → (B, C, T, T) weighted probabilities (float32)."""
        x = torch.from_numpy(tiles.astype(np.float32, copy=False)).to(self.device)
        if self.floating:
            x = torch.where(torch.isfinite(x), x, self.mean)
        x = (x - self.mean) / self.std
        if self.model_tile != self.tile:
            x = F.interpolate(
                x,
                size=(self.model_tile,) * 2,
                mode="bilinear",
                align_corners=False,
                antialias=self.model_tile < self.tile,
            )
        logits = self.model(x)
        if logits.ndim != 4 or logits.shape[:2] != (x.shape[0], self.num_classes):
            raise ValueError(
                f"the model returned shape {tuple(logits.shape)} for input {tuple(x.shape)} "
                f"while predicting {self.where}; expected (B, {self.num_classes}, H, W): check "
                "that spec.num_classes matches the model"
            )
        if logits.shape[-2:] != (self.tile, self.tile):
            logits = F.interpolate(
                logits.float(), size=(self.tile,) * 2, mode="bilinear", align_corners=False
            )
        return torch.softmax(logits.float(), dim=1) * self.weights


def _source_tile(tile_size: int, overlap: int, scale: float) -> tuple[int, int]:
    """Tile side and overlap in source pixels for ``tile_size``/``overlap`` model pixels."""
    tile = max(1, round(tile_size / scale))
    return tile, min(tile - 1, round(overlap / scale))


def predict_array(
    model: nn.Module,
    spec: ModelSpec,
    image: np.ndarray,
    *,
    tile_size: int = 512,
    overlap: int | None = None,
    batch_size: int = 4,
    scale: float = 1.0,
    device: str | torch.device | None = None,
    where: str | Path = "the image",
) -> np.ndarray:
    """Blended class probabilities of an in-memory image of any size, in overlapping tiles.

    The tiling and blending of :func:`predict_raster` (same tile grid, reflection at the
    border, raised-cosine blending, tiles resampled by ``scale``) over an array held in memory
    (a PNG, JPEG or TIFF already read), so a large photo is predicted at the model's own
    resolution instead of squashed to one square.

    Parameters
    ----------
    model : nn.Module
        Maps (B, in_channels, h, w) to logits (B, num_classes, h, w).
    spec : ModelSpec
        ``in_channels``, ``num_classes``, ``mean``/``std``; ``image_size`` is not used.
    image : np.ndarray, shape (H, W, bands)
        Any size (smaller than a tile too: reflected), any numeric dtype.
    tile_size, overlap, batch_size, scale
        As for :func:`predict_raster` (``tile_size`` and ``overlap`` in model pixels).
    device : str or torch.device, optional
        Default: where the model's parameters are.
    where : str or Path
        Names the image in errors.

    Returns
    -------
    np.ndarray, shape (num_classes, H, W), float32
        ``sum(w * p) / sum(w)`` over the tiles covering each pixel; sums to 1 over classes.
    """
    if overlap is None:
        overlap = default_overlap(tile_size) if _is_int(tile_size) else 0
    _check_options(tile_size, overlap, batch_size, 1, scale)
    image = np.asarray(image)
    if image.ndim != 3 or not image.shape[0] or not image.shape[1]:
        raise ValueError(
            f"{where} has shape {image.shape}; expected (height, width, bands) with pixels"
        )
    if image.shape[2] != spec.in_channels:
        raise band_mismatch(spec, image.shape[2], image=str(where))
    dev = resolve_device(device) if device is not None else _model_device(model)
    if device is not None:
        model.to(dev)
    tile, ovl = _source_tile(int(tile_size), int(overlap), float(scale))
    h, w = image.shape[:2]
    ay, ax = _Axis.make(h, tile, ovl), _Axis.make(w, tile, ovl)
    runner, window = _Runner.for_tiles(
        model,
        spec,
        dev,
        tile_size=tile_size,
        overlap=overlap,
        scale=scale,
        floating=bool(np.issubdtype(image.dtype, np.floating)),
        where=Path(str(where)),
    )
    acc = np.zeros((spec.num_classes, h, w), np.float32)
    origins = [(ay.origin(i), ax.origin(j)) for i in range(ay.count) for j in range(ax.count)]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(origins), int(batch_size)):
            batch = origins[start : start + int(batch_size)]
            tiles = np.stack(
                [
                    np.moveaxis(
                        image[
                            np.ix_(
                                reflect_indices(np.arange(oy, oy + tile), h),
                                reflect_indices(np.arange(ox, ox + tile), w),
                            )
                        ],
                        -1,
                        0,
                    )
                    for oy, ox in batch
                ]
            )
            probs = runner(tiles).cpu().numpy()
            for (oy, ox), p in zip(batch, probs, strict=True):
                r0, r1 = max(0, oy), min(h, oy + tile)
                c0, c1 = max(0, ox), min(w, ox + tile)
                acc[:, r0:r1, c0:c1] += p[:, r0 - oy : r1 - oy, c0 - ox : c1 - ox]
    finally:
        model.train(was_training)
    acc /= ay.weight_sum(0, h, window)[:, None] * ax.weight_sum(0, w, window)[None, :]
    return acc


def predict_raster(
    model: nn.Module,
    spec: ModelSpec,
    source: str | Path,
    out: str | Path,
    *,
    tile_size: int = 512,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    probabilities: str | Path | None = None,
    cog: bool = False,
    nodata: float | None = None,
    block_size: int = 1024,
    scale: float = 1.0,
    bands: list[int] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Predict a class map for a GeoTIFF of any size, in bounded memory.

    Parameters
    ----------
    model : nn.Module
        Maps (B, in_channels, h, w) to logits (B, num_classes, h, w) (other output sizes are
        resized bilinearly). Put in eval mode for the run (its mode is restored afterwards).
    spec : ModelSpec
        ``in_channels``, ``num_classes`` (at most 255), ``mean``/``std`` (normalisation, one
        value per band), ``bands`` (zero-based band indices of the source, or None for all
        but alpha bands),
        ``class_colors`` (colour table of the output) and ``class_names`` (band descriptions of
        the probability raster). ``image_size`` is not used: tiles run at the source resolution
        times ``scale``.
    source : str or Path
        Raster readable by rasterio (GeoTIFF, any CRS, band count and dtype), shape
        (bands, H, W). Only read in windows.
    out : str or Path
        Class map written here: a (H, W) uint8 GeoTIFF with the source's CRS and transform,
        tiled (256 x 256), deflate-compressed, nodata :data:`NODATA_LABEL`, with a colour table
        from ``spec.class_colors``.
    tile_size : int
        Side of the square tiles the model sees, in model pixels (source pixels times
        ``scale``).
    overlap : int, optional
        Overlap of neighbouring tiles in model pixels; default :func:`default_overlap`
        (``tile_size // 8``).
    batch_size : int
        Tiles per forward pass.
    device : str or torch.device, optional
        Where to run the model (moved there); default: where the model's parameters are.
    probabilities : str or Path, optional
        Also write a (num_classes, H, W) uint8 GeoTIFF of the blended class probabilities,
        ``round(255 * p)``, same georeference, band descriptions from ``spec.class_names``.
        It has no nodata value: nodata pixels are 0 in every band and masked by an internal
        mask band.
    cog : bool
        Write Cloud-Optimized GeoTIFFs (GDAL's COG driver: 512 x 512 tiles, overviews with
        MODE resampling for the class map, AVERAGE for the probabilities).
    nodata : float, optional
        Treat source pixels whose bands (those used) all equal this value as nodata, instead of
        the file's own nodata value. The file's internal mask or alpha band still applies.
    block_size : int
        Side of the output blocks processed at once, rounded up to a multiple of 256. Sets the
        memory (about ``block_size * (block_size + 3 * tile_size) * num_classes * 4`` bytes
        besides the model's) and does not change the output (bit for bit with
        ``batch_size=1``; see the module docstring). 1024 measured 13 % less peak memory than
        2048 on a 10000² raster, at the same throughput (``benchmarks/predict.py``).
    scale : float
        Ground-resolution factor between the source and the model's training data: the model
        runs on tiles resampled by ``scale`` (0.5: downsampled by 2, antialiased) and its logits
        are resized back bilinearly before the softmax (labels are never interpolated).
    bands : list of int, optional
        Zero-based bands of the source to feed the model (``--bands``), numbered as in the file
        (alpha bands included); overrides ``spec.bands``. Default: ``spec.bands``, else every
        band but alpha bands (an alpha band is nodata, not a band).
    progress : bool
        Show a tqdm progress bar (tiles, with ETA) on stderr.

    Returns
    -------
    dict
        ``source``, ``out``, ``probabilities``, ``shape`` (H, W), ``tiles`` (tile evaluations),
        ``tile_size``, ``overlap``, ``block_size``, ``seconds``, ``megapixels_per_s``,
        ``nodata_pixels``, ``device``.

    Raises
    ------
    FileNotFoundError
        When ``source`` does not exist.
    ValueError
        When ``source`` cannot be read (naming the file), its bands do not fit the model
        (naming the file, the model's bands and ``--bands``), a band index is out of range,
        or an option is out of range.
    RuntimeError
        When ``cog=True`` and this GDAL has no COG driver.

    Notes
    -----
    Every output is written to a temporary file beside it and renamed when complete, so a
    crash never leaves a partial file under the final name. See the module docstring for the
    tiling, blending and block scheme.
    """
    rasterio = _rasterio()
    t_start = time.perf_counter()
    source, out = Path(source), Path(out)
    prob_path = Path(probabilities) if probabilities is not None else None
    if overlap is None:
        overlap = default_overlap(tile_size) if _is_int(tile_size) else 0
    _check_options(tile_size, overlap, batch_size, block_size, scale)
    tile_size, overlap, batch_size, block_size = map(
        int, (tile_size, overlap, batch_size, block_size)
    )
    scale = float(scale)
    if not 1 <= spec.num_classes <= NODATA_LABEL:
        raise ValueError(
            f"the class map is uint8 with nodata {NODATA_LABEL}, so at most {NODATA_LABEL} "
            f"classes; the model has {spec.num_classes}"
        )
    if not source.is_file():
        raise FileNotFoundError(f"raster {source} does not exist")
    if cog and not _cog_supported():
        raise RuntimeError(
            f"cog=True needs GDAL's COG driver, which this GDAL ({rasterio.__gdal_version__}) "
            "lacks; install rasterio wheels with GDAL >= 3.1, or use cog=False"
        )
    dev = resolve_device(device) if device is not None else _model_device(model)
    if device is not None:
        model.to(dev)
    tile, ovl = _source_tile(tile_size, overlap, scale)
    block = max(OUTPUT_BLOCK, -(-block_size // OUTPUT_BLOCK) * OUTPUT_BLOCK)

    was_training = model.training
    model.eval()
    try:
        with _gdal_env(), contextlib.ExitStack() as stack:
            src = stack.enter_context(_open_source(source))
            indexes = _band_indexes(src, spec, source, bands)
            reader = RasterWindows(src, source, indexes, nodata)
            runner, _ = _Runner.for_tiles(
                model,
                spec,
                dev,
                tile_size=tile_size,
                overlap=overlap,
                scale=scale,
                floating=reader.floating,
                where=source,
            )
            logger.info(
                "predicting %s (%d x %d, %d band(s)) in %d-pixel tiles (overlap %d, scale %g) "
                "and %d-pixel blocks on %s",
                source,
                src.height,
                src.width,
                len(indexes),
                tile,
                ovl,
                scale,
                block,
                dev,
            )
            paths = _output_files(stack, out, prob_path, cog=cog)
            _, _, tiled_out, tiled_prob = paths
            stats = _predict_blocks(
                reader,
                runner,
                spec,
                tiled_out,
                tiled_prob,
                tile=tile,
                overlap=ovl,
                block=block,
                batch_size=batch_size,
                progress=progress,
            )
            _finish_cog(paths, cog=cog)
            shape = (src.height, src.width)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - t_start
    mpx = shape[0] * shape[1] / 1e6
    summary = {
        "source": str(source),
        "out": str(out),
        "probabilities": str(prob_path) if prob_path else None,
        "shape": shape,
        "tiles": stats["tiles"],
        "tile_size": tile_size,
        "overlap": overlap,
        "block_size": block,
        "seconds": round(seconds, 3),
        "megapixels_per_s": round(mpx / seconds, 4) if seconds > 0 else float("inf"),
        "nodata_pixels": stats["nodata_pixels"],
        "device": str(dev),
    }
    logger.info(
        "wrote %s: %d x %d, %d tiles in %.1f s (%.3f Mpx/s)",
        out,
        shape[0],
        shape[1],
        stats["tiles"],
        seconds,
        summary["megapixels_per_s"],
    )
    return summary


class _Spill:
    """Partial sums below a block row, kept for the next block row in an unnamed scratch file.

    One slot per block column of ``(C, < tile, block)`` float32: its size grows with the raster
    width (``C * tile * width * 4`` bytes on disk), its memory does not. Reads and writes go
    straight between the file and the accumulator, one class plane at a time, without copies.
    """

    def __init__(self, beside: Path, num_classes: int, tile: int, block: int) -> None:
        self.beside = beside
        self.plane_bytes = tile * block * 4
        self.slot_bytes = num_classes * self.plane_bytes
        self.file: Any = None

    def write(self, j: int, part: torch.Tensor) -> None:
        """Store ``part`` (C, h, w), a row range of an accumulator, in slot ``j``."""
        if self.file is None:
            self.file = scratch_file(self.beside.parent)
        fd = self.file.fileno()
        for c, plane in enumerate(part):
            data = plane.cpu().numpy()  # a row range of a C-contiguous plane: contiguous
            os.pwrite(fd, memoryview(data).cast("B"), j * self.slot_bytes + c * self.plane_bytes)

    def read_into(self, j: int, part: torch.Tensor) -> None:
        """Fill ``part`` (C, h, w), a row range of an accumulator, from slot ``j``."""
        fd = self.file.fileno()
        for c, plane in enumerate(part):
            offset = j * self.slot_bytes + c * self.plane_bytes
            if plane.device.type == "cpu":
                buffer = memoryview(plane.numpy()).cast("B")
                if os.preadv(fd, [buffer], offset) != buffer.nbytes:
                    raise OSError(f"short read from the scratch file beside {self.beside}")
            else:
                n = plane.numel() * 4
                data = np.frombuffer(os.pread(fd, n, offset), np.float32)
                plane.copy_(torch.from_numpy(data.copy()).view(plane.shape))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


@dataclass(frozen=True)
class _Block:
    """One output block and the tiles it accumulates.

    ``kys``: the tile rows that start in this block row (earlier ones are in the partial sums
    of rows ``[by0, done_to)``); ``kxs``: the tile columns that intersect the block, of which
    ``new_cols`` are evaluated here (the others were kept from the block on the left);
    ``acc_end``: the accumulator covers rows ``[by0, acc_end)``.
    """

    j: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    kys: range
    kxs: range
    new_cols: range
    acc_end: int
    done_to: int


def _plan(ay: _Axis, ax: _Axis, block: int) -> Iterator[_Block]:
    """The blocks in processing order (rows of blocks, left to right), lazily."""
    next_row = 0  # tile rows below this are in the partial sums already
    done_to = 0  # rows [by0, done_to) hold partial sums from the previous block row
    for by0 in range(0, ay.length, block):
        by1 = min(by0 + block, ay.length)
        kys = range(next_row, ay.tiles_for(by0, by1).stop)
        acc_end = max(by1, done_to)
        if kys:
            acc_end = max(acc_end, min(ay.length, ay.origin(kys[-1]) + ay.tile))
        next_col = 0  # tile columns below this were evaluated in this block row
        for j, bx0 in enumerate(range(0, ax.length, block)):
            bx1 = min(bx0 + block, ax.length)
            kxs = ax.tiles_for(bx0, bx1)
            new_cols = range(max(kxs.start, next_col), kxs.stop)
            yield _Block(j, (by0, by1), (bx0, bx1), kys, kxs, new_cols, acc_end, done_to)
            next_col = max(next_col, kxs.stop)
        next_row, done_to = kys.stop, acc_end


def _batches(
    reader: RasterWindows, ay: _Axis, ax: _Axis, block: int, batch_size: int, runner: _Runner
) -> Iterator[dict[tuple[int, int], torch.Tensor]]:
    """Weighted probabilities of every tile, in the order the blocks need them.

    One stream for the whole raster, cut into batches of ``batch_size`` tiles, so that the
    batches have the same sizes whatever the blocks (only the last one is smaller, by the same
    amount): a tile's result does not depend on the block size through the shape of its batch.
    """
    keys = ((ky, kx) for b in _plan(ay, ax, block) for ky in b.kys for kx in b.new_cols)
    tile = ay.tile
    while chunk := list(itertools.islice(keys, batch_size)):
        tiles = np.stack(
            [
                reader.region(
                    (ay.origin(ky), ay.origin(ky) + tile), (ax.origin(kx), ax.origin(kx) + tile)
                )
                for ky, kx in chunk
            ]
        )
        probs = runner(tiles)
        del tiles
        out = {key: probs[i] for i, key in enumerate(chunk)}
        del probs  # hold no batch while the next one runs
        yield out
        del out


@torch.inference_mode()
def _open_outputs(
    stack: contextlib.ExitStack, src: Any, spec: ModelSpec, out: Path, prob: Path | None
) -> tuple[Any, Any]:
    """Open the class map (colour table) and the probability raster (band names) for writing."""
    rasterio = _rasterio()
    dst = stack.enter_context(rasterio.open(out, "w", **_profile(src, 1, NODATA_LABEL)))
    if spec.class_colors:
        cmap = {i: (*map(int, c[:3]), 255) for i, c in enumerate(spec.class_colors)}
        cmap[NODATA_LABEL] = (0, 0, 0, 0)
        dst.write_colormap(1, cmap)
    pdst = None
    if prob is not None:
        num_classes = spec.num_classes
        pdst = stack.enter_context(rasterio.open(prob, "w", **_profile(src, num_classes, None)))
        for i, name in enumerate(spec.class_names[:num_classes]):
            pdst.set_band_description(i + 1, str(name))
    return dst, pdst


def _output_files(
    stack: contextlib.ExitStack, out: Path, prob_path: Path | None, *, cog: bool
) -> tuple[Path, Path | None, Path, Path | None]:
    """Temporary paths of the outputs: ``(final_out, final_prob, tiled_out, tiled_prob)``.

    The finals are renamed onto ``out``/``prob_path`` when the stack closes without error;
    the tiled ones are where the blocks are written (the finals, or scratch files that
    :func:`_finish_cog` copies into them).
    """
    for folder in dict.fromkeys(p.parent for p in (out, prob_path) if p is not None):
        remove_stale_temp_files(folder)  # a killed run leaves its (large) temporary rasters
    final_out = stack.enter_context(atomic_write(out))
    final_prob = stack.enter_context(atomic_write(prob_path)) if prob_path else None
    tiled_out = stack.enter_context(_scratch(out)) if cog else final_out
    tiled_prob = None
    if final_prob is not None and prob_path is not None:
        tiled_prob = stack.enter_context(_scratch(prob_path)) if cog else final_prob
    return final_out, final_prob, tiled_out, tiled_prob


def _finish_cog(paths: tuple[Path, Path | None, Path, Path | None], *, cog: bool) -> None:
    """Copy the tiled outputs of :func:`_output_files` into COGs when ``cog``."""
    final_out, final_prob, tiled_out, tiled_prob = paths
    if cog:
        _to_cog(tiled_out, final_out, resampling="MODE")
        if tiled_prob is not None and final_prob is not None:
            _to_cog(tiled_prob, final_prob, resampling="AVERAGE")


def _predict_blocks(
    reader: RasterWindows,
    runner: _Runner,
    spec: ModelSpec,
    out: Path,
    prob: Path | None,
    *,
    tile: int,
    overlap: int,
    block: int,
    batch_size: int,
    progress: bool,
) -> dict[str, int]:
    """Evaluate the global tile grid block by block and write each block when finished.

    Every tile is evaluated once and its weighted probabilities are added to the accumulator
    in row-major tile order, whatever the blocks, so the sums are bit-identical for any block
    size: a block's accumulator extends below the block over the tiles that start in it (the
    rows below go, as partial sums, to the next block row), and the parts of tiles that extend
    right of the block are kept for the next block of the row.
    """
    from tqdm.auto import tqdm

    src = reader.src
    height, width = reader.height, reader.width
    ay, ax = _Axis.make(height, tile, overlap), _Axis.make(width, tile, overlap)
    window = blend_window(tile, overlap)
    dev = runner.device
    num_classes = spec.num_classes
    n_tiles = 0
    n_nodata = 0

    with contextlib.ExitStack() as stack:
        dst, pdst = _open_outputs(stack, src, spec, out, prob)
        bar = stack.enter_context(
            tqdm(
                total=ay.count * ax.count, unit="tile", disable=not progress, desc=reader.path.name
            )
        )
        spill = _Spill(out, num_classes, tile, block)
        stack.callback(spill.close)
        batches = _batches(reader, ay, ax, block, batch_size, runner)
        ready: dict[tuple[int, int], torch.Tensor] = {}
        cache: dict[tuple[int, int], tuple[torch.Tensor, int]] = {}
        wy = None
        for b in _plan(ay, ax, block):
            (by0, by1), (bx0, bx1) = b.rows, b.cols
            if b.j == 0:
                cache = {}
                wy = ay.weight_sum(by0, by1, window) if pdst is not None else None
            acc = torch.zeros((num_classes, b.acc_end - by0, bx1 - bx0), device=dev)
            if b.done_to > by0:
                spill.read_into(b.j, acc[:, : b.done_to - by0])
            keep: dict[tuple[int, int], tuple[torch.Tensor, int]] = {}
            for ky in b.kys:
                ty = ay.origin(ky)
                r0, r1 = max(ty, by0), min(ty + tile, b.acc_end)
                for kx in b.kxs:
                    key = (ky, kx)
                    if key in cache:
                        probs, coff = cache.pop(key)
                    else:
                        while key not in ready:
                            _trim_heap()
                            probs = None  # hold no batch while the next one runs
                            fresh = next(batches)
                            ready.update(fresh)
                            n_tiles += len(fresh)
                            bar.update(len(fresh))
                            del fresh
                        probs, coff = ready.pop(key), 0
                    tx = ax.origin(kx)
                    c0, c1 = max(tx, bx0), min(tx + tile, bx1)
                    acc[:, r0 - by0 : r1 - by0, c0 - bx0 : c1 - bx0] += probs[
                        :, r0 - ty : r1 - ty, c0 - tx - coff : c1 - tx - coff
                    ]
                    if tx + tile > bx1 and bx1 < width:  # also covers the next block
                        cut = bx1 - tx - coff
                        keep[key] = (probs[:, :, cut:].clone(), coff + cut)
            cache = keep
            if b.acc_end > by1:
                spill.write(b.j, acc[:, by1 - by0 :])
            n_nodata += _write_block(
                reader, dst, pdst, acc[:, : by1 - by0], b.rows, b.cols, wy, ax, window
            )
            del acc
            _trim_heap()
    return {"tiles": n_tiles, "nodata_pixels": n_nodata}


def _argmax(acc: torch.Tensor) -> torch.Tensor:
    """(C, H, W) → (H, W) uint8 index of the first maximum over C.

    ``Tensor.argmax(0)`` takes a slow strided path on CPU (about 4x slower here) and returns
    int64; this goes class by class over contiguous planes.
    """
    best = acc[0].clone()
    labels = torch.zeros(acc.shape[1:], dtype=torch.uint8, device=acc.device)
    for c in range(1, acc.shape[0]):
        better = acc[c] > best
        labels.masked_fill_(better, c)
        torch.maximum(best, acc[c], out=best)
    return labels


def _block_arrays(
    reader: RasterWindows,
    acc: torch.Tensor,
    rows: tuple[int, int],
    cols: tuple[int, int],
    wy: np.ndarray | None,
    ax: _Axis,
    window: np.ndarray,
) -> dict[str, np.ndarray]:
    """The finished outputs of one block from its accumulated weighted probabilities.

    ``labels`` (H, W) uint8 with :data:`NODATA_LABEL` at nodata; with ``wy`` (the tile-weight
    sums of the block's rows) also ``probs`` (C, H, W) uint8 and, when the source is masked,
    ``mask`` (H, W) uint8 (255 valid, 0 nodata); ``nodata_pixels`` (a 0-d int64).
    """
    bx0, bx1 = cols
    labels_np = _argmax(acc).cpu().numpy()
    invalid = reader.invalid(rows, cols)
    if invalid is not None:
        labels_np[invalid] = NODATA_LABEL
    out = {
        "labels": labels_np,
        "nodata_pixels": np.int64(0 if invalid is None else int(invalid.sum())),
    }
    if wy is not None:
        wx = torch.from_numpy(ax.weight_sum(bx0, bx1, window)).to(acc.device)
        wy_t = torch.from_numpy(wy).to(acc.device)
        p = torch.empty(acc.shape, dtype=torch.uint8, device=acc.device)
        for i in range(0, acc.shape[1], OUTPUT_BLOCK):  # by strips: no float copy of the block
            denom = wy_t[i : i + OUTPUT_BLOCK, None] * wx[None, :]
            strip = acc[:, i : i + OUTPUT_BLOCK] / denom
            p[:, i : i + OUTPUT_BLOCK] = strip.clamp_(0, 1).mul_(255).round_()
        p_np = p.cpu().numpy()
        if invalid is not None:
            p_np[:, invalid] = 0
        out["probs"] = p_np
        if reader.masked:
            valid = np.full(labels_np.shape, 255, np.uint8)
            if invalid is not None:
                valid[invalid] = 0
            out["mask"] = valid
    return out


def _store_block(
    dst: Any, pdst: Any, arrays: dict[str, np.ndarray], rows: tuple[int, int], cols: tuple[int, int]
) -> int:
    """Write the arrays of :func:`_block_arrays` into their window; returns the nodata count."""
    from rasterio.windows import Window

    (by0, by1), (bx0, bx1) = rows, cols
    win = Window(bx0, by0, bx1 - bx0, by1 - by0)
    dst.write(arrays["labels"], 1, window=win)
    if pdst is not None and "probs" in arrays:
        pdst.write(arrays["probs"], window=win)
        if "mask" in arrays:
            pdst.write_mask(arrays["mask"], window=win)
    return int(arrays["nodata_pixels"])


def _write_block(
    reader: RasterWindows,
    dst: Any,
    pdst: Any,
    acc: torch.Tensor,
    rows: tuple[int, int],
    cols: tuple[int, int],
    wy: np.ndarray | None,
    ax: _Axis,
    window: np.ndarray,
) -> int:
    """Write one finished block (labels, probabilities); returns its count of nodata pixels."""
    arrays = _block_arrays(reader, acc, rows, cols, wy if pdst is not None else None, ax, window)
    return _store_block(dst, pdst, arrays, rows, cols)
