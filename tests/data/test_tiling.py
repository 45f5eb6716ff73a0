import json

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

import pointseg.data.tiling as tiling
from pointseg.data.tiling import (
    is_tiled,
    plan_tiles,
    read_manifest,
    tile_raster,
    tile_rasters,
    tile_records,
)
from pointseg.io.raster import read_image

TRANSFORM = from_origin(500000.0, 600000.0, 0.25, 0.25)


def write_tif(path, array, *, crs="EPSG:2180", transform=TRANSFORM):
    """Write a (H, W, C) array as GeoTIFF."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "height": array.shape[0],
        "width": array.shape[1],
        "count": array.shape[2],
        "dtype": array.dtype.name,
    }
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(array, -1, 0))
    return path


def official_split(array, size):
    """The loop of LandCover.ai's split.py on an in-memory array: {k: tile}."""
    out = {}
    k = 0
    for y in range(0, array.shape[0], size):
        for x in range(0, array.shape[1], size):
            tile = array[y : y + size, x : x + size]
            if tile.shape[0] == size and tile.shape[1] == size:
                out[k] = (x, y)
            k += 1
    return out


@pytest.mark.parametrize(
    ("h", "w", "size"),
    [(1100, 1300, 512), (1024, 1024, 512), (512, 1535, 512), (511, 2000, 512), (9000, 9500, 512),
     (4200, 4700, 512), (70, 90, 32), (64, 64, 32), (10, 10, 32)],
)  # fmt: skip
def test_plan_matches_official_split_rule(h, w, size):
    want = official_split(np.broadcast_to(np.zeros(1, bool), (h, w)), size)
    got = plan_tiles(h, w, size=size)
    assert [t.k for t in got] == list(want)
    assert [(t.x, t.y) for t in got] == list(want.values())
    assert all(t.width == t.height == size for t in got)


def test_plan_pins_gaps_in_tile_numbers():
    # 1100 rows x 1300 columns: 3x3 grid positions, only the 2x2 top-left are full tiles
    assert [t.k for t in plan_tiles(1100, 1300, size=512)] == [0, 1, 3, 4]


def test_edge_modes_and_stride():
    partial = plan_tiles(300, 300, size=128, edge="partial")
    assert [(t.x, t.width) for t in partial[:3]] == [(0, 128), (128, 128), (256, 44)]
    shift = plan_tiles(300, 300, size=128, edge="shift")
    assert [(t.x, t.width) for t in shift[:3]] == [(0, 128), (128, 128), (172, 128)]
    assert {(t.height, t.width) for t in shift} == {(128, 128)}
    assert [t.k for t in shift] == list(range(9))
    small = plan_tiles(100, 300, size=128, edge="shift")
    assert {t.height for t in small} == {100}
    overlap = plan_tiles(128, 300, size=128, stride=64, edge="drop")
    assert [t.x for t in overlap] == [0, 64, 128]
    with pytest.raises(ValueError, match="edge mode"):
        plan_tiles(10, 10, edge="pad")
    with pytest.raises(ValueError, match="stride"):
        plan_tiles(10, 10, size=4, stride=0)


def test_tile_raster_is_lossless_and_drops_partial_tiles(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (70, 90), dtype=np.uint8)
    write_tif(tmp_path / "src" / "a.tif", img)
    write_tif(tmp_path / "src" / "a_mask.tif", mask)
    out = tmp_path / "tiles"
    names = tile_raster(
        tmp_path / "src" / "a.tif", out, mask=tmp_path / "src" / "a_mask.tif", stem="a", size=32
    )
    expected = official_split(img, 32)
    assert names == [f"a_{k}" for k in expected]
    for k, (x, y) in expected.items():
        with Image.open(out / "images" / f"a_{k}.png") as im:
            assert im.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(im), img[y : y + 32, x : x + 32])
        with Image.open(out / "masks" / f"a_{k}.png") as im:
            assert im.mode == "L"
            np.testing.assert_array_equal(np.asarray(im), mask[y : y + 32, x : x + 32])
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(names)
    manifest = read_manifest(out, "a")
    assert manifest["width"] == 90 and manifest["height"] == 70
    assert [(t["x"], t["y"]) for t in manifest["tiles"]] == list(expected.values())
    assert is_tiled(tmp_path / "src" / "a.tif", out, mask=tmp_path / "src" / "a_mask.tif",
                    stem="a", size=32)  # fmt: skip
    assert not is_tiled(tmp_path / "src" / "a.tif", out, stem="a", size=16)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_multiband_and_16bit_images_become_geotiff_tiles(tmp_path):
    rng = np.random.default_rng(1)
    rgbir = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    dem = rng.integers(0, 60000, (40, 40), dtype=np.uint16)
    colours = np.array([[255, 255, 255], [0, 0, 255], [255, 0, 0]], np.uint8)
    label = colours[rng.integers(0, 3, (40, 40))]
    write_tif(tmp_path / "rgbir.tif", rgbir)
    write_tif(tmp_path / "dem.tif", dem, crs=None)
    write_tif(tmp_path / "label.tif", label, crs=None)
    out = tmp_path / "tiles"
    names = tile_raster(
        tmp_path / "rgbir.tif", out, mask=tmp_path / "label.tif", size=16, edge="partial"
    )
    assert len(names) == 9
    with rasterio.open(tmp_path / "rgbir.tif") as src:
        window_transform = src.window_transform(rasterio.windows.Window(16, 32, 16, 8))
    image, georef = read_image(out / "images" / "rgbir_7.tif")
    np.testing.assert_array_equal(image, rgbir[32:40, 16:32])
    assert georef is not None and georef.transform == tuple(window_transform)[:6]
    with Image.open(out / "masks" / "rgbir_7.png") as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), label[32:40, 16:32])
    tile_raster(tmp_path / "dem.tif", out, size=16, edge="shift")
    image, georef = read_image(out / "images" / "dem_8.tif")
    assert image.dtype == np.uint16 and georef is None
    np.testing.assert_array_equal(image[..., 0], dem[24:40, 24:40])


def test_keep_georef_writes_geotiff(tmp_path):
    img = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    write_tif(tmp_path / "a.tif", img)
    tile_raster(tmp_path / "a.tif", tmp_path / "t", size=16, keep_georef=True)
    image, georef = read_image(tmp_path / "t" / "images" / "a_3.tif")
    np.testing.assert_array_equal(image, img[16:, 16:])
    assert georef.transform[2] == 500000.0 + 16 * 0.25
    assert georef.transform[5] == 600000.0 - 16 * 0.25
    assert "2180" in georef.crs_wkt or "CS92" in georef.crs_wkt


def test_reads_strips_through_windows_never_the_whole_raster(tmp_path, monkeypatch):
    write_tif(tmp_path / "a.tif", np.zeros((100, 120, 3), np.uint8))
    write_tif(tmp_path / "m.tif", np.zeros((100, 120), np.uint8))
    calls = []
    original = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("window"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    tile_raster(tmp_path / "a.tif", tmp_path / "t", mask=tmp_path / "m.tif", size=32)
    assert calls and all(w is not None and w.height <= 32 for w in calls)
    assert len(calls) == 2 * 3  # one strip per tile row, image and mask


def _count_writes(monkeypatch, fail_after=None):
    calls = []
    original = tiling._write_tile

    def wrapped(path, *args, **kwargs):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt("simulated interruption")
        calls.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(tiling, "_write_tile", wrapped)
    return calls


def test_resume_redoes_only_unfinished_sources(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    sources = []
    for name in ("a", "b"):
        write_tif(tmp_path / f"{name}.tif", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        write_tif(tmp_path / f"{name}_m.tif", rng.integers(0, 5, (64, 64), dtype=np.uint8))
        sources.append((name, tmp_path / f"{name}.tif", tmp_path / f"{name}_m.tif"))
    out = tmp_path / "tiles"
    calls = _count_writes(monkeypatch, fail_after=8 + 3)  # a: 4 tiles x 2 files, then 3 of b
    with pytest.raises(KeyboardInterrupt):
        tile_rasters(sources, out, size=32)
    assert read_manifest(out, "a") is not None
    assert read_manifest(out, "b") is None
    assert not list(out.rglob(".*tmp*"))  # no half-written temporary files left
    monkeypatch.undo()
    calls = _count_writes(monkeypatch)
    names = tile_rasters(sources, out, size=32, progress=True)
    assert names == [f"{s}_{k}" for s in ("a", "b") for k in range(4)]
    assert len(calls) == 8 and all("b_" in p.name for p in calls)
    calls.clear()
    assert tile_rasters(sources, out, size=32) == names
    assert calls == []
    records = tile_records(out, ["a", "b"])
    assert [r.name for r in records] == names
    assert all(r.image.is_file() and r.mask.is_file() for r in records)


def test_changed_options_or_source_retile_and_remove_stale_tiles(tmp_path):
    img = np.zeros((64, 64, 3), np.uint8)
    write_tif(tmp_path / "a.tif", img)
    out = tmp_path / "tiles"
    tile_raster(tmp_path / "a.tif", out, size=32)
    names = tile_raster(tmp_path / "a.tif", out, size=32, name_format="{stem}_r{row}c{col}")
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(names)
    write_tif(tmp_path / "a.tif", np.ones((64, 96, 3), np.uint8))  # the source changed
    names = tile_raster(tmp_path / "a.tif", out, size=32, name_format="{stem}_r{row}c{col}")
    assert len(names) == 6
    image, _ = read_image(out / "images" / "a_r1c2.png")
    assert image.min() == 1


def test_errors_name_the_files(tmp_path):
    write_tif(tmp_path / "a.tif", np.zeros((32, 32, 3), np.uint8))
    write_tif(tmp_path / "m.tif", np.zeros((32, 30), np.uint8))
    with pytest.raises(ValueError, match=r"m\.tif is 30x32 but image .*a\.tif is 32x32"):
        tile_raster(tmp_path / "a.tif", tmp_path / "t", mask=tmp_path / "m.tif", size=16)
    with pytest.raises(FileNotFoundError, match="nothere.tif"):
        tile_raster(tmp_path / "nothere.tif", tmp_path / "t")
    write_tif(tmp_path / "m2.tif", np.full((32, 32), 7, np.uint8))

    def reject(mask, where):
        if mask.max() > 4:
            raise ValueError(f"{where}: value 7 is not a class")

    with pytest.raises(ValueError, match=r"m2\.tif \(tile x=0, y=0, 16x16 px\): value 7"):
        tile_raster(
            tmp_path / "a.tif", tmp_path / "t", mask=tmp_path / "m2.tif", size=16, check_mask=reject
        )
    assert read_manifest(tmp_path / "t", "a") is None
    with pytest.raises(ValueError, match="both have the stem"):
        tile_rasters([(tmp_path / "a.tif", None), (tmp_path / "a.tif", None)], tmp_path / "t")
    with pytest.raises(ValueError, match="name format"):
        tile_raster(tmp_path / "a.tif", tmp_path / "t", size=16, name_format="{stem}")
    with pytest.raises(FileNotFoundError, match="not tiled"):
        tile_records(tmp_path / "t", ["zzz"])


def test_manifest_is_json_with_windows(tmp_path):
    write_tif(tmp_path / "a.tif", np.zeros((20, 20, 3), np.uint8))
    tile_raster(tmp_path / "a.tif", tmp_path / "t", size=16, edge="partial")
    data = json.loads((tmp_path / "t" / "manifests" / "a.json").read_text())
    assert data["params"]["edge"] == "partial"
    assert [(t["width"], t["height"]) for t in data["tiles"]] == [
        (16, 16),
        (4, 16),
        (16, 4),
        (4, 4),
    ]
