import numpy as np
import pytest
from PIL import Image

from pointseg.constants import IGNORE_INDEX
from pointseg.data import FolderDataset, get_dataset, list_datasets, resolve_class_file, scan_folder


def _write_palette_mask(path, index_map, palette_rgb):
    im = Image.fromarray(index_map.astype(np.uint8), mode="P")
    flat = [v for c in palette_rgb for v in c]
    im.putpalette(flat + [0] * (768 - len(flat)))
    im.save(path)


@pytest.fixture
def dubai_like(tmp_path):
    """Two images with colour masks: one RGB PNG, one palette PNG with a shuffled palette."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    colours = {
        "building": (60, 16, 152),
        "land": (132, 41, 246),
        "road": (110, 193, 228),
        "vegetation": (254, 221, 58),
        "water": (226, 169, 41),
        "unlabeled": (155, 155, 155),
        "black": (0, 0, 0),
    }
    names = list(colours)
    truth = []
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(
            tmp_path / "images" / f"image_part_00{k}t1.jpg"
        )
        idx = rng.integers(0, len(names), (12, 10))
        truth.append(idx)
        if k == 0:
            rgb = np.array([colours[n] for n in names], np.uint8)[idx]
            Image.fromarray(rgb).save(tmp_path / "masks" / f"image_part_00{k}t1.png")
        else:
            perm = rng.permutation(len(names))  # palette order differs from file to file
            palette = [colours[names[p]] for p in perm]
            inverse = np.argsort(perm)
            _write_palette_mask(
                tmp_path / "masks" / f"image_part_00{k}t1.png", inverse[idx], palette
            )
    return tmp_path, names, truth


def test_reads_rgb_and_palette_masks_with_dubai_preset(dubai_like):
    root, names, truth = dubai_like
    ds = FolderDataset(root, classes=resolve_class_file("dubai"), fractions=(1, 0, 0))
    assert len(ds) == 2
    expect_code = {n: ds.class_map.index(n) for n in names[:5]}
    expect_code["unlabeled"] = expect_code["black"] = IGNORE_INDEX
    for i in range(2):
        s = ds[i]
        assert s["image"].shape == (12, 10, 3)
        want = np.vectorize(lambda j: expect_code[names[j]])(truth[i])
        np.testing.assert_array_equal(s["mask"], want)


def test_missing_masks_and_folders_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="images/"):
        scan_folder(tmp_path)
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match="no mask"):
        scan_folder(tmp_path)
    recs = scan_folder(tmp_path, require_masks=False)
    assert recs[0].mask is None
    with pytest.raises(FileNotFoundError, match="class file"):
        FolderDataset(tmp_path, require_masks=False)


def test_mask_size_mismatch(tmp_path):
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "masks" / "a.png")
    (tmp_path / "classes.yaml").write_text("classes: [a, b]\n")
    ds = FolderDataset(tmp_path, fractions=(1, 0, 0))
    with pytest.raises(ValueError, match="same size"):
        ds[0]


def test_registry_and_synthetic_splits(tiny_synthetic, tmp_path):
    assert {
        "folder",
        "synthetic",
        "landcoverai",
        "oxford_pet",
        "loveda",
        "potsdam",
        "rasters",
        "vaihingen",
    } == set(list_datasets())
    with pytest.raises(ValueError, match="folder, landcoverai, loveda, oxford_pet"):
        get_dataset("nope")
    train = get_dataset("folder", root=tiny_synthetic, split="train")
    test = get_dataset("folder", root=tiny_synthetic, split="test")
    assert len(train) == 14 and len(test) == 3
    assert not set(train.names) & set(test.names)
    s = train[0]
    assert s["image"].dtype == np.uint8 and s["mask"].max() <= 4
    syn = get_dataset("synthetic", root=tmp_path / "syn", n_images=4, size=32, split=None)
    assert len(syn) == 4


def test_real_dubai_masks_all_encode(dubai_root):
    ds = FolderDataset(dubai_root, classes=resolve_class_file("dubai"), group_pattern=r"t\d+$")
    assert sum(len(v) for v in ds.splits.values()) == 54
    tiles = {k: {n[-2:] for n in v} for k, v in ds.splits.items()}
    assert not (tiles["train"] & tiles["test"])
    for i in (0, len(ds) - 1):
        s = ds[i]
        assert s["mask"].shape == s["image"].shape[:2]
        assert set(np.unique(s["mask"])) <= {0, 1, 2, 3, 4, IGNORE_INDEX}
