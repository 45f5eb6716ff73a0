"""A model never runs silently on other bands than it was trained on."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from PIL import Image

from pointseg.data import FolderDataset
from pointseg.models import ModelSpec, get_model
from pointseg.models.registry import save_model
from pointseg.predict import evaluate_dataset, predict_folder
from pointseg.predict.folder import NODATA_LABEL
from pointseg.predict.inference import predict_logits
from pointseg.predict.tiled import predict_raster


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(tmp_path, *, bands=None, name="model.pt"):
    torch.manual_seed(0)
    net = get_model("unet", num_classes=2, in_channels=3, base_channels=4, depth=2).eval()
    spec = ModelSpec(
        name="unet",
        num_classes=2,
        in_channels=3,
        options={"base_channels": 4, "depth": 2},
        class_names=["a", "b"],
        class_colors=[[255, 0, 0], [0, 0, 255]],
        mean=[100.0] * 3,
        std=[50.0] * 3,
        bands=bands,
    )
    return save_model(tmp_path / name, net, spec), net, spec


def write_four(path, seed=0, h=32, w=32):
    """A 4-band uint8 GeoTIFF whose 4th band is a band (not alpha)."""
    data = np.random.default_rng(seed).integers(0, 256, (4, h, w), dtype=np.uint8)
    with rasterio.open(
        path, "w", driver="GTiff", height=h, width=w, count=4, dtype="uint8",
        crs="EPSG:2180", transform=Affine(0.5, 0, 500000, 0, -0.5, 300000),
        photometric="MINISBLACK",
    ) as dst:  # fmt: skip
        dst.write(data)
    return path, data


def test_predict_folder_three_band_model_on_four_band_geotiff(tmp_path):
    model_path, _, _ = make_model(tmp_path)
    (tmp_path / "in").mkdir()
    src, _ = write_four(tmp_path / "in" / "four.tif")
    with pytest.raises(
        ValueError,
        match=r"model \S*model\.pt expects 3 band\(s\) \(trained on bands \[0, 1, 2\]\); "
        r"\S*four\.tif has 4: choose 3 of them with --bands 0,1,2",
    ):
        predict_folder(model_path, tmp_path / "in", tmp_path / "out", device="cpu")
    assert not (tmp_path / "out" / "four.png").exists()
    written = predict_folder(
        model_path, tmp_path / "in", tmp_path / "out", device="cpu", bands=[0, 1, 2]
    )
    assert tmp_path / "out" / "four.png" in written and tmp_path / "out" / "four.tif" in written
    picks = r"--bands 0,1 picks 2 of the 4 band\(s\) of \S*four\.tif: choose 3"
    with pytest.raises(ValueError, match=picks):
        predict_folder(model_path, src, tmp_path / "o2", device="cpu", bands=[0, 1])
    with pytest.raises(ValueError, match=r"--bands 0,1,7: .*four\.tif has 4 band.*index 7"):
        predict_folder(model_path, src, tmp_path / "o2", device="cpu", bands=[0, 1, 7])


def test_predict_folder_uses_the_model_bands_and_alpha_as_nodata(tmp_path):
    model_path, net, spec = make_model(tmp_path, bands=[2, 1, 0])
    src, data = write_four(tmp_path / "four.tif")
    predict_folder(model_path, src, tmp_path / "out", device="cpu", overlays=False)
    image = np.moveaxis(data, 0, -1)[..., [2, 1, 0]]
    expect = predict_logits(net, spec, image).argmax(0).numpy()
    with Image.open(tmp_path / "out" / "four.png") as im:
        np.testing.assert_array_equal(np.asarray(im), expect)
    # an RGBA PNG: three bands for the model, alpha 0 is nodata in the class map
    rgba = np.random.default_rng(1).integers(0, 256, (20, 24, 4), dtype=np.uint8)
    rgba[:5, :, 3] = 0
    rgba[5:, :, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    plain, _, _ = make_model(tmp_path, name="plain.pt")
    out = tmp_path / "out2"
    predict_folder(plain, tmp_path / "a.png", out, device="cpu")
    with Image.open(out / "a.png") as im:
        labels = np.asarray(im)
    assert (labels[:5] == NODATA_LABEL).all() and (labels[5:] < 2).all()
    assert (out / "overlays" / "a.png").is_file()


def test_predict_raster_three_band_model_on_four_band_geotiff(tmp_path):
    _, net, spec = make_model(tmp_path)
    src, _ = write_four(tmp_path / "four.tif", h=40, w=36)
    with pytest.raises(
        ValueError,
        match=r"expects 3 band\(s\) \(trained on bands \[0, 1, 2\]\); \S*four\.tif has 4: "
        r"choose 3 of them with --bands 0,1,2",
    ):
        predict_raster(net, spec, src, tmp_path / "p.tif", tile_size=32)
    assert not (tmp_path / "p.tif").exists()
    predict_raster(net, spec, src, tmp_path / "p.tif", tile_size=32, bands=[0, 1, 2])
    with rasterio.open(tmp_path / "p.tif") as out:
        assert out.count == 1 and (out.height, out.width) == (40, 36)
    with pytest.raises(ValueError, match=r"--bands 0,4,1: .*four\.tif has 4 band.*index 4"):
        predict_raster(net, spec, src, tmp_path / "q.tif", bands=[0, 4, 1])
    _, net2, spec2 = make_model(tmp_path, bands=[3, 1, 0], name="m2.pt")
    predict_raster(net2, spec2, src, tmp_path / "r.tif", tile_size=32)  # the model's bands


def test_evaluate_dataset_names_bands(tmp_path):
    _, net, spec = make_model(tmp_path)
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.yaml").write_text("classes: [a, b]\n")
    write_four(root / "images" / "x.tif", h=16, w=16)
    Image.fromarray(np.ones((16, 16), np.uint8)).save(root / "masks" / "x.png")
    ds = FolderDataset(root, fractions=(1, 0, 0))
    with pytest.raises(ValueError, match=r"\S*x\.tif has 4: choose 3 of them with --bands 0,1,2"):
        evaluate_dataset(net, spec, ds, device=torch.device("cpu"))
    two = FolderDataset(root, fractions=(1, 0, 0), bands=[0, 1])
    with pytest.raises(ValueError, match=r"--bands 0,1 picks 2 of the 4 band\(s\) of \S*x\.tif"):
        evaluate_dataset(net, spec, two, device=torch.device("cpu"))
    ok = FolderDataset(root, fractions=(1, 0, 0), bands=[0, 1, 2])
    metrics = evaluate_dataset(net, spec, ok, device=torch.device("cpu"))
    assert metrics["n_pixels"] == 16 * 16
