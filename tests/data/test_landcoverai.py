import logging
import zipfile

import numpy as np
import pytest
import rasterio
import yaml
from PIL import Image
from rasterio.transform import from_origin
from rasterio.windows import Window

import pointseg.data.landcoverai as lc
import pointseg.data.tiling as tiling
from pointseg.data.archives import file_md5
from pointseg.data.landcoverai import (
    LANDCOVERAI_FILENAME,
    LANDCOVERAI_MD5,
    LANDCOVERAI_URL,
    landcoverai,
    prepare_landcoverai,
)

# (stem, rows, columns): 3x3 grid positions with full tiles k = 0, 1, 3, 4; and 2x3 positions
# with full tiles k = 0, 1 (the bottom row and the right column are partial)
ORTHOS = (("M-33-20-D-c-4-2", 1100, 1300), ("N-34-97-D-c-2-4", 600, 1030))
OFFICIAL = {"M-33-20-D-c-4-2": [0, 1, 3, 4], "N-34-97-D-c-2-4": [0, 1]}


def official_tiles(array, size=512):
    """LandCover.ai split.py's loop, on an in-memory array: {k: (x, y)}."""
    out, k = {}, 0
    for y in range(0, array.shape[0], size):
        for x in range(0, array.shape[1], size):
            tile = array[y : y + size, x : x + size]
            if tile.shape[0] == size and tile.shape[1] == size:
                out[k] = (x, y)
            k += 1
    return out


def make_release(root, *, splits=True):
    """A tiny LandCover.ai v1 layout: GeoTIFFs in EPSG:2180 and the split lists."""
    rng = np.random.default_rng(0)
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    names = []
    for stem, h, w in ORTHOS:
        profile = {
            "driver": "GTiff",
            "height": h,
            "width": w,
            "crs": "EPSG:2180",
            "transform": from_origin(400000.0, 500000.0, 0.25, 0.25),
        }
        img = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
        mask = rng.integers(0, 5, (1, h, w), dtype=np.uint8)
        with rasterio.open(root / "images" / f"{stem}.tif", "w", count=3, dtype="uint8",
                           **profile) as dst:  # fmt: skip
            dst.write(img)
        with rasterio.open(root / "masks" / f"{stem}.tif", "w", count=1, dtype="uint8",
                           **profile) as dst:  # fmt: skip
            dst.write(mask)
        ks = list(official_tiles(np.moveaxis(img, 0, -1)))
        assert ks == OFFICIAL[stem]
        names += [f"{stem}_{k}" for k in ks]
    if splits:
        lists = {
            "train": [names[0], names[1], names[4]],
            "val": [names[2]],
            "test": [names[3], names[5]],
        }
        for part, stems in lists.items():
            (root / f"{part}.txt").write_text("\n".join(stems) + "\n")
        (root / "split.py").write_text("# the official script (not run)\n")
        return lists
    return None


def make_zip(root, zip_path):
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    return zip_path


@pytest.fixture
def release(tmp_path):
    root = tmp_path / "landcoverai"
    lists = make_release(root)
    return root, lists


@pytest.fixture
def release_zip(tmp_path, monkeypatch):
    """A zip of the tiny layout, with the expected MD5 patched to match it."""
    src = tmp_path / "src"
    lists = make_release(src)
    zip_path = make_zip(src, tmp_path / LANDCOVERAI_FILENAME)
    monkeypatch.setattr(lc, "LANDCOVERAI_MD5", file_md5(zip_path))
    return zip_path, lists


def test_known_checksum_and_url():
    assert LANDCOVERAI_MD5 == "3268c89070e8734b4e91d531c0617e03"
    assert LANDCOVERAI_URL == "https://landcover.ai.linuxpolska.com/"


def test_prepare_from_zip_reproduces_official_tiles_losslessly(tmp_path, release_zip):
    zip_path, _ = release_zip
    root = tmp_path / "data"
    tiles = prepare_landcoverai(root, zip_path=zip_path)
    assert tiles == root / "tiles"
    assert (root / "train.txt").is_file() and (root / "images" / "M-33-20-D-c-4-2.tif").is_file()
    want = sorted(f"{s}_{k}" for s, ks in OFFICIAL.items() for k in ks)
    assert sorted(p.stem for p in (tiles / "images").glob("*.png")) == want
    assert sorted(p.stem for p in (tiles / "masks").glob("*.png")) == want
    for stem, h, w in ORTHOS:
        with rasterio.open(root / "images" / f"{stem}.tif") as src:
            for k, (x, y) in official_tiles(np.zeros((h, w), bool)).items():
                window = src.read(window=Window(x, y, 512, 512))
                with Image.open(tiles / "images" / f"{stem}_{k}.png") as im:
                    np.testing.assert_array_equal(np.asarray(im), np.moveaxis(window, 0, -1))
        with rasterio.open(root / "masks" / f"{stem}.tif") as src:
            x, y = official_tiles(np.zeros((h, w), bool))[1]
            with Image.open(tiles / "masks" / f"{stem}_1.png") as im:
                assert im.mode == "L"
                np.testing.assert_array_equal(
                    np.asarray(im), src.read(1, window=Window(x, y, 512, 512))
                )


def test_checksum_mismatch_names_file_and_checksums(tmp_path, release_zip, monkeypatch):
    zip_path, _ = release_zip
    actual = file_md5(zip_path)
    monkeypatch.setattr(lc, "LANDCOVERAI_MD5", "0" * 32)
    with pytest.raises(ValueError) as info:
        prepare_landcoverai(tmp_path / "data", zip_path=zip_path)
    msg = str(info.value)
    for part in (str(zip_path), actual, "0" * 32, LANDCOVERAI_URL, "verify_checksum=False"):
        assert part in msg
    assert not (tmp_path / "data" / "images").exists()
    prepare_landcoverai(tmp_path / "data", zip_path=zip_path, verify_checksum=False)
    assert (tmp_path / "data" / "tiles" / "images" / "M-33-20-D-c-4-2_4.png").is_file()


def test_unsafe_zip_is_rejected(tmp_path, monkeypatch):
    zip_path = tmp_path / LANDCOVERAI_FILENAME
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("images/ok.txt", "x")
        zf.writestr("../escaped.txt", "x")
    monkeypatch.setattr(lc, "LANDCOVERAI_MD5", file_md5(zip_path))
    with pytest.raises(ValueError, match=r"outside the target folder \('\.\./escaped\.txt'\)"):
        prepare_landcoverai(tmp_path / "data", zip_path=zip_path)
    assert not (tmp_path / "escaped.txt").exists()


def test_missing_files_message(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        landcoverai(root=root)
    msg = str(info.value)
    for part in (str(root / "images"), str(root / "masks"), LANDCOVERAI_URL,
                 LANDCOVERAI_FILENAME, "prepare_landcoverai("):  # fmt: skip
        assert part in msg
    (root / "images").mkdir()
    (root / "masks").mkdir()
    make_release(root)
    (root / "masks" / "N-34-97-D-c-2-4.tif").unlink()
    with pytest.raises(FileNotFoundError, match=r"masks/N-34-97-D-c-2-4\.tif"):
        landcoverai(root=root)
    with pytest.raises(FileNotFoundError, match="missing"):
        prepare_landcoverai(root, zip_path=tmp_path / "nowhere.zip")


def test_builder_uses_official_split_and_sample_dicts(release):
    root, lists = release
    ds = landcoverai(root=root, split="train")
    assert ds.splits == {k: sorted(v) for k, v in lists.items()}
    assert ds.names == sorted(lists["train"])
    assert landcoverai(root=root, split="test").names == sorted(lists["test"])
    assert len(landcoverai(root=root)) == 6
    s = ds[0]
    assert set(s) == {"image", "mask", "name", "georef"}
    assert s["image"].shape == (512, 512, 3) and s["image"].dtype == np.uint8
    assert s["mask"].shape == (512, 512) and s["mask"].max() <= 4
    assert s["georef"] is None
    assert list(ds.class_map.names) == ["background", "building", "woodland", "water", "road"]
    with rasterio.open(root / "masks" / "M-33-20-D-c-4-2.tif") as src:
        np.testing.assert_array_equal(s["mask"], src.read(1, window=Window(0, 0, 512, 512)))


def test_builder_options_and_errors(release, tmp_path):
    root, _ = release
    with pytest.raises(ValueError, match="fixed classes; use remap="):
        landcoverai(root=root, classes="landcoverai")
    with pytest.raises(FileNotFoundError, match="not tiled.*prepare_landcoverai"):
        landcoverai(root=root, prepare=False)
    tiles = tmp_path / "elsewhere"
    ds = landcoverai(root=root, tiles_dir=tiles, split="val", keep_georef=True)
    assert (tiles / "images" / f"{ds.names[0]}.tif").is_file()
    s = ds[0]
    assert s["georef"] is not None
    assert ds.names == ["M-33-20-D-c-4-2_3"]  # grid row 1, column 0: x = 0, y = 512
    assert s["georef"].transform[2] == 400000.0
    assert s["georef"].transform[5] == 500000.0 - 512 * 0.25
    split_file = tmp_path / "split.yaml"
    split_file.write_text(yaml.safe_dump({"train": ["N-34-97-D-c-2-4_0"]}))
    assert landcoverai(root=root, split="train", split_file=split_file).names == [
        "N-34-97-D-c-2-4_0"
    ]


def test_remap(release, tmp_path):
    root, _ = release
    (tmp_path / "binary.yaml").write_text(
        yaml.safe_dump({"classes": [{"name": "other"}, {"name": "building"}]})
    )
    (tmp_path / "map.yaml").write_text(
        yaml.safe_dump(
            {
                "source": "landcoverai",
                "target": "binary.yaml",
                "map": {
                    "background": "other",
                    "building": "building",
                    "woodland": "other",
                    "water": "ignore",
                    "road": "other",
                },
            }
        )
    )
    plain = landcoverai(root=root, split="train")
    mapped = landcoverai(root=root, split="train", remap=tmp_path / "map.yaml")
    assert list(mapped.class_map.names) == ["other", "building"]
    raw, out = plain[0]["mask"], mapped[0]["mask"]
    np.testing.assert_array_equal(out[raw == 1], 1)
    np.testing.assert_array_equal(out[raw == 3], 255)
    np.testing.assert_array_equal(out[np.isin(raw, [0, 2, 4])], 0)


def test_resume_after_interruption(release, monkeypatch):
    root, _ = release
    calls = []
    original = tiling._write_tile

    def failing(path, *args, **kwargs):
        if len(calls) >= 4 * 2 + 1:  # the first orthophoto's 4 tiles, then one file
            raise KeyboardInterrupt("simulated interruption")
        calls.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(tiling, "_write_tile", failing)
    with pytest.raises(KeyboardInterrupt):
        landcoverai(root=root)
    monkeypatch.setattr(tiling, "_write_tile", original)
    with pytest.raises(FileNotFoundError, match="1 of 2 LandCover.ai orthophotos"):
        landcoverai(root=root, prepare=False)
    calls.clear()

    def counting(path, *args, **kwargs):
        calls.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(tiling, "_write_tile", counting)
    ds = landcoverai(root=root)
    assert len(ds) == 6
    assert sorted(p.name for p in calls) == sorted(f"N-34-97-D-c-2-4_{k}.png" for k in (0, 0, 1, 1))


def test_zip_in_root_is_extracted_on_first_use(tmp_path, release_zip):
    zip_path, lists = release_zip
    root = tmp_path / "data"
    root.mkdir()
    zip_path.rename(root / LANDCOVERAI_FILENAME)
    ds = landcoverai(root=root, split="test")
    assert ds.names == sorted(lists["test"])


def test_tiles_alone_suffice_after_sources_are_removed(release):
    root, lists = release
    landcoverai(root=root)
    for d in ("images", "masks"):
        for p in (root / d).iterdir():
            p.unlink()
        (root / d).rmdir()
    assert landcoverai(root=root, split="val").names == sorted(lists["val"])


def test_without_split_files_a_grouped_seeded_split_is_used(tmp_path, caplog):
    root = tmp_path / "nosplit"
    make_release(root, splits=False)
    with caplog.at_level(logging.WARNING, logger="pointseg.data.landcoverai"):
        ds = landcoverai(root=root, fractions=(0.5, 0.0, 0.5))
    assert "not the official one" in caplog.text
    for part in ("train", "test"):
        groups = {n.rsplit("_", 1)[0] for n in ds.splits[part]}
        assert len(groups) == 1  # the tiles of one orthophoto stay together
    (root / "train.txt").write_text("M-33-20-D-c-4-2_0\n")
    with pytest.raises(FileNotFoundError, match=r"val\.txt.*test\.txt"):
        landcoverai(root=root)
