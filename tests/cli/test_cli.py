"""End-to-end runs of the ``pointseg`` command on tiny generated data."""

import json

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from pointseg.cli import main

TINY = [
    "--image-size",
    "64",
    "--model-options",
    '{"base_channels": 4, "depth": 2}',
    "--batch-size",
    "4",
    "--n-segments",
    "60",
    "--accelerator",
    "cpu",
]


def test_list_commands(capsys):
    assert main(["list", "models"]) == 0
    assert "deeplabv3_resnet50" in capsys.readouterr().out
    assert main(["list", "superpixels"]) == 0
    assert "slic" in capsys.readouterr().out.split()
    assert main(["list", "losses"]) == 0
    assert capsys.readouterr().out.split() == ["masked_mse", "partial_ce"]
    assert main(["list", "presets"]) == 0
    assert "dubai" in capsys.readouterr().out


def test_errors_are_one_line_not_tracebacks(tmp_path, capsys):
    assert main(["-q", "train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and "nowhere" in err


@pytest.mark.slow
def test_pipeline_end_to_end(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["-q", "synthetic", str(data), "--n-images", "16", "--size", "64"]) == 0
    pts = tmp_path / "points.csv"
    assert main(["-q", "points", str(data), "--out", str(pts), "--n-points", "12"]) == 0
    lines = pts.read_text().splitlines()
    assert lines[0] == "image,x,y,class" and len(lines) > 16 * 8
    pl = tmp_path / "pl"
    assert main(["-q", "pseudolabels", str(data), "--points", str(pts), "--out", str(pl)]) == 0
    assert len(list(pl.glob("*.png"))) == 11  # the train split
    run = tmp_path / "run"
    args = ["-q", "train", str(data), "--points", str(pts), "--out", str(run), "--max-epochs", "2"]
    assert main(args + TINY + ["--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "test metrics" in out and "mIoU" in out
    for name in ("config.yaml", "history.csv", "model.pt", "metrics.json", "label_stats.json"):
        assert (run / name).is_file(), name
    metrics = tmp_path / "eval.json"
    assert main(["-q", "evaluate", str(run / "model.pt"), str(data), "--out", str(metrics)]) == 0
    m = json.loads(metrics.read_text())
    assert 0 <= m["miou"] <= 1 and len(m["per_class_iou"]) == 5
    # prediction on a plain PNG folder and on a georeferenced 4000x... GeoTIFF
    geo = tmp_path / "geo"
    geo.mkdir()
    img = np.asarray(Image.open(data / "images" / "scene_0000.png"))
    transform = from_origin(600000, 5500000, 0.5, 0.5)
    with rasterio.open(
        geo / "ortho.tif",
        "w",
        driver="GTiff",
        width=64,
        height=64,
        count=3,
        dtype="uint8",
        crs="EPSG:2180",
        transform=transform,
    ) as dst:
        dst.write(np.moveaxis(img, -1, 0))
    pred = tmp_path / "pred"
    assert main(["-q", "predict", str(run / "model.pt"), str(geo), "--out", str(pred)]) == 0
    with rasterio.open(pred / "ortho.tif") as ds:
        assert ds.crs.to_epsg() == 2180 and ds.transform == transform
        labels = ds.read(1)
    assert labels.shape == (64, 64) and labels.max() < 5
    np.testing.assert_array_equal(np.asarray(Image.open(pred / "ortho.png")), labels)
    assert (pred / "overlays" / "ortho.png").is_file()
    assert (
        main(
            [
                "-q",
                "predict",
                str(run / "model.pt"),
                str(data / "images"),
                "--out",
                str(tmp_path / "pred2"),
                "--no-overlays",
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "pred2").glob("*.png"))) == 16


@pytest.mark.slow
def test_demo_tiny(tmp_path, capsys):
    out = tmp_path / "demo"
    args = [
        "-q",
        "demo",
        "--out",
        str(out),
        "--n-images",
        "16",
        "--size",
        "64",
        "--max-epochs",
        "2",
        "--base-channels",
        "4",
        "--n-segments",
        "60",
        "--accelerator",
        "cpu",
    ]
    assert main(args) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert 0 <= summary["test_miou_points"] <= 1 and 0 <= summary["test_miou_full"] <= 1
    assert summary["miou_ratio"] == pytest.approx(
        summary["test_miou_points"] / summary["test_miou_full"]
    )
    report = (out / "report.md").read_text()
    assert "figures/test_samples.png" in report and "figures/training_curves.png" in report
    for fig in ("test_samples.png", "training_curves.png"):
        with Image.open(out / "figures" / fig) as im:
            assert im.width > 300


def test_superpixel_benchmark_command(tiny_synthetic, tmp_path, capsys):
    csv_path, ov = tmp_path / "sp.csv", tmp_path / "ov"
    args = [
        "-q",
        "superpixels",
        str(tiny_synthetic),
        "--methods",
        "slic,grid",
        "--counts",
        "30,60",
        "--n-points",
        "10",
        "--image-size",
        "0",
        "--max-images",
        "4",
        "--csv",
        str(csv_path),
        "--overlays",
        str(ov),
        "--n-overlays",
        "1",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 images, 10 points each" in out and "| grid | 60 |" in out
    assert len(csv_path.read_text().splitlines()) == 5
    assert len(list(ov.glob("*.png"))) == 4  # 1 image x 2 methods x 2 counts
    assert main(["-q", "superpixels", str(tiny_synthetic), "--counts", "a,b"]) == 2


def test_pseudolabel_summary_pools_pixels_over_images(tmp_path, capsys):
    """One click on a one-class image: a map that is 100 % right prints accuracy 1.000."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
            root / "images" / f"{name}.png"
        )
        Image.fromarray(np.zeros((24, 24), np.uint8)).save(root / "masks" / f"{name}.png")
    (root / "classes.yaml").write_text("classes: [x, y]\n")
    pts = tmp_path / "p.csv"
    pts.write_text("image,x,y,class\na,3,3,x\n")  # b and c get no click
    argv = ["-q", "pseudolabels", str(root), "--points", str(pts), "--out", str(tmp_path / "pl")]
    assert main([*argv, "--split", "all", "--superpixels", "grid", "--n-segments", "4"]) == 0
    out = capsys.readouterr().out
    assert "accuracy 1.000" in out, out
