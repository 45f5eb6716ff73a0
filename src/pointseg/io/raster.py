"""Image and mask I/O: PNG/JPEG through Pillow, GeoTIFF and other rasters through rasterio."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pointseg.io.atomic import atomic_write

if TYPE_CHECKING:
    from pointseg.data.classes import ClassMap

__all__ = [
    "IMAGE_SUFFIXES",
    "Georef",
    "read_image",
    "read_mask",
    "write_label_geotiff",
    "write_png",
]

logger = logging.getLogger(__name__)

#: File suffixes read as images (lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".jp2")
_RASTERIO_SUFFIXES = (".tif", ".tiff", ".jp2")

Image.MAX_IMAGE_PIXELS = None  # aerial rasters are legitimately huge


@dataclass(frozen=True)
class Georef:
    """Georeference of a raster: CRS as WKT, affine transform (6 numbers, GDAL order a..f)."""

    crs_wkt: str | None
    transform: tuple[float, float, float, float, float, float]
    nodata: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"crs": self.crs_wkt, "transform": list(self.transform), "nodata": self.nodata}


def _rasterio():
    try:
        import rasterio
    except ImportError as exc:  # pragma: no cover - rasterio is a core dependency
        raise ImportError("reading GeoTIFFs needs rasterio: pip install rasterio") from exc
    return rasterio


def read_image(
    path: str | Path, *, bands: list[int] | None = None
) -> tuple[np.ndarray, Georef | None]:
    """Read an image.

    Parameters
    ----------
    path : str or Path
        PNG, JPEG, BMP (Pillow) or GeoTIFF / JPEG2000 (rasterio).
    bands : list of int, optional
        Zero-based band indices to keep (default: all bands; for Pillow images, RGB).

    Returns
    -------
    image : ndarray, shape (H, W, C)
        Pixel values in the file's dtype.
    georef : Georef or None
        The georeference when the file has one.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    georef = None
    if path.suffix.lower() in _RASTERIO_SUFFIXES:
        rasterio = _rasterio()
        try:
            with rasterio.open(path) as src:
                array = src.read()
                if src.crs is not None or not src.transform.is_identity:
                    t = src.transform
                    georef = Georef(
                        crs_wkt=src.crs.to_wkt() if src.crs is not None else None,
                        transform=(t.a, t.b, t.c, t.d, t.e, t.f),
                        nodata=src.nodata,
                    )
        except rasterio.errors.RasterioIOError as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from exc
        image = np.moveaxis(array, 0, -1)
    else:
        try:
            with Image.open(path) as im:
                if im.mode not in ("RGB", "L", "I;16", "I", "F"):
                    im = im.convert("RGB")
                image = np.asarray(im)
        except (OSError, SyntaxError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from exc
        if image.ndim == 2:
            image = image[..., None]
    if bands is not None:
        n = image.shape[-1]
        bad = [b for b in bands if not 0 <= b < n]
        if bad:
            raise ValueError(f"image {path} has {n} band(s); band indices {bad} are out of range")
        image = image[..., bands]
    return np.ascontiguousarray(image), georef


def read_mask(path: str | Path, class_map: ClassMap) -> np.ndarray:
    """Read a mask file and encode it to class indices with ``class_map``.

    Palette PNGs are converted to RGB when the class map is colour-coded (palettes can differ
    from file to file), and read as palette indices otherwise.

    Returns
    -------
    labels : ndarray of uint8, shape (H, W)
        Class indices, ``IGNORE_INDEX`` where the mask carries no class.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask {path} does not exist")
    if path.suffix.lower() in _RASTERIO_SUFFIXES:
        raw, _ = read_image(path)
        raw = raw[..., 0] if raw.shape[-1] == 1 else raw
    else:
        try:
            with Image.open(path) as im:
                if im.mode == "P" and class_map.uses_rgb:
                    im = im.convert("RGB")
                elif im.mode in ("RGBA", "LA", "PA"):
                    im = im.convert("RGB")
                raw = np.asarray(im)
        except (OSError, SyntaxError) as exc:
            raise ValueError(f"cannot read mask {path}: {exc}") from exc
    if path.suffix.lower() in (".jpg", ".jpeg"):
        logger.warning("mask %s is a JPEG: lossy compression alters class values", path)
    return class_map.encode(raw, where=str(path))


def write_png(
    path: str | Path, array: np.ndarray, *, palette: list[tuple[int, int, int]] | None = None
) -> Path:
    """Write a uint8 (H, W) or (H, W, 3) array as PNG, atomically.

    With ``palette`` a (H, W) label map is written as a palette PNG whose colours show the
    classes while the pixel values stay the class indices.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_png({path}): expected uint8, got {array.dtype}")
    image = Image.fromarray(array)
    if palette is not None:
        if array.ndim != 2:
            raise ValueError(f"write_png({path}): a palette needs a (H, W) array")
        flat = [v for rgb in palette for v in rgb]
        flat += [0] * (768 - len(flat))
        image = image.convert("P")
        image.putpalette(flat)
    with atomic_write(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def write_label_geotiff(
    path: str | Path,
    labels: np.ndarray,
    georef: Georef,
    *,
    nodata: int | None = None,
    colors: list[tuple[int, int, int]] | None = None,
) -> Path:
    """Write a (H, W) uint8 label map as a tiled, compressed GeoTIFF with ``georef``, atomically."""
    rasterio = _rasterio()
    from rasterio.transform import Affine

    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(
            f"write_label_geotiff({path}): expected (H, W) uint8, got {labels.shape} {labels.dtype}"
        )
    h, w = labels.shape
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": 1,
        "dtype": "uint8",
        "crs": georef.crs_wkt,
        "transform": Affine(*georef.transform),
        "compress": "deflate",
        "nodata": nodata,
    }
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_write(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(labels, 1)
            if colors:
                dst.write_colormap(1, {i: (*c, 255) for i, c in enumerate(colors)})
    return Path(path)
