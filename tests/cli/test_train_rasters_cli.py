"""``pointseg train --dataset rasters``: a GeoTIFF, lon/lat clicks, then a tiled prediction."""

import rasterio

from pointseg.cli import main
from pointseg.data.synthetic_raster import make_synthetic_raster


def test_train_on_a_raster_then_predict_it_tiled(tmp_path, capsys):
    root = tmp_path / "data"
    made = make_synthetic_raster(root, size=256, tile=128, points_per_tile=10, nodata_columns=20)
    run = tmp_path / "run"
    code = main(
        [
            "-q",
            "train",
            "--dataset",
            "rasters",
            str(root),
            "--points",
            str(made["points"]),
            "--image-size",
            "64",
            "--n-segments",
            "40",
            "--model",
            "unet",
            "--model-options",
            '{"base_channels": 8, "depth": 2}',
            "--max-epochs",
            "1",
            "--batch-size",
            "4",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--dataset-option",
            "windows_per_epoch=8",
            "--dataset-option",
            "block_size=256",
            "--out",
            str(run),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "held-out points" in out and "reference label rasters" in out
    assert (run / "predictions" / "scene.tif").is_file()
    maps = tmp_path / "maps"
    assert (
        main(
            [
                "-q",
                "predict",
                str(run / "model.pt"),
                str(made["image"]),
                "--tiled",
                "--out",
                str(maps),
            ]
        )
        == 0
    )
    with rasterio.open(maps / "scene.tif") as m, rasterio.open(made["image"]) as s:
        assert (m.crs, m.transform, m.shape) == (s.crs, s.transform, s.shape)
        assert (m.read(1)[:, :20] == 255).all()


def test_rasters_need_a_class_file(tmp_path, capsys):
    root = tmp_path / "data"
    make_synthetic_raster(root, size=128, tile=128, points_per_tile=4)
    (root / "classes.yaml").unlink()
    code = main(
        [
            "-q",
            "train",
            "--dataset",
            "rasters",
            str(root / "images" / "scene.tif"),
            "--points",
            str(root / "points.geojson"),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code != 0
    assert "class file" in capsys.readouterr().err
