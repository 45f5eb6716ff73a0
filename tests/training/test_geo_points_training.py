"""Training from clicks in map coordinates on georeferenced images (issue: GIS point files)."""

import json

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from pointseg.points import points_in_map_coordinates
from pointseg.training import TrainConfig, prepare_splits


def _geo_dataset(root, n=10, size=32):
    """GeoTIFF images in EPSG:2180 side by side, masks, and clicks in lon/lat (GeoJSON)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.yaml").write_text("classes: [field, water]\n")
    rng = np.random.default_rng(0)
    features, expected = [], {}
    for k in range(n):
        x0, y0 = 500000.0 + k * 100.0, 400000.0
        transform = from_origin(x0, y0, 0.5, 0.5)
        mask = np.zeros((size, size), np.uint8)
        mask[:, size // 2 :] = 1
        image = np.where(mask[None] == 1, 60, 180).astype(np.uint8) * np.ones((3, 1, 1), np.uint8)
        profile = {"driver": "GTiff", "height": size, "width": size, "count": 3, "dtype": "uint8"}
        with rasterio.open(
            root / "images" / f"img{k}.tif", "w", crs="EPSG:2180", transform=transform, **profile
        ) as dst:
            dst.write(image)
        Image.fromarray(mask).save(root / "masks" / f"img{k}.png")
        rows, cols = rng.integers(0, size, 4), rng.integers(0, size, 4)
        xs, ys = rasterio.transform.xy(transform, rows, cols)  # pixel centres
        lons, lats = warp_transform("EPSG:2180", "EPSG:4326", xs, ys)
        for lon, lat, r, c in zip(lons, lats, rows, cols, strict=True):
            cls = ["field", "water"][int(mask[r, c])]
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    "properties": {"class": cls},
                }
            )
        expected[f"img{k}"] = {
            (int(c), int(r), int(mask[r, c])) for r, c in zip(rows, cols, strict=True)
        }
    # one click far away: reported as outside every raster, not an error
    features.append(
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
            "properties": {"class": "water"},
        }
    )
    path = root / "clicks.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path, expected


def test_map_coordinate_clicks_become_training_points(tmp_path):
    clicks, expected = _geo_dataset(tmp_path / "data")
    cfg = TrainConfig(
        data=str(tmp_path / "data"),
        points_file=str(clicks),
        points_crs="file",
        resize=0,
        n_segments=20,
        fractions=(0.6, 0.2, 0.2),
        cache_dir=str(tmp_path / "cache"),
    )
    assert points_in_map_coordinates(cfg.points_file, crs=cfg.points_crs)
    splits = prepare_splits(cfg, names=("train",))
    train = splits["train"]
    for name, pts in zip(train.names, train.points, strict=True):
        assert {tuple(map(int, p)) for p in pts} == expected[name]
    # pseudo-labels agree with the masks where the points are
    assert train.stats["pseudo_accuracy"] > 0.95
