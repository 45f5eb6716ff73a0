"""Read clicked points in map coordinates (GIS files) and place them on georeferenced rasters.

GIS users click points in QGIS or similar tools and save them as GeoJSON, GeoPackage,
Shapefile or a CSV of coordinates.  :func:`read_geo_points` reprojects those points to the CRS
of each GeoTIFF, converts them to pixel indices and returns the same structure as the
pixel-coordinate readers of :mod:`pointseg.points.io`: ``{raster_stem: points}`` where
``points`` is an ``(N, 3)`` ``int64`` array of ``[x, y, class]`` (``x`` = column, ``y`` = row)
sorted by ``(y, x)``, together with a :class:`GeoPointReport`.

Conventions and choices
-----------------------
* **CRS of the points.**  GeoJSON without a ``crs`` member is WGS84 longitude/latitude
  (RFC 7946); a legacy ``crs`` member (``{"type": "name", "properties": {"name":
  "urn:ogc:def:crs:EPSG::2180"}}`` or ``{"type": "EPSG", "properties": {"code": 2180}}``) is
  honoured.  GeoPackage and Shapefile carry their CRS (a Shapefile in its ``.prj``).  A CSV
  never carries one.  A file without a CRS (CSV, Shapefile without ``.prj``) needs
  ``crs=``; otherwise a ``ValueError`` says so.  When ``crs=`` is given **and** the file
  declares a different CRS, the file's CRS is used and a warning is logged (the file's own
  georeference is authoritative).  A GeoJSON without a ``crs`` member does not *declare* a
  CRS, so ``crs=`` overrides the RFC 7946 default there (with an info message).
* **Reprojection** uses ``rasterio.warp.transform`` (GDAL/PROJ as bundled with rasterio, in
  the traditional GIS axis order: x = easting/longitude, y = northing/latitude), so pyproj is
  not needed.  Points that cannot be reprojected (outside the projection's domain) count as
  outside.
* **Pixels.**  The inverse affine transform maps a map coordinate to a fractional
  ``(col, row)`` in which pixel ``(c, r)`` covers ``[c, c + 1) x [r, r + 1)`` (GDAL's
  "pixel is area" convention; the transform's origin is the top-left *corner* of the top-left
  pixel, not its centre).  The pixel is ``(floor(col), floor(row))``, so every point
  anywhere inside a pixel, centre or corner, maps to that pixel; no half-pixel shift is
  applied.  A point exactly on the edge between two pixels goes to the right / lower one, and
  a point exactly on the raster's right or bottom edge is outside.
* **Overlapping rasters.**  A point inside several rasters is placed on **every** one of them
  (it counts once in ``n_kept`` and once per raster in ``kept_per_raster``).
* **Nodata.**  A point is on nodata when the raster's dataset mask is 0 at its pixel: the
  nodata value in all bands, or masked by an internal/external mask or alpha band.  A point on
  nodata in one raster may still be kept in another raster that covers it.
* **Duplicates.**  Points falling on the same pixel of the same raster with the same class
  are duplicates (the first is kept); with different classes they conflict and all of them
  are dropped from that pixel.

Format readers: GeoJSON is parsed with :mod:`json` (no extra dependency); GeoPackage,
Shapefile and other OGR formats are read with ``pyogrio`` (``pip install pyogrio``), or with
``fiona`` when pyogrio is missing; CSV is parsed with :mod:`csv`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pointseg.io.windows import read_errors
from pointseg.points.io import (
    MAX_MESSAGES_PER_KIND,
    DropCounts,
    _check_on_invalid,
    _class_lookup,
    image_stem,
)

__all__ = [
    "CSV_COORDINATE_COLUMNS",
    "GEO_POINT_SUFFIXES",
    "RASTER_SUFFIXES",
    "GeoPointReport",
    "read_geo_points",
]

logger = logging.getLogger(__name__)

#: Typical point-file suffixes: GeoJSON and CSV are parsed directly, anything else (``.gpkg``,
#: ``.shp``, ...) is read through OGR (pyogrio or fiona).
GEO_POINT_SUFFIXES: tuple[str, ...] = (".geojson", ".json", ".gpkg", ".shp", ".csv")

#: Accepted coordinate column pairs of a CSV (case-insensitive), tried in this order.
CSV_COORDINATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("x", "y"),
    ("lon", "lat"),
    ("lng", "lat"),
    ("long", "lat"),
    ("longitude", "latitude"),
    ("easting", "northing"),
)

#: Raster suffixes collected when ``rasters`` is a folder (case-insensitive).
RASTER_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")

_JSON_SUFFIXES = (".geojson", ".json")

#: Side of the windows in which the nodata mask is read at the points.
_MASK_CHUNK = 256

_MISSING = "<missing>"


# --------------------------------------------------------------------------------------------
# report


@dataclass
class GeoPointReport(DropCounts):
    """What :func:`read_geo_points` read, kept and dropped.

    Every point read is either kept (on at least one raster) or counted in exactly one of the
    drop counters, so ``n_read == n_kept + n_dropped``.

    Attributes
    ----------
    source : str
        The file read.
    crs : str
        The CRS the points were interpreted in (e.g. ``"EPSG:4326"``).
    n_read : int
        Points read (a MultiPoint counts each of its points; any other geometry counts 1).
    n_kept : int
        Points placed on at least one raster.
    kept_per_raster : dict of str to int
        ``{raster_stem: points kept on it}`` for every raster, in the order given; a point in
        overlapping rasters counts for each, so the sum can exceed ``n_kept``.
    n_outside : int
        Points outside every raster (or that could not be reprojected).
    n_nodata : int
        Points inside a raster but on nodata in every raster that covers them.
    n_unknown_class : int
        Points whose class is missing, or neither a known name nor a code in range.
    unknown_classes : dict of str to int
        ``{value: count}`` of the unknown class values (``"<missing>"`` for empty values).
    n_bad_geometry : int
        Features without a Point / MultiPoint geometry (or with unreadable coordinates).
    bad_geometry_types : dict of str to int
        ``{geometry type: count}`` of those features.
    n_duplicate : int
        Extra copies of a point (same raster, pixel and class); the first is kept.
    n_conflicting : int
        Points sharing a pixel with a point of another class (all of them dropped).
    messages : list of str
        The first few examples of each kind of problem.
    """

    source: str = ""
    crs: str = ""
    n_read: int = 0
    n_kept: int = 0
    kept_per_raster: dict[str, int] = field(default_factory=dict)
    n_outside: int = 0
    n_nodata: int = 0
    n_unknown_class: int = 0
    unknown_classes: dict[str, int] = field(default_factory=dict)
    n_bad_geometry: int = 0
    bad_geometry_types: dict[str, int] = field(default_factory=dict)
    n_duplicate: int = 0
    n_conflicting: int = 0
    messages: list[str] = field(default_factory=list)

    #: The drop counters, in the order they are reported.
    DROPS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("n_outside", "outside every raster"),
        ("n_nodata", "on nodata"),
        ("n_unknown_class", "with unknown class"),
        ("n_bad_geometry", "with bad geometry"),
        ("n_duplicate", "duplicate"),
        ("n_conflicting", "conflicting"),
    )

    def __str__(self) -> str:
        head = f"{self.source or 'points'}"
        if self.crs:
            head += f" ({self.crs})"
        head += f": read {self.n_read}, kept {self.n_kept}"
        if self.kept_per_raster:
            head += " (" + ", ".join(f"{k}: {v}" for k, v in self.kept_per_raster.items()) + ")"
        head += self.dropped_text()
        if self.unknown_classes:
            head += "\n  unknown class values: " + ", ".join(
                f"{v!r} ({n})" for v, n in self.unknown_classes.items()
            )
        if self.bad_geometry_types:
            head += "\n  bad geometries: " + ", ".join(
                f"{t} ({n})" for t, n in self.bad_geometry_types.items()
            )
        if self.messages:
            head += "\n" + "\n".join(f"  {m}" for m in self.messages)
        return head


# --------------------------------------------------------------------------------------------
# CRS helpers


def _crs_class() -> Any:
    try:
        from rasterio.crs import CRS
    except ImportError as exc:  # pragma: no cover - rasterio is a core dependency
        raise ImportError(
            "reading map-coordinate points needs rasterio: pip install rasterio"
        ) from exc
    return CRS


def _parse_crs(value: Any, where: str) -> Any:
    """A ``rasterio.crs.CRS`` from ``"EPSG:2180"``, ``2180``, a WKT / URN string or a CRS."""
    CRS = _crs_class()
    from rasterio.errors import CRSError

    if isinstance(value, CRS):
        return value
    try:
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return CRS.from_epsg(int(value))
        if isinstance(value, str) and value.strip():
            text = value.strip()
            return CRS.from_epsg(int(text)) if text.isdigit() else CRS.from_user_input(text)
        if hasattr(value, "to_wkt"):  # pyproj.CRS and friends
            return CRS.from_wkt(value.to_wkt())
    except (CRSError, ValueError) as exc:
        raise ValueError(
            f"{where}: cannot interpret CRS {value!r} ({exc}); give it as e.g. 'EPSG:4326' "
            "(longitude/latitude) or 'EPSG:2180'"
        ) from exc
    raise ValueError(
        f"{where}: CRS must be a string such as 'EPSG:4326', an EPSG code or a CRS object, "
        f"got {value!r}"
    )


def _crs_name(crs: Any) -> str:
    try:
        epsg = crs.to_epsg()
    except Exception:  # to_epsg may fail on exotic CRSs
        epsg = None
    if epsg is not None:
        return f"EPSG:{epsg}"
    try:
        authority = crs.to_authority()
    except Exception:
        authority = None
    if authority:
        return f"{authority[0]}:{authority[1]}"
    text = crs.to_string()
    return text if len(text) <= 80 else text[:77] + "..."


_WGS84_NAMES = frozenset({"EPSG:4326", "OGC:CRS84"})


def _same_crs(a: Any, b: Any) -> bool:
    """Whether two CRSs are the same for the user (EPSG codes or WGS84 lon/lat match)."""
    if a == b:
        return True
    name_a, name_b = _crs_name(a), _crs_name(b)
    if name_a in _WGS84_NAMES and name_b in _WGS84_NAMES:
        return True  # both lon/lat in rasterio's traditional GIS axis order
    return name_a == name_b and name_a.startswith("EPSG:")


def _reproject(
    src_crs: Any, dst_crs: Any, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reproject coordinates; points PROJ cannot transform come back as NaN."""
    if len(xs) == 0 or src_crs == dst_crs:
        return xs.astype(np.float64), ys.astype(np.float64)
    from rasterio.warp import transform

    try:
        tx, ty = transform(src_crs, dst_crs, xs.tolist(), ys.tolist())
        return np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)
    except Exception:  # PROJ refuses the whole batch if one point is invalid
        logger.debug("batch reprojection failed; reprojecting point by point", exc_info=True)
    out_x = np.full(len(xs), np.nan)
    out_y = np.full(len(xs), np.nan)
    for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
        try:
            (px,), (py,) = transform(src_crs, dst_crs, [x], [y])
        except Exception:
            continue
        out_x[i], out_y[i] = px, py
    return out_x, out_y


# --------------------------------------------------------------------------------------------
# rasters


@dataclass
class _Raster:
    path: Path
    stem: str
    crs: Any
    transform: Any
    width: int
    height: int
    all_valid: bool


def _list_rasters(rasters: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(rasters, str | os.PathLike):
        root = Path(rasters)
        if root.is_dir():
            paths = sorted(
                p for p in root.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES
            )
            if not paths:
                raise ValueError(
                    f"raster folder {root} holds no GeoTIFF ({', '.join(RASTER_SUFFIXES)}); "
                    "pass the folder with the georeferenced images or a list of their paths"
                )
            return paths
        paths = [root]
    else:
        paths = [Path(p) for p in rasters]
        if not paths:
            raise ValueError("rasters is empty; pass GeoTIFF paths or a folder of GeoTIFFs")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"raster {p} does not exist")
    return paths


def _open_rasters(paths: list[Path]) -> list[_Raster]:
    import rasterio
    from rasterio.enums import MaskFlags

    infos: list[_Raster] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            with rasterio.open(path) as src:
                crs, transform = src.crs, src.transform
                width, height = src.width, src.height
                all_valid = all(flags == [MaskFlags.all_valid] for flags in src.mask_flag_enums)
        except rasterio.errors.RasterioIOError as exc:
            raise ValueError(f"cannot read raster {path}: {exc}") from exc
        if crs is None or transform.is_identity:
            raise ValueError(
                f"raster {path} has no {'CRS' if crs is None else 'georeferencing'}, so map "
                "coordinates cannot be placed on it; georeference it (e.g. gdal_edit.py "
                f"-a_srs EPSG:2180 {path.name}) or use pixel-coordinate points "
                "(pointseg.points.read_points)"
            )
        stem = image_stem(path.name)
        if stem in seen:
            raise ValueError(
                f"rasters {seen[stem]} and {path} have the same stem {stem!r}; points are "
                "returned per stem, so give rasters with distinct names"
            )
        seen[stem] = path
        infos.append(_Raster(path, stem, crs, transform, width, height, all_valid))
    return infos


def _valid_pixels(raster: _Raster, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``True`` where the dataset mask of ``raster`` is non-zero at ``(cols, rows)``.

    The mask is read in aligned ``_MASK_CHUNK`` x ``_MASK_CHUNK`` windows holding points, so
    the cost is bounded by reading the raster's mask once however many points there are.
    """
    if raster.all_valid or len(cols) == 0:
        return np.ones(len(cols), dtype=bool)
    import rasterio
    from rasterio.windows import Window

    valid = np.empty(len(cols), dtype=bool)
    chunk_rows, chunk_cols = rows // _MASK_CHUNK, cols // _MASK_CHUNK
    n_chunk_cols = -(-raster.width // _MASK_CHUNK)
    chunks = chunk_rows * n_chunk_cols + chunk_cols
    order = np.argsort(chunks, kind="stable")
    bounds = np.flatnonzero(np.diff(chunks[order])) + 1
    with rasterio.open(raster.path) as src:
        for members in np.split(order, bounds):
            r0 = int(chunk_rows[members[0]]) * _MASK_CHUNK
            c0 = int(chunk_cols[members[0]]) * _MASK_CHUNK
            window = Window(
                c0,
                r0,
                min(_MASK_CHUNK, raster.width - c0),
                min(_MASK_CHUNK, raster.height - r0),
            )
            try:
                mask = src.dataset_mask(window=window)
            except read_errors() as exc:
                raise ValueError(
                    f"cannot read {raster.path} near row {r0}, column {c0} ({exc}); is it a "
                    "complete GeoTIFF?"
                ) from exc
            valid[members] = mask[rows[members] - r0, cols[members] - c0] != 0
    return valid


def _place_points(
    src_crs: Any, raster_infos: list[_Raster], xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, list[list[tuple[int, int, int]]], dict[int, tuple[int, int, int]]]:
    """Pixels of the points ``(xs, ys)`` (in ``src_crs``) on every raster.

    Returns
    -------
    inside_any : np.ndarray of bool, shape (N,)
        Whether the point lies inside at least one raster.
    placements : list of list of (int, int, int)
        Per point, the ``(raster index, col, row)`` of every raster where it is on valid data.
    nodata_at : dict of int to (int, int, int)
        For points on nodata somewhere, the first such ``(raster index, col, row)``.
    """
    n = len(xs)
    inside_any = np.zeros(n, dtype=bool)
    placements: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    nodata_at: dict[int, tuple[int, int, int]] = {}
    reprojected: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for ri, raster in enumerate(raster_infos):
        key = raster.crs.to_wkt()
        if key not in reprojected:
            reprojected[key] = _reproject(src_crs, raster.crs, xs, ys)
        tx, ty = reprojected[key]
        inv = ~raster.transform
        with np.errstate(invalid="ignore"):
            col = inv.a * tx + inv.b * ty + inv.c
            row = inv.d * tx + inv.e * ty + inv.f
            ok = (
                np.isfinite(col)
                & np.isfinite(row)
                & (col >= 0)
                & (col < raster.width)
                & (row >= 0)
                & (row < raster.height)
            )
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            continue
        # pixel (c, r) covers [c, c + 1) x [r, r + 1): floor, no half-pixel shift
        cols = np.floor(col[idx]).astype(np.int64)
        rows = np.floor(row[idx]).astype(np.int64)
        inside_any[idx] = True
        valid = _valid_pixels(raster, cols, rows)
        for i, c, r, v in zip(
            idx.tolist(), cols.tolist(), rows.tolist(), valid.tolist(), strict=True
        ):
            if v:
                placements[i].append((ri, c, r))
            else:
                nodata_at.setdefault(i, (ri, c, r))
    return inside_any, placements, nodata_at


# --------------------------------------------------------------------------------------------
# reading features


@dataclass
class _Record:
    """One point read from the file (or one unusable feature when ``bad`` is set)."""

    loc: str
    x: float = math.nan
    y: float = math.nan
    cls: Any = None
    bad: str | None = None  # geometry type or problem of an unusable feature
    bad_message: str = ""


@dataclass
class _Source:
    crs: Any
    records: list[_Record]


def _coord(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    elif isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) else None


def _records_from_geometry(loc: str, gtype: Any, coords: Any, cls: Any) -> list[_Record]:
    """Records of one GeoJSON-like geometry (``type`` and ``coordinates``)."""
    if gtype == "Point":
        positions, locs = [coords], [loc]
    elif gtype == "MultiPoint" and isinstance(coords, list | tuple):
        if not coords:
            return [_Record(loc, bad="empty MultiPoint", bad_message="MultiPoint has no points")]
        positions = list(coords)
        locs = [f"{loc} point {j}" for j in range(len(positions))]
    else:
        name = "no geometry" if gtype is None else str(gtype)
        return [
            _Record(
                loc,
                bad=name,
                bad_message=f"geometry {name!r} is not a Point or MultiPoint; only clicked "
                "points are supported (convert polygons to points first)",
            )
        ]
    records = []
    for position, where in zip(positions, locs, strict=True):
        x = y = None
        if isinstance(position, list | tuple) and len(position) >= 2:
            x, y = _coord(position[0]), _coord(position[1])
        if x is None or y is None:
            records.append(
                _Record(
                    where,
                    bad="bad coordinates",
                    bad_message=f"coordinates {position!r} are not two finite numbers [x, y]",
                )
            )
        else:
            records.append(_Record(where, x, y, cls))
    return records


def _geojson_crs(path: Path, member: Any) -> Any:
    if member is None:
        return None
    if isinstance(member, dict):
        props = member.get("properties") if isinstance(member.get("properties"), dict) else {}
        kind = str(member.get("type", "")).casefold()
        if kind == "name" and props.get("name"):
            return _parse_crs(props["name"], f"{path} 'crs' member")
        if kind == "epsg" and props.get("code") is not None:
            return _parse_crs(int(props["code"]), f"{path} 'crs' member")
    raise ValueError(
        f"{path}: unsupported legacy 'crs' member {member!r}; use "
        '{"type": "name", "properties": {"name": "EPSG:2180"}}, remove it and pass '
        "crs='EPSG:2180', or save the file as WGS84 GeoJSON (RFC 7946)"
    )


def _read_geojson(path: Path, class_field: str, user_crs: Any) -> _Source:
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise ValueError(f"{path}: file is empty; expected a GeoJSON FeatureCollection")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    if isinstance(data, dict) and data.get("type") == "Feature":
        features: Any = [data]
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise ValueError(f"{path}: 'features' of the FeatureCollection must be a list")
    else:
        kind = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path}: expected a GeoJSON FeatureCollection of Point features, got {kind!r}"
        )

    file_crs = _geojson_crs(path, data.get("crs"))
    records: list[_Record] = []
    for i, feature in enumerate(features):
        loc = f"{path.name} features[{i}]"
        if not isinstance(feature, dict):
            records.append(
                _Record(loc, bad="not a feature", bad_message="feature is not a JSON object")
            )
            continue
        props = feature.get("properties")
        props = props if isinstance(props, dict) else {}
        geometry = feature.get("geometry")
        gtype = geometry.get("type") if isinstance(geometry, dict) else None
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        records.extend(_records_from_geometry(loc, gtype, coords, _get_field(props, class_field)))

    if file_crs is not None:
        crs = _resolve_crs(path, file_crs, user_crs)
    elif user_crs is not None:
        logger.info(
            "%s has no 'crs' member; using crs=%s instead of the RFC 7946 default (WGS84)",
            path,
            _crs_name(user_crs),
        )
        crs = user_crs
    else:
        crs = _parse_crs("OGC:CRS84", str(path))
        points = [r for r in records if r.bad is None]
        if points and all(abs(r.x) > 360 or abs(r.y) > 90 for r in points):
            raise ValueError(
                f"{path}: coordinates such as ({points[0].x}, {points[0].y}) are not "
                "longitude/latitude, but the file has no 'crs' member, so RFC 7946 WGS84 is "
                "assumed; pass the CRS the points were saved in, e.g. crs='EPSG:2180', or "
                "export the layer as WGS84 (EPSG:4326)"
            )
    return _Source(crs, records)


def _get_field(props: dict[str, Any], name: str) -> Any:
    """A property by name, falling back to a case-insensitive match; None when absent."""
    if name in props:
        return props[name]
    folded = name.casefold()
    for key, value in props.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None


def _resolve_crs(path: Path, file_crs: Any, user_crs: Any) -> Any:
    if user_crs is not None and not _same_crs(file_crs, user_crs):
        logger.warning(
            "%s declares CRS %s but crs=%s was given; using the file's CRS %s (remove crs= "
            "or fix the file's CRS if the points land in the wrong place)",
            path,
            _crs_name(file_crs),
            _crs_name(user_crs),
            _crs_name(file_crs),
        )
    return file_crs


def _require_crs(path: Path, user_crs: Any, what: str) -> Any:
    if user_crs is None:
        raise ValueError(
            f"{path}: {what} has no CRS, so its coordinates cannot be placed on the rasters; "
            "pass the CRS the coordinates are in, e.g. crs='EPSG:4326' for longitude/latitude "
            "or crs='EPSG:2180' (--crs EPSG:2180 on the command line)"
        )
    return user_crs


def _read_csv(path: Path, class_field: str, user_crs: Any) -> _Source:
    crs = _require_crs(path, user_crs, "a CSV file")
    records: list[_Record] = []
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            return _Source(crs, records)
        columns = [cell.strip().casefold() for cell in header]
        pair = next(
            ((cx, cy) for cx, cy in CSV_COORDINATE_COLUMNS if cx in columns and cy in columns),
            None,
        )
        class_col = class_field.strip().casefold()
        if pair is None or class_col not in columns:
            wanted = " or ".join(f"{cx},{cy}" for cx, cy in CSV_COORDINATE_COLUMNS)
            raise ValueError(
                f"{path}: the header must name coordinate columns ({wanted}) and the class "
                f"column {class_field!r} (class_field=...), found columns {header}"
            )
        ix, iy, ic = columns.index(pair[0]), columns.index(pair[1]), columns.index(class_col)
        needed = max(ix, iy, ic) + 1
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            loc = f"{path.name} line {reader.line_num}"
            if len(row) < needed:
                records.append(
                    _Record(
                        loc,
                        bad="short row",
                        bad_message=f"row has {len(row)} field(s) but the header has {len(header)}",
                    )
                )
                continue
            x, y = _coord(row[ix]), _coord(row[iy])
            if x is None or y is None:
                records.append(
                    _Record(
                        loc,
                        bad="bad coordinates",
                        bad_message=f"{pair[0]}={row[ix]!r}, {pair[1]}={row[iy]!r} are not "
                        "finite numbers",
                    )
                )
                continue
            records.append(_Record(loc, x, y, row[ic]))
    return _Source(crs, records)


_WKB_TYPES = {
    1: "Point",
    2: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


def _wkb_points(data: bytes, offset: int = 0) -> tuple[str, list[tuple[float, float]], int]:
    """Parse a (ISO or EWKB) Point / MultiPoint; return type name, positions, next offset."""
    order = "<" if data[offset] == 1 else ">"
    (code,) = struct.unpack_from(f"{order}I", data, offset + 1)
    offset += 5
    has_z, has_m = bool(code & 0x80000000), bool(code & 0x40000000)
    if code & 0x20000000:
        offset += 4  # EWKB SRID
    dims, base = divmod(code & 0x0FFFFFFF, 1000)
    has_z |= dims in (1, 3)
    has_m |= dims in (2, 3)
    name = _WKB_TYPES.get(base, f"geometry type {base}")
    if base == 1:
        n = 2 + has_z + has_m
        values = struct.unpack_from(f"{order}{n}d", data, offset)
        offset += 8 * n
        if math.isnan(values[0]) and math.isnan(values[1]):
            return "empty Point", [], offset
        return name, [(values[0], values[1])], offset
    if base == 4:
        (count,) = struct.unpack_from(f"{order}I", data, offset)
        offset += 4
        positions: list[tuple[float, float]] = []
        for _ in range(count):
            _, sub, offset = _wkb_points(data, offset)
            positions.extend(sub)
        return (name if positions else "empty MultiPoint"), positions, offset
    return name, [], offset


def _records_from_wkb(loc: str, wkb: Any, cls: Any) -> list[_Record]:
    if wkb is None:
        return _records_from_geometry(loc, None, None, cls)
    try:
        name, positions, _ = _wkb_points(bytes(wkb))
    except (struct.error, IndexError):
        return [_Record(loc, bad="unreadable geometry", bad_message="geometry is not valid WKB")]
    if name.startswith("empty"):
        return [_Record(loc, bad=name, bad_message=f"geometry is an {name}")]
    if name not in ("Point", "MultiPoint"):
        return _records_from_geometry(loc, name, None, cls)
    if name == "Point":
        return _records_from_geometry(loc, "Point", list(positions[0]), cls)
    return _records_from_geometry(loc, "MultiPoint", [list(p) for p in positions], cls)


def _import_pyogrio() -> Any:
    import pyogrio

    return pyogrio


def _import_fiona() -> Any:
    import fiona

    return fiona


def _pick_field(path: Path, fields: Sequence[str], class_field: str) -> str:
    if class_field in fields:
        return class_field
    folded = [f for f in fields if f.casefold() == class_field.casefold()]
    if folded:
        return folded[0]
    raise ValueError(
        f"{path}: no attribute {class_field!r} holding the class; the layer has attributes "
        f"{list(fields)}; pass class_field=... naming the one with the class name or code"
    )


def _read_ogr(path: Path, class_field: str, user_crs: Any, layer: str | int | None) -> _Source:
    try:
        pyogrio = _import_pyogrio()
    except ImportError:
        pyogrio = None
    if pyogrio is not None:
        return _read_pyogrio(pyogrio, path, class_field, user_crs, layer)
    try:
        fiona = _import_fiona()
    except ImportError:
        fiona = None
    if fiona is not None:
        return _read_fiona(fiona, path, class_field, user_crs, layer)
    raise ImportError(
        f"reading {path.name} ({path.suffix} files) needs pyogrio: pip install pyogrio "
        "(or fiona); alternatively export the points as GeoJSON or CSV"
    )


def _read_pyogrio(
    pyogrio: Any, path: Path, class_field: str, user_crs: Any, layer: str | int | None
) -> _Source:
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        if layer is None:
            layers = [str(name) for name, _ in pyogrio.list_layers(path)]
            if not layers:
                raise ValueError(f"{path}: the file holds no layer")
            layer = layers[0]
            if len(layers) > 1:
                logger.warning(
                    "%s holds %d layers %s; reading the first, %r (pass layer=... to choose)",
                    path,
                    len(layers),
                    layers,
                    layer,
                )
        meta, fids, geometry, field_data = pyogrio.raw.read(path, layer=layer, return_fids=True)
    except (DataSourceError, DataLayerError) as exc:
        raise ValueError(f"cannot read {path} (layer {layer!r}): {exc}") from exc
    fields = [str(f) for f in meta["fields"]]
    name = _pick_field(path, fields, class_field)
    values = field_data[fields.index(name)]
    crs = (
        _resolve_crs(path, _parse_crs(meta["crs"], str(path)), user_crs)
        if meta.get("crs")
        else _require_crs(path, user_crs, "the layer (e.g. a Shapefile without .prj)")
    )
    records: list[_Record] = []
    label = path.name if layer is None else f"{path.name} layer {layer!r}"
    for i, wkb in enumerate(geometry):
        fid = f" (fid {int(fids[i])})" if fids is not None else ""
        records.extend(_records_from_wkb(f"{label} feature {i}{fid}", wkb, values[i]))
    return _Source(crs, records)


def _read_fiona(
    fiona: Any, path: Path, class_field: str, user_crs: Any, layer: str | int | None
) -> _Source:
    try:
        layers = list(fiona.listlayers(path))
        if layer is None and len(layers) > 1:
            logger.warning(
                "%s holds %d layers %s; reading the first, %r (pass layer=... to choose)",
                path,
                len(layers),
                layers,
                layers[0],
            )
        with fiona.open(path, layer=layer) as src:
            crs_wkt = getattr(src, "crs_wkt", "") or ""
            fields = list(src.schema.get("properties", {}).keys())
            name = _pick_field(path, fields, class_field)
            features = [(f["geometry"], f["properties"]) for f in src]
    except fiona.errors.FionaError as exc:
        raise ValueError(f"cannot read {path} (layer {layer!r}): {exc}") from exc
    crs = (
        _resolve_crs(path, _parse_crs(crs_wkt, str(path)), user_crs)
        if crs_wkt
        else _require_crs(path, user_crs, "the layer (e.g. a Shapefile without .prj)")
    )
    records: list[_Record] = []
    label = path.name if layer is None else f"{path.name} layer {layer!r}"
    for i, (geometry, props) in enumerate(features):
        if geometry is None:
            gtype, coords = None, None
        elif isinstance(geometry, dict):
            gtype, coords = geometry.get("type"), geometry.get("coordinates")
        else:  # fiona >= 1.9 Geometry objects
            gtype, coords = getattr(geometry, "type", None), getattr(geometry, "coordinates", None)
        cls = props[name] if props is not None and name in props else None
        records.extend(_records_from_geometry(f"{label} feature {i}", gtype, coords, cls))
    return _Source(crs, records)


# --------------------------------------------------------------------------------------------
# classes


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _parse_class(value: Any, lookup: dict[str, int], n_classes: int) -> int | None:
    value = _plain(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.casefold() in lookup:
            return lookup[text.casefold()]
        try:
            number: float = float(text)
        except ValueError:
            return None
    elif isinstance(value, int | float):
        number = value
    else:
        return None
    if not math.isfinite(number) or number != int(number):
        return None
    index = int(number)
    return index if 0 <= index < n_classes else None


def _class_key(value: Any) -> str:
    value = _plain(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _MISSING
    if isinstance(value, str) and not value.strip():
        return _MISSING
    return str(value)


# --------------------------------------------------------------------------------------------
# the reader


def read_geo_points(
    path: str | os.PathLike[str],
    rasters: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    class_names: Sequence[str],
    class_field: str = "class",
    crs: Any = None,
    layer: str | int | None = None,
    on_invalid: str = "warn",
) -> tuple[dict[str, np.ndarray], GeoPointReport]:
    """Read points in map coordinates and place them on the pixels of georeferenced rasters.

    Parameters
    ----------
    path : str or os.PathLike
        The point file, by suffix: ``.geojson`` / ``.json`` (RFC 7946 WGS84 lon/lat unless a
        legacy ``crs`` member says otherwise), ``.csv`` (header with coordinate columns
        ``x,y``, ``lon,lat``, ``longitude,latitude`` or ``easting,northing`` and the class
        column; needs ``crs``), or any OGR vector format such as ``.gpkg`` and ``.shp``
        (needs ``pyogrio`` or ``fiona``).  Point and MultiPoint geometries are read; other
        geometries are counted as bad geometry.
    rasters : str, os.PathLike or iterable of those
        GeoTIFF paths, or a folder whose ``*.tif`` / ``*.tiff`` files are used (sorted).
        Only metadata and the nodata mask at the points are read.  Each raster must have a
        CRS; stems must be distinct.
    class_names : sequence of str
        The dataset's class names; index ``i`` is class ``i``.
    class_field : str
        Attribute (CSV column, feature property) holding the class, either a class name
        (case-insensitive) or an integer code indexing ``class_names``.  Matched exactly, or
        case-insensitively when there is no exact match.
    crs : str, int or CRS, optional
        CRS of the coordinates, e.g. ``"EPSG:4326"`` (lon/lat) or ``"EPSG:2180"``.  Required
        for CSV and for files without a CRS (a Shapefile without ``.prj``).  Overrides the
        RFC 7946 default of a GeoJSON without ``crs`` member.  If the file declares a
        different CRS, the file's CRS wins and a warning is logged.
    layer : str or int, optional
        Layer of a multi-layer file (GeoPackage); default the first (with a warning when
        there are several).
    on_invalid : {"warn", "raise"}
        ``"raise"``: ``ValueError`` naming the first invalid point in file order (feature
        index or CSV line, and the value): outside every raster, on nodata, unknown class, bad
        geometry, or a class conflicting with an earlier point on the same pixel.  ``"warn"``:
        such points are dropped and counted, and one warning summarises the counts.
        Duplicates (same raster, pixel and class) are always dropped silently apart from that
        summary.

    Returns
    -------
    points : dict of str to np.ndarray
        ``{raster_stem: points}``, each ``(N, 3)`` ``int64`` ``[x, y, class]`` (``x`` column,
        ``y`` row of the raster) sorted by ``(y, x)``; only rasters with at least one kept
        point appear, in sorted order.
    report : GeoPointReport
        Counts (read, kept, per raster, outside, nodata, unknown class with the values, bad
        geometry, duplicates, conflicts) and example messages.

    Raises
    ------
    ValueError
        If the file has no CRS and ``crs`` is not given, a CRS cannot be interpreted, the
        class attribute or coordinate columns are missing, a raster has no CRS, or
        ``on_invalid="raise"`` and a point is invalid.
    FileNotFoundError
        If the point file or a raster does not exist.
    ImportError
        If a GeoPackage / Shapefile is read and neither pyogrio nor fiona is installed.

    Examples
    --------
    >>> points, report = read_geo_points(
    ...     "clicks.gpkg", "tiles/", class_names=["background", "building"]
    ... )  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """
    path = Path(path)
    raise_on_invalid = _check_on_invalid(on_invalid) == "raise"
    lookup = _class_lookup(class_names)
    names = list(class_names)
    if not isinstance(class_field, str) or not class_field.strip():
        raise ValueError(f"class_field must be a non-empty attribute name, got {class_field!r}")
    if not path.is_file():
        raise FileNotFoundError(f"point file {path} does not exist")
    raster_infos = _open_rasters(_list_rasters(rasters))
    user_crs = _parse_crs(crs, "crs argument") if crs is not None else None

    suffix = path.suffix.lower()
    if suffix in _JSON_SUFFIXES:
        source = _read_geojson(path, class_field, user_crs)
    elif suffix == ".csv":
        source = _read_csv(path, class_field, user_crs)
    else:
        source = _read_ogr(path, class_field, user_crs, layer)

    report = GeoPointReport(source=str(path), crs=_crs_name(source.crs))
    report.kept_per_raster = {r.stem: 0 for r in raster_infos}
    # (file order, report counter, message); messages of problems found along the way
    problems: list[tuple[int, str, str]] = []
    unknown: Counter[str] = Counter()
    bad_types: Counter[str] = Counter()

    # -- pass 1: geometry and class ------------------------------------------------------------
    orders: list[int] = []
    xs: list[float] = []
    ys: list[float] = []
    labels: list[int] = []
    records = source.records
    hint = (
        f"use one of the class names {names} (case-insensitive) or an integer code "
        f"0..{len(names) - 1}"
    )
    for order, record in enumerate(records):
        if record.bad is not None:
            bad_types[record.bad] += 1
            problems.append((order, "n_bad_geometry", f"{record.loc}: {record.bad_message}"))
            continue
        label = _parse_class(record.cls, lookup, len(names))
        if label is None:
            key = _class_key(record.cls)
            unknown[key] += 1
            what = (
                f"has no value in {class_field!r}"
                if key == _MISSING
                else f"class {_plain(record.cls)!r} in {class_field!r} is not a known class"
            )
            problems.append((order, "n_unknown_class", f"{record.loc}: {what}; {hint}"))
            continue
        orders.append(order)
        xs.append(record.x)
        ys.append(record.y)
        labels.append(label)
    if raise_on_invalid and problems:  # later points cannot come first: skip their checks
        cutoff = problems[0][0]
        keep = sum(1 for o in orders if o < cutoff)
        del orders[keep:], xs[keep:], ys[keep:], labels[keep:]

    # -- pass 2: rasters -------------------------------------------------------------------------
    n = len(orders)
    inside_any, placements, nodata_at = _place_points(
        source.crs,
        raster_infos,
        np.asarray(xs, dtype=np.float64),
        np.asarray(ys, dtype=np.float64),
    )

    # -- pass 3: duplicates and conflicts ------------------------------------------------------
    pixels: dict[tuple[int, int, int], dict[int, int]] = {}  # -> {class: first point index}
    for i in range(n):
        if not placements[i]:
            where = records[orders[i]].loc
            coord = f"({xs[i]}, {ys[i]}) in {report.crs}"
            if not inside_any[i]:
                problems.append(
                    (
                        orders[i],
                        "n_outside",
                        f"{where}: point {coord} is outside every raster "
                        f"({len(raster_infos)} given); check its CRS (crs=...) and that the "
                        "raster covering it is among the rasters",
                    )
                )
            else:
                ri, c, r = nodata_at[i]
                problems.append(
                    (
                        orders[i],
                        "n_nodata",
                        f"{where}: point {coord} falls on nodata of raster "
                        f"{raster_infos[ri].stem!r} at pixel x={c}, y={r}; move it onto "
                        "valid imagery",
                    )
                )
            continue
        for place in placements[i]:
            classes = pixels.setdefault(place, {})
            if classes and labels[i] not in classes:
                other = next(iter(classes.values()))
                ri, c, r = place
                problems.append(
                    (
                        orders[i],
                        "conflict",
                        f"{records[orders[i]].loc}: class {names[labels[i]]!r} conflicts with "
                        f"class {names[labels[other]]!r} at {records[orders[other]].loc} on "
                        f"the same pixel (raster {raster_infos[ri].stem!r}, x={c}, y={r}); "
                        "keep only one of the two points",
                    )
                )
            classes.setdefault(labels[i], i)

    if raise_on_invalid and problems:
        raise ValueError(min(problems)[2])

    rows_out: dict[str, list[tuple[int, int, int]]] = {}
    for i in range(n):
        if not placements[i]:
            continue
        kept = conflicted = False
        for place in placements[i]:
            classes = pixels[place]
            if len(classes) > 1:
                conflicted = True
            elif classes[labels[i]] == i:
                ri, c, r = place
                rows_out.setdefault(raster_infos[ri].stem, []).append((c, r, labels[i]))
                report.kept_per_raster[raster_infos[ri].stem] += 1
                kept = True
        if kept:
            report.n_kept += 1
        elif conflicted:
            report.n_conflicting += 1
        else:
            report.n_duplicate += 1
            ri, c, r = placements[i][0]
            first = records[orders[pixels[placements[i][0]][labels[i]]]].loc
            problems.append(
                (
                    orders[i],
                    "n_duplicate",
                    f"{records[orders[i]].loc}: duplicate of {first} (raster "
                    f"{raster_infos[ri].stem!r}, x={c}, y={r}, class {names[labels[i]]!r}); "
                    "dropped",
                )
            )
    for place, classes in pixels.items():
        if len(classes) > 1:
            ri, c, r = place
            listed = ", ".join(
                f"{names[label]!r} ({records[orders[i]].loc})" for label, i in classes.items()
            )
            problems.append(
                (
                    min(orders[i] for i in classes.values()),
                    "n_conflicting",
                    f"conflicting classes {listed} at pixel x={c}, y={r} of raster "
                    f"{raster_infos[ri].stem!r}; all dropped",
                )
            )

    # -- report ----------------------------------------------------------------------------------
    report.n_read = len(records)
    report.n_bad_geometry = sum(bad_types.values())
    report.bad_geometry_types = dict(bad_types)
    report.n_unknown_class = sum(unknown.values())
    report.unknown_classes = dict(unknown)
    report.n_outside = sum(1 for _, kind, _ in problems if kind == "n_outside")
    report.n_nodata = sum(1 for _, kind, _ in problems if kind == "n_nodata")
    shown: Counter[str] = Counter()
    for _, kind, message in sorted(problems):
        if kind == "conflict":
            continue  # reported per pixel under n_conflicting
        if shown[kind] < MAX_MESSAGES_PER_KIND:
            report.messages.append(message)
        shown[kind] += 1

    result: dict[str, np.ndarray] = {}
    for stem in sorted(rows_out):
        pts = np.asarray(rows_out[stem], dtype=np.int64).reshape(-1, 3)
        result[stem] = pts[np.lexsort((pts[:, 0], pts[:, 1]))]

    if report.n_read == 0:
        logger.warning("%s contains no points", path)
    elif report.n_dropped:
        logger.warning("dropped %d point(s): %s", report.n_dropped, report)
    else:
        logger.info("%s", report)
    return result, report
