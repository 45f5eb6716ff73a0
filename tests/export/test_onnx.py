"""ONNX export of saved models and ONNX Runtime inference (pointseg.export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pointseg.export import (  # noqa: E402
    METADATA_KEY,
    OnnxExportError,
    OnnxModel,
    export_onnx,
    load_onnx,
    read_onnx_spec,
)
from pointseg.export import onnx as export_mod  # noqa: E402
from pointseg.models import ModelSpec, get_model, load_model, save_model  # noqa: E402
from pointseg.models.registry import _PadToMultiple  # noqa: E402
from pointseg.predict import predict_logits  # noqa: E402

SPEC = ModelSpec(
    name="unet",
    num_classes=3,
    in_channels=4,
    options={"base_channels": 4, "depth": 2},
    class_names=["background", "building", "water"],
    class_colors=[[0, 0, 0], [255, 0, 0], [0, 0, 255]],
    background="background",
    mean=[0.1, 0.2, 0.3, 0.4],
    std=[0.5, 0.6, 0.7, 0.8],
    scale=255.0,
    image_size=None,
    bands=[0, 1, 2, 3],
)


def _save(path: Path, spec: ModelSpec, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = get_model(
        spec.name, num_classes=spec.num_classes, in_channels=spec.in_channels, **spec.options
    )
    # non-trivial batch-norm statistics, so that eval-mode export matters
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return save_model(path, model, spec)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("onnx")
    pt = _save(root / "model.pt", SPEC)
    return pt, export_onnx(pt, root / "model.onnx")


@pytest.mark.parametrize("shape", [(1, 4, 64, 64), (2, 4, 96, 80), (2, 4, 33, 47)])
def test_outputs_match_pytorch_at_any_size_and_batch(exported, shape):
    pt, path = exported
    model, _ = load_model(pt)
    onnx_model, _ = load_onnx(path)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
    got = onnx_model(x)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    assert got.shape == (shape[0], 3, *shape[2:])
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), (got - ref).abs().max()


def test_graph_io_names_and_dynamic_axes(exported):
    _, path = exported
    proto = onnx.load(str(path))
    (inp,) = proto.graph.input
    (out,) = proto.graph.output
    assert (inp.name, out.name) == ("image", "logits")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 4, "height", "width"]
    assert proto.opset_import[0].version == 18


def test_spec_round_trips_through_metadata(exported):
    _, path = exported
    _, spec = load_onnx(path)
    assert spec == SPEC
    assert read_onnx_spec(path) == SPEC
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert METADATA_KEY in meta and meta["pointseg.format"] == "pointseg-onnx-1"


def test_onnx_model_stands_in_for_torch_model(exported):
    pt, path = exported
    model, spec = load_model(pt)
    onnx_model = OnnxModel(path)
    assert onnx_model.eval() is onnx_model and onnx_model.to("cpu") is onnx_model
    assert onnx_model.device == torch.device("cpu")
    assert onnx_model.input_size is None and onnx_model.providers == ["CPUExecutionProvider"]
    image = np.random.default_rng(0).random((40, 52, 4), dtype=np.float32)
    cpu = torch.device("cpu")
    ref = predict_logits(model, spec, image, device=cpu)
    got = predict_logits(onnx_model, onnx_model.spec, image, device=cpu)
    assert got.shape == (3, 40, 52)
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match=r"expects a \(batch, 4, height, width\)"):
        onnx_model(torch.zeros(1, 3, 32, 32))


def test_fixed_size_export(tmp_path, exported):
    pt, _ = exported
    path = export_onnx(pt, tmp_path / "fixed.onnx", dynamic_size=False, input_size=(48, 40))
    onnx_model, _ = load_onnx(path, providers="cpu")
    assert onnx_model.input_size == (48, 40)
    assert onnx_model(torch.zeros(2, 4, 48, 40)).shape == (2, 3, 48, 40)
    with pytest.raises(ValueError, match="exported for 48x40 inputs"):
        onnx_model(torch.zeros(1, 4, 64, 64))
    with pytest.raises(ValueError, match="no spec.image_size"):
        export_onnx(pt, tmp_path / "nosize.onnx", dynamic_size=False)


def test_verify_failure_names_the_difference_and_writes_nothing(tmp_path, exported, monkeypatch):
    pt, _ = exported

    class _Shifted(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x) + 0.5

    real = export_mod._export_ready
    monkeypatch.setattr(export_mod, "_export_ready", lambda m: _Shifted(real(m)).eval())
    out = tmp_path / "bad.onnx"
    with pytest.raises(OnnxExportError, match=r"max \|difference\| 0\.5"):
        export_onnx(pt, out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_errors(tmp_path, exported):
    pt, _ = exported
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        export_onnx(tmp_path / "nope.pt", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="opset must be between 9 and"):
        export_onnx(pt, tmp_path / "x.onnx", opset=99)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx does not exist"):
        load_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(ValueError, match="junk.onnx is not a readable ONNX model"):
        load_onnx(junk)
    with pytest.raises(ValueError, match="junk.onnx is not a readable ONNX model"):
        read_onnx_spec(junk)

    # a valid ONNX model that pointseg did not write
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Identity", ["image"], ["logits"])],
        "plain",
        [h.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
        [h.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
    )
    plain = tmp_path / "plain.onnx"
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(plain))
    with pytest.raises(ValueError, match="without pointseg metadata"):
        load_onnx(plain)
    with pytest.raises(ValueError, match="without pointseg metadata"):
        read_onnx_spec(plain)


def test_unavailable_provider_is_a_clear_error(exported):
    _, path = exported
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider is available here")
    with pytest.raises(RuntimeError, match="not available here.*onnxruntime-gpu"):
        load_onnx(path, providers="cuda")
    onnx_model, _ = load_onnx(path, providers="auto")
    assert onnx_model.providers == ["CPUExecutionProvider"]


@pytest.mark.parametrize("size", [(20, 20), (33, 31), (64, 64), (40, 70)])
def test_pad_to_multiple_twin_is_exact_and_exports_dynamically(tmp_path, size):
    torch.manual_seed(0)
    wrapped = _PadToMultiple(nn.Conv2d(2, 3, 3, padding=1), 32).eval()
    twin = export_mod._export_ready(wrapped)
    x = torch.randn(1, 2, *size)
    with torch.no_grad():
        ref = wrapped(x)
        assert torch.equal(twin(x), ref)
    data = export_mod._torch_export(twin, torch.zeros(2, 2, 64, 64), opset=18, dynamic_size=True)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"image": x.numpy()})
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "options"), [("fcn_resnet50", {}), ("smp_unet", {"encoder": "resnet18"})]
)
def test_registry_backbones_export(tmp_path, name, options):
    spec = ModelSpec(name=name, num_classes=3, in_channels=4, options=options)
    pt = _save(tmp_path / "model.pt", spec)
    path = export_onnx(pt, tmp_path / "model.onnx")  # verifies at 64x64 and 75x53
    model, _ = load_model(pt)
    onnx_model, _ = load_onnx(path)
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        ref = model(x)
    assert torch.allclose(onnx_model(x), ref, atol=1e-4, rtol=1e-4)
