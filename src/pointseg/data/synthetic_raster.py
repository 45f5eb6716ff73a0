"""A synthetic georeferenced orthophoto of any size, with its reference raster and clicks.

:func:`make_synthetic_raster` mosaics seeded synthetic scenes (:func:`generate_scene`) into a
tiled GeoTIFF in EPSG:2180 (LandCover.ai's CRS), written tile by tile so memory does not grow
with the size, plus what a user of the rasters mode would have: a class file, a reference
label raster on the same grid, and clicked points in WGS84 lon/lat (GeoJSON). It feeds the
tests, the benchmarks and the README's example of training from a large raster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.constants import IGNORE_INDEX
from pointseg.data.synthetic import _classes_yaml, _scene_seed, generate_scene
from pointseg.io.atomic import atomic_write, write_text_atomic

__all__ = ["make_synthetic_raster"]

#: Upper-left corner of the synthetic rasters in EPSG:2180 (near Warsaw), 0.25 m pixels.
_ORIGIN = (637000.0, 487000.0)
_PIXEL = 0.25


def make_synthetic_raster(
    root: str | Path,
    *,
    size: int,
    points_per_tile: int = 8,
    tile: int = 512,
    seed: int = 0,
    nodata_columns: int = 0,
    name: str = "scene",
) -> dict[str, Any]:
    """Write a synthetic orthophoto, its reference raster, a class file and clicks under ``root``.

    Files: ``images/NAME.tif`` (3-band uint8), ``masks/NAME.tif`` (class indices, 255 =
    nodata), ``classes.yaml`` and ``points.geojson`` (EPSG:4326, property ``class``).

    Parameters
    ----------
    root : path
        Output folder (created).
    size : int
        Side of the square raster in pixels (>= 64).
    points_per_tile : int
        Clicks per ``tile`` x ``tile`` scene, drawn at random on valid pixels with their true
        class (so they are what a careful annotator would click).
    tile : int
        Side of the mosaicked scenes.
    seed : int
    nodata_columns : int
        Width of a nodata strip on the left: image 0 in every band (the file's nodata value),
        reference 255, no points.
    name : str
        File stem.

    Returns
    -------
    dict
        ``image``, ``mask``, ``classes``, ``points`` (paths) and ``n_points``.
    """
    import rasterio
    from rasterio.transform import Affine
    from rasterio.warp import transform as warp
    from rasterio.windows import Window

    if size < 64 or tile < 64:
        raise ValueError(f"size and tile must be >= 64, got {size} and {tile}")
    root = Path(root)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    transform = Affine(_PIXEL, 0.0, _ORIGIN[0], 0.0, -_PIXEL, _ORIGIN[1])
    common = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "crs": "EPSG:2180",
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    image_path, mask_path = root / "images" / f"{name}.tif", root / "masks" / f"{name}.tif"
    rng = np.random.default_rng(seed)
    cols: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    classes: list[np.ndarray] = []
    with (
        atomic_write(image_path) as img_tmp,
        atomic_write(mask_path) as mask_tmp,
        rasterio.open(img_tmp, "w", count=3, dtype="uint8", nodata=0, **common) as img,
        rasterio.open(mask_tmp, "w", count=1, dtype="uint8", nodata=IGNORE_INDEX, **common) as msk,
    ):
        k = 0
        for r0 in range(0, size, tile):
            for c0 in range(0, size, tile):
                h, w = min(tile, size - r0), min(tile, size - c0)
                image, mask = generate_scene(seed=_scene_seed(seed, k), size=tile)
                k += 1
                image, mask = image[:h, :w].copy(), mask[:h, :w].copy()
                image[image == 0] = 1  # keep 0 for nodata
                cut = max(0, min(w, nodata_columns - c0))
                image[:, :cut] = 0
                mask[:, :cut] = IGNORE_INDEX
                window = Window(c0, r0, w, h)
                img.write(np.moveaxis(image, -1, 0), window=window)
                msk.write(mask, 1, window=window)
                ys, xs = np.nonzero(mask != IGNORE_INDEX)
                if len(ys) and points_per_tile:
                    pick = rng.choice(len(ys), size=min(points_per_tile, len(ys)), replace=False)
                    rows.append(ys[pick] + r0)
                    cols.append(xs[pick] + c0)
                    classes.append(mask[ys[pick], xs[pick]])
    write_text_atomic(root / "classes.yaml", _classes_yaml())
    col = np.concatenate(cols) if cols else np.zeros(0)
    row = np.concatenate(rows) if rows else np.zeros(0)
    cls = np.concatenate(classes) if classes else np.zeros(0, np.uint8)
    # pixel centres in EPSG:2180, then lon/lat as a GIS would export them
    x = _ORIGIN[0] + (col + 0.5) * _PIXEL
    y = _ORIGIN[1] - (row + 0.5) * _PIXEL
    lon, lat = warp("EPSG:2180", "EPSG:4326", x.tolist(), y.tolist())
    features = [
        {
            "type": "Feature",
            "properties": {"class": int(c)},
            "geometry": {"type": "Point", "coordinates": [round(a, 9), round(b, 9)]},
        }
        for a, b, c in zip(lon, lat, cls.tolist(), strict=True)
    ]
    points_path = root / "points.geojson"
    write_text_atomic(points_path, json.dumps({"type": "FeatureCollection", "features": features}))
    return {
        "image": image_path,
        "mask": mask_path,
        "classes": root / "classes.yaml",
        "points": points_path,
        "n_points": len(features),
    }
