import numpy as np
import pytest

from pointseg.constants import IGNORE_INDEX
from pointseg.data import class_map_from_dict, landcover_class_map, load_class_file
from pointseg.data.presets import resolve_class_file


def test_values_encoding_with_ignore():
    cm = class_map_from_dict(
        {
            "classes": [{"name": "a", "values": [0, 7]}, {"name": "b", "values": [3]}],
            "ignore_values": [9],
        }
    )
    raw = np.array([[0, 7, 3], [9, 3, 0]], np.uint8)
    np.testing.assert_array_equal(cm.encode(raw), [[0, 0, 1], [IGNORE_INDEX, 1, 0]])


def test_unknown_value_error_names_value_and_fix():
    cm = landcover_class_map()
    with pytest.raises(ValueError, match=r"m\.png.*\b17 \(2 px\).*ignore_values"):
        cm.encode(np.array([[17, 17, 0]], np.uint8), where="m.png")


def test_rgb_encoding_hex_and_list_colours():
    cm = class_map_from_dict(
        {
            "classes": [{"name": "x", "rgb": ["#FF0000"]}, {"name": "y", "rgb": [[0, 0, 255]]}],
            "ignore_rgb": ["#000000"],
        }
    )
    raw = np.zeros((2, 2, 3), np.uint8)
    raw[0, 0] = (255, 0, 0)
    raw[0, 1] = (0, 0, 255)
    raw[1, 1] = (255, 0, 0)
    np.testing.assert_array_equal(cm.encode(raw), [[0, 1], [IGNORE_INDEX, 0]])
    raw[1, 0] = (1, 2, 3)
    with pytest.raises(ValueError, match="#010203"):
        cm.encode(raw)


def test_rgb_mask_for_value_map_errors_unless_grey():
    cm = landcover_class_map()
    grey = np.stack([np.full((2, 2), 2, np.uint8)] * 3, axis=-1)
    np.testing.assert_array_equal(cm.encode(grey), np.full((2, 2), 2))
    colour = grey.copy()
    colour[0, 0, 0] = 9
    with pytest.raises(ValueError, match="RGB mask"):
        cm.encode(colour)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"classes": []}, "empty"),
        ({"nope": 1}, "classes"),
        ({"classes": [{"name": "a"}, {"name": "A"}]}, "twice"),
        ({"classes": [{"name": "a", "values": [1]}], "ignore_values": [1]}, "both"),
        ({"classes": [{"name": "a", "rgb": ["#12345"]}]}, "colour"),
        ({"classes": [{"name": "a"}], "background": "zz"}, "background"),
    ],
)
def test_bad_class_files(content, match):
    with pytest.raises(ValueError, match=match):
        class_map_from_dict(content)


def test_dubai_preset_round_trip(tmp_path):
    cm = load_class_file(resolve_class_file("dubai"))
    assert cm.names == ("building", "land", "road", "vegetation", "water")
    assert cm.background == "land"
    assert cm.rgb[(110, 193, 228)] == cm.index("road")
    assert (155, 155, 155) in cm.ignore_rgb and (0, 0, 0) in cm.ignore_rgb
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cm.to_dict()))
    again = load_class_file(path)
    assert again.names == cm.names and dict(again.rgb) == dict(cm.rgb)
    assert again.ignore_rgb == cm.ignore_rgb


def test_missing_class_file_and_unknown_preset(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_class_file(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match="preset"):
        resolve_class_file("not-a-preset")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("classes: [a, b]\nbackgruond: a\n", r"unknown key\(s\) \['backgruond'\]"),
        ("classes:\n  - {name: a, colour: red}\n", r"unknown key\(s\) \['colour'\]"),
    ],
)
def test_unknown_keys_in_a_class_file_are_errors(tmp_path, text, match):
    from pointseg.data import load_class_file

    path = tmp_path / "classes.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_class_file(path)
