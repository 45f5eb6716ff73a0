"""``pointseg predict --tiled`` on a georeferenced raster with nodata."""

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

from pointseg.cli import main
from pointseg.models import ModelSpec, get_model, save_model


def test_tiled_prediction_keeps_georeference_and_nodata(tmp_path, capsys):
    spec = ModelSpec(
        name="unet",
        num_classes=3,
        in_channels=3,
        options={"base_channels": 4, "depth": 2},
        class_names=["a", "b", "c"],
        class_colors=[[0, 0, 0], [255, 0, 0], [0, 0, 255]],
        mean=[100.0] * 3,
        std=[40.0] * 3,
    )
    torch.manual_seed(0)
    model = get_model("unet", num_classes=3, in_channels=3, base_channels=4, depth=2)
    model_pt = save_model(tmp_path / "model.pt", model, spec)
    rng = np.random.default_rng(0)
    data = rng.integers(1, 255, (3, 300, 260), dtype=np.uint8)
    data[:, :40, :50] = 0  # nodata corner
    src = tmp_path / "ortho.tif"
    with rasterio.open(
        src,
        "w",
        driver="GTiff",
        height=300,
        width=260,
        count=3,
        dtype="uint8",
        crs="EPSG:2180",
        transform=from_origin(500000, 300000, 0.25, 0.25),
        nodata=0,
    ) as dst:
        dst.write(data)
    out = tmp_path / "pred"
    args = ["-q", "predict", str(model_pt), str(src), "--out", str(out), "--tiled"]
    args += ["--tile-size", "128", "--probabilities"]
    assert main(args) == 0
    assert "MP/s" in capsys.readouterr().out
    with rasterio.open(out / "ortho.tif") as res, rasterio.open(src) as ref:
        assert (res.crs, res.transform, res.shape) == (ref.crs, ref.transform, ref.shape)
        labels = res.read(1)
        assert res.nodata == 255 and (labels[:40, :50] == 255).all()
        assert (labels[40:, 50:] < 3).all()
    with rasterio.open(out / "ortho_probs.tif") as probs:
        assert probs.count == 3
    assert (
        main(["-q", "predict", str(model_pt), str(tmp_path / "none.tif"), "--out", "x", "--tiled"])
        == 2
    )
