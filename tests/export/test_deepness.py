"""ONNX export for the Deepness QGIS plugin (pointseg.export.export_deepness)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from torch import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pointseg.export import (  # noqa: E402
    OnnxExportError,
    export_deepness,
    load_onnx,
    raster_resolution_cm,
    read_deepness_metadata,
)
from pointseg.export import deepness as deepness_mod  # noqa: E402
from pointseg.models import ModelSpec, get_model, save_model  # noqa: E402
from pointseg.predict import open_model, predict_logits  # noqa: E402
from pointseg.predict.tiled import predict_raster  # noqa: E402

TILE = 32
SPEC = ModelSpec(
    name="unet",
    num_classes=3,
    in_channels=3,
    options={"base_channels": 4, "depth": 2},
    class_names=["background", "building", "water"],
    class_colors=[[0, 0, 0], [255, 0, 0], [0, 0, 255]],
    background="background",
    mean=[120.0, 110.0, 95.0],
    std=[60.0, 50.0, 45.0],
    image_size=TILE,
)
# Deepness's documented keys ("Adding metadata to ONNX model") that a Segmentor uses
DOCUMENTED_KEYS = {
    "model_type",
    "class_names",
    "resolution",
    "tiles_size",
    "tiles_overlap",
    "seg_thresh",
    "seg_small_segment",
}


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a busy machine, more threads spin and run far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _save(path: Path, spec: ModelSpec, seed: int = 0) -> Path:
    """A seeded tiny model with non-trivial batch-norm statistics, whose head is rescaled so that
    on :func:`_scene` every class logit has mean 0 and std 1 (a map with all classes, not the
    near-constant one of a random tiny network)."""
    torch.manual_seed(seed)
    model = get_model(
        spec.name, num_classes=spec.num_classes, in_channels=spec.in_channels, **spec.options
    ).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        c = spec.in_channels
        scene = torch.from_numpy(_scene(64, 64)[np.arange(c) % 3].astype(np.float32))[None]
        mean = torch.tensor(spec.mean or [0.0] * c).view(1, c, 1, 1)
        std = torch.tensor(spec.std or [1.0] * c).view(1, c, 1, 1)
        model.head.bias.zero_()
        logits = model((scene - mean) / std)
        mu, sd = logits.mean(dim=(0, 2, 3)), logits.std(dim=(0, 2, 3))
        model.head.weight.div_(sd.view(-1, 1, 1, 1))
        model.head.bias.copy_(-mu / sd)
    return save_model(path, model, spec)


def _write_tif(path: Path, data: np.ndarray, *, crs: str | None, res: float = 0.25) -> Path:
    """(bands, H, W) array → GeoTIFF with ``res`` map units per pixel."""
    count, h, w = data.shape
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": count,
        "dtype": data.dtype.name,
        "transform": Affine(res, 0.0, 500000.0, 0.0, -res, 5800000.0),
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(3, H, W) uint8: smooth blobs plus noise, covering most of 0..255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 12.0
    bands = [127 + 100 * np.sin(yy * (1 + b) + xx * (2 - b) + rng.random() * 6) for b in range(3)]
    noisy = np.stack(bands) + rng.normal(0, 15, (3, h, w))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _deepness_run(path: Path, tiles: np.ndarray) -> np.ndarray:
    """Run an exported file the way Deepness does: (B, H, W, C) uint8 tiles, first C channels,
    ``np.float32(tiles * 1/255)``, NHWC → NCHW, onnxruntime, first output."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    x = np.float32(tiles[..., : inp.shape[1]] * (1.0 / 255.0)).transpose(0, 3, 1, 2)
    return session.run(None, {inp.name: x})[0]


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("deepness")
    pt = _save(root / "model.pt", SPEC, seed=2)  # a seed whose map has all 3 classes
    return pt, export_deepness(pt, root / "model.onnx", resolution_cm=30, tiles_overlap=20)


# --------------------------------------------------------------------------------------------
# metadata and graph


def test_metadata_keys_are_json_with_the_right_values(exported):
    _, path = exported
    raw = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert DOCUMENTED_KEYS <= set(raw)
    decoded = {key: json.loads(value) for key, value in raw.items()}  # every value is JSON
    assert decoded["model_type"] == "Segmentor"
    assert decoded["class_names"] == {"0": "background", "1": "building", "2": "water"}
    assert decoded["resolution"] == 30.0
    assert decoded["tiles_size"] == decoded["tile_size"] == TILE
    assert decoded["tiles_overlap"] == 20
    assert decoded["seg_thresh"] == 0.0 and decoded["seg_small_segment"] == 0
    # normalisation is in the graph: Deepness must not standardise again
    assert decoded["standardization_mean"] == [0.0, 0.0, 0.0]
    assert decoded["standardization_std"] == [1.0, 1.0, 1.0]
    assert decoded["pointseg.format"] == "pointseg-deepness-1"
    assert ModelSpec(**decoded["pointseg.source_spec"]) == SPEC
    assert read_deepness_metadata(path) == decoded
    # not mistaken for pointseg's own (normalised-input, logits) export
    with pytest.raises(ValueError, match="without pointseg metadata"):
        load_onnx(path)


def test_fixed_square_input_and_probability_output(exported, tmp_path):
    _, path = exported
    proto = onnx.load(str(path))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(inp) == ["batch", 3, TILE, TILE]
    assert _dims(out) == ["batch", 3, TILE, TILE]
    assert proto.opset_import[0].version == 18
    tiles = np.random.default_rng(1).integers(0, 256, (2, TILE, TILE, 4), dtype=np.uint8)  # RGBA
    probs = _deepness_run(path, tiles)
    assert probs.shape == (2, 3, TILE, TILE) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs.min() >= 0.0

    # the tile size defaults to the training size, else 512; an explicit one is used as is
    spec = ModelSpec(**{**SPEC.to_dict(), "image_size": None})
    pt = _save(tmp_path / "model.pt", spec)
    default = export_deepness(pt, tmp_path / "default.onnx", verify=False)
    assert _dims(onnx.load(str(default)).graph.input[0]) == ["batch", 3, 512, 512]
    assert read_deepness_metadata(default)["tiles_overlap"] == 13  # 512 // 8 = 12.5 %
    assert "resolution" not in read_deepness_metadata(default)
    explicit = export_deepness(pt, tmp_path / "explicit.onnx", tiles_size=48)
    assert _dims(onnx.load(str(explicit)).graph.input[0]) == ["batch", 3, 48, 48]
    assert read_deepness_metadata(explicit)["tiles_size"] == 48


def test_normalisation_is_baked_into_the_graph(exported):
    """uint8/255 in → softmax(net((uint8 - mean) / std)) out, with the spec's raw-pixel stats."""
    pt, path = exported
    model, spec = open_model(pt, device="cpu")
    tile = np.random.default_rng(2).integers(0, 256, (1, TILE, TILE, 3), dtype=np.uint8)
    x = torch.from_numpy(tile.astype(np.float32)).permute(0, 3, 1, 2)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.softmax(model((x - mean) / std), dim=1).numpy()
        unnormalised = torch.softmax(model(x / 255.0), dim=1).numpy()
    got = _deepness_run(path, tile)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.abs(got - unnormalised).max() > 1e-2  # the normalisation matters for this model


# --------------------------------------------------------------------------------------------
# acceptance: the plugin's way vs pointseg predict


def test_acceptance_deepness_run_matches_pointseg_predict_on_an_interior_tile(exported, tmp_path):
    pt, path = exported
    scene = _scene(3 * TILE, 3 * TILE)
    tif = _write_tif(tmp_path / "scene.tif", scene, crs="EPSG:32633", res=0.3)
    rows = cols = slice(TILE, 2 * TILE)  # the interior tile: no padding anywhere
    tile_hwc = np.moveaxis(scene[:, rows, cols], 0, -1)

    # Deepness: uint8 tile / 255, NCHW float32, onnxruntime
    got = _deepness_run(path, tile_hwc[None])[0]

    # pointseg predict: open_model + predict_logits (the path of 'pointseg predict')
    model, spec = open_model(pt, device="cpu")
    ref = torch.softmax(predict_logits(model, spec, tile_hwc), dim=0).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)
    top2 = np.sort(ref, axis=0)[-2:]
    assert (top2[1] - top2[0]).min() > 1e-5  # no near-ties: the argmax is well defined
    labels = got.argmax(0)
    np.testing.assert_array_equal(labels, ref.argmax(0))
    assert len(np.unique(labels)) == 3  # a non-trivial map

    # pointseg predict --tiled on the whole raster, tiles on the same grid (no overlap)
    out, probs = tmp_path / "labels.tif", tmp_path / "probs.tif"
    predict_raster(model, spec, tif, out, tile_size=TILE, overlap=0, probabilities=probs)
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1)[rows, cols], labels)
    with rasterio.open(probs) as ds:  # stored as round(255 p)
        stored = ds.read()[:, rows, cols] / 255.0
    assert np.abs(stored - got).max() <= 0.5 / 255 + 1e-4

    # the raster's georeference gives the resolution Deepness resamples to
    assert raster_resolution_cm(tif) == pytest.approx(30.0)


# --------------------------------------------------------------------------------------------
# resolution from a GeoTIFF


def test_resolution_from_a_projected_geotiff(tmp_path, exported):
    pt, _ = exported
    data = np.zeros((3, 8, 8), np.uint8)
    tif = _write_tif(tmp_path / "utm.tif", data, crs="EPSG:32633", res=0.5)
    assert raster_resolution_cm(tif) == 50.0
    path = export_deepness(pt, tmp_path / "m.onnx", raster=tif, verify=False)
    assert read_deepness_metadata(path)["resolution"] == 50.0
    # resolution_cm takes precedence
    path = export_deepness(pt, tmp_path / "m2.onnx", raster=tif, resolution_cm=12.5, verify=False)
    assert read_deepness_metadata(path)["resolution"] == 12.5


def test_rasters_without_a_metric_crs_are_refused_unless_resolution_is_given(tmp_path, exported):
    pt, _ = exported
    data = np.zeros((3, 8, 8), np.uint8)
    geographic = _write_tif(tmp_path / "wgs84.tif", data, crs="EPSG:4326", res=1e-5)
    no_crs = _write_tif(tmp_path / "nocrs.tif", data, crs=None)
    feet = _write_tif(tmp_path / "feet.tif", data, crs="EPSG:2227", res=1.0)  # US survey feet
    out = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"geographic CRS.*pass resolution_cm"):
        export_deepness(pt, out, raster=geographic, verify=False)
    with pytest.raises(ValueError, match=r"has no CRS.*pass resolution_cm"):
        export_deepness(pt, out, raster=no_crs, verify=False)
    with pytest.raises(ValueError, match=r"not metres.*pass resolution_cm"):
        raster_resolution_cm(feet)
    with pytest.raises(FileNotFoundError, match="missing.tif does not exist"):
        raster_resolution_cm(tmp_path / "missing.tif")
    assert not out.exists()
    export_deepness(pt, out, raster=geographic, resolution_cm=10, verify=False)
    assert read_deepness_metadata(out)["resolution"] == 10.0


# --------------------------------------------------------------------------------------------
# refusals


def test_models_deepness_cannot_feed_are_refused(tmp_path):
    four = _save(
        tmp_path / "four.pt",
        ModelSpec(**{**SPEC.to_dict(), "in_channels": 4, "mean": [100.0] * 4, "std": [50.0] * 4}),
    )
    floats = _save(
        tmp_path / "float.pt", ModelSpec(**{**SPEC.to_dict(), "mean": [0.3] * 3, "std": [0.2] * 3})
    )
    uint16 = _save(
        tmp_path / "uint16.pt",
        ModelSpec(**{**SPEC.to_dict(), "mean": [900.0] * 3, "std": [300.0] * 3}),
    )
    no_stats = _save(
        tmp_path / "nostats.pt", ModelSpec(**{**SPEC.to_dict(), "mean": [], "std": []})
    )
    out = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"takes 4 band\(s\).*allow_non_rgb=True"):
        export_deepness(four, out, verify=False)
    with pytest.raises(ValueError, match=r"floating-point data in 0\.\.1.*retrain on 8-bit"):
        export_deepness(floats, out, verify=False)
    with pytest.raises(ValueError, match=r"not trained on 8-bit pixels.*retrain on 8-bit"):
        export_deepness(uint16, out, verify=False)
    with pytest.raises(ValueError, match="one finite mean and one positive std per band"):
        export_deepness(no_stats, out, verify=False)
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        export_deepness(tmp_path / "nope.pt", out)
    assert not out.exists()

    # the documented overrides
    export_deepness(four, out, allow_non_rgb=True, resolution_cm=30)
    assert _dims(onnx.load(str(out)).graph.input[0]) == ["batch", 4, TILE, TILE]
    export_deepness(floats, tmp_path / "f.onnx", check_uint8=False, verify=False)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"tiles_size": 0}, r"tiles_size must be an integer >= 32.*got 0"),
        ({"tiles_size": -64}, "tiles_size must be an integer >= 32"),
        ({"tiles_size": 16}, r"tiles_size must be an integer >= 32 .*training image size 32"),
        ({"tiles_size": 64.0}, "tiles_size must be an integer"),
        ({"tiles_size": True}, "tiles_size must be an integer"),
        ({"tiles_overlap": 100}, r"tiles_overlap must be an integer percentage.*\[0, 100\)"),
        ({"tiles_overlap": -1}, "tiles_overlap must be an integer percentage"),
        ({"resolution_cm": 0}, "resolution_cm must be a positive number"),
        ({"resolution_cm": float("nan")}, "resolution_cm must be a positive number"),
        ({"seg_thresh": 1.5}, r"seg_thresh must be a probability in \[0, 1\]"),
        ({"seg_small_segment": -1}, "seg_small_segment must be a non-negative integer"),
        ({"opset": 99}, "opset must be between 9 and"),
    ],
)
def test_bad_options_are_refused(exported, tmp_path, options, match):
    pt, _ = exported
    out = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=match):
        export_deepness(pt, out, **options)
    assert not out.exists()


def test_verify_failure_names_the_difference_and_writes_nothing(tmp_path, exported, monkeypatch):
    pt, _ = exported

    class _Shifted(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.net(x)
            return out + torch.arange(out.shape[1], dtype=out.dtype).view(1, -1, 1, 1)

    real = deepness_mod._export_ready
    monkeypatch.setattr(deepness_mod, "_export_ready", lambda m: _Shifted(real(m)).eval())
    out = tmp_path / "bad.onnx"
    with pytest.raises(OnnxExportError, match=r"max \|probability difference\|"):
        export_deepness(pt, out)
    assert not out.exists() and not list(tmp_path.iterdir())
