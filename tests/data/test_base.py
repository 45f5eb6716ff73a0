from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pointseg.data import Record, RecordDataset, carve_validation, class_map_from_dict


def test_carve_validation_is_seeded_grouped_and_disjoint():
    train = [f"t{g}_{i}" for g in range(10) for i in range(3)]
    splits = {"train": train, "test": ["z"]}
    a = carve_validation(splits, fraction=0.2, seed=1, group_pattern=r"^t\d+")
    b = carve_validation(splits, fraction=0.2, seed=1, group_pattern=r"^t\d+")
    assert a == b
    assert a["test"] == ["z"]
    assert not set(a["train"]) & set(a["val"])
    assert sorted(a["train"] + a["val"]) == sorted(train)
    assert len(a["val"]) == 6  # two whole groups of three
    groups_val = {s.split("_")[0] for s in a["val"]}
    assert not any(s.split("_")[0] in groups_val for s in a["train"])
    assert carve_validation(splits, fraction=0.2, seed=2) != a


def test_carve_validation_keeps_a_given_val_split():
    splits = {"train": ["a", "b"], "val": ["c"], "test": []}
    assert carve_validation(splits, fraction=0.5) == {"train": ["a", "b"], "val": ["c"], "test": []}
    with pytest.raises(ValueError, match="fraction"):
        carve_validation({"train": ["a", "b"]}, fraction=1.5)


def _records(tmp_path: Path, names):
    out = []
    for n in names:
        Image.fromarray(np.full((3, 4, 3), 7, np.uint8)).save(tmp_path / f"{n}.png")
        Image.fromarray(np.ones((3, 4), np.uint8)).save(tmp_path / f"{n}_m.png")
        out.append(Record(n, tmp_path / f"{n}.png", tmp_path / f"{n}_m.png"))
    return out


def test_record_dataset_official_split_and_sample_dict(tmp_path):
    cm = class_map_from_dict({"classes": ["a", "b"]})
    recs = _records(tmp_path, ["p", "q", "r"])
    ds = RecordDataset(
        recs, class_map=cm, root=tmp_path, split="val", splits={"train": ["p"], "val": ["q"]}
    )
    assert ds.names == ["q"]
    sample = ds[0]
    assert set(sample) == {"image", "mask", "name", "georef"}
    assert sample["image"].shape == (3, 4, 3)
    assert sample["mask"].dtype == np.uint8 and (sample["mask"] == 1).all()
    assert ds.image_size(0) == (3, 4)
    # "r" is in no official split, so it is in no split
    assert all("r" not in names for names in ds.splits.values())


def test_record_dataset_reports_missing_split_members(tmp_path):
    cm = class_map_from_dict({"classes": ["a"]})
    with pytest.raises(ValueError, match=r"1 image\(s\) of the 'test' split are missing.*'gone'"):
        RecordDataset(_records(tmp_path, ["p"]), class_map=cm, splits={"test": ["gone"]})
    with pytest.raises(ValueError, match="unknown split names"):
        RecordDataset(_records(tmp_path, ["p"]), class_map=cm, splits={"holdout": ["p"]})
    with pytest.raises(ValueError, match="occur twice"):
        RecordDataset(_records(tmp_path, ["p"]) * 2, class_map=cm)
