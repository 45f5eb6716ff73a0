"""Export trained models to ONNX and run them with ONNX Runtime (needs onnx, onnxruntime)."""

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
    "export_onnx",
    "load_onnx",
    "read_onnx_spec",
]
