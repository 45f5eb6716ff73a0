"""One point loader for pixel and map coordinates (pointseg.points.load_points)."""

import json

import numpy as np
import pytest

from pointseg.points import load_points, no_supervision_message, points_in_map_coordinates


@pytest.mark.parametrize(
    ("name", "crs", "geojson_map", "expected"),
    [
        ("p.csv", None, False, False),
        ("p.csv", "EPSG:4326", False, True),
        ("p.geojson", None, False, False),
        ("p.geojson", None, True, True),
        ("p.geojson", "file", False, True),
        ("p.gpkg", None, False, True),
        ("p.shp", None, False, True),
    ],
)
def test_pixel_or_map_coordinates_is_decided_in_one_place(name, crs, geojson_map, expected):
    assert points_in_map_coordinates(name, crs=crs, geojson_map=geojson_map) is expected


def test_pixel_points_are_read_onto_the_images(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image,x,y,class\na,1,2,b\na,50,2,a\n")
    pts, report = load_points(
        path,
        images={"a": tmp_path / "a.png"},
        image_sizes=lambda: {"a": (10, 10)},
        class_names=["a", "b"],
    )
    assert pts["a"].tolist() == [[1, 2, 1]] and report.n_outside == 1


def test_bad_files_are_clear_errors(tmp_path):
    kw = {"images": {}, "image_sizes": {}, "class_names": ["a"]}
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_points(tmp_path / "none.csv", **kw)
    with pytest.raises(ValueError, match="is a folder"):
        load_points(tmp_path, **kw)
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported suffix"):
        load_points(tmp_path / "p.txt", **kw)


def test_the_zero_supervision_message_says_why(tmp_path):
    path = tmp_path / "polygons.geojson"
    poly = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    feats = [{"type": "Feature", "geometry": poly, "properties": {"image": "a", "class": "a"}}]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    pts, report = load_points(
        path, images={"a": tmp_path / "a.png"}, image_sizes={"a": (4, 4)}, class_names=["a"]
    )
    assert not any(len(p) for p in pts.values())
    text = no_supervision_message(report)
    assert "polygons.geojson" in text and "read 1 point(s), kept 0" in text and "1 " in text
    assert np.asarray(list(pts.values())).size == 0
