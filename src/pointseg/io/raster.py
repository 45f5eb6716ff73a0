"""Image and mask I/O: PNG/JPEG through Pillow, GeoTIFF and other rasters through rasterio."""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
from PIL import Image

from pointseg.io.atomic import atomic_write

if TYPE_CHECKING:
    from pointseg.data.classes import ClassMap

__all__ = [
    "IMAGE_SUFFIXES",
    "BandLayout",
    "Georef",
    "band_layout",
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


@dataclass(frozen=True)
class BandLayout:
    """The bands of an image file as :func:`read_image` sees them, from its header.

    Attributes
    ----------
    count : int
        Bands of the file (alpha included), numbered ``0 .. count - 1`` as ``bands`` indices.
    alpha : tuple of int
        Indices of the alpha bands (PIL modes RGBA/LA/PA, palette or colour-key transparency,
        GeoTIFF bands whose colour interpretation is alpha). Unless selected explicitly, an
        alpha band is read as a validity mask (0 = nodata), not as a band.
    """

    count: int
    alpha: tuple[int, ...] = ()

    @classmethod
    def of_dataset(cls, src: Any) -> BandLayout:
        """The layout of an open rasterio dataset (any format GDAL reads, VRT included)."""
        return _rasterio_layout(src)

    @property
    def default(self) -> list[int]:
        """The bands read when none are chosen: every band but the alpha bands."""
        keep = [i for i in range(self.count) if i not in self.alpha]
        return keep or list(range(self.count))

    def select(self, bands: Sequence[int] | None, path: str | Path) -> list[int]:
        """Zero-based band indices to read: ``bands`` checked against the file, or the default.

        Raises
        ------
        ValueError
            Naming the file, the out-of-range indices and the band count.
        """
        if bands is None:
            return self.default
        bad = [b for b in bands if not _is_index(b) or not 0 <= b < self.count]
        if bad:
            alpha = f", band {self.alpha[0]} being alpha" if self.alpha else ""
            raise ValueError(
                f"image {path} has {self.count} band(s) (indices 0..{self.count - 1}{alpha}); "
                f"band index {', '.join(map(str, bad))} is out of range"
            )
        return [int(b) for b in bands]


def _is_index(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


#: PIL modes read as they are: mode -> (band count, alpha band index or None).
_PIL_MODES: dict[str, tuple[int, int | None]] = {
    "L": (1, None),
    "LA": (2, 1),
    "RGB": (3, None),
    "RGBA": (4, 3),
    "I": (1, None),
    "F": (1, None),
    "I;16": (1, None),
    "I;16L": (1, None),
    "I;16B": (1, None),
    "I;16N": (1, None),
}


def _pil_target_mode(im: Image.Image) -> str:
    """The mode an image is read in: its own when numpy-friendly, else a lossless equivalent.

    Palette images become RGB (RGBA with transparency), 1-bit images L, premultiplied alpha
    straight alpha; a ``transparency`` colour key becomes an alpha band; CMYK, YCbCr, LAB and
    HSV become RGB.
    """
    mode = im.mode
    transparent = "transparency" in im.info
    if mode in ("P", "PA"):
        return "RGBA" if transparent or mode == "PA" else "RGB"
    if mode == "1":
        return "LA" if transparent else "L"
    if mode in ("L", "RGB") and transparent:
        return mode + "A"
    if mode == "La":
        return "LA"
    if mode in ("RGBa", "RGBX"):
        return "RGBA" if mode == "RGBa" else "RGB"
    if mode in _PIL_MODES:
        return mode
    return "RGB"


def _pil_layout(im: Image.Image) -> BandLayout:
    count, alpha = _PIL_MODES[_pil_target_mode(im)]
    return BandLayout(count, () if alpha is None else (alpha,))


def _rasterio_layout(src: Any) -> BandLayout:
    from rasterio.enums import ColorInterp

    alpha = tuple(i for i, ci in enumerate(src.colorinterp) if ci == ColorInterp.alpha)
    return BandLayout(int(src.count), alpha)


def band_layout(path: str | Path) -> BandLayout:
    """The bands of an image file (see :class:`BandLayout`), reading its header only.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    if path.suffix.lower() in _RASTERIO_SUFFIXES:
        rasterio = _rasterio()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    return _rasterio_layout(src)
        except rasterio.errors.RasterioIOError as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from exc
    try:
        with Image.open(path) as im:
            return _pil_layout(im)
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc


_warned_alpha: set[Path] = set()


def _check_alpha(alpha: np.ndarray, path: Path, index: int) -> None:
    """Warn (once per folder) when an alpha band does not look like a mask."""
    if alpha.dtype != np.uint8 or path.parent in _warned_alpha:
        return
    counts = np.bincount(alpha.ravel(), minlength=256)
    partial = int(counts[1:255].sum())
    if partial > 0.01 * alpha.size:
        _warned_alpha.add(path.parent)
        logger.warning(
            "image %s: band %d is marked as alpha but %.0f %% of its pixels are neither 0 nor "
            "255; it is read as a validity mask (0 = nodata), not as a band. If it is a band "
            "(e.g. near-infrared mislabelled by the writer), select it with --bands %s, or "
            "unmark it (gdal_edit.py -colorinterp_%d undefined)",
            path,
            index,
            100 * partial / alpha.size,
            ",".join(map(str, range(index + 1))),
            index + 1,
        )


@overload
def read_image(
    path: str | Path, *, bands: Sequence[int] | None = ..., with_mask: Literal[False] = ...
) -> tuple[np.ndarray, Georef | None]: ...


@overload
def read_image(
    path: str | Path, *, bands: Sequence[int] | None = ..., with_mask: Literal[True]
) -> tuple[np.ndarray, Georef | None, np.ndarray | None]: ...


def read_image(
    path: str | Path, *, bands: Sequence[int] | None = None, with_mask: bool = False
) -> tuple[np.ndarray, Georef | None] | tuple[np.ndarray, Georef | None, np.ndarray | None]:
    """Read an image with all its bands; an alpha band is a validity mask, not a band.

    Parameters
    ----------
    path : str or Path
        PNG, JPEG, BMP (Pillow) or GeoTIFF / JPEG2000 (rasterio).
    bands : list of int, optional
        Zero-based indices of the file's bands to keep, alpha bands included in the
        numbering (see :func:`band_layout`). Default: every band but the alpha bands.
        Palette images are read as RGB (RGBA when they have transparency), 1-bit images as L.
    with_mask : bool
        Also return the validity mask.

    Returns
    -------
    image : ndarray, shape (H, W, C)
        Pixel values in the file's dtype.
    georef : Georef or None
        The georeference when the file has one.
    valid : ndarray of bool, shape (H, W), or None
        Only with ``with_mask``: False where the pixel is nodata, None when every pixel is
        valid. Pillow images: where an alpha band that is not selected is 0. Rasterio files:
        where GDAL's masks of every band read say nodata (an alpha band that is not selected,
        an internal or external mask, the nodata value), as in tiled prediction.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file when it is missing or cannot be decoded, or when a band index is out
        of range (naming the index and the band count).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    georef = None
    valid: np.ndarray | None = None
    if path.suffix.lower() in _RASTERIO_SUFFIXES:
        rasterio = _rasterio()
        from rasterio.enums import MaskFlags

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                src = rasterio.open(path)
            with src:
                layout = _rasterio_layout(src)
                keep = layout.select(bands, path)
                indexes = [i + 1 for i in keep]
                array = src.read(indexes)
                if with_mask and any(
                    src.mask_flag_enums[i - 1] != [MaskFlags.all_valid] for i in indexes
                ):
                    valid = src.read_masks(indexes).any(axis=0)
                if bands is None:
                    for a in layout.alpha:
                        if a not in keep:
                            _check_alpha(src.read(a + 1), path, a)
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
                layout = _pil_layout(im)
                keep = layout.select(bands, path)
                target = _pil_target_mode(im)
                if im.mode != target:
                    im = im.convert(target)
                full = np.asarray(im)
        except (OSError, SyntaxError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from exc
        if full.ndim == 2:
            full = full[..., None]
        if full.dtype.byteorder == ">":  # I;16B
            full = full.astype(full.dtype.newbyteorder("="))
        for a in layout.alpha:
            if a not in keep:
                if bands is None:
                    _check_alpha(full[..., a], path, a)
                a_valid = full[..., a] != 0
                valid = a_valid if valid is None else valid | a_valid
        image = full[..., keep]
    if valid is not None and valid.all():
        valid = None
    image = np.ascontiguousarray(image)
    if with_mask:
        return image, georef, valid
    return image, georef


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
