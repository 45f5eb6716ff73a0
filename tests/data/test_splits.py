import pytest

from pointseg.data import read_split_file, split_stems


def test_split_fractions_and_determinism():
    stems = [f"img{i:03d}" for i in range(100)]
    a = split_stems(stems, seed=1)
    assert [len(a[k]) for k in ("train", "val", "test")] == [70, 15, 15]
    assert a == split_stems(stems, seed=1)
    assert a != split_stems(stems, seed=2)
    assert sorted(a["train"] + a["val"] + a["test"]) == stems


def test_groups_never_straddle_splits():
    stems = [f"image_part_{p:03d}t{t}" for t in range(1, 7) for p in range(1, 10)]
    s = split_stems(stems, group_pattern=r"t\d+$", seed=0)
    tiles = {k: {x[-2:] for x in v} for k, v in s.items()}
    assert all(tiles[k] for k in tiles)
    assert not (tiles["train"] & tiles["val"]) and not (tiles["train"] & tiles["test"])
    assert not (tiles["val"] & tiles["test"])


def test_group_pattern_must_match():
    with pytest.raises(ValueError, match="does not match"):
        split_stems(["a", "b"], group_pattern=r"t\d+$")


def test_split_file_yaml_and_csv(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("train: [a, b.png]\nval: [c]\ntest: []\n")
    assert read_split_file(y) == {"train": ["a", "b"], "val": ["c"], "test": []}
    c = tmp_path / "s.csv"
    c.write_text("stem,split\na,train\nb,test\n")
    assert read_split_file(c, stems=["a", "b"]) == {"train": ["a"], "val": [], "test": ["b"]}
    c.write_text("a,train\na,val\n")
    with pytest.raises(ValueError, match="both"):
        read_split_file(c)
    c.write_text("a,holdout\n")
    with pytest.raises(ValueError, match="line 1.*holdout"):
        read_split_file(c)
    c.write_text("zz,train\n")
    with pytest.raises(ValueError, match="not in the dataset"):
        read_split_file(c, stems=["a"])


def test_unknown_split_names_in_a_split_file_are_errors(tmp_path):
    from pointseg.data import read_split_file

    path = tmp_path / "split.yaml"
    path.write_text("train: [a]\nvalidation: [b]\n")
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        read_split_file(path)
