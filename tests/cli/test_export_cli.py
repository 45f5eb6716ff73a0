"""``pointseg export`` and ONNX models in ``predict`` / ``evaluate``."""

import numpy as np
import pytest
import torch
from PIL import Image

from pointseg.cli import main
from pointseg.models import ModelSpec, get_model, save_model

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _model(tmp_path):
    spec = ModelSpec(
        name="unet",
        num_classes=5,
        in_channels=3,
        options={"base_channels": 4, "depth": 2},
        class_names=["background", "building", "woodland", "water", "road"],
        class_colors=[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]],
        mean=[120.0] * 3,
        std=[50.0] * 3,
    )
    torch.manual_seed(0)
    net = get_model("unet", num_classes=5, in_channels=3, base_channels=4, depth=2)
    return save_model(tmp_path / "model.pt", net, spec)


def test_export_then_predict_and_evaluate_with_onnx(tmp_path, tiny_synthetic, capsys):
    model_pt = _model(tmp_path)
    onnx_path = tmp_path / "model.onnx"
    assert main(["-q", "export", str(model_pt), str(onnx_path)]) == 0
    assert "checked against PyTorch" in capsys.readouterr().out
    images = tiny_synthetic / "images"
    for name, model in (("torch", model_pt), ("onnx", onnx_path)):
        out = tmp_path / name
        assert main(["-q", "predict", str(model), str(images), "--out", str(out)]) == 0
    for png in sorted((tmp_path / "torch").glob("*.png")):
        a = np.asarray(Image.open(png))
        b = np.asarray(Image.open(tmp_path / "onnx" / png.name))
        assert (a == b).mean() > 0.999  # float differences may flip a rare tied pixel
    args = ["-q", "evaluate", str(onnx_path), str(tiny_synthetic), "--split", "test"]
    assert main(args) == 0
    assert "mIoU" in capsys.readouterr().out


def test_export_errors_are_one_line(tmp_path, capsys):
    assert main(["-q", "export", str(tmp_path / "none.pt"), str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pointseg export: error:") and err.count("\n") == 1
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    img = tmp_path / "i.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert main(["-q", "predict", str(tmp_path / "junk.onnx"), str(img), "--out", "x"]) == 2
    assert "junk.onnx" in capsys.readouterr().err
