"""Large rasters: windowed tiles, and a block-wise preview equal to raster training's labels."""

import shutil
from io import BytesIO

import numpy as np
import rasterio
from fastapi.testclient import TestClient
from PIL import Image

from pointseg.annotate import RasterPreviewEngine, create_app, open_session
from pointseg.points import load_points
from pointseg.training import TrainConfig


def _cfg(data, tmp_path):
    return TrainConfig(
        data=str(data),
        dataset="rasters",
        dataset_options={"block_size": 512, "margin": 32, "val_fraction": 0.3, "val_cell": 256},
        image_size=128,
        superpixels="slic",
        n_segments=40,
        cache_dir=str(tmp_path / "cache"),
    )


def test_preview_blocks_equal_the_label_raster_training_writes(raster_data, tmp_path):
    from pointseg.training.windows import prepare_raster_training

    data = tmp_path / "data"
    shutil.copytree(raster_data, data)
    cfg = _cfg(data, tmp_path)
    session, preview = open_session(cfg)
    assert isinstance(preview, RasterPreviewEngine) and session.points_file.suffix == ".gpkg"
    rng = np.random.default_rng(1)
    for _ in range(30):
        x, y = rng.uniform(0, 1100, 2)
        session.add_point("0", x, y, int(rng.integers(5)), version=session.version)
    assert preview.held_out("scene")  # some clicks lie in held-out cells
    dataset = cfg.open_dataset(None, require_masks=False)
    points, _ = load_points(
        session.points_file,
        images={r.name: r.image for r in dataset.records},
        image_sizes={},
        class_names=session.class_names,
        geojson_map=True,
    )
    prep = prepare_raster_training(
        dataset,
        points,
        window=cfg.window_size,
        pseudo=cfg.pseudo_label_settings(),
        split_seed=cfg.split_seed,
        cache_dir=tmp_path / "labels",
    )
    with rasterio.open(prep.sources[0].labels) as src:
        trained = src.read(1)
    shown = np.full_like(trained, 255)
    for r0 in range(0, 1100, 512):
        for c0 in range(0, 1100, 512):
            labels, _ = preview.block_labels("scene", r0, c0)
            shown[r0 : r0 + labels.shape[0], c0 : c0 + labels.shape[1]] = labels
    np.testing.assert_array_equal(shown, trained)
    assert (trained != 255).any()


def test_tiles_and_overlay_tiles_over_the_api(raster_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(raster_data, data)
    session, preview = open_session(_cfg(data, tmp_path))
    client = TestClient(create_app(session, preview))
    info = client.get("/api/images/0").json()
    assert info["overlay"] == "tiled" and info["levels"] == 4  # 1100 -> 550 -> 275 -> 138
    top = client.get("/api/images/0/tiles/3/0/0.png")
    assert Image.open(BytesIO(top.content)).size == (138, 138)
    assert client.get("/api/images/0/tiles/0/4/0.png").status_code == 200
    assert client.get("/api/images/0/tiles/0/5/0.png").status_code == 404
    assert client.get("/api/images/0/overlay.png").status_code == 404  # tiled, not single
    version = client.get("/api/state").json()["version"]
    r = client.post(
        "/api/images/0/points", json={"x": 300, "y": 310, "class": 2, "version": version}
    )
    assert r.status_code == 200
    tile = np.asarray(Image.open(BytesIO(client.get("/api/images/0/overlay/0/1/1.png").content)))
    held = client.get("/api/images/0").json()["points"][0]["held_out"]
    assert tile.shape == (256, 256, 4)
    assert (tile[310 - 256, 300 - 256, 3] == 255) != held  # labelled unless held out
    b = client.get("/api/images/0/boundaries/0/1/1.png")
    assert b.status_code == 200
