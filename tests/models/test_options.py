"""Model and loss options are checked against their constructors before any work."""

import pytest

from pointseg.losses import check_loss_options
from pointseg.models import check_model_options


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("unet", {"base_chanels": 8}, "valid options: base_channels, depth"),
        ("unet", {"base_channels": "8"}, "must be of type int"),
        ("unet", {"in_channels": 4}, "set by pointseg"),
        ("smp_unet", {"foo": 1}, "valid options: .*encoder"),
        ("fcn_resnet50", {"a": 1}, "takes no options"),
        ("nope", {}, "available models"),
    ],
)
def test_bad_model_options_name_the_fix(name, options, match):
    with pytest.raises(ValueError, match=match):
        check_model_options(name, options)


def test_good_model_options_pass():
    check_model_options("unet", {"base_channels": 8, "depth": 2})
    check_model_options("deeplabv3_resnet50", {})


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("masked_mse", {"clas_weights": 1}, "valid options: activation, eps, ignore_index"),
        ("partial_ce", {"class_weights": "nope"}, "rejects"),
        ("nope", {}, "available losses"),
    ],
)
def test_bad_loss_options_name_the_fix(name, options, match):
    with pytest.raises(ValueError, match=match):
        check_loss_options(name, options)
