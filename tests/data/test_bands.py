"""Datasets: band counts must agree (or be chosen); alpha 0 is nodata (ignore), not a band."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from PIL import Image

from pointseg.constants import IGNORE_INDEX
from pointseg.data import FolderDataset

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "classes.yaml").write_text("classes: [a, b]\n")
    return tmp_path


def _mask(path, h=6, w=5):
    Image.fromarray(np.ones((h, w), np.uint8)).save(path)


def test_mixed_band_counts_error_naming_bands_unless_chosen(tmp_path):
    root = _folder(tmp_path)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    four = rng.integers(0, 256, (4, 6, 5), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "images" / "a.png")
    with rasterio.open(
        root / "images" / "b.tif", "w", driver="GTiff", height=6, width=5, count=4,
        dtype="uint8", photometric="MINISBLACK",
    ) as dst:  # fmt: skip
        dst.write(four)
    _mask(root / "masks" / "a.png")
    _mask(root / "masks" / "b.png")

    ds = FolderDataset(root, fractions=(1, 0, 0))
    assert ds[0]["image"].shape == (6, 5, 3)
    msg = r"image b\.tif has 4 band\(s\), a\.png has 3: select common bands with --bands 0,1,2"
    with pytest.raises(ValueError, match=msg):
        ds[1]
    with pytest.raises(ValueError, match=msg):
        ds.check_bands()
    # the reference is the first image of the whole dataset, whatever the split
    test_only = FolderDataset(root, split="test", split_file=_split_file(root))
    with pytest.raises(ValueError, match=msg):
        test_only[0]

    chosen = FolderDataset(root, fractions=(1, 0, 0), bands=[2, 0, 1])
    assert chosen.check_bands() == 3
    np.testing.assert_array_equal(chosen[0]["image"], rgb[..., [2, 0, 1]])
    np.testing.assert_array_equal(chosen[1]["image"], np.moveaxis(four, 0, -1)[..., [2, 0, 1]])

    bad = FolderDataset(root, fractions=(1, 0, 0), bands=[0, 3])
    with pytest.raises(ValueError, match=r"a\.png has 3 band\(s\).*band index 3 is out of range"):
        bad[0]
    with pytest.raises(ValueError, match=r"a\.png has 3 band\(s\).*band index 3 is out of range"):
        bad.check_bands()


def _split_file(root):
    path = root / "split.yaml"
    path.write_text("train: [a]\nval: []\ntest: [b]\n")
    return path


def test_alpha_becomes_ignore_in_the_mask_not_a_band(tmp_path):
    root = _folder(tmp_path)
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    data[..., 3] = np.where(rng.random((6, 5)) < 0.4, 0, 255)
    Image.fromarray(data, mode="RGBA").save(root / "images" / "a.png")
    Image.fromarray(data[..., :3]).save(root / "images" / "b.png")  # RGB and RGBA mix fine
    _mask(root / "masks" / "a.png")
    _mask(root / "masks" / "b.png")
    ds = FolderDataset(root, fractions=(1, 0, 0))
    assert ds.check_bands() == 3
    s = ds[ds.names.index("a")]
    assert s["image"].shape == (6, 5, 3)
    np.testing.assert_array_equal(s["valid"], data[..., 3] != 0)
    np.testing.assert_array_equal(s["mask"], np.where(data[..., 3] == 0, IGNORE_INDEX, 1))
    s = ds[ds.names.index("b")]
    assert "valid" not in s and (s["mask"] == 1).all()
