"""Prediction: class maps (PNG, georeferenced GeoTIFF) and overlays for folders of images."""

from pointseg.predict.evaluate import evaluate_dataset
from pointseg.predict.folder import predict_folder
from pointseg.predict.inference import open_model, predict_labels, predict_logits, resolve_device
from pointseg.predict.tiled import predict_array, predict_raster

__all__ = [
    "evaluate_dataset",
    "open_model",
    "predict_array",
    "predict_folder",
    "predict_labels",
    "predict_logits",
    "predict_raster",
    "resolve_device",
]
