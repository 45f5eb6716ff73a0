"""One loader for point files in pixel or map coordinates (train, pseudolabels, rasters).

Whether a file holds pixel or map coordinates is decided here and nowhere else:

- GeoPackage, Shapefile and FlatGeobuf files are always in map coordinates;
- any file is in map coordinates when ``crs`` is given (``"file"``: the file's own CRS, e.g.
  a GeoJSON without a ``crs`` member is WGS84 lon/lat; or a CRS such as ``"EPSG:4326"`` for a
  CSV with ``x,y,class`` columns);
- a GeoJSON is in map coordinates on georeferenced rasters when ``geojson_map`` is set (the
  ``rasters`` dataset), else in pixel coordinates with an ``image`` property;
- a CSV with ``image,x,y,class`` columns is in pixel coordinates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from pointseg.points.geo import GeoPointReport, read_geo_points
from pointseg.points.io import DropCounts, read_points

__all__ = [
    "MAP_POINT_SUFFIXES",
    "load_points",
    "no_supervision_message",
    "points_in_map_coordinates",
]

logger = logging.getLogger(__name__)

#: Suffixes of point files that always hold map coordinates.
MAP_POINT_SUFFIXES = (".gpkg", ".shp", ".fgb")

_PIXEL_SUFFIXES = (".csv", ".geojson", ".json")


def points_in_map_coordinates(
    path: str | os.PathLike[str], *, crs: str | None = None, geojson_map: bool = False
) -> bool:
    """Whether the point file ``path`` holds map coordinates (see the module docstring)."""
    suffix = Path(path).suffix.lower()
    if crs is not None or suffix in MAP_POINT_SUFFIXES:
        return True
    return geojson_map and suffix in (".geojson", ".json")


def load_points(
    path: str | os.PathLike[str],
    *,
    images: Mapping[str, Path],
    image_sizes: Mapping[str, tuple[int, int]] | Callable[[], Mapping[str, tuple[int, int]]],
    class_names: Sequence[str],
    crs: str | None = None,
    geojson_map: bool = False,
) -> tuple[dict[str, np.ndarray], DropCounts]:
    """Read a point file onto a dataset's images, in pixel or map coordinates.

    Parameters
    ----------
    path : str or os.PathLike
        CSV, GeoJSON, GeoPackage, Shapefile or FlatGeobuf.
    images : mapping of str to Path
        ``{stem: image file}``; map coordinates are placed on these (georeferenced) files.
    image_sizes : mapping of str to (int, int), or a function returning one
        ``{stem: (height, width)}`` for pixel coordinates (points outside are dropped).
    class_names : sequence of str
        The dataset's classes.
    crs : str, optional
        ``"file"`` or a CRS: the points are in map coordinates.
    geojson_map : bool
        Read a GeoJSON as map coordinates (the ``rasters`` dataset).

    Returns
    -------
    points : dict of str to ndarray (N, 3) int64
        ``{stem: [x, y, class]}`` in each image's pixels.
    report : PointReport or GeoPointReport
        What was read, kept and dropped (and why).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be read, or its suffix is not a point format.
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise ValueError(f"point file {path} is a folder; give the file itself")
        raise FileNotFoundError(f"point file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (*MAP_POINT_SUFFIXES, *_PIXEL_SUFFIXES):
        raise ValueError(
            f"point file {path}: unsupported suffix {path.suffix!r}; use .csv, .geojson, "
            ".gpkg, .shp or .fgb"
        )
    if points_in_map_coordinates(path, crs=crs, geojson_map=geojson_map):
        file_crs = None if crs in (None, "file") else crs
        points, report = read_geo_points(
            path, list(images.values()), class_names=list(class_names), crs=file_crs
        )
        # the rasters are named by stem: keep the dataset's names
        by_path = {Path(p).stem: name for name, p in images.items()}
        points = {by_path.get(k, k): v for k, v in points.items()}
    else:
        sizes = image_sizes() if callable(image_sizes) else image_sizes
        points, report = read_points(path, class_names=list(class_names), image_sizes=sizes)
    logger.info("%s", report)
    return points, report


def no_supervision_message(report: DropCounts, *, where: str = "the training images") -> str:
    """Why a point file labels nothing: the counts of dropped points, in one sentence."""
    dropped = report.dropped_text().lstrip("; ")
    source = getattr(report, "source", "") or "the point file"
    text = f"{source} labels no pixel of {where}: read {report.n_read} point(s), kept "
    text += f"{report.n_kept}"
    if dropped:
        text += f" ({dropped})"
    if isinstance(report, GeoPointReport) and report.n_outside:
        text += "; points outside every image: check the CRS (--points-crs) and the images"
    elif report.n_read == 0:
        text += "; the file holds no point feature (Point/MultiPoint with a class)"
    return text
