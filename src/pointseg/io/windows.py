"""Windowed reads of large rasters: pixels with reflection beyond the border, and nodata.

Shared by tiled prediction (:mod:`pointseg.predict.tiled`) and training from large rasters
(:mod:`pointseg.training.windows`), so both see the same pixels and the same nodata.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArrayWindows", "RasterWindows", "read_errors", "reflect_indices"]


def reflect_indices(index: np.ndarray, n: int) -> np.ndarray:
    """Map pixel indices outside ``[0, n)`` into it by reflection (``dcb|abcd|cba``).

    Parameters
    ----------
    index : np.ndarray of int, any shape
    n : int
        Length of the axis (>= 1).

    Returns
    -------
    np.ndarray of int, same shape as ``index``, values in ``[0, n)``
    """
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    m = np.mod(index, period)
    return np.where(m < n, m, period - m)


def _rasterio() -> Any:
    try:
        import rasterio
    except ImportError as exc:  # pragma: no cover - rasterio is a core dependency
        raise ImportError("reading rasters needs rasterio: pip install rasterio") from exc
    return rasterio


def read_errors() -> tuple[type[BaseException], ...]:
    """The exception types a rasterio read of a damaged file can raise."""
    rasterio = _rasterio()
    errors: list[type[BaseException]] = [rasterio.errors.RasterioError]
    with contextlib.suppress(ImportError):  # GDAL errors surface as CPLE_* exceptions
        from rasterio._err import CPLE_BaseError

        errors.append(CPLE_BaseError)
    return tuple(errors)


class RasterWindows:
    """Windowed reads of some bands of an open rasterio dataset.

    Parameters
    ----------
    src : rasterio.DatasetReader
        The open raster.
    path : Path
        Its path, for error messages.
    indexes : list of int
        One-based band indexes to read.
    nodata : float, optional
        Treat pixels whose bands (those read) all equal this value as nodata, instead of the
        file's own nodata value; the file's internal mask or alpha band still applies.
        Without it, a pixel is nodata when GDAL's masks of all the bands read say so.
    """

    def __init__(self, src: Any, path: Path, indexes: list[int], nodata: float | None) -> None:
        from rasterio.enums import MaskFlags

        self.src = src
        self.path = path
        self.indexes = indexes
        self.height, self.width = src.height, src.width
        self.override = nodata
        flags = [src.mask_flag_enums[i - 1] for i in indexes]
        if nodata is None:
            self.use_masks = any(f != [MaskFlags.all_valid] for f in flags)
        else:  # the override replaces the file's nodata value, not its mask or alpha band
            self.use_masks = any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags)
        self.masked = self.use_masks or nodata is not None
        self.floating = np.issubdtype(np.dtype(src.dtypes[indexes[0] - 1]), np.floating)
        self._errors = read_errors()

    def _read(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
            raise ValueError(
                f"cannot read {what} of {self.path} (window {kwargs.get('window')}): "
                f"{exc}{cause}; "
                "the file may be truncated or corrupt: check it with gdalinfo -checksum"
            ) from exc

    def region(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Pixels ``[r0, r1) x [c0, c1)`` (may extend beyond the raster), shape (bands, h, w)."""
        from rasterio.windows import Window

        (r0, r1), (c0, c1) = rows, cols
        inside = r0 >= 0 and c0 >= 0 and r1 <= self.height and c1 <= self.width
        if inside:
            window = Window(c0, r0, c1 - c0, r1 - r0)
            return self._read("pixels", self.src.read, self.indexes, window=window)
        iy = reflect_indices(np.arange(r0, r1), self.height)
        ix = reflect_indices(np.arange(c0, c1), self.width)
        y0, y1, x0, x1 = int(iy.min()), int(iy.max()) + 1, int(ix.min()), int(ix.max()) + 1
        data = self._read(
            "pixels", self.src.read, self.indexes, window=Window(x0, y0, x1 - x0, y1 - y0)
        )
        return data[:, (iy - y0)[:, None], (ix - x0)[None, :]]

    def invalid(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray | None:
        """Nodata pixels of ``[r0, r1) x [c0, c1)`` (inside the raster); None when none can be."""
        if not self.masked:
            return None
        from rasterio.windows import Window

        (r0, r1), (c0, c1) = rows, cols
        window = Window(c0, r0, c1 - c0, r1 - r0)
        invalid = np.zeros((r1 - r0, c1 - c0), bool)
        if self.use_masks:
            masks = self._read("masks", self.src.read_masks, self.indexes, window=window)
            invalid |= ~masks.any(axis=0)
        if self.override is not None:
            data = self._read("pixels", self.src.read, self.indexes, window=window)
            if math.isnan(self.override):
                invalid |= np.isnan(data).all(axis=0)
            else:
                invalid |= (data == self.override).all(axis=0)
        return invalid


class ArrayWindows:
    """The window reader interface of :class:`RasterWindows` over an image held in memory.

    Lets the block-wise pseudo-labelling of rasters (:func:`pointseg.labels.raster.label_block`)
    run on a decoded PNG/JPEG/TIFF, so every image is labelled the same way whatever its
    format.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, C)
    valid : np.ndarray of bool, shape (H, W), optional
        False at nodata pixels.
    """

    def __init__(self, image: np.ndarray, valid: np.ndarray | None = None) -> None:
        if image.ndim != 3:
            raise ValueError(f"expected an (H, W, C) image, got shape {image.shape}")
        self.image = image
        self.valid = valid
        self.height, self.width = image.shape[:2]
        self.floating = bool(np.issubdtype(image.dtype, np.floating))

    def region(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Pixels ``[r0, r1) x [c0, c1)`` (reflected beyond the image), shape (bands, h, w)."""
        iy = reflect_indices(np.arange(*rows), self.height)
        ix = reflect_indices(np.arange(*cols), self.width)
        return np.moveaxis(self.image[iy[:, None], ix[None, :]], -1, 0)

    def invalid(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray | None:
        """Nodata pixels of ``[r0, r1) x [c0, c1)`` (inside the image); None when none."""
        if self.valid is None:
            return None
        (r0, r1), (c0, c1) = rows, cols
        return ~self.valid[r0:r1, c0:c1]
