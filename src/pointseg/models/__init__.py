"""Segmentation models behind one registry: ``list_models()``, ``get_model(name, ...)``."""

from pointseg.models.registry import (
    ModelSpec,
    build_model,
    check_model_options,
    get_model,
    list_models,
    load_model,
    register_model,
    save_model,
)
from pointseg.models.unet import UNet

__all__ = [
    "ModelSpec",
    "UNet",
    "build_model",
    "check_model_options",
    "get_model",
    "list_models",
    "load_model",
    "register_model",
    "save_model",
]
