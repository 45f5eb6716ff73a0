import numpy as np
import pytest

from pointseg.constants import IGNORE_INDEX
from pointseg.data import (
    FolderDataset,
    class_map_from_dict,
    list_map_presets,
    load_class_file,
    load_remap_file,
    make_remap,
    resolve_class_file,
)


def _maps():
    src = class_map_from_dict({"classes": ["a", "b", "c"]}, source="src")
    tgt = class_map_from_dict({"classes": ["x", "y"]}, source="tgt")
    return src, tgt


def test_make_remap_translates_and_ignores():
    src, tgt = _maps()
    remap = make_remap(src, tgt, {"a": "y", "B": "x", "c": "ignore"})
    mask = np.array([[0, 1, 2, IGNORE_INDEX]], np.uint8)
    np.testing.assert_array_equal(remap(mask), [[1, 0, IGNORE_INDEX, IGNORE_INDEX]])
    assert remap.describe() == {"a": "y", "b": "x", "c": "ignore"}


def test_make_remap_rejects_unmapped_and_unknown_classes():
    src, tgt = _maps()
    with pytest.raises(ValueError, match=r"\['c'\] are not mapped"):
        make_remap(src, tgt, {"a": "x", "b": "x"})
    with pytest.raises(ValueError, match="'z' is not a source class"):
        make_remap(src, tgt, {"a": "x", "b": "x", "c": "x", "z": "x"})
    with pytest.raises(ValueError, match="'q', which is not a target class"):
        make_remap(src, tgt, {"a": "q", "b": "x", "c": "x"})


def test_mapping_file_relative_class_files(tmp_path):
    (tmp_path / "src.yaml").write_text("classes: [a, b]\n")
    (tmp_path / "tgt.yaml").write_text("classes: [x]\n")
    path = tmp_path / "map.yaml"
    path.write_text("source: src.yaml\ntarget: tgt.yaml\nmap: {a: x, b: ignore}\n")
    remap = load_remap_file(path)
    assert remap.target.names == ("x",)
    np.testing.assert_array_equal(remap(np.array([0, 1], np.uint8)), [0, IGNORE_INDEX])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("target: landcoverai\n", "needs 'target:'"),
        ("map: {a: b}\n", "'target:'"),
        ("target: landcoverai\nmap: {a: b}\n", "'source:' is missing"),
        ("target: nowhere\nsource: dubai\nmap: {a: b}\n", "nowhere does not exist"),
        ("target: [\n", "not valid YAML"),
    ],
)
def test_mapping_file_errors(tmp_path, text, match):
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_remap_file(path)


def test_missing_mapping_file_lists_presets(tmp_path):
    with pytest.raises(FileNotFoundError, match="dubai-to-landcoverai"):
        load_remap_file(tmp_path / "nope.yaml")


def test_dubai_to_landcoverai_preset():
    assert "dubai-to-landcoverai" in list_map_presets()
    remap = load_remap_file("dubai-to-landcoverai")
    assert remap.source.names == load_class_file(resolve_class_file("dubai")).names
    assert remap.target.names == ("background", "building", "woodland", "water", "road")
    assert remap.describe()["land"] == "background"
    assert remap.describe()["vegetation"] == "woodland"


def test_folder_dataset_remaps_masks(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.array([[0, 1, 2, 255, 0]] * 4, np.uint8)).save(tmp_path / "masks" / "a.png")
    (tmp_path / "classes.yaml").write_text("classes: [a, b, c]\n")
    (tmp_path / "map.yaml").write_text(
        "source: classes.yaml\ntarget: t.yaml\nmap: {a: y, b: x, c: ignore}\n"
    )
    (tmp_path / "t.yaml").write_text("classes: [x, y]\n")
    ds = FolderDataset(tmp_path, remap=tmp_path / "map.yaml", fractions=(1, 0, 0))
    assert ds.class_map.names == ("x", "y")
    assert ds.source_class_map.names == ("a", "b", "c")
    np.testing.assert_array_equal(ds[0]["mask"][0], [1, 0, 255, 255, 1])


def test_remap_with_wrong_source_scheme_is_refused(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "masks" / "a.png")
    (tmp_path / "classes.yaml").write_text("classes: [a, b]\n")
    with pytest.raises(ValueError, match="'building' is not a source class.*\\['a', 'b'\\]"):
        FolderDataset(tmp_path, remap="dubai-to-landcoverai")


def test_unknown_keys_in_a_mapping_file_are_errors(tmp_path):
    from pointseg.data import load_remap_file

    (tmp_path / "src.yaml").write_text("classes: [a, b]\n")
    (tmp_path / "tgt.yaml").write_text("classes: [x]\n")
    path = tmp_path / "map.yaml"
    path.write_text("source: src.yaml\ntarget: tgt.yaml\nmap: {a: x, b: x}\nmapping: {}\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['mapping'\]"):
        load_remap_file(path)
