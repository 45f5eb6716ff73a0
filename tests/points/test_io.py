"""Tests for pointseg.points.io."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from pointseg.points import (
    PointReport,
    image_stem,
    read_points,
    read_points_csv,
    read_points_geojson,
    write_points_csv,
)

CLASSES = ("background", "building", "woodland", "water", "road")
SIZES = {"tile_01": (100, 200), "tile_02": (50, 50)}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_round_trip(tmp_path: Path) -> None:
    points = {
        "tile_02": np.array([[3, 1, 4], [0, 0, 0], [49, 49, 2]], dtype=np.int64),
        "tile_01": np.array([[10, 20, 1]], dtype=np.int64),
    }
    out = write_points_csv(tmp_path / "sub" / "points.csv", points, class_names=CLASSES)
    assert out == tmp_path / "sub" / "points.csv"
    assert out.read_text().splitlines()[0] == "image,x,y,class"
    assert "tile_01,10,20,building" in out.read_text()
    assert not [p for p in out.parent.iterdir() if p.name != "points.csv"]  # no temp left

    got, report = read_points_csv(out, class_names=CLASSES, image_sizes=SIZES)
    assert list(got) == ["tile_01", "tile_02"]
    for stem, pts in points.items():
        expected = pts[np.lexsort((pts[:, 0], pts[:, 1]))]
        np.testing.assert_array_equal(got[stem], expected)
        assert got[stem].dtype == np.int64
    assert report.n_read == report.n_kept == 4
    assert report.n_dropped == 0


def test_write_rejects_bad_class(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class index 7"):
        write_points_csv(tmp_path / "p.csv", {"a": np.array([[0, 0, 7]])}, class_names=CLASSES)
    assert not list(tmp_path.iterdir())


def test_csv_class_names_and_indices_any_column_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "points.csv",
        "Class,Y,note,X,IMAGE\n"
        "Building,5,hello,7,tile_01.png\n"
        "3,6,,2,tile_01\n"
        "WATER,0,,0,tile_02.tif\n",
    )
    got, report = read_points_csv(path, class_names=CLASSES)
    assert got["tile_01"].tolist() == [[7, 5, 1], [2, 6, 3]]
    assert got["tile_02"].tolist() == [[0, 0, 3]]
    assert report.n_kept == 3


def test_csv_float_coordinates_floor(tmp_path: Path) -> None:
    path = write(
        tmp_path / "points.csv",
        "image,x,y,class\ntile_01,10.9,0.0,road\ntile_01,0.5,3.99,road\ntile_01,199.99,99.5,0\n",
    )
    got, _ = read_points_csv(path, class_names=CLASSES, image_sizes=SIZES)
    assert got["tile_01"].tolist() == [[10, 0, 4], [0, 3, 4], [199, 99, 0]]


BAD_CSV = (
    "image,x,y,class\n"
    "tile_01,1,1,building\n"  # line 2: ok
    "tile_01,200,5,building\n"  # line 3: outside (width 200)
    "tile_01,5,-0.5,building\n"  # line 4: outside (negative)
    "tile_01,2,2,tree\n"  # line 5: unknown class
    "tile_01,3,3,9\n"  # line 6: class index out of range
    "tile_99,1,1,road\n"  # line 7: unknown image
    "tile_01,1.5,1.2,building\n"  # line 8: duplicate of line 2
    "tile_02,4,4,water\n"  # line 9: conflicts with line 10
    "tile_02,4,4,road\n"  # line 10
    "tile_02,abc,4,road\n"  # line 11: malformed
    "tile_02,7,8,road\n"  # line 12: ok
)


def test_csv_warn_mode_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "points.csv", BAD_CSV)
    with caplog.at_level(logging.WARNING, logger="pointseg.points.io"):
        got, report = read_points_csv(path, class_names=CLASSES, image_sizes=SIZES)
    assert got["tile_01"].tolist() == [[1, 1, 1]]
    assert got["tile_02"].tolist() == [[7, 8, 4]]
    assert isinstance(report, PointReport)
    assert report.counts() == {
        "n_read": 11,
        "n_kept": 2,
        "n_outside": 2,
        "n_unknown_class": 2,
        "n_duplicate": 1,
        "n_conflicting": 2,
        "n_unknown_image": 1,
        "n_malformed": 1,
    }
    assert report.n_read == report.n_kept + report.n_dropped
    assert "points.csv line 3: x=200 is outside image 'tile_01' (width 200)" in report.messages[0]
    text = str(report)
    assert "read 11, kept 2" in text and "2 conflicting" in text and "line 5" in text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 conflicting" in warnings[0].getMessage()


def test_csv_without_sizes_keeps_large_coordinates(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "image,x,y,class\nanything,5000,7,road\nother,-1,0,road\n")
    got, report = read_points_csv(path, class_names=CLASSES)
    assert got == {"anything": got["anything"]}
    assert got["anything"].tolist() == [[5000, 7, 4]]
    assert report.n_outside == 1


@pytest.mark.parametrize(
    ("row", "line_match", "fix_match"),
    [
        ("tile_01,2,2,tree", "line 3", r"'background', 'building', 'woodland', 'water', 'road'"),
        ("tile_01,600,2,road", "line 3", r"x=600 is outside image 'tile_01' \(width 200\)"),
        ("tile_99,1,1,road", "line 3", "tile_01"),
        ("tile_01,x,1,road", "line 3", "not a finite number"),
        ("tile_01,1,1,water", "line 3", "line 2"),
    ],
)
def test_csv_raise_mode(tmp_path: Path, row: str, line_match: str, fix_match: str) -> None:
    path = write(tmp_path / "points.csv", f"image,x,y,class\ntile_01,1,1,road\n{row}\n")
    with pytest.raises(ValueError, match=line_match) as info:
        read_points_csv(path, class_names=CLASSES, image_sizes=SIZES, on_invalid="raise")
    assert "points.csv" in str(info.value)
    assert info.match(fix_match)


def test_csv_raise_mode_allows_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "image,x,y,class\na,1,1,road\na,1,1,road\n")
    got, report = read_points_csv(path, class_names=CLASSES, on_invalid="raise")
    assert got["a"].tolist() == [[1, 1, 4]]
    assert report.n_duplicate == 1


def test_csv_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path / "points.csv", "image,x,label\ntile_01,1,road\n")
    with pytest.raises(ValueError, match=r"points\.csv.*\['y', 'class'\].*'label'"):
        read_points_csv(path, class_names=CLASSES)


@pytest.mark.parametrize("text", ["", "image,x,y,class\n"])
def test_csv_empty(tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "points.csv", text)
    with caplog.at_level(logging.WARNING, logger="pointseg.points.io"):
        got, report = read_points_csv(path, class_names=CLASSES)
    assert got == {}
    assert report.n_read == 0
    assert any("no points" in r.getMessage() for r in caplog.records)


def test_bad_arguments(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "image,x,y,class\n")
    with pytest.raises(ValueError, match="on_invalid"):
        read_points_csv(path, class_names=CLASSES, on_invalid="ignore")
    with pytest.raises(ValueError, match="class_names"):
        read_points_csv(path, class_names="road")


def test_image_stem() -> None:
    assert image_stem("tile_01.PNG") == "tile_01"
    assert image_stem("images/tile_01.tif") == "tile_01"
    assert image_stem("tile.v2") == "tile.v2"


def feature(geometry: dict | None, **props: object) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def test_geojson_points_multipoint_and_non_point(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = {
        "type": "FeatureCollection",
        "features": [
            feature(
                {"type": "Point", "coordinates": [10.7, 20.2]}, image="tile_01", **{"class": "tree"}
            ),
            feature({"type": "Point", "coordinates": [3, 4]}, image="tile_01.png", **{"class": 2}),
            feature(
                {"type": "MultiPoint", "coordinates": [[1, 1], [5.5, 0.5], [300, 1]]},
                image="tile_01",
                **{"class": "Road"},
            ),
            feature(
                {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
                image="tile_01",
                **{"class": "road"},
            ),
            feature({"type": "Point", "coordinates": [8, 8]}, image="tile_01"),  # no class
        ],
    }
    path = write(tmp_path / "points.geojson", json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="pointseg.points.io"):
        got, report = read_points_geojson(path, class_names=CLASSES, image_sizes=SIZES)
    assert got["tile_01"].tolist() == [[5, 0, 4], [1, 1, 4], [3, 4, 2]]
    assert report.n_read == 7
    assert report.n_kept == 3
    assert report.n_unknown_class == 1
    assert report.n_outside == 1
    assert report.n_malformed == 2
    assert any("features[4]: missing property 'class'" in m for m in report.messages)
    assert any("Polygon" in m and "features[3]" in m for m in report.messages)
    assert any("features[2] point 2" in m for m in report.messages)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_geojson_custom_properties_and_read_points(tmp_path: Path) -> None:
    data = {
        "type": "FeatureCollection",
        "features": [feature({"type": "Point", "coordinates": [2, 3]}, tile="a", label="water")],
    }
    path = write(tmp_path / "clicks.json", json.dumps(data))
    got, _ = read_points(path, class_names=CLASSES, image_property="tile", class_property="label")
    assert got["a"].tolist() == [[2, 3, 3]]


def test_geojson_raise_on_non_point(tmp_path: Path) -> None:
    data = {"type": "FeatureCollection", "features": [feature({"type": "LineString"})]}
    path = write(tmp_path / "p.geojson", json.dumps(data))
    with pytest.raises(ValueError, match=r"features\[0\].*LineString"):
        read_points_geojson(path, class_names=CLASSES, on_invalid="raise")


def test_geojson_invalid_json(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.geojson", '{"type": "FeatureCollection", ')
    with pytest.raises(ValueError, match=r"broken\.geojson.*invalid JSON"):
        read_points_geojson(path, class_names=CLASSES)
    path = write(tmp_path / "list.geojson", "[1, 2]")
    with pytest.raises(ValueError, match="FeatureCollection"):
        read_points_geojson(path, class_names=CLASSES)


def test_read_points_dispatch(tmp_path: Path) -> None:
    path = write(tmp_path / "p.CSV", "image,x,y,class\na,0,0,road\n")
    got, _ = read_points(path, class_names=CLASSES)
    assert got["a"].tolist() == [[0, 0, 4]]
    with pytest.raises(ValueError, match=r"\.txt.*'\.csv', '\.geojson', '\.json'"):
        read_points(tmp_path / "p.txt", class_names=CLASSES)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_csv_encodings_with_a_bom_or_utf8_read_alike(tmp_path: Path, encoding: str) -> None:
    text = "image,x,y,class\nscène,1,2,forêt\n"
    path = tmp_path / "p.csv"
    path.write_bytes(text.encode(encoding))
    got, report = read_points_csv(path, class_names=["bâti", "forêt"])
    assert got["scène"].tolist() == [[1, 2, 1]] and report.n_kept == 1


def test_csv_in_another_encoding_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes("image,x,y,class\nscène,1,2,forêt\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"p\.csv is not UTF-8 text .*save it as UTF-8"):
        read_points_csv(path, class_names=["forêt"])
