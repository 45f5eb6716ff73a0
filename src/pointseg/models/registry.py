"""Model registry: torchvision DeepLabV3/FCN, the paper's plain UNet, smp UNet/DeepLabV3+.

Every model maps (B, in_channels, H, W) to logits (B, num_classes, H, W). No weights are
downloaded unless asked (``weights="imagenet"``); without internet, ImageNet weights must
already be in the torch / Hugging Face cache, or be given as a local file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pointseg.io.atomic import atomic_write
from pointseg.models.unet import UNet
from pointseg.options import check_option_names, keyword_names

__all__ = [
    "ModelSpec",
    "build_model",
    "check_model_options",
    "get_model",
    "list_models",
    "load_model",
    "register_model",
    "save_model",
]

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder ``fn(*, in_channels, num_classes, weights, **kwargs) -> nn.Module``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """Names accepted by :func:`get_model`."""
    return sorted(_REGISTRY)


class _LogitsOnly(nn.Module):
    """Return the ``"out"`` tensor of torchvision segmentation models."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out["out"] if isinstance(out, dict) else out


class _PadToMultiple(nn.Module):
    """Pad the input to a multiple of ``multiple`` (reflection) and crop the logits back."""

    def __init__(self, net: nn.Module, multiple: int) -> None:
        super().__init__()
        self.net = net
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
        return self.net(x)[..., :h, :w]


def get_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int = 3,
    weights: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a segmentation model by name.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    num_classes : int
        Output classes.
    in_channels : int
        Input bands (any number; the first convolution is adapted).
    weights : None, "imagenet" or path
        None (default): random initialisation. "imagenet": ImageNet encoder weights, which must
        already be cached locally (nothing is downloaded without internet). A path: a local
        ``state_dict`` file for the encoder/backbone.
    **kwargs
        Model options (``base_channels``/``depth`` for ``unet``, ``encoder`` for ``smp_*``).

    Returns
    -------
    nn.Module
        Maps (B, in_channels, H, W) to logits (B, num_classes, H, W).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    if num_classes < 1 or in_channels < 1:
        raise ValueError(
            f"num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}"
        )
    return _REGISTRY[name](
        num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


# --------------------------------------------------------------------------------------------
# torchvision DeepLabV3 / FCN


def check_model_options(name: str, options: dict[str, Any]) -> None:
    """Check ``options`` against the model's constructor before any work is done.

    Unknown names are an error listing the valid ones; values of the wrong type or range are
    caught by building the model once (3 bands, 2 classes, no weights).

    Raises
    ------
    ValueError
        Naming the model, the option and the valid options.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    options = check_option_names("model", name, options, None)
    reserved = sorted(set(options) & {"num_classes", "in_channels"})
    if reserved:
        raise ValueError(
            f"model option(s) {reserved} are set by pointseg from the data; remove them"
        )
    trial = {k: v for k, v in options.items() if k != "weights"}
    check_option_names("model", name, trial, _option_names(name))
    if not trial:
        return
    import inspect

    params = inspect.signature(_REGISTRY[name]).parameters
    for key, value in trial.items():
        default = params[key].default if key in params else None
        kind = type(default)
        exact = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        widened = kind is float and isinstance(value, int) and not isinstance(value, bool)
        if kind in (int, float, str, bool) and not (exact or widened):
            raise ValueError(
                f"model option {key}={value!r} of {name!r} must be of type {kind.__name__} "
                f"(default {default!r})"
            )
    try:
        get_model(name, num_classes=2, in_channels=3, **trial)
    except (TypeError, ValueError, RuntimeError, AssertionError, KeyError) as exc:
        raise ValueError(f"model {name!r} rejects options {trial}: {exc}") from exc


def _option_names(name: str) -> list[str] | None:
    """The options a model's builder takes, or None when it passes any name on."""
    fixed = ("num_classes", "in_channels", "weights")
    names = keyword_names(_REGISTRY[name], skip=fixed)
    if names is not None or not name.startswith("smp_"):
        return names
    import inspect

    import segmentation_models_pytorch as smp

    own = inspect.signature(_REGISTRY[name]).parameters
    own_names = {n for n, p in own.items() if n not in fixed and p.kind is p.KEYWORD_ONLY}
    cls = smp.Unet if name == "smp_unet" else smp.DeepLabV3Plus
    skip = ("encoder_name", "encoder_weights", "in_channels", "classes")
    return sorted(own_names | set(keyword_names(cls.__init__, skip=skip) or []))


def _adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` bands; pretrained RGB filters are averaged."""
    if conv.in_channels == in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.repeat(1, in_channels, 1, 1) * (conv.in_channels / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _torchvision_backbone_weights(arch: str, weights: str | Path | None) -> Any:
    from torchvision import models

    if weights is None:
        return None
    if str(weights).lower() != "imagenet":
        return None  # a local file: loaded after construction
    enum = {"resnet50": models.ResNet50_Weights, "resnet101": models.ResNet101_Weights}[arch]
    w = enum.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
    if not cached.is_file():
        raise FileNotFoundError(
            f"ImageNet weights for {arch} are not available offline: expected {cached}. "
            f"Download {w.url} on a machine with internet and copy it there, pass a local "
            "file with weights=PATH, or train from scratch (weights=None)."
        )
    return w


def _load_local_weights(module: nn.Module, path: str | Path, *, what: str) -> None:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, unexpected = module.load_state_dict(state, strict=False)
    logger.info(
        "loaded %s weights from %s (%d missing, %d unexpected keys)",
        what,
        path,
        len(missing),
        len(unexpected),
    )


def _torchvision_model(kind: str, arch: str) -> Callable[..., nn.Module]:
    def build(
        *, num_classes: int, in_channels: int, weights: str | Path | None = None, **kwargs: Any
    ) -> nn.Module:
        from torchvision.models import segmentation

        if kwargs:
            raise ValueError(f"{kind}_{arch} takes no options, got {sorted(kwargs)}")
        fn = getattr(segmentation, f"{kind}_{arch}")
        net = fn(
            weights=None,
            weights_backbone=_torchvision_backbone_weights(arch, weights),
            num_classes=num_classes,
            aux_loss=False,
        )
        if weights is not None and str(weights).lower() != "imagenet":
            _load_local_weights(net.backbone, weights, what=f"{arch} backbone")
        net.backbone.conv1 = _adapt_first_conv(net.backbone.conv1, in_channels)
        return _LogitsOnly(net)

    build.__doc__ = f"torchvision {kind} with a {arch} backbone."
    return build


for _kind in ("deeplabv3", "fcn"):
    for _arch in ("resnet50", "resnet101"):
        register_model(f"{_kind}_{_arch}")(_torchvision_model(_kind, _arch))


# --------------------------------------------------------------------------------------------
# plain UNet


@register_model("unet")
def _unet(
    *,
    num_classes: int,
    in_channels: int,
    weights: str | Path | None = None,
    base_channels: int = 64,
    depth: int = 4,
) -> nn.Module:
    if weights is not None and str(weights).lower() == "imagenet":
        raise ValueError("the plain UNet has no ImageNet weights; use smp_unet for those")
    net = UNet(
        in_channels=in_channels, num_classes=num_classes, base_channels=base_channels, depth=depth
    )
    if weights is not None:
        _load_local_weights(net, weights, what="UNet")
    return net


# --------------------------------------------------------------------------------------------
# segmentation_models_pytorch


def _smp_model(cls_name: str) -> Callable[..., nn.Module]:
    def build(
        *,
        num_classes: int,
        in_channels: int,
        weights: str | Path | None = None,
        encoder: str = "resnet34",
        **kwargs: Any,
    ) -> nn.Module:
        try:
            import segmentation_models_pytorch as smp
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ImportError(
                "smp models need segmentation_models_pytorch: "
                "pip install segmentation-models-pytorch"
            ) from exc
        if encoder not in smp.encoders.get_encoder_names():
            raise ValueError(
                f"unknown smp encoder {encoder!r}; see segmentation_models_pytorch."
                "encoders.get_encoder_names() for the valid names"
            )
        imagenet = weights is not None and str(weights).lower() == "imagenet"
        try:
            net = getattr(smp, cls_name)(
                encoder_name=encoder,
                encoder_weights="imagenet" if imagenet else None,
                in_channels=in_channels,
                classes=num_classes,
                **kwargs,
            )
        except Exception as exc:
            if imagenet:
                raise RuntimeError(
                    f"could not load ImageNet weights for smp encoder {encoder!r} ({exc}); "
                    "without internet they must already be in the Hugging Face / torch cache, "
                    "or pass a local file with weights=PATH, or weights=None"
                ) from exc
            raise
        if weights is not None and not imagenet:
            _load_local_weights(net.encoder, weights, what=f"{encoder} encoder")
        return _PadToMultiple(net, 32)

    build.__doc__ = f"segmentation_models_pytorch {cls_name} with any smp encoder."
    return build


register_model("smp_unet")(_smp_model("Unet"))
register_model("smp_deeplabv3plus")(_smp_model("DeepLabV3Plus"))


# --------------------------------------------------------------------------------------------
# saved models


@dataclass
class ModelSpec:
    """Everything needed to rebuild a trained model and run it on new images.

    Geometry: a model trained on windows (``window`` set) runs in overlapping tiles at
    ``scale`` (model pixels per source pixel) over images of any size; a model trained on
    whole resized images (``image_size`` set) sees each image resized to that square
    (``resize_mode``: ``squash`` or ``letterbox``); neither: the image as it is.
    """

    name: str
    num_classes: int
    in_channels: int
    options: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    class_colors: list[list[int]] = field(default_factory=list)
    background: str | None = None
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    scale: float = 1.0
    image_size: int | None = None
    bands: list[int] | None = None
    window: int | None = None
    resize_mode: str = "squash"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model(spec: ModelSpec) -> nn.Module:
    """Build the (untrained) network described by ``spec``."""
    return get_model(
        spec.name, num_classes=spec.num_classes, in_channels=spec.in_channels, **spec.options
    )


def save_model(path: str | Path, model: nn.Module, spec: ModelSpec) -> Path:
    """Save ``{"state_dict", "spec", "format"}``, loadable with ``weights_only=True``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        torch.save({"format": "pointseg-model-1", "spec": spec.to_dict(), "state_dict": state}, tmp)
    return Path(path)


def load_model(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelSpec]:
    """Load a model saved by :func:`save_model` (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in reason or "weights_only" in reason:
            reason = "it holds objects other than tensors and plain values"
        raise ValueError(
            f"cannot read model file {path} ({reason[:200]}); give the model.pt written by "
            "'pointseg train' (a truncated or foreign file cannot be loaded)"
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != "pointseg-model-1":
        raise ValueError(
            f"{path} is not a pointseg model file (expected the model.pt written by "
            "'pointseg train', not a Lightning .ckpt)"
        )
    spec = ModelSpec(**blob["spec"])
    model = build_model(spec)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, spec
