import shutil
import zipfile

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from pointseg.data.isprs import (
    ISPRS_CLASSES,
    ISPRS_URL,
    POTSDAM_SPLITS,
    VAIHINGEN_SPLITS,
    isprs_class_map,
    potsdam,
    vaihingen,
)

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

H, W, TILE = 44, 50, 32  # 2x2 tiles per source; the last row/column is shifted inwards
LEGEND = np.array([rgb for _, rgb in ISPRS_CLASSES], np.uint8)


def write_tif(path, array, *, georef=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"crs": "EPSG:32633", "transform": from_origin(368000.0, 5808000.0, 0.05, 0.05)}
    with rasterio.open(
        path, "w", driver="GTiff", height=array.shape[0], width=array.shape[1],
        count=array.shape[2], dtype=array.dtype.name, **(extra if georef else {}),
    ) as dst:  # fmt: skip
        dst.write(np.moveaxis(array, -1, 0))


def label_for(seed, *, eroded=False):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 6, (H, W))
    rgb = LEGEND[idx]
    if eroded:
        rgb[::7] = 0  # black boundaries
    return idx, rgb


def make_potsdam(root, *, variants=("RGB",), eroded=False, labels="5_Labels_all", ids=None):
    rng = np.random.default_rng(0)
    ids = ids or POTSDAM_SPLITS["train"] + POTSDAM_SPLITS["test"]
    folders = {
        "RGB": ("2_Ortho_RGB", 3),
        "IRRG": ("3_Ortho_IRRG", 3),
        "RGBIR": ("4_Ortho_RGBIR", 4),
    }
    for n, tile_id in enumerate(ids):
        for v in variants:
            folder, bands = folders[v]
            img = rng.integers(0, 256, (H, W, bands), dtype=np.uint8)
            write_tif(root / folder / f"top_potsdam_{tile_id}_{v}.tif", img)
        _, rgb = label_for(n)
        write_tif(root / labels / f"top_potsdam_{tile_id}_label.tif", rgb, georef=False)
        if eroded:
            _, rgb = label_for(n, eroded=True)
            write_tif(
                root / "5_Labels_all_noBoundary" / f"top_potsdam_{tile_id}_label_noBoundary.tif",
                rgb,
                georef=False,
            )
    return root


@pytest.fixture(scope="module")
def potsdam_root(tmp_path_factory):
    return make_potsdam(tmp_path_factory.mktemp("isprs") / "Potsdam", variants=("RGB", "RGBIR"),
                        eroded=True)  # fmt: skip


def test_class_maps():
    full = isprs_class_map()
    assert list(full.names) == [n for n, _ in ISPRS_CLASSES]
    assert full.background == "clutter"
    assert dict(zip(full.names, full.colors, strict=True))["building"] == (0, 0, 255)
    five = isprs_class_map(clutter="ignore", eroded=True)
    assert five.n_classes == 5 and five.background is None
    coded = five.encode(np.array([[[255, 0, 0], [0, 0, 0], [255, 255, 0]]], np.uint8))
    np.testing.assert_array_equal(coded, [[255, 255, 4]])
    with pytest.raises(ValueError, match="clutter"):
        isprs_class_map(clutter="drop")


def test_official_split_tables():
    assert len(POTSDAM_SPLITS["train"]) == 24 and len(POTSDAM_SPLITS["test"]) == 14
    assert not set(POTSDAM_SPLITS["train"]) & set(POTSDAM_SPLITS["test"])
    assert len(VAIHINGEN_SPLITS["train"]) == 16 and len(VAIHINGEN_SPLITS["test"]) == 17
    assert "4_12" in POTSDAM_SPLITS["train"] and "7_13" in POTSDAM_SPLITS["test"]


def test_potsdam_split_tiles_and_samples(potsdam_root, tmp_path):
    ds = potsdam(root=potsdam_root, tile_size=TILE, tiles_dir=tmp_path / "t", seed=1)
    assert len(ds) == 38 * 4
    source = {p: {n.rsplit("_", 1)[0] for n in ds.splits[p]} for p in ds.splits}
    assert source["test"] == {f"top_potsdam_{i}" for i in POTSDAM_SPLITS["test"]}
    assert source["train"] | source["val"] == {f"top_potsdam_{i}" for i in POTSDAM_SPLITS["train"]}
    assert source["val"] and not source["train"] & source["val"]  # whole areas move to val
    assert 3 <= len(source["val"]) <= 5  # 0.15 / 0.85 of the 24 training areas
    val = potsdam(root=potsdam_root, tile_size=TILE, tiles_dir=tmp_path / "t", seed=1, split="val")
    assert set(val.names) == set(ds.splits["val"])
    i = ds.names.index("top_potsdam_2_10_3")  # grid row 1, column 1: shifted to x=18, y=12
    s = ds[i]
    assert set(s) == {"image", "mask", "name", "georef"}
    assert s["image"].shape == (TILE, TILE, 3) and s["mask"].shape == (TILE, TILE)
    with rasterio.open(potsdam_root / "2_Ortho_RGB" / "top_potsdam_2_10_RGB.tif") as src:
        np.testing.assert_array_equal(s["image"], np.moveaxis(src.read(), 0, -1)[12:, 18:])
    idx, _ = label_for(POTSDAM_SPLITS["train"].index("2_10"))
    np.testing.assert_array_equal(s["mask"], idx[12:, 18:])
    assert ds.class_map.n_classes == 6


def test_potsdam_clutter_eroded_and_rgbir(potsdam_root, tmp_path):
    ds = potsdam(root=potsdam_root, tile_size=TILE, tiles_dir=tmp_path / "a", clutter="ignore",
                 eroded=True, fractions=(0.85, 0.0, 0.15), split="train")  # fmt: skip
    assert ds.splits["val"] == [] and ds.class_map.n_classes == 5
    s = ds[ds.names.index("top_potsdam_2_10_0")]
    idx, _ = label_for(POTSDAM_SPLITS["train"].index("2_10"))
    want = np.where(idx == 5, 255, idx)[:TILE, :TILE].copy()
    want[::7] = 255  # the eroded boundaries
    np.testing.assert_array_equal(s["mask"], want)
    ir = potsdam(root=potsdam_root, tile_size=TILE, tiles_dir=tmp_path / "b", variant="RGBIR",
                 split="test", bands=[3, 0, 1])  # fmt: skip
    s = ir[0]
    assert s["image"].shape == (TILE, TILE, 3)
    assert s["georef"] is not None and "32633" in s["georef"].crs_wkt
    assert (tmp_path / "b" / "images" / f"{s['name']}.tif").is_file()
    with pytest.raises(ValueError, match="unknown Potsdam variant"):
        potsdam(root=potsdam_root, variant="NIR")


def test_potsdam_missing_files_and_test_labels(tmp_path):
    root = make_potsdam(tmp_path / "P", labels="5_Labels_for_participants",
                        ids=POTSDAM_SPLITS["train"] + POTSDAM_SPLITS["test"])  # fmt: skip
    for i in POTSDAM_SPLITS["test"]:
        (root / "5_Labels_for_participants" / f"top_potsdam_{i}_label.tif").unlink()
    with pytest.raises(FileNotFoundError) as info:
        potsdam(root=root, tile_size=TILE)
    msg = str(info.value)
    for part in (str(root), "no label for 14 tiles", "2_13", ISPRS_URL, "5_Labels_all.zip",
                 "require_masks=False"):  # fmt: skip
        assert part in msg
    ds = potsdam(root=root, tile_size=TILE, require_masks=False, split="test")
    assert len(ds) == 14 * 4 and "mask" not in ds[0]
    (root / "2_Ortho_RGB" / "top_potsdam_7_13_RGB.tif").unlink()
    with pytest.raises(FileNotFoundError, match=r"no image for 1 of 38 tiles \(7_13; expected "
                       r"top_potsdam_\{a\}_\{b\}_RGB\.tif from 2_Ortho_RGB\.zip"):  # fmt: skip
        potsdam(root=root, tile_size=TILE, require_masks=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        potsdam(root=tmp_path / "nothing")


def test_participants_labels_win_and_bad_labels_are_named(tmp_path):
    root = make_potsdam(tmp_path / "P")
    part = root / "5_Labels_for_participants"
    part.mkdir()
    overlay = np.random.default_rng(9).integers(0, 256, (H, W, 3), dtype=np.uint8)
    write_tif(root / "5_Labels_all" / "top_potsdam_4_12_label.tif", overlay, georef=False)
    with pytest.raises(ValueError) as info:
        potsdam(root=root, tile_size=TILE)
    msg = str(info.value)
    assert "top_potsdam_4_12_label.tif" in msg and "5_Labels_for_participants.zip" in msg
    idx, rgb = label_for(123)
    write_tif(part / "top_potsdam_4_12_label.tif", rgb, georef=False)
    ds = potsdam(root=root, tile_size=TILE, split="train", fractions=(1.0, 0.0, 0.0))
    np.testing.assert_array_equal(ds[ds.names.index("top_potsdam_4_12_0")]["mask"],
                                  idx[:TILE, :TILE])  # fmt: skip


def test_potsdam_zips_are_extracted_and_prepare_false(tmp_path):
    src = make_potsdam(tmp_path / "src")
    root = tmp_path / "Potsdam"
    root.mkdir()
    for folder in ("2_Ortho_RGB", "5_Labels_all"):
        with zipfile.ZipFile(root / f"{folder}.zip", "w") as zf:
            for p in sorted((src / folder).iterdir()):
                zf.write(p, f"{folder}/{p.name}")
    with pytest.raises(FileNotFoundError, match="pass prepare=True"):
        potsdam(root=src, tile_size=TILE, prepare=False)
    with pytest.raises(FileNotFoundError, match="no image for 38 of 38"):
        potsdam(root=root, tile_size=TILE, prepare=False)
    ds = potsdam(root=root, tile_size=TILE, split="test")
    assert len(ds) == 14 * 4
    assert (root / "2_Ortho_RGB" / "2_Ortho_RGB" / "top_potsdam_2_10_RGB.tif").is_file()
    with pytest.raises(ValueError, match="fixed classes; use remap="):
        potsdam(root=root, classes="x")


def make_vaihingen(root):
    rng = np.random.default_rng(4)
    ids = VAIHINGEN_SPLITS["train"] + VAIHINGEN_SPLITS["test"]
    for n, area in enumerate(ids):
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        write_tif(root / "top" / f"top_mosaic_09cm_area{area}.tif", img)
        _, rgb = label_for(100 + n)
        write_tif(root / "complete" / f"top_mosaic_09cm_area{area}.tif", rgb, georef=False)
        if area in VAIHINGEN_SPLITS["train"]:
            write_tif(root / "gts_for_participants" / f"top_mosaic_09cm_area{area}.tif", rgb,
                      georef=False)  # fmt: skip
        _, rgb = label_for(100 + n, eroded=True)
        write_tif(root / "eroded" / f"top_mosaic_09cm_area{area}_noBoundary.tif", rgb,
                  georef=False)  # fmt: skip
    # area 9 is in the eroded release but in neither official split
    write_tif(root / "eroded" / "top_mosaic_09cm_area9_noBoundary.tif", rgb, georef=False)
    return root


def test_vaihingen(tmp_path):
    root = make_vaihingen(tmp_path / "Vaihingen")
    ds = vaihingen(root=root, tile_size=TILE)
    assert len(ds) == 33 * 4
    source = {p: {n.rsplit("_", 1)[0] for n in ds.splits[p]} for p in ds.splits}
    assert source["test"] == {f"top_mosaic_09cm_area{i}" for i in VAIHINGEN_SPLITS["test"]}
    assert not source["train"] & source["val"] and source["val"]
    s = ds[ds.names.index("top_mosaic_09cm_area1_0")]
    idx, _ = label_for(100)
    np.testing.assert_array_equal(s["mask"], idx[:TILE, :TILE])
    with Image.open(root / "tiles" / "vaihingen_irrg_32" / "masks" / f"{s['name']}.png") as im:
        assert im.mode == "RGB"  # colour-coded masks stay RGB
    er = vaihingen(root=root, tile_size=TILE, eroded=True, split="test")
    assert all(n.rsplit("_", 1)[0] != "top_mosaic_09cm_area9" for n in er.names)
    assert (er[0]["mask"][::7] == 255).all()
    shutil.rmtree(root / "complete")
    with pytest.raises(FileNotFoundError, match=r"no label for 17 tiles.*ground_truth_COMPLETE"):
        vaihingen(root=root, tile_size=TILE)
