"""The command line's shape: flags derived from TrainConfig, no abbreviations, one-line errors."""

from dataclasses import fields

import pytest

from pointseg.cli import build_parser, main
from pointseg.training import TrainConfig
from pointseg.training.config import SETTING_HELP


def _train_flags() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    train = sub.choices["train"]
    return {a.dest for a in train._actions}


def test_every_training_setting_has_a_flag_and_help():
    dests = _train_flags()
    for f in fields(TrainConfig):
        if f.name in ("data", "progress"):
            continue
        assert f.name in dests, f.name
        assert SETTING_HELP[f.name], f.name


def test_train_flags_reach_the_config(tmp_path, monkeypatch):
    from pointseg.cli import _common

    args = build_parser().parse_args(
        [
            "train",
            "d",
            "--weight-decay",
            "0.01",
            "--fill-counts",
            "10,5",
            "--fractions",
            "0.5",
            "0.25",
            "0.25",
            "--dataset-option",
            "a=1",
            "--image-size",
            "0",
            "--scale",
            "0.5",
            "--superpixel-area",
            "900",
            "--overwrite",
        ]
    )
    cfg = _common.config_from_args(args)
    assert cfg.weight_decay == 0.01 and cfg.fill_counts == [10, 5]
    assert cfg.fractions == (0.5, 0.25, 0.25) and cfg.dataset_options == {"a": 1}
    assert cfg.overwrite is True and cfg.scale == 0.5 and cfg.superpixel_area == 900
    # the deprecated --image-size 0 reads as resize 0 (native size)
    assert cfg.mode == "native" and cfg.resize == 0 and cfg.image_size is None
    assert cfg.lr == TrainConfig().lr  # not given: the default stays


def test_command_positionals_do_not_leak_into_settings():
    from pointseg.cli import _common

    args = build_parser().parse_args(["evaluate", "model.pt", "data", "--out", "m.json"])
    cfg = _common.config_from_args(args)
    assert cfg.model == TrainConfig().model and cfg.out == TrainConfig().out


@pytest.mark.parametrize(
    "argv", [["train", "x", "--max-epoch", "2"], ["predict", "m", "i", "--out", "o", "--tile", "8"]]
)
def test_abbreviations_are_refused_in_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments" in err
    assert err.startswith(f"pointseg {argv[0]}: error:")


def test_usage_errors_are_one_line(capsys):
    assert main(["train", "x", "--model-options", "{nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid JSON" in err


def test_unexpected_exceptions_are_one_line_with_a_hint(monkeypatch, capsys):
    from pointseg.cli import listing

    def boom(args):
        raise ZeroDivisionError("deep inside")

    monkeypatch.setattr(listing, "run", boom)
    assert main(["list", "models"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError: deep inside" in err and "-vv" in err
    with pytest.raises(ZeroDivisionError):
        main(["-vv", "list", "models"])
