"""Tests for pointseg.points.geo (points in map coordinates placed on GeoTIFFs)."""

from __future__ import annotations

import json
import logging
import math
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform as warp_transform

from pointseg.points import geo
from pointseg.points.geo import GeoPointReport, read_geo_points

CLASSES = ("background", "building", "woodland", "water", "road")

# tile_a: EPSG:2180 (LandCover.ai's CRS), 40 x 30 px at 0.5 m; nodata (0 in all bands) in
# rows 20..29, cols 30..39; pixel (x=5, y=5) is 0 in band 1 only, so it stays valid.
A_ORIGIN = (500000.0, 460000.0)
# tile_b: EPSG:2180, 40 x 30 px at 0.5 m, 15 m east of tile_a: its cols 0..9 overlap tile_a's
# cols 30..39; an internal mask hides its rows 0..4, cols 20..39.
B_ORIGIN = (500015.0, 460000.0)
SIZE = (30, 40)  # height, width
RES = 0.5


def grid(west: float, north: float, res: float) -> Affine:
    """North-up transform with square pixels of size ``res`` and top-left corner (west, north)."""
    return Affine(res, 0.0, west, 0.0, -res, north)


def pixel_to_map(
    transform: Any, cols: Sequence[float], rows: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Map coordinates of fractional pixel positions (col, row measured from the corner)."""
    xs, ys = [], []
    for c, r in zip(cols, rows, strict=True):
        xs.append(transform.a * c + transform.b * r + transform.c)
        ys.append(transform.d * c + transform.e * r + transform.f)
    return xs, ys


def to_lonlat(crs: str, xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    lons, lats = warp_transform(crs, "EPSG:4326", list(xs), list(ys))
    return list(zip(lons, lats, strict=True))


def write_tif(
    path: Path,
    *,
    crs: str | None,
    transform: Any,
    data: np.ndarray,
    nodata: float | None = None,
    mask: np.ndarray | None = None,
) -> Path:
    count, height, width = data.shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "transform": transform,
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if mask is not None:
            dst.write_mask(mask)
    return path


@pytest.fixture(scope="module")
def rasters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rasters")
    pair = root / "pair"
    pair.mkdir()
    height, width = SIZE

    data_a = np.full((3, height, width), 100, dtype=np.uint8)
    data_a[:, 20:, 30:] = 0
    data_a[0, 5, 5] = 0
    a = write_tif(
        pair / "tile_a.tif",
        crs="EPSG:2180",
        transform=grid(*A_ORIGIN, RES),
        data=data_a,
        nodata=0,
    )

    mask_b = np.full((height, width), 255, dtype=np.uint8)
    mask_b[:5, 20:] = 0
    b = write_tif(
        pair / "tile_b.tif",
        crs="EPSG:2180",
        transform=grid(*B_ORIGIN, RES),
        data=np.full((3, height, width), 50, dtype=np.uint8),
        mask=mask_b,
    )

    other = root / "other"
    other.mkdir()
    (ux,), (uy,) = warp_transform("EPSG:4326", "EPSG:32633", [16.0], [52.0])
    utm = write_tif(
        other / "tile_utm.tif",
        crs="EPSG:32633",
        transform=grid(round(ux), round(uy), 1.0),
        data=np.ones((1, 20, 20), dtype=np.float32),
    )
    bare = write_tif(
        other / "bare.tif",
        crs=None,
        transform=grid(100, 100, 1.0),
        data=np.ones((1, 4, 4), dtype=np.uint8),
    )
    return {"a": a, "b": b, "pair": pair, "utm": utm, "bare": bare}


def transform_of(path: Path) -> Any:
    with rasterio.open(path) as src:
        return src.transform


def feature(lon: float, lat: float, cls: Any, *, field: str = "class") -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {field: cls},
    }


def write_geojson(path: Path, features: list[dict[str, Any]], crs: Any = None) -> Path:
    data: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs is not None:
        data["crs"] = crs
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def a_points(
    cells: Sequence[tuple[int, int]], fractions: Sequence[tuple[float, float]], path: Path
) -> list[tuple[float, float]]:
    """Lon/lat of positions inside tile_a pixels (col, row) at (fx, fy) within the pixel."""
    t = transform_of(path)
    xs, ys = pixel_to_map(
        t,
        [c + fx for (c, _), (fx, _) in zip(cells, fractions, strict=True)],
        [r + fy for (_, r), (_, fy) in zip(cells, fractions, strict=True)],
    )
    return to_lonlat("EPSG:2180", xs, ys)


# pixel centres and positions just inside each corner of tile_a pixels
CELLS = [(0, 0), (39, 0), (0, 29), (12, 7), (25, 19), (38, 1), (1, 28), (20, 10)]
FRACTIONS = [
    (0.5, 0.5),
    (0.999, 0.001),
    (0.001, 0.999),
    (0.5, 0.5),
    (0.001, 0.001),
    (0.999, 0.999),
    (0.5, 0.001),
    (0.999, 0.5),
]


def expected(cells: Sequence[tuple[int, int]], classes: Sequence[int]) -> np.ndarray:
    pts = np.array([[c, r, k] for (c, r), k in zip(cells, classes, strict=True)], dtype=np.int64)
    return pts[np.lexsort((pts[:, 0], pts[:, 1]))]


# --------------------------------------------------------------------------------------------
# GeoJSON


def test_geojson_wgs84_lands_on_exact_pixels(tmp_path: Path, rasters: dict[str, Path]) -> None:
    lonlat = a_points(CELLS, FRACTIONS, rasters["a"])
    classes = [i % len(CLASSES) for i in range(len(CELLS))]
    features = [
        feature(lon, lat, CLASSES[k].upper() if i % 2 else CLASSES[k])
        for i, ((lon, lat), k) in enumerate(zip(lonlat, classes, strict=True))
    ]
    path = write_geojson(tmp_path / "clicks.geojson", features)

    got, report = read_geo_points(path, [rasters["a"]], class_names=CLASSES)

    assert list(got) == ["tile_a"]
    np.testing.assert_array_equal(got["tile_a"], expected(CELLS, classes))
    assert got["tile_a"].dtype == np.int64
    assert report.crs == "OGC:CRS84"
    assert report.n_read == report.n_kept == len(CELLS)
    assert report.kept_per_raster == {"tile_a": len(CELLS)}
    assert report.n_dropped == 0


def test_drops_are_counted(
    tmp_path: Path, rasters: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    t = transform_of(rasters["a"])
    (ok1, ok2, band1_zero, nodata, nodata2) = a_points(
        [(3, 3), (10, 12), (5, 5), (35, 25), (30, 20)], [(0.5, 0.5)] * 5, rasters["a"]
    )
    west = to_lonlat("EPSG:2180", *pixel_to_map(t, [-200.0], [3.0]))[0]
    features = [
        feature(*ok1, "building"),
        feature(*ok2, 3),  # class by code: water
        feature(*band1_zero, "2"),  # nodata in one band only: kept; code as text
        feature(*west, "road"),  # outside
        feature(*nodata, "road"),  # nodata in all bands
        feature(*nodata2, "road"),
        feature(*ok1, "buildng"),  # unknown name
        feature(*ok1, 9),  # unknown code
        feature(*ok1, "buildng"),
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": list(ok1)},
            "properties": {},
        },  # missing class
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [list(ok1), list(ok2)]},
            "properties": {"class": "road"},
        },
        {"type": "Feature", "geometry": None, "properties": {"class": "road"}},
    ]
    path = write_geojson(tmp_path / "clicks.geojson", features)

    with caplog.at_level(logging.WARNING, logger="pointseg.points.geo"):
        got, report = read_geo_points(path, [rasters["a"]], class_names=CLASSES)

    np.testing.assert_array_equal(got["tile_a"], expected([(3, 3), (5, 5), (10, 12)], [1, 2, 3]))
    assert report.n_read == 12
    assert report.n_kept == 3
    assert report.n_outside == 1
    assert report.n_nodata == 2
    assert report.n_unknown_class == 4
    assert report.unknown_classes == {"buildng": 2, "9": 1, "<missing>": 1}
    assert report.n_bad_geometry == 2
    assert report.bad_geometry_types == {"LineString": 1, "no geometry": 1}
    assert report.n_read == report.n_kept + report.n_dropped
    text = str(report)
    assert "1 outside every raster" in text and "2 on nodata" in text
    assert "'buildng' (2)" in text and "features[3]" in text
    assert "dropped 9 point(s)" in caplog.text


def test_raise_names_first_bad_feature(tmp_path: Path, rasters: dict[str, Path]) -> None:
    t = transform_of(rasters["a"])
    (ok,) = a_points([(3, 3)], [(0.5, 0.5)], rasters["a"])
    west = to_lonlat("EPSG:2180", *pixel_to_map(t, [-200.0], [3.0]))[0]
    path = write_geojson(
        tmp_path / "p.geojson",
        [feature(*ok, "building"), feature(*west, "road"), feature(*ok, "buildng")],
    )
    with pytest.raises(ValueError, match=r"features\[1\].*outside every raster"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES, on_invalid="raise")

    path = write_geojson(
        tmp_path / "q.geojson", [feature(*ok, "building"), feature(*ok, "buildng")]
    )
    with pytest.raises(ValueError, match=r"features\[1\].*'buildng'.*class names"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES, on_invalid="raise")

    path = write_geojson(tmp_path / "r.geojson", [feature(*ok, "building"), feature(*ok, "road")])
    with pytest.raises(ValueError, match=r"features\[1\].*'road' conflicts with.*features\[0\]"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES, on_invalid="raise")

    with pytest.raises(ValueError, match="on_invalid"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES, on_invalid="ignore")


def test_duplicates_and_conflicts(tmp_path: Path, rasters: dict[str, Path]) -> None:
    p1, p1_corner, p2, p3 = a_points(
        [(3, 3), (3, 3), (8, 8), (9, 9)],
        [(0.5, 0.5), (0.9, 0.1), (0.5, 0.5), (0.5, 0.5)],
        rasters["a"],
    )
    path = write_geojson(
        tmp_path / "p.geojson",
        [
            feature(*p1, "building"),
            feature(*p1_corner, "building"),  # same pixel and class: duplicate
            feature(*p2, "water"),
            feature(*p2, "road"),  # same pixel, other class: both conflicting
            feature(*p3, "road"),
        ],
    )
    got, report = read_geo_points(path, [rasters["a"]], class_names=CLASSES)
    np.testing.assert_array_equal(got["tile_a"], expected([(3, 3), (9, 9)], [1, 4]))
    assert (report.n_kept, report.n_duplicate, report.n_conflicting) == (2, 1, 2)
    assert report.n_invalid == 2 and report.n_dropped == 3
    assert "conflicting classes 'water'" in str(report)


def test_multipoint(tmp_path: Path, rasters: dict[str, Path]) -> None:
    lonlat = a_points([(1, 2), (6, 4)], [(0.5, 0.5)] * 2, rasters["a"])
    path = write_geojson(
        tmp_path / "p.geojson",
        [
            {
                "type": "Feature",
                "geometry": {"type": "MultiPoint", "coordinates": [list(p) for p in lonlat]},
                "properties": {"label": "Woodland"},
            }
        ],
    )
    got, report = read_geo_points(path, rasters["a"], class_names=CLASSES, class_field="label")
    np.testing.assert_array_equal(got["tile_a"], expected([(1, 2), (6, 4)], [2, 2]))
    assert report.n_read == 2


def test_geojson_legacy_crs_member(
    tmp_path: Path, rasters: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    t = transform_of(rasters["a"])
    xs, ys = pixel_to_map(t, [4.5, 17.5], [2.5, 21.5])
    features = [feature(x, y, "road") for x, y in zip(xs, ys, strict=True)]
    for member in (
        {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::2180"}},
        {"type": "EPSG", "properties": {"code": 2180}},
    ):
        path = write_geojson(tmp_path / "p.geojson", features, crs=member)
        with caplog.at_level(logging.WARNING, logger="pointseg.points.geo"):
            caplog.clear()
            got, report = read_geo_points(
                path, [rasters["a"]], class_names=CLASSES, crs="EPSG:32633"
            )
        np.testing.assert_array_equal(got["tile_a"], expected([(4, 2), (17, 21)], [4, 4]))
        assert report.crs == "EPSG:2180"
        assert "declares CRS EPSG:2180 but crs=EPSG:32633" in caplog.text

    # no crs member but projected coordinates: clear error, and crs= fixes it
    path = write_geojson(tmp_path / "q.geojson", features)
    with pytest.raises(ValueError, match=r"q.geojson.*not longitude/latitude.*crs='EPSG:2180'"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES)
    got, report = read_geo_points(path, [rasters["a"]], class_names=CLASSES, crs="EPSG:2180")
    np.testing.assert_array_equal(got["tile_a"], expected([(4, 2), (17, 21)], [4, 4]))

    path = write_geojson(tmp_path / "r.geojson", features, crs={"type": "link"})
    with pytest.raises(ValueError, match="unsupported legacy 'crs' member"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES)


# --------------------------------------------------------------------------------------------
# rasters


def test_two_overlapping_rasters_and_mask(tmp_path: Path, rasters: dict[str, Path]) -> None:
    cells_a = [(35, 3), (35, 25), (2, 2), (25, 2)]
    overlap, a_nodata_b_valid, only_a, _ = a_points(cells_a, [(0.5, 0.5)] * 4, rasters["a"])
    tb = transform_of(rasters["b"])
    b_masked, only_b = to_lonlat("EPSG:2180", *pixel_to_map(tb, [30.5, 30.5], [2.5, 12.5]))
    path = write_geojson(
        tmp_path / "p.geojson",
        [
            feature(*overlap, "building"),
            feature(*a_nodata_b_valid, "water"),
            feature(*only_a, "road"),
            feature(*b_masked, "road"),  # masked by tile_b's internal mask
            feature(*only_b, "woodland"),
        ],
    )
    got, report = read_geo_points(path, rasters["pair"], class_names=CLASSES)  # a folder

    assert list(got) == ["tile_a", "tile_b"]
    np.testing.assert_array_equal(got["tile_a"], expected([(35, 3), (2, 2)], [1, 4]))
    np.testing.assert_array_equal(got["tile_b"], expected([(5, 3), (5, 25), (30, 12)], [1, 3, 2]))
    assert report.n_read == 5
    assert report.n_kept == 4
    assert report.kept_per_raster == {"tile_a": 2, "tile_b": 3}
    assert report.n_nodata == 1
    assert "tile_b" in str(report)


def test_raster_in_another_crs(tmp_path: Path, rasters: dict[str, Path]) -> None:
    t = transform_of(rasters["utm"])
    cells = [(0, 0), (19, 19), (7, 13), (13, 7)]
    fractions = [(0.5, 0.5), (0.001, 0.001), (0.999, 0.999), (0.5, 0.999)]
    xs, ys = pixel_to_map(
        t,
        [c + fx for (c, _), (fx, _) in zip(cells, fractions, strict=True)],
        [r + fy for (_, r), (_, fy) in zip(cells, fractions, strict=True)],
    )
    lonlat = to_lonlat("EPSG:32633", xs, ys)
    path = write_geojson(tmp_path / "p.geojson", [feature(lon, lat, 3) for lon, lat in lonlat])
    got, report = read_geo_points(path, [rasters["a"], rasters["utm"]], class_names=CLASSES)
    assert list(got) == ["tile_utm"]
    np.testing.assert_array_equal(got["tile_utm"], expected(cells, [3] * 4))
    assert report.kept_per_raster == {"tile_a": 0, "tile_utm": 4}


def test_raster_errors(tmp_path: Path, rasters: dict[str, Path]) -> None:
    path = write_geojson(tmp_path / "p.geojson", [feature(19.0, 52.0, 1)])
    with pytest.raises(ValueError, match=r"bare.tif has no CRS.*gdal_edit"):
        read_geo_points(path, [rasters["bare"]], class_names=CLASSES)
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        read_geo_points(path, [tmp_path / "missing.tif"], class_names=CLASSES)
    with pytest.raises(ValueError, match="holds no GeoTIFF"):
        read_geo_points(path, tmp_path, class_names=CLASSES)
    with pytest.raises(FileNotFoundError, match="nope.geojson"):
        read_geo_points(tmp_path / "nope.geojson", [rasters["a"]], class_names=CLASSES)


# --------------------------------------------------------------------------------------------
# CSV


def test_csv_needs_crs_and_reads_headers(tmp_path: Path, rasters: dict[str, Path]) -> None:
    cells = [(2, 3), (30, 15)]
    lonlat = a_points(cells, [(0.5, 0.5), (0.999, 0.001)], rasters["a"])
    t = transform_of(rasters["a"])
    xs, ys = pixel_to_map(t, [2.5, 30.999], [3.5, 15.001])

    path = tmp_path / "lonlat.csv"
    rows = "\n".join(f"{lon!r},{lat!r},{k}" for (lon, lat), k in zip(lonlat, (1, 3), strict=True))
    path.write_text("Lon,Lat,Class\n" + rows + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lonlat.csv: a CSV file has no CRS.*crs='EPSG:4326'"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES)
    got, report = read_geo_points(path, [rasters["a"]], class_names=CLASSES, crs="EPSG:4326")
    np.testing.assert_array_equal(got["tile_a"], expected(cells, [1, 3]))
    assert report.crs == "EPSG:4326"

    for header in ("x,y", "easting,northing"):
        path = tmp_path / "projected.csv"
        rows = "\n".join(
            f"{x!r},{y!r},{k},note" for x, y, k in zip(xs, ys, ("building", "WATER"), strict=True)
        )
        path.write_text(f"{header},kind,note\n{rows}\nnan,1,road,x\n", encoding="utf-8")
        got, report = read_geo_points(
            path, [rasters["a"]], class_names=CLASSES, crs=2180, class_field="kind"
        )
        np.testing.assert_array_equal(got["tile_a"], expected(cells, [1, 3]))
        assert report.n_bad_geometry == 1 and "projected.csv line 4" in str(report)

    path.write_text("x,y,class\n1,2,road\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"class column 'label'.*found columns"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES, crs=2180, class_field="label")
    with pytest.raises(ValueError, match=r"crs argument.*'EPSG:nope'.*EPSG:4326"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES, crs="EPSG:nope")


# --------------------------------------------------------------------------------------------
# GeoPackage and Shapefile (pyogrio)


def wkb_point(x: float, y: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, x, y)


def wkb_multipoint(points: Sequence[tuple[float, float]]) -> bytes:
    return struct.pack("<BII", 1, 4, len(points)) + b"".join(wkb_point(x, y) for x, y in points)


def wkb_line(points: Sequence[tuple[float, float]]) -> bytes:
    return struct.pack("<BII", 1, 2, len(points)) + b"".join(
        struct.pack("<dd", x, y) for x, y in points
    )


def test_geopackage(
    tmp_path: Path, rasters: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    pyogrio = pytest.importorskip("pyogrio")
    cells = [(2, 3), (30, 15), (11, 11)]
    lonlat = a_points(cells, [(0.5, 0.5), (0.999, 0.001), (0.001, 0.999)], rasters["a"])
    geometry = np.array(
        [wkb_point(*lonlat[0]), wkb_multipoint(lonlat[1:]), wkb_line(lonlat[:2])], dtype=object
    )
    path = tmp_path / "clicks.gpkg"
    pyogrio.raw.write(
        path,
        geometry,
        [np.array(["Building", "water", "road"], dtype=object)],
        ["class"],
        geometry_type="Unknown",
        crs="EPSG:4326",
        driver="GPKG",
        layer="clicks",
    )
    got, report = read_geo_points(path, [rasters["a"]], class_names=CLASSES)
    np.testing.assert_array_equal(got["tile_a"], expected(cells, [1, 3, 3]))
    assert report.n_read == 4 and report.n_bad_geometry == 1
    assert report.bad_geometry_types == {"LineString": 1}
    with pytest.raises(ValueError, match=r"clicks.gpkg layer 'clicks' feature 2 \(fid 3\)"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES, on_invalid="raise")

    # a second layer in EPSG:2180 with integer codes; crs= disagreeing with it only warns
    t = transform_of(rasters["a"])
    xs, ys = pixel_to_map(t, [4.5], [6.5])
    pyogrio.raw.write(
        path,
        np.array([wkb_point(xs[0], ys[0])], dtype=object),
        [np.array([4], dtype=np.int64)],
        ["code"],
        geometry_type="Point",
        crs="EPSG:2180",
        driver="GPKG",
        layer="projected",
    )
    with caplog.at_level(logging.WARNING, logger="pointseg.points.geo"):
        got, report = read_geo_points(
            path,
            [rasters["a"]],
            class_names=CLASSES,
            class_field="CODE",
            layer="projected",
            crs="EPSG:4326",
        )
    np.testing.assert_array_equal(got["tile_a"], [[4, 6, 4]])
    assert "using the file's CRS EPSG:2180" in caplog.text
    with pytest.raises(ValueError, match=r"no attribute 'class'.*\['code'\].*class_field"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES, layer="projected")


def test_shapefile_without_prj_needs_crs(tmp_path: Path, rasters: dict[str, Path]) -> None:
    pyogrio = pytest.importorskip("pyogrio")
    t = transform_of(rasters["a"])
    xs, ys = pixel_to_map(t, [4.5, 39.999], [6.5, 29.999])
    geometry = np.array([wkb_point(x, y) for x, y in zip(xs, ys, strict=True)], dtype=object)
    path = tmp_path / "clicks.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "'crs' was not provided"
        pyogrio.raw.write(
            path,
            geometry,
            [np.array([1, 2], dtype=np.int64)],
            ["class"],
            geometry_type="Point",
            driver="ESRI Shapefile",
        )
    assert not path.with_suffix(".prj").exists()
    with pytest.raises(ValueError, match=r"clicks.shp:.*without .prj.*has no CRS.*crs="):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES)
    got, report = read_geo_points(path, [rasters["a"]], class_names=CLASSES, crs="EPSG:2180")
    # (39, 29), the bottom-right pixel, lies in tile_a's nodata corner
    np.testing.assert_array_equal(got["tile_a"], [[4, 6, 1]])
    assert (report.n_kept, report.n_nodata) == (1, 1)


def test_ogr_without_library(
    tmp_path: Path, rasters: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> Any:
        raise ImportError("no")

    monkeypatch.setattr(geo, "_import_pyogrio", missing)
    monkeypatch.setattr(geo, "_import_fiona", missing)
    path = tmp_path / "clicks.gpkg"
    path.write_bytes(b"")
    with pytest.raises(ImportError, match="pip install pyogrio"):
        read_geo_points(path, [rasters["a"]], class_names=CLASSES)


def test_fiona_fallback(
    tmp_path: Path, rasters: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pyogrio = pytest.importorskip("pyogrio")
    pytest.importorskip("fiona")
    lonlat = a_points([(2, 3), (30, 15)], [(0.5, 0.5), (0.999, 0.001)], rasters["a"])
    path = tmp_path / "clicks.gpkg"
    pyogrio.raw.write(
        path,
        np.array([wkb_point(*lonlat[0]), wkb_multipoint(lonlat[1:])], dtype=object),
        [np.array(["building", "3"], dtype=object)],
        ["class"],
        geometry_type="Unknown",
        crs="EPSG:4326",
        driver="GPKG",
    )

    def missing() -> Any:
        raise ImportError("no")

    monkeypatch.setattr(geo, "_import_pyogrio", missing)
    got, report = read_geo_points(path, [rasters["a"]], class_names=CLASSES)
    assert report.crs == "EPSG:4326" and report.n_read == 2
    np.testing.assert_array_equal(got["tile_a"], expected([(2, 3), (30, 15)], [1, 3]))


def test_wkb_variants() -> None:
    iso_z = struct.pack("<BIddd", 1, 1001, 1.5, 2.5, 9.0)
    ewkb_srid = struct.pack("<BIIdd", 1, 0x20000001, 2180, 3.0, 4.0)
    big_endian = struct.pack(">BIdd", 0, 1, 5.0, 6.0)
    multi_zm = struct.pack("<BII", 1, 3004, 2) + b"".join(
        struct.pack("<BIdddd", 1, 3001, x, x + 1, 0.0, 0.0) for x in (7.0, 9.0)
    )
    empty = struct.pack("<BIdd", 1, 1, math.nan, math.nan)
    assert geo._wkb_points(iso_z)[:2] == ("Point", [(1.5, 2.5)])
    assert geo._wkb_points(ewkb_srid)[:2] == ("Point", [(3.0, 4.0)])
    assert geo._wkb_points(big_endian)[:2] == ("Point", [(5.0, 6.0)])
    assert geo._wkb_points(multi_zm)[:2] == ("MultiPoint", [(7.0, 8.0), (9.0, 10.0)])
    assert geo._wkb_points(empty)[:2] == ("empty Point", [])
    (record,) = geo._records_from_wkb("f", empty, "road")
    assert record.bad == "empty Point"
    (record,) = geo._records_from_wkb("f", b"\x01\x02", "road")
    assert record.bad == "unreadable geometry"


def test_report_defaults() -> None:
    report = GeoPointReport(source="p.geojson", n_read=2, n_kept=2)
    assert str(report) == "p.geojson: read 2, kept 2"
    assert report.counts()["n_kept"] == 2
