import pytest
import torch

from pointseg.models import (
    ModelSpec,
    UNet,
    build_model,
    get_model,
    list_models,
    load_model,
    save_model,
)


def test_list_models_has_paper_backbones():
    names = list_models()
    for n in (
        "deeplabv3_resnet50",
        "deeplabv3_resnet101",
        "fcn_resnet50",
        "fcn_resnet101",
        "unet",
        "smp_unet",
        "smp_deeplabv3plus",
    ):
        assert n in names


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="available models: .*deeplabv3_resnet50"):
        get_model("segformer", num_classes=3)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("unet", {"base_channels": 8, "depth": 3}),
        ("smp_unet", {"encoder": "resnet18"}),
        ("smp_deeplabv3plus", {"encoder": "resnet18"}),
        ("fcn_resnet50", {}),
        ("deeplabv3_resnet50", {}),
    ],
)
def test_models_any_bands_any_size(name, options):
    model = get_model(name, num_classes=4, in_channels=5, **options).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 5, 45, 67))
    assert out.shape == (1, 4, 45, 67)


def test_unet_trains_one_step():
    model = UNet(in_channels=2, num_classes=3, base_channels=4, depth=2)
    x, y = torch.randn(2, 2, 16, 16), torch.randint(0, 3, (2, 16, 16))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_imagenet_weights_offline_error_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not available offline.*resnet50"):
        get_model("fcn_resnet50", num_classes=3, weights="imagenet")
    with pytest.raises(ValueError, match="no ImageNet"):
        get_model("unet", num_classes=3, weights="imagenet")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_model("unet", num_classes=3, weights=tmp_path / "missing.pt")


def test_local_weights_file_is_loaded(tmp_path):
    src = UNet(in_channels=3, num_classes=2, base_channels=4, depth=2)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    model = get_model("unet", num_classes=2, base_channels=4, depth=2, weights=tmp_path / "w.pt")
    for a, b in zip(src.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_save_load_round_trip_weights_only(tmp_path):
    spec = ModelSpec(
        name="unet",
        num_classes=3,
        in_channels=4,
        options={"base_channels": 4, "depth": 2},
        class_names=["a", "b", "c"],
        mean=[0.0] * 4,
        std=[1.0] * 4,
        image_size=32,
    )
    model = build_model(spec)
    path = save_model(tmp_path / "m.pt", model, spec)
    blob = torch.load(path, weights_only=True)
    assert blob["spec"]["class_names"] == ["a", "b", "c"]
    loaded, spec2 = load_model(path)
    assert spec2 == spec
    x = torch.randn(1, 4, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a pointseg model"):
        load_model(tmp_path / "other.pt")
