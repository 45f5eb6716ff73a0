"""Models trained on windows predict whole images of any size in tiles at their own scale."""

from __future__ import annotations

import numpy as np
import rasterio
import torch
from PIL import Image
from rasterio.transform import Affine

from pointseg.cli import main
from pointseg.models.registry import ModelSpec, build_model, save_model
from pointseg.predict import tiled

CLASSES = ["a", "b", "c"]


def _window_model(path, *, window=32, scale=0.5):
    spec = ModelSpec(
        name="unet",
        num_classes=3,
        in_channels=3,
        options={"base_channels": 4, "depth": 2},
        class_names=CLASSES,
        class_colors=[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
        mean=[100.0] * 3,
        std=[40.0] * 3,
        window=window,
        scale=scale,
    )
    torch.manual_seed(0)
    return save_model(path, build_model(spec), spec)


def _spy(monkeypatch, name):
    calls = []
    real = getattr(tiled, name)

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tiled, name, spy)
    return calls


def test_predict_runs_window_models_in_tiles_at_their_scale(tmp_path, monkeypatch):
    model = _window_model(tmp_path / "model.pt")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    shapes = {"wide": (70, 301), "tall": (260, 45), "tiny": (9, 13)}
    for name, (h, w) in shapes.items():
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{name}.{'jpg' if name == 'tall' else 'png'}")
    calls = _spy(monkeypatch, "predict_array")
    assert main(["-q", "predict", str(model), str(images), "--out", str(tmp_path / "out")]) == 0
    for name, (h, w) in shapes.items():
        assert Image.open(tmp_path / "out" / f"{name}.png").size == (w, h)
    assert len(calls) == 3 and all(c["scale"] == 0.5 for c in calls)
    assert all(c["overlap"] == 4 for c in calls)  # the window / 8
    calls.clear()
    args = ["-q", "predict", str(model), str(images), "--out", str(tmp_path / "o2"), "--scale", "1"]
    assert main(args) == 0
    assert [c["scale"] for c in calls] == [1.0] * 3


def test_tiled_geotiff_prediction_defaults_to_the_models_scale(tmp_path, monkeypatch):
    model = _window_model(tmp_path / "model.pt", scale=0.25)
    src = tmp_path / "ortho.tif"
    data = np.random.default_rng(1).integers(0, 255, (3, 300, 420), dtype=np.uint8)
    profile = {
        "driver": "GTiff",
        "height": 300,
        "width": 420,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:2180",
        "transform": Affine(0.5, 0, 637000, 0, -0.5, 487000),
    }
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(data)
    calls = _spy(monkeypatch, "predict_raster")
    out = tmp_path / "out"
    assert main(["-q", "predict", str(model), str(src), "--out", str(out), "--tiled"]) == 0
    with rasterio.open(out / "ortho.tif") as p:
        assert p.shape == (300, 420) and p.transform == profile["transform"]
    assert len(calls) == 1 and calls[0]["scale"] == 0.25
    assert calls[0]["tile_size"] == tiled.PREDICT_TILE and calls[0]["overlap"] == 4
