"""The named dataset loaders through the CLI and the trainer: one sample dict for all."""

import json

import numpy as np
import pytest
from PIL import Image

from pointseg.cli import main

TINY = [
    "--image-size",
    "32",
    "--model-options",
    '{"base_channels": 4, "depth": 2}',
    "--batch-size",
    "4",
    "--n-segments",
    "30",
    "--n-points",
    "6",
    "--max-epochs",
    "1",
    "--accelerator",
    "cpu",
]


def _pet_layout(root, n=16, size=32):
    """A small Oxford-IIIT Pet layout: a bright disc (pet) on a dark ground, border ring."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    lines = []
    for k in range(n):
        cy, cx, r = rng.integers(10, 22), rng.integers(10, 22), rng.integers(5, 9)
        d = np.hypot(yy - cy, xx - cx)
        trimap = np.where(d < r, 1, np.where(d < r + 1.5, 3, 2)).astype(np.uint8)
        img = np.where((trimap == 1)[..., None], 200, 40) + rng.integers(0, 20, (size, size, 3))
        name = f"{'Bengal' if k % 2 else 'beagle'}_{k}"
        Image.fromarray(img.astype(np.uint8)).save(root / "images" / f"{name}.jpg", quality=95)
        Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{name}.png")
        lines.append((name, 6 if k % 2 else 12, 1 if k % 2 else 2, 1))
    train, test = lines[:12], lines[12:]
    for part, rows in (("trainval", train), ("test", test)):
        text = "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in rows)
        (root / "annotations" / f"{part}.txt").write_text(text)
    return root


def test_list_datasets_maps_and_experiments(capsys):
    assert main(["list", "datasets"]) == 0
    names = capsys.readouterr().out.split()
    assert {"folder", "oxford_pet", "loveda"} <= set(names)
    assert main(["list", "maps"]) == 0
    assert "dubai-to-landcoverai" in capsys.readouterr().out
    assert main(["list", "experiments"]) == 0
    assert {"small", "dubai-cv", "dubai-loop"} <= set(capsys.readouterr().out.split())
    assert main(["list", "proposals"]) == 0
    assert capsys.readouterr().out.split() == [
        "disagreement",
        "entropy",
        "margin",
        "random",
        "uncertain_area",
    ]


def test_train_on_oxford_pet_by_name(tmp_path, capsys):
    data = _pet_layout(tmp_path / "pets")
    out = tmp_path / "run"
    args = ["-q", "train", str(data), "--dataset", "oxford_pet", "--out", str(out), *TINY]
    args += ["--dataset-option", "val_fraction=0.25", "--cache-dir", str(tmp_path / "c")]
    assert main(args) == 0
    cfg = (out / "config.yaml").read_text()
    assert "dataset: oxford_pet" in cfg and "val_fraction: 0.25" in cfg
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"val", "test"}
    stats = json.loads((out / "label_stats.json").read_text())
    assert stats["n_images"] == 9  # 12 trainval images, a quarter carved off for validation
    assert metrics["test"]["class_names"] == ["pet", "background"]
    assert metrics["test"]["background"] == "background"


def test_dataset_errors_are_one_line(tmp_path, capsys):
    assert main(["-q", "train", str(tmp_path), "--dataset", "nope", *TINY]) == 2
    assert "available datasets" in capsys.readouterr().err
    data = _pet_layout(tmp_path / "pets")
    args = ["-q", "train", str(data), "--dataset", "oxford_pet", "--classes", "dubai", *TINY]
    assert main(args) == 2
    assert "remap" in capsys.readouterr().err
    assert main(["-q", "train", str(tmp_path / "nowhere"), "--dataset", "oxford_pet", *TINY]) == 2
    assert "robots.ox.ac.uk" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["novalue", "=3"])
def test_dataset_option_needs_key_value(bad, capsys):
    assert main(["train", "x", "--dataset-option", bad]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def _landcoverai_zip(tmp_path):
    """A LandCover.ai v1 zip with one 600 x 1030 orthophoto (two full 512 px tiles)."""
    import zipfile

    import rasterio
    from rasterio.transform import from_origin

    src = tmp_path / "release"
    for d in ("images", "masks"):
        (src / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    profile = {
        "driver": "GTiff",
        "height": 600,
        "width": 1030,
        "crs": "EPSG:2180",
        "transform": from_origin(400000.0, 500000.0, 0.25, 0.25),
    }
    with rasterio.open(src / "images" / "N-34-1.tif", "w", count=3, dtype="uint8", **profile) as f:
        f.write(rng.integers(0, 256, (3, 600, 1030), dtype=np.uint8))
    with rasterio.open(src / "masks" / "N-34-1.tif", "w", count=1, dtype="uint8", **profile) as f:
        f.write(rng.integers(0, 5, (1, 600, 1030), dtype=np.uint8))
    for part, stems in (("train", ["N-34-1_0"]), ("val", []), ("test", ["N-34-1_1"])):
        (src / f"{part}.txt").write_text("".join(f"{s}\n" for s in stems))
    zip_path = tmp_path / "landcover.ai.v1.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    return zip_path


def test_prepare_landcoverai_checks_the_zip_then_tiles(tmp_path, capsys, monkeypatch):
    import pointseg.data.landcoverai as lc
    from pointseg.data.archives import file_md5

    zip_path = _landcoverai_zip(tmp_path)
    root = tmp_path / "lcai"
    assert main(["-q", "prepare", "landcoverai", str(root), "--archive", str(zip_path)]) == 2
    err = capsys.readouterr().err
    assert "MD5" in err and lc.LANDCOVERAI_MD5 in err and "\n" == err[-1] and err.count("\n") == 1
    monkeypatch.setattr(lc, "LANDCOVERAI_MD5", file_md5(zip_path))
    assert main(["-q", "prepare", "landcoverai", str(root), "--archive", str(zip_path)]) == 0
    out = capsys.readouterr().out
    assert "2 images (train 1, val 0, test 1)" in out and "woodland" in out
    assert sorted(p.name for p in (root / "tiles" / "images").iterdir()) == [
        "N-34-1_0.png",
        "N-34-1_1.png",
    ]


def test_prepare_without_data_points_to_the_download(tmp_path, capsys):
    assert main(["-q", "prepare", "landcoverai", str(tmp_path / "empty")]) == 2
    assert "landcover.ai" in capsys.readouterr().err
