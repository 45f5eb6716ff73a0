"""Tiled prediction over GeoTIFFs: seams, block independence, nodata, errors, outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from torch import nn

from pointseg.models import ModelSpec, get_model
from pointseg.predict.inference import predict_labels
from pointseg.predict.tiled import NODATA_LABEL, blend_window, predict_raster

TRANSFORM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 300000.0)
COLORS = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a busy machine, more threads spin and run far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_tif(
    path: Path,
    data: np.ndarray,
    *,
    nodata: float | None = None,
    mask: np.ndarray | None = None,
    compress: str | None = None,
    photometric: str | None = None,
) -> Path:
    """(bands, H, W) array → GeoTIFF in EPSG:2180; ``mask`` (H, W) bool: True = valid.

    GDAL marks the 4th band of a 4-band uint8 file as alpha unless ``photometric`` says
    otherwise (``"MINISBLACK"``: four plain bands).
    """
    count, h, w = data.shape
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": count,
        "dtype": data.dtype.name,
        "crs": "EPSG:2180",
        "transform": TRANSFORM,
        "nodata": nodata,
    }
    if compress:
        profile.update(compress=compress, tiled=True, blockxsize=64, blockysize=64)
    if photometric:
        profile["photometric"] = photometric
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if mask is not None:
            dst.write_mask(mask.astype(np.uint8) * 255)
    return path


def levels_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(3, H, W) uint8 whose bands are a random permutation of three well-separated levels."""
    rng = np.random.default_rng(seed)
    perm = np.argsort(rng.random((h, w, 3)), axis=-1)
    levels = np.array([10, 120, 230])[perm] + rng.integers(0, 20, (h, w, 3))
    return np.moveaxis(levels, -1, 0).astype(np.uint8)


class ConstantModel(nn.Module):
    """Logits (0, 3, 1) everywhere, whatever the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.tensor([0.0, 3.0, 1.0], device=x.device).view(1, 3, 1, 1)
        return logits.expand(x.shape[0], 3, *x.shape[-2:]).clone()


class Recorder(nn.Module):
    """Wraps a model and records the input shapes it sees."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.net(x)


def pixelwise_model() -> nn.Conv2d:
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(
            torch.tensor([[1.0, 0.2, -0.1], [0.1, 0.9, 0.2], [-0.2, 0.1, 1.1]]).view(3, 3, 1, 1)
        )
        conv.bias.copy_(torch.tensor([0.1, -0.1, 0.0]))
    return conv


def make_spec(**kwargs) -> ModelSpec:
    base = {
        "name": "unet",
        "num_classes": 3,
        "in_channels": 3,
        "mean": [100.0] * 3,
        "std": [50.0] * 3,
        "class_names": ["a", "b", "c"],
        "class_colors": COLORS,
    }
    base.update(kwargs)
    return ModelSpec(**base)


def unet() -> nn.Module:
    """A tiny random UNet whose map is not constant (a random head: its default init gives one
    class almost everywhere)."""
    torch.manual_seed(3)
    net = get_model("unet", num_classes=3, in_channels=3, base_channels=4, depth=2)
    with torch.no_grad():
        net.head.weight.copy_(torch.randn_like(net.head.weight))
        net.head.bias.zero_()
    return net


def reference_labels(model: nn.Module, spec: ModelSpec, data: np.ndarray) -> np.ndarray:
    """The model on the whole (3, H, W) image at once; checks the labels have no near-ties."""
    image = np.moveaxis(data, 0, -1)
    x = (torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1)[None] - 100.0) / 50.0
    with torch.no_grad():
        logits = nn.functional.conv2d(x, model.weight.double(), model.bias.double())[0]
    top2 = logits.topk(2, dim=0).values
    assert float((top2[0] - top2[1]).min()) > 1e-3  # the test data has clear winners
    return predict_labels(model.eval(), spec, image)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


# --------------------------------------------------------------------------------------------


def test_output_georef_tiling_compression_colormap_and_summary(tmp_path):
    src = write_tif(tmp_path / "src.tif", levels_image(300, 280))
    model, spec = unet(), make_spec()
    model.train()
    summary = predict_raster(
        model, spec, src, tmp_path / "out" / "pred.tif", tile_size=64, progress=True
    )
    assert model.training  # the caller's mode is restored
    with rasterio.open(src) as s, rasterio.open(tmp_path / "out" / "pred.tif") as ds:
        assert ds.crs == s.crs and ds.crs.to_epsg() == 2180
        assert ds.transform == s.transform and ds.shape == s.shape
        assert ds.count == 1 and ds.dtypes[0] == "uint8" and ds.nodata == NODATA_LABEL
        assert ds.profile["tiled"] and ds.block_shapes[0] == (256, 256)
        assert ds.compression.name.lower() == "deflate"
        assert ds.colormap(1)[1] == (0, 255, 0, 255)
        labels = ds.read(1)
    assert labels.max() < 3
    assert summary["shape"] == (300, 280) and summary["tiles"] > 0
    assert summary["megapixels_per_s"] > 0 and summary["overlap"] == 8
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def test_stale_temporary_files_of_dead_runs_are_removed(tmp_path):
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # its pid is now dead: a killed earlier run
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".pred.tif.{proc.pid}.abcd1234.tmp.tif"
    live = out / f".pred.tif.{os.getpid()}.abcd1234.tmp.tif"
    stale.write_bytes(b"half a raster")
    live.write_bytes(b"another writer of this process")
    src = write_tif(tmp_path / "src.tif", levels_image(40, 40))
    predict_raster(ConstantModel(), make_spec(), src, out / "pred.tif", tile_size=32)
    assert not stale.exists() and live.exists()
    assert (out / "pred.tif").exists()


def test_constant_model_gives_a_constant_map(tmp_path):
    src = write_tif(tmp_path / "src.tif", levels_image(150, 170))
    predict_raster(
        ConstantModel(),
        make_spec(),
        src,
        tmp_path / "c.tif",
        tile_size=32,
        overlap=12,
        probabilities=tmp_path / "p.tif",
    )
    assert np.all(read(tmp_path / "c.tif") == 1)
    expected = np.round(255 * torch.softmax(torch.tensor([0.0, 3.0, 1.0]), 0).numpy())
    np.testing.assert_array_equal(
        read(tmp_path / "p.tif"),
        np.broadcast_to(expected.astype(np.uint8)[:, None, None], (3, 150, 170)),
    )  # blended weights: no seams


@pytest.mark.parametrize(("tile_size", "overlap"), [(16, 4), (48, None), (100, 0), (64, 40)])
def test_pixelwise_model_matches_the_whole_image(tmp_path, tile_size, overlap):
    data = levels_image(131, 157)  # not a multiple of any stride
    src = write_tif(tmp_path / "src.tif", data)
    model, spec = pixelwise_model(), make_spec()
    expected = reference_labels(model, spec, data)
    predict_raster(model, spec, src, tmp_path / "p.tif", tile_size=tile_size, overlap=overlap)
    np.testing.assert_array_equal(read(tmp_path / "p.tif")[0], expected)


@pytest.mark.parametrize("shape", [(37, 23), (1, 5), (70, 1)])
def test_rasters_smaller_than_a_tile(tmp_path, shape):
    data = levels_image(*shape, seed=2)
    src = write_tif(tmp_path / "small.tif", data)
    model, spec = pixelwise_model(), make_spec()
    predict_raster(model, spec, src, tmp_path / "p.tif", tile_size=64)
    np.testing.assert_array_equal(read(tmp_path / "p.tif")[0], reference_labels(model, spec, data))


@pytest.mark.parametrize(
    ("tile_size", "overlap", "n_tiles"),
    # 11 x 10 tiles of 64 every 56 pixels from -4 cover 600 x 530; 9 x 8 tiles of 100 every 70
    # from -15; 2 x 1 tiles of 600 every 560 from -20, and blocks of 256 where no tile starts
    [(64, None, 11 * 10), (100, 30, 9 * 8), (600, 40, 2 * 1)],
)
def test_output_does_not_depend_on_block_size(tmp_path, tile_size, overlap, n_tiles):
    src = write_tif(tmp_path / "src.tif", levels_image(600, 530, seed=1))
    model, spec = unet(), make_spec()

    def run(block: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        summary = predict_raster(
            model,
            spec,
            src,
            tmp_path / "l.tif",
            tile_size=tile_size,
            overlap=overlap,
            block_size=block,
            batch_size=batch_size,
            probabilities=tmp_path / "p.tif",
        )
        assert summary["tiles"] == n_tiles  # each tile evaluated once, whatever the blocks
        return read(tmp_path / "l.tif")[0], read(tmp_path / "p.tif").astype(int)

    # one tile per forward pass: bit-identical class maps and probabilities
    labels, probs = run(4096, 1)
    assert len(np.unique(labels)) > 1  # not a trivially constant map
    for block in (256, 768):
        small_labels, small_probs = run(block, 1)
        np.testing.assert_array_equal(small_labels, labels)
        np.testing.assert_array_equal(small_probs, probs)
    # batches of 4 hold other tiles at other blocks; CPU kernels may then differ in the last bit
    small_labels, small_probs = run(256, 4)
    assert np.mean(small_labels == labels) > 0.9999
    assert np.abs(small_probs - probs).max() <= 1


def test_nodata_value_internal_mask_and_override(tmp_path):
    data = levels_image(90, 100, seed=3)
    data[:, 10:20, 30:50] = 0  # all bands nodata
    data[0, 50:55, 5:15] = 0  # one band only: still valid
    model, spec = pixelwise_model(), make_spec()
    expected = reference_labels(model, spec, data)
    expected[10:20, 30:50] = NODATA_LABEL  # and the other pixels as if there were no nodata

    src = write_tif(tmp_path / "nd.tif", data, nodata=0)
    s = predict_raster(
        model, spec, src, tmp_path / "a.tif", tile_size=32, probabilities=tmp_path / "ap.tif"
    )
    labels = read(tmp_path / "a.tif")[0]
    assert s["nodata_pixels"] == 200
    np.testing.assert_array_equal(labels, expected)
    with rasterio.open(tmp_path / "ap.tif") as ds:
        probs, mask = ds.read(), ds.dataset_mask()
    assert np.all(probs[:, 10:20, 30:50] == 0) and np.all(mask[10:20, 30:50] == 0)
    assert mask.sum() == 255 * (90 * 100 - 200)

    valid = np.ones((90, 100), bool)
    valid[60:70, 0:8] = False
    src = write_tif(tmp_path / "mask.tif", levels_image(90, 100, seed=3), mask=valid)
    predict_raster(model, spec, src, tmp_path / "b.tif", tile_size=32)
    np.testing.assert_array_equal(read(tmp_path / "b.tif")[0] == NODATA_LABEL, ~valid)

    over = levels_image(90, 100, seed=3)
    over[:, 0:3, :] = 7
    src = write_tif(tmp_path / "over.tif", over, nodata=0)  # the override replaces 0 by 7
    predict_raster(model, spec, src, tmp_path / "c.tif", tile_size=32, nodata=7)
    labels = read(tmp_path / "c.tif")[0]
    assert np.all(labels[0:3] == NODATA_LABEL) and np.all(labels[3:] != NODATA_LABEL)


def test_nan_nodata_in_float_rasters_does_not_spread(tmp_path):
    data = levels_image(120, 110, seed=4).astype(np.float32)
    filled = data.copy()
    filled[:, 40:50, 40:50] = 100.0  # the band mean: what NaN is replaced by
    data[:, 40:50, 40:50] = np.nan
    model, spec = unet(), make_spec()
    predict_raster(
        model,
        spec,
        write_tif(tmp_path / "nan.tif", data, nodata=np.nan),
        tmp_path / "a.tif",
        tile_size=64,
    )
    predict_raster(
        model, spec, write_tif(tmp_path / "fill.tif", filled), tmp_path / "b.tif", tile_size=64
    )
    a, b = read(tmp_path / "a.tif")[0], read(tmp_path / "b.tif")[0]
    assert np.all(a[40:50, 40:50] == NODATA_LABEL)
    b[40:50, 40:50] = NODATA_LABEL
    np.testing.assert_array_equal(a, b)


def test_band_selection_and_band_count_errors(tmp_path):
    rgb = levels_image(60, 70, seed=5)
    four = np.concatenate([rgb[2:3], np.full((1, 60, 70), 9, np.uint8), rgb[1:2], rgb[0:1]])
    src = write_tif(tmp_path / "four.tif", four, photometric="MINISBLACK")
    model = pixelwise_model()
    spec = make_spec(bands=[3, 2, 0])
    predict_raster(model, spec, src, tmp_path / "p.tif", tile_size=32)
    np.testing.assert_array_equal(read(tmp_path / "p.tif")[0], reference_labels(model, spec, rgb))

    with pytest.raises(
        ValueError,
        match=r"expects 3 band\(s\) \(trained on bands \[0, 1, 2\]\); \S*four\.tif has 4: "
        r"choose 3 of them with --bands 0,1,2",
    ):
        predict_raster(model, make_spec(), src, tmp_path / "q.tif")
    with pytest.raises(
        ValueError, match=r"on bands \[0, 1, 4\], but \S*four\.tif has 4 band.*index 4 is out"
    ):
        predict_raster(model, make_spec(bands=[0, 1, 4]), src, tmp_path / "q.tif")
    assert not (tmp_path / "q.tif").exists()


def test_missing_corrupt_and_truncated_files(tmp_path):
    model, spec = pixelwise_model(), make_spec()
    with pytest.raises(FileNotFoundError, match=r"nope\.tif does not exist"):
        predict_raster(model, spec, tmp_path / "nope.tif", tmp_path / "o.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"this is not a GeoTIFF" * 10)
    with pytest.raises(ValueError, match=r"cannot read .*bad\.tif"):
        predict_raster(model, spec, bad, tmp_path / "o.tif")

    noise = np.random.default_rng(0).integers(0, 255, (3, 256, 256), dtype=np.uint8)
    full = write_tif(tmp_path / "full.tif", noise, compress="deflate")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    (tmp_path / "o.tif").write_bytes(b"previous result")
    with pytest.raises(ValueError, match=r"cut\.tif"):
        predict_raster(model, spec, cut, tmp_path / "o.tif", tile_size=64)
    assert (tmp_path / "o.tif").read_bytes() == b"previous result"
    assert not list(tmp_path.glob(".*"))


def test_a_crash_leaves_no_partial_output(tmp_path):
    class Crash(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls > 3:
                raise RuntimeError("boom")
            return ConstantModel()(x)

    src = write_tif(tmp_path / "src.tif", levels_image(200, 200))
    with pytest.raises(RuntimeError, match="boom"):
        predict_raster(
            Crash(),
            make_spec(),
            src,
            tmp_path / "o.tif",
            tile_size=32,
            block_size=256,
            probabilities=tmp_path / "p.tif",
            cog=True,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.tif"]


def test_probability_raster(tmp_path):
    src = write_tif(tmp_path / "src.tif", levels_image(100, 120, seed=6))
    model, spec = unet(), make_spec()
    predict_raster(
        model, spec, src, tmp_path / "l.tif", tile_size=48, probabilities=tmp_path / "p.tif"
    )
    with rasterio.open(tmp_path / "p.tif") as ds, rasterio.open(src) as s:
        assert ds.count == 3 and ds.dtypes == ("uint8",) * 3 and ds.shape == s.shape
        assert ds.crs == s.crs and ds.transform == s.transform
        assert ds.descriptions == ("a", "b", "c")
        probs = ds.read().astype(int)
    total = probs.sum(axis=0)
    assert total.min() >= 255 - 2 and total.max() <= 255 + 2
    labels = read(tmp_path / "l.tif")[0]
    top2 = np.sort(probs, axis=0)[-2:]
    clear = top2[1] > top2[0]  # no tie after rounding to uint8
    np.testing.assert_array_equal(probs.argmax(0)[clear], labels[clear])


def test_cloud_optimized_geotiff(tmp_path, monkeypatch):
    src = write_tif(tmp_path / "src.tif", levels_image(600, 700, seed=7))
    predict_raster(
        ConstantModel(),
        make_spec(),
        src,
        tmp_path / "cog.tif",
        tile_size=128,
        cog=True,
        probabilities=tmp_path / "pcog.tif",
    )
    for name in ("cog.tif", "pcog.tif"):
        with rasterio.open(tmp_path / name) as ds, rasterio.open(src) as s:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.overviews(1) and ds.block_shapes[0] == (512, 512)
            assert ds.crs == s.crs and ds.transform == s.transform
    with rasterio.open(tmp_path / "cog.tif") as ds:
        assert ds.nodata == NODATA_LABEL and ds.colormap(1)[2] == (0, 0, 255, 255)
        assert np.all(ds.read(1) == 1)
    assert not list(tmp_path.glob(".*"))

    import pointseg.predict.tiled as tiled

    monkeypatch.setattr(tiled, "_cog_supported", lambda: False)
    with pytest.raises(RuntimeError, match="COG driver.*cog=False"):
        predict_raster(ConstantModel(), make_spec(), src, tmp_path / "x.tif", cog=True)


def test_scale_runs_the_model_on_resampled_tiles(tmp_path):
    data = np.zeros((3, 160, 200), np.uint8)
    data[:, :80, :] = np.array([230, 10, 10], np.uint8)[:, None, None]
    data[:, 80:, :100] = np.array([10, 230, 10], np.uint8)[:, None, None]
    data[:, 80:, 100:] = np.array([10, 10, 230], np.uint8)[:, None, None]
    src = write_tif(tmp_path / "src.tif", data)
    model = Recorder(pixelwise_model())
    predict_raster(model, make_spec(), src, tmp_path / "s.tif", tile_size=32, scale=0.5)
    assert {s[-2:] for s in model.shapes} == {(32, 32)}
    labels = read(tmp_path / "s.tif")[0]
    assert labels.shape == (160, 200)
    assert np.all(labels[:76] == 0) and np.all(labels[84:, :96] == 1)
    assert np.all(labels[84:, 104:] == 2)


def test_blend_window_and_option_errors(tmp_path):
    w = blend_window(64, 8)
    assert w.min() > 0 and w[8:56].min() == 1.0
    np.testing.assert_allclose(w[:8] + w[-8:], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(blend_window(10, 0), 1.0)
    src = write_tif(tmp_path / "src.tif", levels_image(20, 20))
    model, spec = pixelwise_model(), make_spec()
    with pytest.raises(ValueError, match=r"overlap must be .*\[0, tile_size=32\), got 32"):
        predict_raster(model, spec, src, tmp_path / "o.tif", tile_size=32, overlap=32)
    with pytest.raises(ValueError, match="scale must be a positive number"):
        predict_raster(model, spec, src, tmp_path / "o.tif", scale=0)
    with pytest.raises(ValueError, match="at most 255 classes"):
        predict_raster(model, make_spec(num_classes=300), src, tmp_path / "o.tif")
