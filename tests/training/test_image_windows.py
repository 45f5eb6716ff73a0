"""Windowed training on any dataset: native windows, per-area superpixels, tiled evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pointseg.constants import IGNORE_INDEX
from pointseg.data.registry import get_dataset
from pointseg.data.synthetic import generate_mosaic, make_mosaic_dataset
from pointseg.labels.settings import PseudoLabelSettings
from pointseg.models.registry import ModelSpec
from pointseg.predict.evaluate import evaluate_dataset
from pointseg.training import TrainConfig
from pointseg.training.image_windows import (
    ImageWindowDataset,
    LevelsStore,
    SampleCache,
    WindowSource,
    label_image,
    prepare_window_training,
    resample_labels,
)

CLASSES = ["background", "building", "woodland", "water", "road"]


def test_resample_labels_ignore_wins_over_mixed_footprints():
    labels = np.array(
        [
            [1, 1, 2, 2],
            [1, 1, 2, 3],
            [4, 4, 255, 0],
            [4, 4, 0, 0],
        ],
        np.uint8,
    )
    out = resample_labels(labels, 2)
    assert out.tolist() == [[1, 255], [4, 255]]
    up = resample_labels(np.array([[1, 2], [3, 255]], np.uint8), 4)
    assert up.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 255, 255], [3, 3, 255, 255]]


def _folder(tmp_path, shapes, split):
    root = make_mosaic_dataset(tmp_path / "data", shapes=shapes, tile=128, seed=3)
    names = [f"mosaic_{i:04d}" for i in range(len(shapes))]
    (root / "split.yaml").write_text(
        yaml.safe_dump({k: [names[i] for i in v] for k, v in split.items()})
    )
    return root


def test_padding_beyond_a_small_image_is_ignore_only(tmp_path):
    root = make_mosaic_dataset(tmp_path / "data", shapes=[(30, 45)], tile=64)
    ds = get_dataset("folder", root=root, split=None)
    mask = ds[0]["mask"]
    src = WindowSource(0, "mosaic_0000", 30, 45, np.zeros((0, 3), np.int64))
    windows = ImageWindowDataset(
        ds, [src], window=64, mean=[0, 0, 0], std=[1, 1, 1], target="full", length=4
    )
    assert windows.draw(0)[1:] == (0, 0)  # an image smaller than the window: one place
    image, labels, _ = windows.read(0, 0, 0)
    assert image.shape == (3, 64, 64) and labels.shape == (64, 64)
    assert (labels[:30, :45].numpy() == mask).all()
    assert (labels[30:] == IGNORE_INDEX).all() and (labels[:, 45:] == IGNORE_INDEX).all()
    assert (image[:, 30:] == 0).all() and (image[:, :, 45:] == 0).all()  # the band means


def test_sample_cache_stays_within_its_bound(tmp_path):
    root = make_mosaic_dataset(tmp_path / "data", shapes=[(64, 64)] * 6, tile=64)
    ds = get_dataset("folder", root=root, split=None)
    one = 64 * 64 * 3 + 64 * 64  # image and mask bytes
    cache = SampleCache(ds, max_bytes=2.5 * one)
    for i in [0, 1, 2, 3, 0, 4, 5, 5]:
        cache.get(i)
        assert cache._bytes <= 2.5 * one and len(cache._items) <= 2
    assert cache.hits == 1 and cache.misses == 7


def test_a_click_covers_the_same_ground_area_on_a_large_and_a_small_image():
    """One superpixel density per native area: the same click spreads equally on both images.

    The 300x200 images are crops of the 3000x2000 one (the same ground), clicked at the same
    places away from their borders; pooled over three crops the labelled area per click
    agrees within 10 % (one superpixel count per image, the resize mode's rule, would give
    the large image's superpixels 100 times the ground area).
    """
    area = 900.0
    big, mask = generate_mosaic(seed=5, shape=(2000, 3000), tile=128)
    ys, xs = np.meshgrid(np.arange(60, 141, 40), np.arange(60, 241, 36), indexing="ij")
    spread = np.zeros(2)
    for r0, c0 in [(900, 1300), (300, 200), (1500, 2500)]:
        small = big[r0 : r0 + 200, c0 : c0 + 300]
        pts = np.stack([xs.ravel(), ys.ravel(), mask[r0 + ys.ravel(), c0 + xs.ravel()]], 1)
        for k, (image, clicks) in enumerate([(small, pts), (big, pts + np.array([c0, r0, 0]))]):
            labels = label_image(image, clicks, n_classes=5, pixels_per_segment=area, method="hers")
            spread[k] += np.count_nonzero(labels != IGNORE_INDEX) / len(clicks) / 3
    small_area, big_area = spread
    assert abs(big_area / small_area - 1) < 0.10, spread
    assert 0.5 * area < small_area < 2 * area


def test_superpixel_levels_are_cached_per_image_whatever_the_clicks(tmp_path, monkeypatch):
    root = _folder(tmp_path, [(300, 420), (260, 200), (100, 100)], {"train": [0, 1]})
    ds = get_dataset("folder", root=root, split="train", split_file=root / "split.yaml")
    import pointseg.labels.settings as settings_module

    calls = []
    real = settings_module.compute_superpixels

    def counting(image, **kw):
        calls.append(image.shape)
        return real(image, **kw)

    monkeypatch.setattr(settings_module, "compute_superpixels", counting)
    pseudo = PseudoLabelSettings(method="slic")
    kw = {"target": "pseudo", "n_classes": 5, "pixels_per_segment": 400.0, "pseudo": pseudo}
    first = prepare_window_training(ds, cache_dir=tmp_path / "c", n_points=5, **kw)
    assert len(calls) == 2 and all(s.labels is not None for s in first.sources)
    second = prepare_window_training(ds, cache_dir=tmp_path / "c", n_points=25, **kw)
    assert len(calls) == 2  # new clicks, new labels, the same superpixels
    assert first.stats["labelled_pixels"] < second.stats["labelled_pixels"]
    assert all(s.labels.parent.parent.name == "labels" for s in second.sources)
    assert any((tmp_path / "c" / "levels").rglob("*.npz"))
    assert LevelsStore(tmp_path / "c" / "levels", "ab" * 8).get((0, 1, 0, 1, pseudo)) is None


def test_large_and_small_images_train_together_and_keep_their_sizes(tmp_path):
    from pointseg.predict import predict_folder
    from pointseg.training import run_training

    shapes = [(2000, 3000), (200, 300), (240, 360), (180, 260)]
    root = _folder(tmp_path, shapes, {"train": [0, 1], "val": [2], "test": [3]})
    cfg = TrainConfig(
        data=str(root),
        out=str(tmp_path / "run"),
        split_file=str(root / "split.yaml"),
        window=64,
        scale=0.25,
        superpixels="slic",
        superpixel_area=900,
        n_points=30,
        model_options={"base_channels": 8},
        max_epochs=2,
        windows_per_epoch=16,
        cache_dir=str(tmp_path / "cache"),
        accelerator="cpu",
    )
    result = run_training(cfg)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["window"] == 64 and saved["scale"] == 0.25 and saved["resize"] is None
    blob = torch.load(result.model_path, weights_only=True)
    assert blob["spec"]["window"] == 64 and blob["spec"]["scale"] == 0.25
    assert result.label_stats["n_points"] == 60
    assert result.metrics["test"]["scored"].startswith("whole images")
    assert 0 <= result.metrics["test"]["miou"] <= 1
    files = predict_folder(result.model_path, root / "images", tmp_path / "pred", overlays=False)
    sizes = {p.stem: Image.open(p).size for p in files}
    for i, (h, w) in enumerate(shapes):
        assert sizes[f"mosaic_{i:04d}"] == (w, h)


class _Pointwise(torch.nn.Module):
    """A 1x1 convolution: translation-equivariant, no context."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 5, 1)

    def forward(self, x):
        return self.conv(x)


def test_tiled_evaluation_equals_whole_image_evaluation(tmp_path):
    root = make_mosaic_dataset(tmp_path / "data", shapes=[(700, 1300), (90, 50)], tile=128)
    ds = get_dataset("folder", root=root, split=None)
    base = {
        "name": "pointwise",
        "num_classes": 5,
        "in_channels": 3,
        "class_names": CLASSES,
        "mean": [120.0, 110.0, 100.0],
        "std": [50.0, 50.0, 50.0],
    }
    whole = ModelSpec(**base)
    tiled = ModelSpec(**base, window=64, scale=1.0)
    model = _Pointwise()
    device = torch.device("cpu")
    a = evaluate_dataset(model, whole, ds, device=device)
    b = evaluate_dataset(model, tiled, ds, device=device)
    assert np.array_equal(np.asarray(a["confusion_matrix"]), np.asarray(b["confusion_matrix"]))
    assert a["miou"] == b["miou"]


def test_old_image_size_maps_to_resize_or_window(caplog):
    cfg = TrainConfig(data="d", image_size=128)
    assert cfg.mode == "resize" and cfg.resize_size == 128 and cfg.image_size is None
    assert "deprecated" in caplog.text
    raster = TrainConfig(data="d", dataset="rasters", image_size=512)
    assert raster.mode == "window" and raster.window_size == 512
    old = TrainConfig.from_dict({"data": "d", "image_size": None})
    assert old.mode == "native"
    new = TrainConfig.from_dict({"data": "d", "image_size": None, "resize": None})
    assert new.mode == "window" and new.window_size == 128 and new.scale == 0.25
    assert TrainConfig(data="d", window=512).mode == "window"


def test_tile_datasets_default_to_the_studys_windows_and_explicit_settings_win():
    cfg = TrainConfig(data="d")
    assert (cfg.mode, cfg.window_size, cfg.scale, cfg.superpixel_area) == (
        "window",
        128,
        0.25,
        1000.0,
    )
    mine = TrainConfig(data="d", scale=0.5, superpixel_area=300)
    assert mine.mode == "window"  # settings resolve when read through mode or validate()
    assert (mine.window_size, mine.scale, mine.superpixel_area) == (128, 0.5, 300)
    explicit = TrainConfig(data="d", window=256)
    assert explicit.mode == "window"
    assert (explicit.scale, explicit.superpixel_area) == (1.0, None)
    assert TrainConfig(data="d", resize=256).mode == "resize"
    raster = TrainConfig(data="d", dataset="rasters")
    assert raster.mode == "window"
    assert (raster.window_size, raster.scale, raster.superpixel_area) == (256, 1.0, None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window": 256, "resize": 256}, "exclude each other"),
        ({"resize": 256, "scale": 0.5}, "applies to windows"),
        ({"window": 256, "scale": 0}, "scale must be in"),
        ({"window": 256, "scale": "half"}, "scale must be a number"),
        ({"window": 8}, "window must be >= 16"),
        ({"resize": 8}, "resize must be >= 16"),
        ({"resize_mode": "crop"}, "resize_mode must be one of"),
        ({"window": 64, "superpixel_area": -4}, "superpixel_area must be > 0"),
        ({"window": 64, "windows_per_epoch": 0}, "windows_per_epoch must be >= 1"),
        ({"val_every": 0}, "val_every must be >= 1"),
        ({"dataset": "rasters", "resize": 256}, "use window, not resize"),
    ],
)
def test_bad_geometry_settings_are_refused_with_the_fix(tmp_path, settings, message):
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), **settings)
    with pytest.raises(ValueError, match=message):
        cfg.validate()
