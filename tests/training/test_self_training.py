"""Self-training rounds, the regulariser and point-aware labels inside a training run."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from pointseg.constants import IGNORE_INDEX
from pointseg.data.synthetic import make_mosaic_dataset
from pointseg.training import TrainConfig
from pointseg.training.self_training import self_train_labels

IG = IGNORE_INDEX


def _probs(*rows):
    """(C, H, W) from per-pixel probability vectors given row by row."""
    return np.moveaxis(np.array(rows, np.float64), -1, 0)


def test_confident_click_free_superpixels_take_the_prediction_and_clicks_win():
    # superpixels: 0 = left column pair, 1 = middle, 2 = right
    seg = np.array([[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2]])
    clicks = np.full((2, 6), IG, np.uint8)
    clicks[:, :2] = 2  # superpixel 0 was labelled from a click at (0, 0)
    points = np.array([[0, 0, 2]])
    p = {
        "a": [0.95, 0.05, 0.0],  # confident class 0
        "b": [0.6, 0.4, 0.0],  # not confident
        "c": [0.05, 0.0, 0.95],
    }
    probs = _probs(
        [p["a"], p["a"], p["c"], p["c"], p["a"], p["b"]],
        [p["a"], p["a"], p["c"], p["c"], p["a"], p["b"]],
    )
    out = self_train_labels(clicks, probs, seg, points, threshold=0.9)
    # superpixel 0: the click's class although the model says 0 with 0.95
    assert out[:, :2].tolist() == [[2, 2], [2, 2]]
    # superpixel 1: mean (0.05, 0, 0.95) -> class 2
    assert out[:, 2:4].tolist() == [[2, 2], [2, 2]]
    # superpixel 2: mean of a and b = (0.775, 0.225, 0) < 0.9 -> stays ignore
    assert (out[:, 4:] == IG).all()
    # a lower threshold takes it: class 0
    out = self_train_labels(clicks, probs, seg, points, threshold=0.7)
    assert (out[:, 4:] == 0).all()


def test_a_superpixel_holding_a_click_never_takes_a_prediction():
    seg = np.zeros((2, 3), int)
    clicks = np.full((2, 3), IG, np.uint8)
    clicks[0, 0] = 1  # point-aware labels may cover only part of a superpixel
    probs = _probs(*[[[0.99, 0.01]] * 3] * 2)
    out = self_train_labels(clicks, probs, seg, np.array([[0, 0, 1]]), threshold=0.5)
    assert out[0, 0] == 1 and (out.ravel()[1:] == IG).all()
    valid = np.ones((2, 3), bool)
    valid[1, 2] = False
    out = self_train_labels(clicks, probs, seg, np.zeros((0, 3)), threshold=0.5, valid=valid)
    assert out[1, 2] == IG and out[0, 0] == 1 and out[1, 0] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"probabilities": np.zeros((2, 3, 3))}, "must match"),
        ({"superpixels": -np.ones((2, 3), int)}, "non-negative"),
    ],
)
def test_self_train_labels_refuses_bad_input(kwargs, message):
    args = {
        "click_labels": np.full((2, 3), IG, np.uint8),
        "probabilities": np.full((2, 2, 3), 0.5),
        "superpixels": np.zeros((2, 3), int),
        "points": np.zeros((0, 3)),
        "threshold": 0.9,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        self_train_labels(**args)


def _mosaics(tmp_path):
    shapes = [(300, 420), (260, 300), (240, 320), (200, 260)]
    root = make_mosaic_dataset(tmp_path / "data", shapes=shapes, tile=96, seed=5)
    names = [f"mosaic_{i:04d}" for i in range(len(shapes))]
    split = {"train": names[:2], "val": [names[2]], "test": [names[3]]}
    (root / "split.yaml").write_text(yaml.safe_dump(split))
    return root


def test_a_run_with_every_part_self_trains_logs_each_round_and_resumes(tmp_path, monkeypatch):
    from pointseg.training import run_training

    root = _mosaics(tmp_path)
    cfg = TrainConfig(
        data=str(root),
        out=str(tmp_path / "run"),
        split_file=str(root / "split.yaml"),
        window=64,
        scale=0.5,
        superpixel_area=200,
        propagation="point_aware",
        max_region_area=800,
        regulariser="crf",
        self_train_rounds=1,
        self_train_threshold=0.5,
        n_points=20,
        model_options={"base_channels": 8},
        max_epochs=2,
        windows_per_epoch=16,
        cache_dir=str(tmp_path / "cache"),
        accelerator="cpu",
    )
    result = run_training(cfg)
    rounds = result.label_stats["self_train"]
    assert len(rounds) == 1 and rounds[0]["round"] == 1
    first = result.label_stats["labelled_fraction"]
    assert rounds[0]["labelled_fraction"] >= first
    assert rounds[0]["added_fraction"] == pytest.approx(rounds[0]["labelled_fraction"] - first)
    assert 0 <= rounds[0]["pseudo_accuracy"] <= 1 and 0 <= rounds[0]["best_val_miou"] <= 1
    # each round its own checkpoints and history; the click labels survive in the union
    assert (result.run_dir / "checkpoints" / "round1" / "last.ckpt").is_file()
    with open(result.run_dir / "history-round1.csv") as f:
        history = list(csv.DictReader(f))
    assert len(history) == 2 and "train_regulariser" in history[0]
    files = sorted((result.run_dir / "self-train" / "round1").glob("*.npy"))
    assert len(files) == 2
    labels_dir = tmp_path / "cache" / "labels"
    clicks = {np.load(p).shape: np.load(p) for p in labels_dir.rglob("*.npy")}
    for path in files:
        union = np.load(path)
        click = clicks[union.shape]
        labelled = click != IG
        assert np.array_equal(union[labelled], click[labelled])
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["propagation"] == "point_aware" and saved["self_train_rounds"] == 1
    assert result.metrics["test"]["scored"].startswith("whole images")

    # killed during round 1: the resumed run trains round 1 only, round 0 is kept as it was
    import shutil

    import lightning as L

    history0 = (result.run_dir / "history.csv").read_text()
    (result.run_dir / "model.pt").unlink()
    shutil.rmtree(result.run_dir / "checkpoints" / "round1")
    fits = []
    original = L.Trainer.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(kwargs.get("ckpt_path"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", counting_fit)
    cfg.resume = True
    again = run_training(cfg)
    assert fits == [None]  # one fit: round 1 from its start
    assert (result.run_dir / "history.csv").read_text() == history0
    assert (again.run_dir / "model.pt").is_file() and len(again.label_stats["self_train"]) == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"self_train_rounds": 1, "resize": 64}, "self-training rounds run on windows"),
        ({"self_train_rounds": -1}, "self_train_rounds"),
        ({"self_train_rounds": 1, "self_train_threshold": 0}, "self_train_threshold"),
        ({"self_train_rounds": 1, "supervision": "full"}, "point supervision"),
        ({"regulariser": "nope"}, "crf"),
        ({"regulariser_weight": 1.0}, "no regulariser"),
        ({"regulariser": "crf", "regulariser_weight": -1}, "regulariser_weight"),
        ({"max_region_area": 4000}, "point_aware"),
        ({"propagation": "flood"}, "majority, point_aware"),
        ({"propagation": "point_aware", "superpixels": "slic"}, "needs superpixels 'hers'"),
        ({"propagation": "point_aware", "fill_counts": [100]}, "replaces fill_counts"),
        ({"propagation": "point_aware", "max_region_area": 0}, "max_region_area"),
        (
            {"propagation": "point_aware", "max_region_area": 400, "resize": 64},
            "set superpixel_area",
        ),
    ],
)
def test_bad_settings_beyond_labels_are_refused_with_the_fix(tmp_path, settings, message):
    root = _mosaics(tmp_path)
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "run"), **settings)
    with pytest.raises(ValueError, match=message):
        cfg.validate()


def test_max_region_area_is_measured_in_superpixel_areas():
    cfg = TrainConfig(
        data="d", propagation="point_aware", max_region_area=3000, superpixel_area=1000
    )
    assert cfg.pseudo_label_settings().max_region_factor == pytest.approx(3.0)
    cfg = TrainConfig(data="d", propagation="point_aware", window=128, scale=0.5, n_segments=16)
    assert cfg.pseudo_label_settings().max_region_factor == pytest.approx(2.0)  # the default
    cfg.max_region_area = 2048  # (128 / 0.5)^2 / 16 = 4096 px² per superpixel
    assert cfg.pseudo_label_settings().max_region_factor == pytest.approx(0.5)


def test_the_task_adds_the_weighted_regulariser_to_the_point_loss():
    import torch

    from pointseg.losses import get_loss, get_regulariser
    from pointseg.training.task import SegmentationTask

    kw = {
        "model": "unet",
        "num_classes": 3,
        "in_channels": 3,
        "model_options": {"base_channels": 4},
    }
    torch.manual_seed(0)
    task = SegmentationTask(**kw, regulariser="crf", regulariser_weight=0.5)
    plain = SegmentationTask(**kw)
    plain.load_state_dict(task.state_dict(), strict=False)
    image = torch.randn(2, 3, 32, 32)
    mask = torch.full((2, 32, 32), 255, dtype=torch.long)
    mask[:, ::8, ::8] = 1
    valid = torch.ones(2, 32, 32, dtype=torch.bool)
    valid[:, :, 20:] = False
    batch = {"image": image, "mask": mask, "valid": valid}
    task.log = plain.log = lambda *a, **k: None  # no trainer attached
    logits = task.model(image)
    expected = get_loss("masked_mse")(logits, mask) + 0.5 * get_regulariser("crf")(
        logits, image, valid
    )
    assert float(task.training_step(batch, 0)) == pytest.approx(float(expected), rel=1e-5)
    assert float(plain.training_step(batch, 0)) == pytest.approx(
        float(get_loss("masked_mse")(logits, mask)), rel=1e-5
    )
    default = SegmentationTask(**kw, regulariser="crf")
    assert default.regulariser_weight == get_regulariser("crf").default_weight


def test_the_superpixel_area_of_a_fresh_config_is_the_resolved_default():
    from pointseg.training.config import AERIAL_SUPERPIXEL_AREA

    assert TrainConfig(data="d").pixels_per_segment() == AERIAL_SUPERPIXEL_AREA
    assert TrainConfig(data="d", window=128, scale=0.5, n_segments=16).pixels_per_segment() == 4096
    assert TrainConfig(data="d", resize=64).pixels_per_segment() is None
