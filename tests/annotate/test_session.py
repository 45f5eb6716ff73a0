"""Annotation sessions: files the trainer reads, the preview equals training's pseudo-label."""

import shutil

import numpy as np
import pytest

from pointseg.annotate import open_session
from pointseg.points import load_points
from pointseg.training import TrainConfig, prepare_splits
from pointseg.training.image_windows import label_image


@pytest.fixture
def data(tiny_synthetic, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    return root


@pytest.mark.parametrize("geometry", [{"resize": 0}, {"resize": 48}, {}])
def test_the_preview_equals_the_pseudo_label_training_builds(data, tmp_path, geometry):
    cfg = TrainConfig(
        data=str(data),
        **geometry,
        superpixels="hers",
        n_segments=40,
        fill_counts=[10],
        seed=3,
        cache_dir=str(tmp_path / "cache"),
    )
    session, preview = open_session(cfg)
    rng = np.random.default_rng(0)
    for entry in session.images:
        for _ in range(4):
            x, y = rng.uniform(0, 64, 2)
            session.add_point(entry.id, x, y, int(rng.integers(5)), version=session.version)
    cfg.points_file = str(session.points_file)
    if cfg.mode == "window":  # the default: native pseudo-labels as windowed training builds
        pseudo = cfg.pseudo_label_settings()
        for entry in session.images:
            image = preview.image(entry.name)
            target = label_image(
                image,
                session.point_array(entry.name),
                n_classes=5,
                pixels_per_segment=cfg.superpixel_area,
                fill_pixels_per_segment=[cfg.superpixel_area * 40 / 10],
                method=pseudo.method,
                seed=pseudo.seed,
            )
            np.testing.assert_array_equal(preview.labels(entry.name), target, err_msg=entry.name)
        return
    train = prepare_splits(cfg, names=("train",))["train"]
    assert len(train.names) >= 10
    for name, target in zip(train.names, train.targets, strict=True):
        np.testing.assert_array_equal(preview.labels(name), target, err_msg=name)


def test_points_file_reopens_and_continues(data):
    cfg = TrainConfig(data=str(data), superpixels="grid", n_segments=16)
    session, _ = open_session(cfg)
    session.add_point("3", 1, 2, 4, version=0)
    session.add_point("3", 9, 9, 0, version=1)
    again, _ = open_session(cfg)
    assert sorted(map(tuple, again.point_array("scene_0003").tolist())) == [(1, 2, 4), (9, 9, 0)]
    again.add_point("0", 5, 5, 1, version=again.version)  # ids do not collide
    assert len(again.point_list("scene_0003")) == 2


def test_a_failed_write_is_not_acknowledged(data, monkeypatch):
    session, _ = open_session(TrainConfig(data=str(data), superpixels="grid", n_segments=16))

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pointseg.annotate.session.write_points_csv", broken)
    with pytest.raises(OSError):
        session.add_point("0", 1, 1, 1, version=0)
    assert session.version == 0 and len(session.point_array("scene_0000")) == 0


@pytest.fixture(scope="module")
def geo_data(tmp_path_factory):
    from pointseg.data.synthetic_raster import make_synthetic_raster

    root = tmp_path_factory.mktemp("geo") / "data"
    make_synthetic_raster(root, size=600, points_per_tile=2, seed=1)
    (root / "points.geojson").unlink()
    return root


def test_georeferenced_images_save_a_geopackage_in_map_coordinates(geo_data, tmp_path):
    data = tmp_path / "geo"
    shutil.copytree(geo_data, data)
    cfg = TrainConfig(data=str(data), superpixels="grid", n_segments=16)
    session, _ = open_session(cfg)
    assert session.points_file == data / "points.gpkg"
    clicks = [(0.2, 0.7, 1), (599.9, 599.1, 3), (300.5, 17.0, 2)]
    for x, y, c in clicks:
        session.add_point("0", x, y, c, version=session.version)
    pts, report = load_points(
        session.points_file,
        images={e.name: e.path for e in session.images},
        image_sizes={},
        class_names=session.class_names,
    )
    assert report.crs and "2180" in report.crs
    expected = sorted((int(x), int(y), c) for x, y, c in clicks)
    assert sorted(map(tuple, pts["scene"].tolist())) == expected
    # QGIS-style reading: a point layer in the raster's CRS with the class by name
    import pyogrio

    info = pyogrio.read_info(session.points_file)
    assert info["geometry_type"] == "Point" and list(info["fields"]) == ["image", "class"]


@pytest.mark.parametrize(("name", "match"), [("p.csv", "GeoPackage"), ("p.geojson", "GeoPackage")])
def test_a_format_that_cannot_hold_map_coordinates_is_refused(geo_data, tmp_path, name, match):
    cfg = TrainConfig(data=str(geo_data), superpixels="grid", n_segments=16)
    with pytest.raises(ValueError, match=match):
        open_session(cfg, points_file=tmp_path / name)


def test_plain_images_refuse_a_geopackage(data, tmp_path):
    cfg = TrainConfig(data=str(data), superpixels="grid", n_segments=16)
    with pytest.raises(ValueError, match="csv"):
        open_session(cfg, points_file=tmp_path / "p.gpkg")
