"""Running a trained model on images of any size, on CPU or CUDA."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointseg.io.raster import BandLayout
from pointseg.models.registry import ModelSpec, load_model

__all__ = [
    "band_mismatch",
    "open_model",
    "predict_labels",
    "predict_logits",
    "resolve_bands",
    "resolve_device",
    "worker_model",
]


def _fmt(indices: Sequence[int]) -> str:
    return ",".join(str(int(i)) for i in indices)


def band_mismatch(
    spec: ModelSpec,
    n_bands: int,
    *,
    image: str | Path = "the image",
    model: str | Path | None = None,
    chosen: Sequence[int] | None = None,
    layout: BandLayout | None = None,
) -> ValueError:
    """The error for a model fed ``n_bands`` bands instead of ``spec.in_channels``.

    Parameters
    ----------
    spec : ModelSpec
    n_bands : int
        Bands the image gives (those chosen, or every band but alpha bands).
    image : str or Path
        Names the image in the message.
    model : str or Path, optional
        Names the model (default: its architecture, ``spec.name``).
    chosen : list of int, optional
        The band indices the user chose (``--bands``), if any.
    layout : BandLayout, optional
        The image file's bands, for the suggestion.

    Returns
    -------
    ValueError
        "model X expects N band(s) (trained on bands [..]); IMAGE has M: choose N of them with
        --bands i,j,k", or how to fix it when the image has too few bands.
    """
    n = spec.in_channels
    label = str(model) if model is not None else repr(spec.name)
    trained = list(spec.bands) if spec.bands is not None else list(range(n))
    head = f"model {label} expects {n} band(s) (trained on bands {trained}); "
    if layout is None:
        layout = BandLayout(n_bands)
    if chosen is not None:
        what = (
            f"--bands {_fmt(chosen)} picks {len(chosen)} of the {layout.count} band(s) of {image}"
        )
    else:
        alpha = ""
        if layout.alpha:
            alpha = f" (plus alpha band {_fmt(layout.alpha)}, read as a validity mask)"
        what = f"{image} has {n_bands}{alpha}"
    return ValueError(f"{head}{what}: {_fix(n, layout)}")


def _fix(n: int, layout: BandLayout) -> str:
    """How to feed ``n`` bands of an image with ``layout`` to a model."""
    usable, total = layout.default, list(range(layout.count))
    if len(usable) >= n:
        return f"choose {n} of them with --bands {_fmt(usable[:n])}"
    if len(total) >= n:
        return (
            f"choose {n} of them with --bands {_fmt(total[:n])} (band(s) {_fmt(layout.alpha)} "
            "being marked alpha: select them only if they are real bands)"
        )
    return (
        f"it lacks bands the model was trained on: use images with the model's {n} bands "
        f"(choosing them with --bands i,j,...) or a model trained on {layout.count} band(s)"
    )


def resolve_bands(
    spec: ModelSpec,
    layout: BandLayout,
    bands: Sequence[int] | None = None,
    *,
    image: str | Path = "the image",
    model: str | Path | None = None,
) -> list[int]:
    """The zero-based bands of an image file to feed a model, checked before predicting.

    ``bands`` (the user's ``--bands``) overrides the model's ``spec.bands``; without either,
    every band but alpha bands. Band indices number the file's bands, alpha bands included.

    Raises
    ------
    ValueError
        Naming the image and ``--bands``: an index out of range (with the band count), or a
        band count other than ``spec.in_channels``.
    """
    if bands is not None:
        try:
            keep = layout.select(bands, image)
        except ValueError as exc:
            raise ValueError(f"--bands {_fmt(bands)}: {exc}") from None
        if len(keep) != spec.in_channels:
            raise band_mismatch(
                spec, len(keep), image=image, model=model, chosen=keep, layout=layout
            )
        return keep
    if spec.bands is not None:
        keep = [int(b) for b in spec.bands]
        bad = [b for b in keep if not 0 <= b < layout.count]
        if bad:
            label = str(model) if model is not None else repr(spec.name)
            raise ValueError(
                f"model {label} was trained on bands {keep}, but {image} has {layout.count} "
                f"band(s) (indices 0..{layout.count - 1}; band index {_fmt(bad)} is out of "
                f"range): {_fix(spec.in_channels, layout)}"
            )
        if len(keep) != spec.in_channels:
            raise band_mismatch(spec, len(layout.default), image=image, model=model, layout=layout)
        return keep
    keep = layout.default
    if len(keep) != spec.in_channels:
        raise band_mismatch(spec, len(keep), image=image, model=model, layout=layout)
    return keep


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
    model: nn.Module,
    spec: ModelSpec,
    image: np.ndarray,
    *,
    device: torch.device | None = None,
    where: str | Path | None = None,
) -> torch.Tensor:
    """Class scores for one image at its own resolution.

    Parameters
    ----------
    model : nn.Module or pointseg.export.OnnxModel
        In eval mode.
    spec : ModelSpec
        Normalisation, band count and the training image size.
    image : ndarray, shape (H, W, C)
        ``C`` must be ``spec.in_channels`` (bands already chosen).
    where : str or Path, optional
        Names the image in errors.

    Returns
    -------
    logits : Tensor, shape (num_classes, H, W)
        The model runs at ``spec.image_size`` (when set); its logits are resized back to
        (H, W) bilinearly, so labels are never interpolated.
    """
    if image.ndim != 3:
        raise ValueError(
            f"{where or 'the image'} has shape {image.shape}; expected (height, width, bands)"
        )
    if image.shape[2] != spec.in_channels:
        raise band_mismatch(spec, image.shape[2], image=where or "the image")
    if device is None:  # a torch module's parameters, or an ONNX model's ``device``
        device = getattr(model, "device", None) or next(model.parameters()).device
    h, w = image.shape[:2]
    if spec.window:  # trained on windows: overlapping tiles at the training scale
        from pointseg.predict.tiled import default_overlap, predict_array, predict_tile

        probs = predict_array(
            model,
            spec,
            image,
            tile_size=predict_tile(spec.window, (h, w), spec.scale),
            overlap=default_overlap(spec.window),
            scale=float(spec.scale),
            where=str(where or "the image"),
        )
        return torch.from_numpy(probs).clamp_min(1e-12).log().to(device)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    x = ((x - mean) / std).to(device)
    if spec.image_size and getattr(spec, "resize_mode", "squash") == "letterbox":
        from pointseg.data.transforms import letterbox_shape

        lh, lw = letterbox_shape((h, w), spec.image_size)
        box = ((-mean / std).to(device)).expand(1, -1, spec.image_size, spec.image_size).clone()
        box[..., :lh, :lw] = F.interpolate(x, size=(lh, lw), mode="bilinear", antialias=True)
        x = box  # padded with source zeros, as training letterboxes
        logits = model(x)[..., :lh, :lw]
    else:
        if spec.image_size and (h, w) != (spec.image_size, spec.image_size):
            x = F.interpolate(x, size=(spec.image_size,) * 2, mode="bilinear", antialias=True)
        logits = model(x)
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits[0]


def predict_labels(
    model: nn.Module,
    spec: ModelSpec,
    image: np.ndarray,
    *,
    device: torch.device | None = None,
    where: str | Path | None = None,
) -> np.ndarray:
    """(H, W) uint8 class map for one (H, W, C) image."""
    logits = predict_logits(model, spec, image, device=device, where=where)
    return logits.argmax(0).to(torch.uint8).cpu().numpy()


def worker_model(model_path: str, device: str | None) -> tuple[Any, Any, torch.device]:
    """The model of ``model_path`` on ``device``, loaded once per Dask worker process.

    Tasks of one run share it; a new version of the file (size, modification time) is
    loaded again.
    """
    from pointseg.distributed import worker_cached

    dev = resolve_device(device)
    stat = Path(model_path).stat()
    model, spec = worker_cached(
        ("model", str(model_path), stat.st_mtime_ns, stat.st_size, str(dev)),
        lambda: open_model(model_path, device=dev),
    )
    return model, spec, dev
