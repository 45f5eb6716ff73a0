import logging
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from pointseg.constants import IGNORE_INDEX
from pointseg.data.archives import ChecksumError, file_md5
from pointseg.data.oxford_pet import (
    OXFORD_PET_ARCHIVES,
    OXFORD_PET_URL,
    _read_rgb,
    oxford_pet,
    prepare_oxford_pet,
    read_pet_list,
)

H, W = 6, 5
# name, class id, species (1 cat, 2 dog), breed id -- as in the official list files
TRAINVAL = [
    ("Abyssinian_1", 1, 1, 1),
    ("Abyssinian_2", 1, 1, 1),
    ("Abyssinian_3", 1, 1, 1),
    ("Abyssinian_4", 1, 1, 1),
    ("american_bulldog_1", 2, 2, 1),
    ("american_bulldog_2", 2, 2, 1),
    ("american_bulldog_3", 2, 2, 1),
    ("american_bulldog_4", 2, 2, 1),
    ("Bengal_1", 6, 1, 2),
    ("Bengal_2", 6, 1, 2),
]
TEST = [("Abyssinian_5", 1, 1, 1), ("american_bulldog_5", 2, 2, 1), ("Bengal_3", 6, 1, 2)]
ALL = [r[0] for r in TRAINVAL + TEST]


def _write_pet(root):
    """A tiny copy of the official layout, with the official oddities."""
    rng = np.random.default_rng(0)
    images, trimaps = root / "images", root / "annotations" / "trimaps"
    images.mkdir(parents=True)
    trimaps.mkdir(parents=True)
    truth = {}
    for k, name in enumerate(ALL):
        rgb = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        path = images / f"{name}.jpg"
        if name == "Abyssinian_2":
            Image.fromarray(rgb[..., 0]).save(path)  # grayscale JPEG
        elif name == "Abyssinian_3":
            rgba = np.dstack([rgb, np.full((H, W), 128, np.uint8)])
            Image.fromarray(rgba, mode="RGBA").save(path, format="PNG")  # PNG under .jpg
        elif name == "Abyssinian_4":
            Image.fromarray(rgb).convert("CMYK").save(path, format="JPEG")  # CMYK JPEG
        elif name == "Bengal_3":
            Image.fromarray(rgb).convert("P").save(path, format="GIF")  # palette GIF data
        else:
            Image.fromarray(rgb).save(path)
        trimap = rng.integers(1, 4, (H, W), dtype=np.uint8)
        trimap[0, :3] = (1, 2, 3)
        truth[name] = trimap
        if k % 4 == 3:  # some trimaps as palette PNGs
            im = Image.fromarray(trimap, mode="L").convert("P")
            im.putpalette([v for i in range(256) for v in (i, i, i)])
            im.save(trimaps / f"{name}.png")
        else:
            Image.fromarray(trimap).save(trimaps / f"{name}.png")
    # what the official archives also hold: resource forks, .mat files, unlisted images
    (trimaps / "._Abyssinian_1.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (images / "._Abyssinian_1.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (images / "Abyssinian_100.mat").write_bytes(b"MATLAB 5.0 MAT-file")
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(images / "pug_1.jpg")
    for part, rows in (("trainval", TRAINVAL), ("test", TEST)):
        text = "".join(f"{n} {c} {s} {b}\n" for n, c, s, b in rows)
        (root / "annotations" / f"{part}.txt").write_text(text)
    (root / "annotations" / "list.txt").write_text(
        "#Image CLASS-ID SPECIES BREED ID\n"
        + "".join(f"{n} {c} {s} {b}\n" for n, c, s, b in TRAINVAL + TEST)
    )
    return truth


@pytest.fixture(scope="module")
def pet(tmp_path_factory):
    root = tmp_path_factory.mktemp("pet")
    return root, _write_pet(root)


def _expected(trimap, lut):
    out = np.full(trimap.shape, 255, np.uint8)
    for value, code in lut.items():
        out[trimap == value] = code
    return out


def test_every_image_is_rgb_and_trimaps_encode_pet_background_ignore(pet):
    root, truth = pet
    ds = oxford_pet(root=root)
    assert len(ds) == len(ALL) and sorted(ds.names) == sorted(ALL)
    assert ds.class_map.names == ("pet", "background")
    assert ds.class_map.background == "background"
    for i, name in enumerate(ds.names):
        s = ds[i]
        assert set(s) == {"image", "mask", "name", "georef"}
        assert s["name"] == name and s["georef"] is None
        assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
        assert s["mask"].dtype == np.uint8
        np.testing.assert_array_equal(s["mask"], _expected(truth[name], {1: 0, 2: 1}))
        assert ds.image_size(i) == (H, W)
    gray = ds[ds.names.index("Abyssinian_2")]["image"]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    rgba = ds[ds.names.index("Abyssinian_3")]["image"]  # lossless PNG: alpha dropped exactly
    assert rgba.std() > 0


def test_border_as_class_and_bands(pet):
    root, truth = pet
    ds = oxford_pet(root=root, border="class", bands=[2, 1, 0])
    assert ds.class_map.names == ("pet", "background", "border")
    i = ds.names.index("Bengal_1")
    np.testing.assert_array_equal(ds[i]["mask"], _expected(truth["Bengal_1"], {1: 0, 2: 1, 3: 2}))
    plain = oxford_pet(root=root)
    np.testing.assert_array_equal(ds[i]["image"], plain[i]["image"][..., ::-1])
    with pytest.raises(ValueError, match=r"RGB \(3 bands\); band indices \[3\]"):
        oxford_pet(root=root, bands=[3])
    with pytest.raises(ValueError, match="border must be 'ignore' or 'class'"):
        oxford_pet(root=root, border="edge")


@pytest.mark.parametrize("border", ["ignore", "class"])
def test_breeds_as_classes(pet, border):
    root, truth = pet
    ds = oxford_pet(root=root, binary=False, border=border)
    breeds = ["Abyssinian", "american_bulldog", "Bengal"]  # ordered by class id 1, 2, 6
    extra = ["border"] if border == "class" else []
    assert list(ds.class_map.names) == [*breeds, "background", *extra]
    for name in ("Abyssinian_2", "american_bulldog_5", "Bengal_2"):
        breed = breeds.index(name.rsplit("_", 1)[0])
        lut = {1: breed, 2: 3} | ({3: 4} if border == "class" else {})
        np.testing.assert_array_equal(ds[ds.names.index(name)]["mask"], _expected(truth[name], lut))


def test_official_split_with_seeded_validation(pet):
    root, _ = pet
    trainval = {r[0] for r in TRAINVAL}
    a = oxford_pet(root=root, val_fraction=0.3, seed=0)
    b = oxford_pet(root=root, val_fraction=0.3, seed=0)
    assert a.splits == b.splits
    assert a.splits["test"] == sorted(r[0] for r in TEST)
    assert set(a.splits["train"]) | set(a.splits["val"]) == trainval
    assert not set(a.splits["train"]) & set(a.splits["val"]) and len(a.splits["val"]) == 3
    others = [oxford_pet(root=root, val_fraction=0.3, seed=s).splits["val"] for s in (1, 2, 3)]
    assert any(v != a.splits["val"] for v in others)
    val = oxford_pet(root=root, split="val", val_fraction=0.3, seed=0)
    assert sorted(val.names) == a.splits["val"]
    assert oxford_pet(root=root, val_fraction=0).splits["val"] == []
    by_breed = oxford_pet(root=root, val_fraction=0.3, group_pattern=r"^(.*)_\d+$")
    val_breeds = {n.rsplit("_", 1)[0] for n in by_breed.splits["val"]}
    assert not any(n.rsplit("_", 1)[0] in val_breeds for n in by_breed.splits["train"])


def test_missing_files_say_what_and_how_to_get_them(tmp_path, pet, caplog):
    with pytest.raises(FileNotFoundError) as err:
        oxford_pet(root=tmp_path)
    msg = str(err.value)
    for part in (str(tmp_path), "images", "trainval.txt", "images.tar.gz", "annotations.tar.gz"):
        assert part in msg
    assert OXFORD_PET_URL in msg and "prepare_oxford_pet" in msg
    root = tmp_path / "copy"
    shutil.copytree(pet[0], root)
    (root / "annotations" / "trimaps" / "Bengal_2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) have no trimap.*Bengal_2.png"):
        oxford_pet(root=root)
    with caplog.at_level(logging.WARNING):
        ds = oxford_pet(root=root, require_masks=False)
    assert "no trimap" in caplog.text
    assert "mask" not in ds[ds.names.index("Bengal_2")]
    (root / "images" / "Bengal_1.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing from .*images.*Bengal_1.jpg"):
        oxford_pet(root=root, require_masks=False)


def test_truncated_and_undecodable_images(tmp_path, caplog):
    whole = tmp_path / "whole.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(whole)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    with caplog.at_level(logging.WARNING):
        assert _read_rgb(cut).shape == (64, 64, 3)
    assert "cut.jpg is truncated" in caplog.text
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"MATLAB 5.0 MAT-file")
    with pytest.raises(ValueError, match="cannot read image .*junk.jpg"):
        _read_rgb(junk)


def test_options_and_list_files_are_checked(tmp_path, pet):
    root, _ = pet
    with pytest.raises(ValueError, match="fixed classes.*remap="):
        oxford_pet(root=root, classes="classes.yaml")
    with pytest.raises(ValueError, match="val_fraction"):
        oxford_pet(root=root, val_fraction=1.0)
    assert read_pet_list(root / "annotations" / "list.txt")[0] == ("Abyssinian_1", 1, 1, 1)
    bad = tmp_path / "trainval.txt"
    bad.write_text("Abyssinian_1 1 1 1\nAbyssinian_2 one 1 1\n")
    with pytest.raises(ValueError, match=r"trainval.txt line 2: expected 'NAME CLASS_ID"):
        read_pet_list(bad)


def test_torchvision_layout_and_remap_file(tmp_path, pet):
    nested = tmp_path / "oxford-iiit-pet"
    shutil.copytree(pet[0], nested)
    (tmp_path / "target.yaml").write_text("classes: [animal, other]\n")
    (tmp_path / "map.yaml").write_text(
        "target: target.yaml\nmap: {pet: animal, background: other, border: ignore}\n"
    )
    ds = oxford_pet(root=tmp_path, border="class", remap=tmp_path / "map.yaml")
    assert ds.root == nested and ds.class_map.names == ("animal", "other")
    name = "american_bulldog_3"
    want = _expected(pet[1][name], {1: 0, 2: 1})
    np.testing.assert_array_equal(ds[ds.names.index(name)]["mask"], want)
    assert set(np.unique(ds[0]["mask"])) <= {0, 1, IGNORE_INDEX}


def _pet_archives(src, out):
    out.mkdir()
    with tarfile.open(out / "images.tar.gz", "w:gz") as tar:
        tar.add(src / "images", arcname="images")
    with tarfile.open(out / "annotations.tar.gz", "w:gz") as tar:
        tar.add(src / "annotations", arcname="annotations")
    return out


def test_prepare_extracts_checks_md5_and_rejects_unsafe_archives(tmp_path, pet):
    archives = _pet_archives(pet[0], tmp_path / "downloads")
    sums = {n: file_md5(archives / n) for n in OXFORD_PET_ARCHIVES}
    # our home-made archives are not the official ones: the official MD5s reject them
    with pytest.raises(ChecksumError, match=r"MD5 is .* but the official archive has"):
        prepare_oxford_pet(tmp_path / "a", archives=archives)
    root = prepare_oxford_pet(tmp_path / "b", archives=archives, checksums=sums)
    assert not (root / "annotations" / "trimaps" / "._Abyssinian_1.png").exists()
    assert (root / ".images.tar.gz.extracted").is_file()
    assert len(oxford_pet(root=root)) == len(ALL)
    with pytest.raises(FileNotFoundError, match=rf"annotations.tar.gz not found.*{OXFORD_PET_URL}"):
        prepare_oxford_pet(tmp_path / "c", archives=[archives / "images.tar.gz"])
    evil = tmp_path / "evil"
    evil.mkdir()
    shutil.copy(archives / "images.tar.gz", evil)
    with tarfile.open(evil / "annotations.tar.gz", "w:gz") as tar:
        tar.add(pet[0] / "annotations" / "test.txt", arcname="annotations/../../escaped.txt")
    with pytest.raises(ValueError, match="outside the target folder"):
        prepare_oxford_pet(tmp_path / "d", archives=evil, verify_checksum=False)
    assert not (tmp_path / "escaped.txt").exists()
