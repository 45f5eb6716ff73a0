import math

import numpy as np
import pytest
import torch
import yaml

from pointseg.constants import IGNORE_INDEX
from pointseg.data import FolderDataset
from pointseg.labels import PseudoLabelSettings
from pointseg.models import load_model
from pointseg.training import (
    PreparedSplit,
    SegmentationArrayDataset,
    TrainConfig,
    band_statistics,
    prepare_split,
    read_history,
    run_training,
)


def _cfg(data, out, **kw):
    base = dict(
        data=str(data),
        out=str(out),
        image_size=64,
        model="unet",
        model_options={"base_channels": 4, "depth": 2},
        batch_size=4,
        max_epochs=2,
        n_points=20,
        n_segments=40,
        cache_dir=str(out) + "-cache",
        accelerator="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


def test_prepare_split_targets(tiny_synthetic, tmp_path):
    ds = FolderDataset(tiny_synthetic, split="train")
    pts = prepare_split(ds, target="points", image_size=32, n_classes=5, n_points=10)
    assert pts.images.shape == (14, 32, 32, 3) and pts.targets.shape == (14, 32, 32)
    labelled = (pts.targets != IGNORE_INDEX).sum(axis=(1, 2))
    assert (labelled <= 10).all() and labelled.sum() > 100
    # without resizing a point's label equals the mask at that point; resized, nearly always
    native = prepare_split(ds, target="points", image_size=None, n_classes=5, n_points=10)
    for p, m in zip(native.points, native.masks, strict=True):
        np.testing.assert_array_equal(m[p[:, 1], p[:, 0]], p[:, 2])
    agree = np.mean(
        [
            (m[p[:, 1], p[:, 0]] == p[:, 2]).mean()
            for p, m in zip(pts.points, pts.masks, strict=True)
        ]
    )
    assert agree > 0.8
    pseudo = prepare_split(
        ds,
        target="pseudo",
        image_size=None,
        n_classes=5,
        n_points=10,
        pseudo=PseudoLabelSettings(n_segments=80),
    )
    assert pseudo.stats["labelled_fraction"] > 3 * native.stats["labelled_fraction"]
    assert pseudo.stats["pseudo_coverage"] == pytest.approx(pseudo.stats["labelled_fraction"])
    assert 0.65 < pseudo.stats["pseudo_accuracy"] <= 1.0
    full = prepare_split(ds, target="full", image_size=None, n_classes=5)
    np.testing.assert_array_equal(full.targets, full.masks)
    with pytest.raises(ValueError, match="pseudo"):
        prepare_split(ds, target="nope", image_size=32, n_classes=5)


def test_band_statistics_match_numpy_in_chunks():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 4000, (9, 700, 700, 2)).astype(np.uint16)
    mean, std = band_statistics(images)
    flat = images.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-9)
    np.testing.assert_allclose(std, flat.std(0), rtol=1e-6)


def test_array_dataset_normalises_and_augments(tiny_synthetic):
    ds = FolderDataset(tiny_synthetic, split="val")
    split = prepare_split(ds, target="full", image_size=None, n_classes=5)
    mean, std = band_statistics(split.images)
    t = SegmentationArrayDataset(split, mean=mean, std=std)
    assert t.images.dtype == torch.uint8  # kept compact; normalised per item
    normalised = torch.stack([t[i]["image"] for i in range(len(t))])
    assert abs(float(normalised.mean())) < 1e-3
    assert abs(float(normalised.std()) - 1) < 0.05
    item = t[0]
    assert item["image"].shape == (3, 64, 64) and item["mask"].dtype == torch.int64
    # image band 0 holds the mask: after any flip/rotation the two must still coincide
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 5, (2, 8, 8)).astype(np.uint8)
    images = np.stack([masks, masks * 0, masks * 0], axis=-1)
    split = PreparedSplit(names=["a", "b"], images=images, targets=masks, masks=masks)
    aug = SegmentationArrayDataset(split, mean=[0.0] * 3, std=[1.0] * 3, augment=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        a = aug[1]
        assert torch.equal(a["image"][0].long(), a["mask"])
        seen.add(tuple(a["mask"].flatten().tolist()))
    assert len(seen) == 8  # all flips and rotations of the square occur


@pytest.mark.slow
def test_training_run_writes_everything_and_resumes(tiny_synthetic, tmp_path):
    cfg = _cfg(tiny_synthetic, tmp_path / "run")
    res = run_training(cfg)
    run = tmp_path / "run"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["supervision"] == "points" and saved["n_points"] == 20
    hist = read_history(run / "history.csv")
    assert [r["epoch"] for r in hist] == [0, 1]
    assert all(math.isfinite(r["train_loss"]) and 0 <= r["val_miou"] <= 1 for r in hist)
    _, spec = load_model(res.model_path)
    assert spec.class_names == ["background", "building", "woodland", "water", "road"]
    assert len(spec.mean) == 3 and spec.image_size == 64
    assert 0 <= res.metrics["test"]["miou"] <= 1 and "per_class_iou" in res.metrics["val"]
    assert res.label_stats["n_points"] > 0
    assert (run / "checkpoints" / "last.ckpt").is_file()
    # resume continues from last.ckpt: epochs 0-1 kept, one more trained
    cfg2 = _cfg(tiny_synthetic, run, max_epochs=3, resume=True)
    run_training(cfg2)
    assert [r["epoch"] for r in read_history(run / "history.csv")] == [0, 1, 2]
    # a fresh run in the same directory is refused without overwrite, and replaces the old
    # history and checkpoints with it
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_training(_cfg(tiny_synthetic, run, max_epochs=1))
    run_training(_cfg(tiny_synthetic, run, max_epochs=1, overwrite=True))
    assert [r["epoch"] for r in read_history(run / "history.csv")] == [0]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
        "stage-done.json",
    ]


@pytest.mark.slow
def test_full_supervision_learns(tiny_synthetic, tmp_path):
    cfg = _cfg(
        tiny_synthetic,
        tmp_path / "full",
        supervision="full",
        loss="partial_ce",
        max_epochs=6,
        lr=5e-3,
        model_options={"base_channels": 8, "depth": 2},
    )
    run_training(cfg)
    hist = read_history(tmp_path / "full" / "history.csv")
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    assert max(r["val_miou"] for r in hist) > 0.25


def test_bad_config_values_are_reported(tiny_synthetic, tmp_path):
    with pytest.raises(ValueError, match="supervision"):
        run_training(_cfg(tiny_synthetic, tmp_path / "x", supervision="boxes"))
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="available models"):
        run_training(_cfg(tiny_synthetic, tmp_path / "y", model="nope"))


@pytest.mark.slow
def test_last_checkpoint_follows_every_epoch_and_is_written_atomically(tiny_synthetic, tmp_path):
    # a learning rate of ~0 keeps the validation mIoU flat: best.ckpt stays at epoch 0
    run = tmp_path / "run"
    run_training(_cfg(tiny_synthetic, run, max_epochs=3, lr=1e-12, early_stop_patience=10))
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2 and best["epoch"] == 0
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_zero_supervision_stops_training_and_says_why(tiny_synthetic, tmp_path):
    points = tmp_path / "outside.csv"
    points.write_text("image,x,y,class\nscene_0000,500,500,road\n")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"labels no pixel.*1 outside"):
        run_training(_cfg(tiny_synthetic, out, points_file=str(points)))
    assert not out.exists()  # nothing left that would block a corrected rerun
