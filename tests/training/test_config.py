import pytest

from pointseg.training import TrainConfig


@pytest.mark.parametrize(
    ("setting", "value", "match"),
    [
        ("dataset", "imagenet", "unknown dataset 'imagenet'.*landcoverai"),
        ("model", "resnet", "unknown model 'resnet'.*deeplabv3_resnet50"),
        ("loss", "dice", "unknown loss 'dice'.*masked_mse"),
        ("superpixels", "sam", "unknown superpixels 'sam'.*hers"),
        ("point_scheme", "random", "unknown point_scheme 'random'.*per_class"),
    ],
)
def test_validate_names_the_valid_choices(setting, value, match):
    cfg = TrainConfig(data="somewhere", **{setting: value})
    with pytest.raises(ValueError, match=match):
        cfg.validate()


def test_open_dataset_by_name_with_options(tiny_synthetic):
    cfg = TrainConfig(data=str(tiny_synthetic), dataset="folder", remap=None)
    ds = cfg.open_dataset("train")
    assert len(ds) > 0 and ds.class_map.n_classes == 5
    cfg.dataset_options = {"bands": [0]}
    with pytest.raises(ValueError, match=r"dataset_options \['bands'\].*top level"):
        cfg.open_dataset("train")


def test_config_round_trip_keeps_dataset_settings(tmp_path):
    cfg = TrainConfig(
        data="d", dataset="oxford_pet", dataset_options={"border": "class"}, remap="m.yaml"
    )
    cfg.save(tmp_path / "c.yaml")
    back = TrainConfig.from_yaml(tmp_path / "c.yaml")
    assert back.dataset == "oxford_pet" and back.dataset_options == {"border": "class"}
    assert back.remap == "m.yaml"
