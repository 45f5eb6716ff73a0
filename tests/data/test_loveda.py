import logging
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from pointseg.constants import IGNORE_INDEX
from pointseg.data.archives import ChecksumError, file_md5
from pointseg.data.classes import class_map_from_dict
from pointseg.data.loveda import (
    LOVEDA_ARCHIVES,
    LOVEDA_CLASSES,
    LOVEDA_COLORS,
    LOVEDA_ZENODO_URL,
    loveda,
    prepare_loveda,
)
from pointseg.data.remap import make_remap

S = 8
# the official numbering runs across parts and scenes (Train/Rural from 0, Train/Urban from
# 1366, Val/Rural from 2522, Val/Urban from 3514, Test from 4191)
LAYOUT = {
    ("Train", "Rural"): [0, 1, 2, 10],
    ("Train", "Urban"): [1366, 1367, 1368, 1369],
    ("Val", "Rural"): [2522, 2523],
    ("Val", "Urban"): [3514],
    ("Test", "Rural"): [4191],
    ("Test", "Urban"): [5167],
}


def _write_loveda(root):
    rng = np.random.default_rng(1)
    truth = {}
    for (part, scene), numbers in LAYOUT.items():
        img_dir = root / part / scene / "images_png"
        img_dir.mkdir(parents=True)
        if part != "Test":
            (root / part / scene / "masks_png").mkdir()
        for n in numbers:
            Image.fromarray(rng.integers(0, 255, (S, S, 3), dtype=np.uint8)).save(
                img_dir / f"{n}.png"
            )
            if part != "Test":
                mask = rng.integers(0, 8, (S, S), dtype=np.uint8)
                mask[0, :8] = np.arange(8)
                Image.fromarray(mask).save(root / part / scene / "masks_png" / f"{n}.png")
                truth[f"{scene.lower()}_{n}"] = mask
    (root / "Train" / "Urban" / "images_png" / "._1366.png").write_bytes(b"resource fork")
    return truth


@pytest.fixture(scope="module")
def lda(tmp_path_factory):
    root = tmp_path_factory.mktemp("loveda")
    return root, _write_loveda(root)


def _names(*keys):
    return sorted(
        f"{scene.lower()}_{n}"
        for k in keys
        for scene in ("Rural", "Urban")
        for n in LAYOUT.get((k, scene), [])
    )


def test_samples_and_class_encoding(lda):
    root, truth = lda
    ds = loveda(root=root)
    assert ds.class_map.names == LOVEDA_CLASSES and ds.class_map.colors == LOVEDA_COLORS
    assert ds.class_map.background == "background"
    assert sorted(ds.names) == _names("Train", "Val")  # Test is not read by default
    for i, name in enumerate(ds.names):
        s = ds[i]
        assert set(s) == {"image", "mask", "name", "georef"} and s["name"] == name
        assert s["image"].shape == (S, S, 3) and s["image"].dtype == np.uint8
        assert s["georef"] is None and s["mask"].dtype == np.uint8
        want = truth[name].astype(np.int64) - 1  # 1..7 -> 0..6, 0 (no-data) -> ignore
        want[truth[name] == 0] = IGNORE_INDEX
        np.testing.assert_array_equal(s["mask"], want.astype(np.uint8))
    assert list(ds[0]["mask"][0, :8]) == [IGNORE_INDEX, 0, 1, 2, 3, 4, 5, 6]


def test_default_split_val_is_test_and_validation_is_carved_from_train(lda):
    root, _ = lda
    a = loveda(root=root, val_fraction=0.25, seed=0)
    assert a.splits == loveda(root=root, val_fraction=0.25, seed=0).splits
    assert a.splits["test"] == _names("Val")
    assert sorted(a.splits["train"] + a.splits["val"]) == _names("Train")
    assert not set(a.splits["train"]) & set(a.splits["val"]) and len(a.splits["val"]) == 2
    others = [loveda(root=root, val_fraction=0.25, seed=s).splits["val"] for s in (1, 2, 3)]
    assert any(v != a.splits["val"] for v in others)
    test = loveda(root=root, split="test")
    assert sorted(test.names) == _names("Val")
    assert loveda(root=root, val_fraction=0).splits["val"] == []


def test_scenes_option(lda):
    root, _ = lda
    urban = loveda(root=root, scenes=("urban",))
    assert urban.names and all(n.startswith("urban_") for n in urban.names)
    assert len(loveda(root=root, scenes="Rural")) == 6
    with pytest.raises(ValueError, match="scenes must be a non-empty subset"):
        loveda(root=root, scenes=("suburban",))


def test_official_test_images_need_require_masks_false(lda):
    root, _ = lda
    with pytest.raises(ValueError, match="no masks.*require_masks=False"):
        loveda(root=root, test_from="test")
    ds = loveda(root=root, test_from="test", require_masks=False)
    assert ds.splits["val"] == _names("Val") and ds.splits["test"] == _names("Test")
    assert ds.splits["train"] == _names("Train")
    test = loveda(root=root, split="test", test_from="test", require_masks=False)
    s = test[0]
    assert "mask" not in s and s["image"].shape == (S, S, 3)
    with pytest.raises(ValueError, match="test_from must be"):
        loveda(root=root, test_from="train")


def test_missing_files_say_what_and_how_to_get_them(tmp_path, lda, caplog):
    with pytest.raises(FileNotFoundError) as err:
        loveda(root=tmp_path)
    msg = str(err.value)
    for part in (str(tmp_path), "Train/Urban/images_png", "Train.zip", "Val.zip"):
        assert part in msg
    assert LOVEDA_ZENODO_URL in msg and "prepare_loveda" in msg and "Junjue-Wang" in msg
    root = tmp_path / "copy"
    shutil.copytree(lda[0], root)
    shutil.rmtree(root / "Test")
    with pytest.raises(FileNotFoundError, match=r"Test/Rural/images_png"):
        loveda(root=root, test_from="test", require_masks=False)
    (root / "Train" / "Rural" / "masks_png" / "10.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) .* have no mask.*10.png"):
        loveda(root=root)
    with caplog.at_level(logging.WARNING):
        ds = loveda(root=root, require_masks=False)
    assert "no mask" in caplog.text and "mask" not in ds[ds.names.index("rural_10")]
    with pytest.raises(ValueError, match="fixed classes"):
        loveda(root=root, classes="x.yaml")


def test_zip_extracted_into_its_own_folder_is_found(tmp_path, lda):
    for part in ("Train", "Val"):
        shutil.copytree(lda[0] / part, tmp_path / part / part)  # root/Train/Train/Urban/...
    assert sorted(loveda(root=tmp_path).names) == _names("Train", "Val")


def test_remap(lda):
    root, truth = lda
    target = class_map_from_dict({"classes": ["built", "green", "other"]})
    mapping = {
        "building": "built",
        "road": "built",
        "forest": "green",
        "agriculture": "green",
        "background": "other",
        "barren": "other",
        "water": "ignore",
    }
    base = loveda(root=root)
    ds = loveda(root=root, remap=make_remap(base.source_class_map, target, mapping))
    assert ds.class_map.names == ("built", "green", "other")
    raw = truth[ds.names[0]]
    lut = {0: 255, 1: 2, 2: 0, 3: 0, 4: 255, 5: 2, 6: 1, 7: 1}
    np.testing.assert_array_equal(ds[0]["mask"], np.vectorize(lut.get)(raw).astype(np.uint8))


def _loveda_zips(src, out):
    out.mkdir()
    for part in ("Train", "Val", "Test"):
        with zipfile.ZipFile(out / f"{part}.zip", "w") as zf:
            for p in sorted((src / part).rglob("*")):
                zf.write(p, p.relative_to(src).as_posix())
    return out


def test_prepare_extracts_checks_md5_and_rejects_unsafe_zips(tmp_path, lda):
    zips = _loveda_zips(lda[0], tmp_path / "downloads")
    sums = {n: file_md5(zips / n) for n in LOVEDA_ARCHIVES}
    with pytest.raises(ChecksumError, match=r"Train.zip: MD5 is .* but the official archive"):
        prepare_loveda(tmp_path / "a", archives=zips)
    root = prepare_loveda(tmp_path / "b", archives=zips, checksums=sums)
    assert not (root / "Train" / "Urban" / "images_png" / "._1366.png").exists()
    assert sorted(loveda(root=root).names) == _names("Train", "Val")
    ds = loveda(root=root, test_from="test", require_masks=False)
    assert ds.splits["test"] == _names("Test")
    (zips / "Test.zip").unlink()  # Test.zip is optional, Val.zip is not
    prepare_loveda(tmp_path / "c", archives=zips, checksums=sums)
    assert not (tmp_path / "c" / "Test").exists()
    (zips / "Val.zip").unlink()
    with pytest.raises(FileNotFoundError, match=rf"Val.zip not found.*{LOVEDA_ZENODO_URL}"):
        prepare_loveda(tmp_path / "d", archives=zips)
    with zipfile.ZipFile(zips / "Val.zip", "w") as zf:
        zf.writestr(zipfile.ZipInfo("Val/../../escaped.png"), b"x")
    with pytest.raises(ValueError, match="outside the target folder"):
        prepare_loveda(tmp_path / "e", archives=zips, verify_checksum=False)
    assert not (tmp_path / "escaped.png").exists()
