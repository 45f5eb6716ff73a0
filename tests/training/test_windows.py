"""Training from windows of large rasters plus a point file (issue 5, part 2)."""

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from pointseg.constants import IGNORE_INDEX
from pointseg.data import get_dataset
from pointseg.data.synthetic_raster import make_synthetic_raster
from pointseg.labels import pseudo_label_raster
from pointseg.predict.evaluate import evaluate_label_rasters, label_agreement
from pointseg.training import TrainConfig
from pointseg.training.train import run_training
from pointseg.training.windows import (
    DrawSampler,
    PointWindowDataset,
    RasterSource,
    RasterWindowDataset,
    raster_band_statistics,
    split_points_by_cell,
)

TRANSFORM = Affine(0.5, 0.0, 637000.0, 0.0, -0.5, 487000.0)


def _write(path, data, **extra):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": "EPSG:2180",
        "transform": TRANSFORM,
    }
    profile.update(extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _two_halves(tmp_path, h=300, w=400, nodata_cols=40):
    """Left half dark (class 0), right half bright (class 1), a nodata strip (0) on the left."""
    image = np.full((3, h, w), 60, np.uint8)
    image[:, :, w // 2 :] = 200
    image[:, :, :nodata_cols] = 0
    truth = np.zeros((h, w), np.uint8)
    truth[:, w // 2 :] = 1
    truth[:, :nodata_cols] = IGNORE_INDEX
    src = _write(tmp_path / "img.tif", image, nodata=0)
    ref = _write(tmp_path / "ref.tif", truth, nodata=IGNORE_INDEX)
    return src, ref, truth


# -- points split -------------------------------------------------------------------------------


def test_split_points_by_cell_holds_out_whole_cells_deterministically():
    rng = np.random.default_rng(0)
    pts = np.stack(
        [rng.integers(0, 1000, 200), rng.integers(0, 1000, 200), rng.integers(0, 3, 200)], 1
    )
    train, val = split_points_by_cell({"a": pts}, cell=250, fraction=0.25, seed=1)
    again = split_points_by_cell({"a": pts}, cell=250, fraction=0.25, seed=1)
    assert np.array_equal(train["a"], again[0]["a"]) and np.array_equal(val["a"], again[1]["a"])
    assert len(train["a"]) + len(val["a"]) == 200 and len(val["a"]) > 0
    val_cells = {(y // 250, x // 250) for x, y, _ in val["a"].tolist()}
    train_cells = {(y // 250, x // 250) for x, y, _ in train["a"].tolist()}
    assert not val_cells & train_cells
    assert len(val_cells) == 4  # 25 % of 16 cells


def test_split_points_needs_two_cells():
    pts = np.array([[1, 1, 0], [2, 3, 1]])
    with pytest.raises(ValueError, match="val_cell"):
        split_points_by_cell({"a": pts}, cell=100, fraction=0.2)


# -- block-wise pseudo-labels --------------------------------------------------------------------


def test_pseudo_label_raster_blocks_nodata_and_georef(tmp_path):
    src, _, truth = _two_halves(tmp_path)
    pts = np.array([[100, 50, 0], [300, 250, 1], [250, 20, 1]])
    out = tmp_path / "labels.tif"
    info = pseudo_label_raster(
        src, pts, out, n_classes=2, pixels_per_segment=400, block_size=256, margin=32
    )
    with rasterio.open(out) as lab, rasterio.open(src) as s:
        labels = lab.read(1)
        assert lab.crs == s.crs and lab.transform == s.transform
        assert lab.nodata == IGNORE_INDEX and lab.profile["tiled"]
    for x, y, c in pts.tolist():
        assert labels[y, x] == c
    assert (labels[:, :40] == IGNORE_INDEX).all()  # nodata never labelled
    labelled = labels != IGNORE_INDEX
    assert labelled.any()
    assert (labels[labelled] == truth[labelled]).mean() > 0.95
    # a block with no point within its margin stays unlabelled
    assert (labels[256:, :256] == IGNORE_INDEX).all()
    assert info["labelled_pixels"] == int(labelled.sum())
    assert info["valid_pixels"] == 300 * 360
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_point_aware_raster_labels_cover_at_least_the_vote_and_keep_nodata_out(tmp_path):
    src, _, truth = _two_halves(tmp_path)
    pts = np.array([[100, 50, 0], [300, 250, 1], [250, 20, 1], [120, 200, 0]])
    kw = {"n_classes": 2, "pixels_per_segment": 400, "block_size": 256, "margin": 32}
    pseudo_label_raster(src, pts, tmp_path / "vote.tif", **kw)
    pseudo_label_raster(
        src, pts, tmp_path / "aware.tif", propagation="point_aware", max_region_factor=8, **kw
    )
    with rasterio.open(tmp_path / "vote.tif") as a, rasterio.open(tmp_path / "aware.tif") as b:
        vote, aware = a.read(1), b.read(1)
    # no conflicts here: point-aware keeps every voted pixel and grows beyond it
    assert (aware[vote != IGNORE_INDEX] == vote[vote != IGNORE_INDEX]).all()
    assert (aware != IGNORE_INDEX).sum() > (vote != IGNORE_INDEX).sum()
    assert (aware[:, :40] == IGNORE_INDEX).all()  # nodata never labelled
    labelled = aware != IGNORE_INDEX
    assert (aware[labelled] == truth[labelled]).mean() > 0.95


def test_pseudo_label_raster_margin_spreads_across_block_borders(tmp_path):
    src, _, _ = _two_halves(tmp_path, nodata_cols=0)
    pts = np.array([[250, 254, 1]])  # two pixels above the border of the 256-pixel blocks
    out0, out1 = tmp_path / "m0.tif", tmp_path / "m32.tif"
    kw = {"n_classes": 2, "pixels_per_segment": 600, "block_size": 256}
    pseudo_label_raster(src, pts, out0, margin=0, **kw)
    pseudo_label_raster(src, pts, out1, margin=32, **kw)
    with rasterio.open(out0) as a, rasterio.open(out1) as b:
        assert (a.read(1)[250:256] == 1).any() and (b.read(1)[250:256] == 1).any()
        assert (a.read(1)[256:] == IGNORE_INDEX).all()  # no margin: nothing past the border
        assert (b.read(1)[256:] == 1).any()


def test_pseudo_label_raster_rejects_points_outside(tmp_path):
    src, _, _ = _two_halves(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        pseudo_label_raster(
            src, np.array([[400, 0, 1]]), tmp_path / "x.tif", n_classes=2, pixels_per_segment=100
        )


# -- windows ------------------------------------------------------------------------------------


def _source(tmp_path, h=300, w=400, pts=None):
    src, ref, truth = _two_halves(tmp_path, h, w)
    if pts is None:
        pts = np.array([[100, 50, 0], [300, 250, 1], [250, 20, 1], [60, 280, 0]])
    labels = tmp_path / "labels.tif"
    pseudo_label_raster(src, pts, labels, n_classes=2, pixels_per_segment=300, block_size=128)
    return RasterSource("img", src, h, w, pts, np.zeros((0, 3), np.int64), labels, ref), truth


def test_window_dataset_draws_are_deterministic_and_hold_points(tmp_path):
    source, _ = _source(tmp_path)
    kw = {"window": 64, "indexes": [1, 2, 3], "mean": [0.0] * 3, "std": [1.0] * 3}
    ds = RasterWindowDataset([source], point_fraction=1.0, length=20, augment=False, **kw)
    with rasterio.open(source.labels) as lab:
        labels = lab.read(1)
    with rasterio.open(source.image) as im:
        pixels = im.read()
    for key in (0, 1, 2, 12345, 2**61):
        _, r0, c0, lab = ds.draw(key)
        assert ds.draw(key)[1:3] == (r0, c0)
        assert 0 <= r0 <= 300 - 64 and 0 <= c0 <= 400 - 64
        inside = [
            (x, y) for x, y, _ in source.points.tolist() if r0 <= y < r0 + 64 and c0 <= x < c0 + 64
        ]
        assert inside
        assert np.array_equal(lab, labels[r0 : r0 + 64, c0 : c0 + 64])
        sample = ds[key]
        assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
        assert torch.equal(
            sample["image"], torch.from_numpy(pixels[:, r0 : r0 + 64, c0 : c0 + 64]).float()
        )
        assert torch.equal(sample["mask"], torch.from_numpy(lab).long())
    # uniform windows only come back when they hold a label
    uniform = RasterWindowDataset([source], point_fraction=0.0, length=20, augment=False, **kw)
    for key in range(30):
        assert (uniform.draw(key)[3] != IGNORE_INDEX).any()


def test_window_dataset_pads_rasters_smaller_than_the_window(tmp_path):
    source, _ = _source(tmp_path, h=40, w=400, pts=np.array([[100, 20, 0]]))
    kw = {"window": 64, "indexes": [1, 2, 3], "mean": [0.0] * 3, "std": [1.0] * 3}
    ds = RasterWindowDataset([source], point_fraction=1.0, length=4, augment=True, **kw)
    sample = ds[3]
    assert sample["image"].shape == (3, 64, 64)
    mask = sample["mask"]
    assert (mask != IGNORE_INDEX).sum() > 0
    assert (mask == IGNORE_INDEX).sum() >= 64 * 24  # the rows past the raster


def test_point_window_dataset_scores_each_point_once(tmp_path):
    source, _ = _source(tmp_path)
    rng = np.random.default_rng(0)
    val = np.stack([rng.integers(40, 400, 50), rng.integers(0, 300, 50), rng.integers(0, 2, 50)], 1)
    val = np.unique(val, axis=0)
    val = val[np.unique(val[:, :2], axis=0, return_index=True)[1]]
    source.val_points = val
    kw = {"window": 64, "indexes": [1, 2, 3], "mean": [0.0] * 3, "std": [1.0] * 3}
    ds = PointWindowDataset([source], **kw)
    assert ds.n_points == len(val)
    seen = set()
    for i in range(len(ds)):
        sample = ds[i]
        r0, c0 = map(int, sample["name"].split("@")[1].split(","))
        ys, xs = np.nonzero(sample["mask"].numpy() != IGNORE_INDEX)
        for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
            seen.add((x + c0, y + r0, int(sample["mask"][y, x])))
    assert seen == {tuple(p) for p in val.tolist()}
    capped = PointWindowDataset([source], max_windows=3, seed=1, **kw)
    again = PointWindowDataset([source], max_windows=3, seed=1, **kw)
    assert len(capped) == 3 < len(ds)
    assert [i[:3] for i in capped.items] == [i[:3] for i in again.items]


def test_draw_sampler_gives_fresh_keys_each_epoch():
    sampler = DrawSampler(16, seed=3)
    a, b = list(sampler), list(sampler)
    assert len(a) == len(b) == len(sampler) == 16 and a != b
    assert list(DrawSampler(16, seed=3)) == a


def test_raster_band_statistics_excludes_nodata(tmp_path):
    src, _, _ = _two_halves(tmp_path)
    mean, std = raster_band_statistics([src], [1, 2, 3], max_side=1024)
    valid = np.r_[np.full(160 * 300, 60.0), np.full(200 * 300, 200.0)]
    assert np.allclose(mean, valid.mean()) and np.allclose(std, valid.std())
    mean_small, _ = raster_band_statistics([src], [1], max_side=100)
    assert abs(mean_small[0] - valid.mean()) < 5


# -- metrics against reference rasters ---------------------------------------------------------


def test_label_agreement_and_map_metrics(tmp_path):
    _, ref, truth = _two_halves(tmp_path)
    pred = truth.copy()
    pred[:10, 200:210] = 0  # 100 wrong pixels
    pred[:, :40] = IGNORE_INDEX
    pred_path = _write(tmp_path / "pred.tif", pred, nodata=IGNORE_INDEX)
    from pointseg.data.classes import load_class_file

    (tmp_path / "classes.yaml").write_text("classes: [dark, bright]\n")
    cmap = load_class_file(tmp_path / "classes.yaml")
    m = label_agreement([(pred_path, ref)], class_map=cmap, block_size=64)
    assert m.shape == (2, 3)
    assert m[0, 0] == 160 * 300 and m[1, 1] == 200 * 300 - 100 and m[1, 0] == 100
    metrics = evaluate_label_rasters([(pred_path, ref)], class_map=cmap)
    iou_bright = (200 * 300 - 100) / (200 * 300)
    iou_dark = 160 * 300 / (160 * 300 + 100)
    assert metrics["miou"] == pytest.approx((iou_bright + iou_dark) / 2)


# -- the dataset and options --------------------------------------------------------------------


def test_rasters_dataset_options_are_checked(tmp_path):
    make_synthetic_raster(tmp_path, size=128, tile=128, points_per_tile=4)
    ds = get_dataset("rasters", root=tmp_path, classes=tmp_path / "classes.yaml", block_size=512)
    assert ds.options.block_size == 512 and len(ds) == 1 and ds.records[0].mask is not None
    assert get_dataset(
        "rasters", root=tmp_path, classes=tmp_path / "classes.yaml", split="test"
    ).names == ["scene"]
    with pytest.raises(ValueError, match="valid options"):
        get_dataset("rasters", root=tmp_path, classes=tmp_path / "classes.yaml", blocksize=512)
    with pytest.raises(ValueError, match="point_fraction"):
        get_dataset("rasters", root=tmp_path, classes=tmp_path / "classes.yaml", point_fraction=2)
    assert get_dataset("rasters", root=tmp_path).class_map.n_classes == 5  # DATA/classes.yaml
    with pytest.raises(ValueError, match="class file"):
        get_dataset("rasters", root=tmp_path / "images" / "scene.tif")
    with pytest.raises(ValueError, match="split file"):
        get_dataset("rasters", root=tmp_path, classes=tmp_path / "classes.yaml", split_file="x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_dataset("rasters", root=tmp_path / "nope", classes=tmp_path / "classes.yaml")


# -- end to end ---------------------------------------------------------------------------------


def _config(root, out, cache, **extra):
    base = {
        "data": str(root),
        "dataset": "rasters",
        "classes": str(root / "classes.yaml"),
        "points_file": str(root / "points.geojson"),
        "image_size": 64,
        "n_segments": 40,
        "model": "unet",
        "model_options": {"base_channels": 8, "depth": 2},
        "max_epochs": 2,
        "batch_size": 4,
        "out": str(out),
        "cache_dir": str(cache),
        "dataset_options": {"windows_per_epoch": 8, "block_size": 256},
    }
    base.update(extra)
    return TrainConfig(**base)


def test_training_from_a_raster_and_lonlat_clicks(tmp_path):
    root = tmp_path / "data"
    made = make_synthetic_raster(root, size=320, tile=160, points_per_tile=12, nodata_columns=30)
    cfg = _config(root, tmp_path / "run", tmp_path / "cache")
    result = run_training(cfg)
    run = tmp_path / "run"
    for name in ("config.yaml", "model.pt", "metrics.json", "label_stats.json", "history.csv"):
        assert (run / name).is_file()
    stats = json.loads((run / "label_stats.json").read_text())
    assert stats["n_points"] + stats["n_val_points"] == made["n_points"]
    assert 0 < stats["labelled_fraction"] < 1 and stats["pseudo_accuracy"] > 0.7
    assert "val" in result.metrics and "test" in result.metrics
    pred = run / "predictions" / "scene.tif"
    with rasterio.open(pred) as p, rasterio.open(made["image"]) as s:
        assert (p.crs, p.transform, p.shape) == (s.crs, s.transform, s.shape)
        assert (p.read(1)[:, :30] == 255).all()  # nodata kept as nodata
    spec = torch.load(run / "model.pt", weights_only=True)["spec"]
    assert spec["image_size"] is None and spec["in_channels"] == 3
    # the label raster is cached: a second run reuses it
    labels = sorted((tmp_path / "cache").glob("*.tif"))
    assert len(labels) == 1
    mtime = labels[0].stat().st_mtime_ns
    run_training(_config(root, tmp_path / "run2", tmp_path / "cache", max_epochs=1))
    assert labels[0].stat().st_mtime_ns == mtime


def test_raster_training_errors_are_clear(tmp_path):
    root = tmp_path / "data"
    make_synthetic_raster(root, size=128, tile=128, points_per_tile=6)
    with pytest.raises(ValueError, match="point file"):
        run_training(_config(root, tmp_path / "a", tmp_path / "c", points_file=None))
    with pytest.raises(ValueError, match="points only"):
        run_training(_config(root, tmp_path / "b", tmp_path / "c", supervision="full"))
    bad = root / "images" / "broken.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(ValueError, match="broken.tif"):
        run_training(_config(root, tmp_path / "d", tmp_path / "c"))


def test_multispectral_uint16_raster_with_band_selection(tmp_path):
    """4-band uint16 raster, bands 0, 1 and 3 used: statistics, spec and prediction follow."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "classes.yaml").write_text("classes: [dark, bright]\n")
    h, w = 200, 260
    image = np.full((4, h, w), 1000, np.uint16)
    image[:, :, w // 2 :] = 3000
    image[2] = 7  # a band that carries nothing, left out by --bands
    _write(root / "images" / "ms.tif", image)
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, w, 40), rng.integers(0, h, 40)
    lines = ["image,x,y,class"] + [
        f"ms,{x},{y},{int(x >= w // 2)}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True)
    ]
    (root / "clicks.csv").write_text("\n".join(lines) + "\n")
    cfg = _config(
        root,
        tmp_path / "run",
        tmp_path / "cache",
        points_file=str(root / "clicks.csv"),
        bands=[0, 1, 3],
        dataset_options={"windows_per_epoch": 8, "block_size": 256, "val_cell": 64},
    )
    run_training(cfg)
    spec = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["spec"]
    assert spec["in_channels"] == 3 and spec["bands"] == [0, 1, 3]
    assert 1000 < spec["mean"][0] < 3000 and spec["std"][0] > 500
    from pointseg.models import load_model
    from pointseg.predict.tiled import predict_raster

    model, loaded = load_model(tmp_path / "run" / "model.pt")
    predict_raster(model, loaded, root / "images" / "ms.tif", tmp_path / "map.tif", tile_size=64)
    with rasterio.open(tmp_path / "map.tif") as m:
        assert m.shape == (h, w)


def test_window_dataset_at_half_scale_resamples_windows_and_points(tmp_path):
    source, _ = _source(tmp_path)
    kw = {"window": 32, "indexes": [1, 2, 3], "mean": [0.0] * 3, "std": [1.0] * 3, "scale": 0.5}
    ds = RasterWindowDataset([source], point_fraction=1.0, length=8, augment=False, **kw)
    assert ds.side == 64
    with rasterio.open(source.labels) as lab:
        labels = lab.read(1)
    _, r0, c0, lab = ds.draw(5)
    assert lab.shape == (64, 64) and np.array_equal(lab, labels[r0 : r0 + 64, c0 : c0 + 64])
    sample = ds[5]
    assert sample["image"].shape == (3, 32, 32) and sample["mask"].shape == (32, 32)
    # each model pixel covers 2x2 raster pixels: a label only where all four agree
    blocks = lab.reshape(32, 2, 32, 2).transpose(0, 2, 1, 3).reshape(32, 32, 4)
    agree = (blocks == blocks[..., :1]).all(-1)
    expect = np.where(agree, blocks[..., 0], IGNORE_INDEX)
    assert np.array_equal(sample["mask"].numpy(), expect)
    source.val_points = np.array([[101, 51, 1], [10, 10, 0]])
    val = PointWindowDataset([source], **kw)
    for i in range(len(val)):
        item = val[i]
        r0, c0 = map(int, item["name"].split("@")[1].split(","))
        ys, xs = np.nonzero(item["mask"].numpy() != IGNORE_INDEX)
        for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
            assert any(
                c0 + 2 * x <= px < c0 + 2 * x + 2 and r0 + 2 * y <= py < r0 + 2 * y + 2
                for px, py, _ in source.val_points.tolist()
            )


def test_training_from_a_raster_at_half_scale(tmp_path):
    root = tmp_path / "data"
    make_synthetic_raster(root, size=320, tile=160, points_per_tile=12, nodata_columns=30)
    cfg = _config(root, tmp_path / "run", tmp_path / "cache", scale=0.5, window=32)
    result = run_training(cfg)
    spec = torch.load(result.model_path, weights_only=True)["spec"]
    assert spec["scale"] == 0.5 and spec["window"] == 32
    with rasterio.open(result.run_dir / "predictions" / "scene.tif") as p:
        assert p.shape == (320, 320)  # predicted at half scale, written at the source's
