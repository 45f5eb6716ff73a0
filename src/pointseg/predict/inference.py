"""Running a trained model on images of any size, on CPU or CUDA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointseg.models.registry import ModelSpec, load_model

__all__ = ["open_model", "predict_labels", "predict_logits", "resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``"auto"``/None → CUDA when available, else CPU; other strings as given (validated)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} was asked for but CUDA is not available here; use 'cpu'"
        )
    return dev


def open_model(
    path: str | Path, *, device: str | torch.device | None = "auto"
) -> tuple[Any, ModelSpec]:
    """Load a trained model for prediction: ``model.pt`` (PyTorch) or an exported ``.onnx``.

    Returns
    -------
    model : nn.Module or pointseg.export.OnnxModel
        In eval mode, on ``device`` (ONNX models run through onnxruntime: CPU, or CUDA when
        ``device`` is a CUDA device and onnxruntime-gpu is installed).
    spec : ModelSpec
    """
    path = Path(path)
    dev = resolve_device(device)
    if path.suffix.lower() == ".onnx":
        from pointseg.export import load_onnx

        model, spec = load_onnx(path, providers="cuda" if dev.type == "cuda" else "cpu")
        return model.eval(), spec
    model, spec = load_model(path, map_location=dev)
    return model.to(dev).eval(), spec


@torch.no_grad()
def predict_logits(
    model: nn.Module, spec: ModelSpec, image: np.ndarray, *, device: torch.device | None = None
) -> torch.Tensor:
    """Class scores for one image at its own resolution.

    Parameters
    ----------
    model : nn.Module or pointseg.export.OnnxModel
        In eval mode.
    spec : ModelSpec
        Normalisation, band count and the training image size.
    image : ndarray, shape (H, W, C)

    Returns
    -------
    logits : Tensor, shape (num_classes, H, W)
        The model runs at ``spec.image_size`` (when set); its logits are resized back to
        (H, W) bilinearly, so labels are never interpolated.
    """
    if image.ndim != 3 or image.shape[2] != spec.in_channels:
        raise ValueError(
            f"the model expects {spec.in_channels} band(s), the image has shape {image.shape}; "
            "select bands with --bands or use a model trained on this band count"
        )
    if device is None:  # a torch module's parameters, or an ONNX model's ``device``
        device = getattr(model, "device", None) or next(model.parameters()).device
    h, w = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    x = ((x - mean) / std).to(device)
    if spec.image_size and (h, w) != (spec.image_size, spec.image_size):
        x = F.interpolate(x, size=(spec.image_size,) * 2, mode="bilinear", antialias=True)
    logits = model(x)
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits[0]


def predict_labels(
    model: nn.Module, spec: ModelSpec, image: np.ndarray, *, device: torch.device | None = None
) -> np.ndarray:
    """(H, W) uint8 class map for one (H, W, C) image."""
    return predict_logits(model, spec, image, device=device).argmax(0).to(torch.uint8).cpu().numpy()
