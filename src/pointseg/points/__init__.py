"""Clicked query points: simulate them from dense masks, read and write point files.

The points of one image are an ``np.ndarray`` of shape ``(N, 3)`` and dtype ``int64`` with
columns ``x`` (column index), ``y`` (row index) and ``class`` (class index).
"""

from pointseg.points.geo import GeoPointReport, read_geo_points
from pointseg.points.io import (
    CSV_COLUMNS,
    SUPPORTED_POINT_SUFFIXES,
    PointReport,
    image_stem,
    read_points,
    read_points_csv,
    read_points_geojson,
    write_points_csv,
)
from pointseg.points.load import (
    MAP_POINT_SUFFIXES,
    load_points,
    no_supervision_message,
    points_in_map_coordinates,
)
from pointseg.points.sampling import (
    POINT_SCHEMES,
    image_seed,
    list_point_schemes,
    points_to_mask,
    sample_points,
)

__all__ = [
    "CSV_COLUMNS",
    "MAP_POINT_SUFFIXES",
    "POINT_SCHEMES",
    "SUPPORTED_POINT_SUFFIXES",
    "GeoPointReport",
    "PointReport",
    "image_seed",
    "image_stem",
    "list_point_schemes",
    "load_points",
    "no_supervision_message",
    "points_in_map_coordinates",
    "points_to_mask",
    "read_geo_points",
    "read_points",
    "read_points_csv",
    "read_points_geojson",
    "sample_points",
    "write_points_csv",
]
