"""Export trained models to ONNX and run them with ONNX Runtime (needs onnx, onnxruntime).

:func:`export_onnx` writes pointseg's own ONNX format (normalised input, logits);
:func:`export_deepness` writes a model that the Deepness QGIS plugin runs as it is.
"""

from pointseg.export.deepness import export_deepness, raster_resolution_cm, read_deepness_metadata
from pointseg.export.onnx import (
    METADATA_KEY,
    OnnxExportError,
    OnnxModel,
    export_onnx,
    load_onnx,
    read_onnx_spec,
)

__all__ = [
    "METADATA_KEY",
    "OnnxExportError",
    "OnnxModel",
    "export_deepness",
    "export_onnx",
    "load_onnx",
    "raster_resolution_cm",
    "read_deepness_metadata",
    "read_onnx_spec",
]
