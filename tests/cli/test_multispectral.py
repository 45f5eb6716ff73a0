"""Any number of bands end to end: 5-band uint16 GeoTIFFs through train, predict, evaluate."""

import numpy as np
import rasterio
import torch
from PIL import Image
from rasterio.transform import from_origin

from pointseg.cli import main

TINY = [
    "--image-size",
    "32",
    "--model-options",
    '{"base_channels": 4, "depth": 2}',
    "--batch-size",
    "4",
    "--n-segments",
    "30",
    "--n-points",
    "8",
    "--max-epochs",
    "1",
    "--accelerator",
    "cpu",
]


def _five_band_dataset(root, n=12, size=32):
    """Water is visible only in band 4 (a near-infrared-like band); bands are uint16."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.yaml").write_text("classes: [land, water]\n")
    rng = np.random.default_rng(0)
    for k in range(n):
        mask = np.zeros((size, size), np.uint8)
        r = int(rng.integers(6, 12))
        mask[size // 2 - r : size // 2 + r, : size // 2 + r] = 1
        bands = rng.integers(1000, 1200, (5, size, size)).astype(np.uint16)
        bands[4] = np.where(mask == 1, 300, 3000) + rng.integers(0, 50, (size, size))
        profile = {"driver": "GTiff", "height": size, "width": size, "count": 5}
        with rasterio.open(
            root / "images" / f"ms{k}.tif",
            "w",
            dtype="uint16",
            crs="EPSG:32633",
            transform=from_origin(400000 + 40 * k, 5000000, 1.0, 1.0),
            **profile,
        ) as dst:
            dst.write(bands)
        Image.fromarray(mask).save(root / "masks" / f"ms{k}.png")
    return root


def test_five_bands_train_predict_and_band_selection(tmp_path, capsys):
    data = _five_band_dataset(tmp_path / "ms")
    cache = ["--cache-dir", str(tmp_path / "c")]
    assert main(["-q", "train", str(data), "--out", str(tmp_path / "all"), *TINY, *cache]) == 0
    ckpt = torch.load(tmp_path / "all" / "model.pt", weights_only=True)
    spec = ckpt["spec"]
    assert spec["in_channels"] == 5 and len(spec["mean"]) == 5 and len(spec["std"]) == 5
    assert spec["mean"][4] > 1000  # statistics from the data, band by band
    sel = ["--bands", "0,4"]
    assert (
        main(["-q", "train", str(data), "--out", str(tmp_path / "two"), *sel, *TINY, *cache]) == 0
    )
    spec2 = torch.load(tmp_path / "two" / "model.pt", weights_only=True)["spec"]
    assert spec2["in_channels"] == 2 and spec2["bands"] == [0, 4]
    # predicting a 5-band GeoTIFF with the 2-band model picks the bands it was trained on
    out = tmp_path / "pred"
    image = data / "images" / "ms0.tif"
    assert (
        main(["-q", "predict", str(tmp_path / "two" / "model.pt"), str(image), "--out", str(out)])
        == 0
    )
    with rasterio.open(out / "ms0.tif") as src, rasterio.open(image) as ref:
        assert src.crs == ref.crs and src.transform == ref.transform and src.count == 1
    capsys.readouterr()


def test_a_three_band_model_on_five_band_images_needs_bands(tmp_path, capsys):
    data = _five_band_dataset(tmp_path / "ms")
    run = tmp_path / "rgb"
    args = ["-q", "train", str(data), "--out", str(run), "--bands", "0,1,2", *TINY]
    assert main([*args, "--cache-dir", str(tmp_path / "c")]) == 0
    spec = torch.load(run / "model.pt", weights_only=True)["spec"]
    image = data / "images" / "ms0.tif"
    # the model remembers its bands: predict picks them without being told
    assert (
        main(["-q", "predict", str(run / "model.pt"), str(image), "--out", str(tmp_path / "a")])
        == 0
    )
    # other bands of the right count are accepted ...
    argv = ["-q", "predict", str(run / "model.pt"), str(image), "--out", str(tmp_path / "b")]
    assert main([*argv, "--bands", "2,3,4"]) == 0
    # ... a wrong count is refused before any output, naming --bands
    capsys.readouterr()
    out = tmp_path / "c-out"
    argv = ["-q", "predict", str(run / "model.pt"), str(image), "--out", str(out)]
    assert main([*argv, "--bands", "0,1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bands" in err and "ms0.tif" in err
    assert not out.exists() or not any(out.iterdir())
    assert spec["bands"] == [0, 1, 2]
