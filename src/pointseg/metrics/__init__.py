"""Dataset-level segmentation metrics (confusion matrix, IoU, mIoU, accuracy)."""

from pointseg.metrics.confusion import (
    ConfusionMatrix,
    compute_metrics,
    confusion_matrix,
    format_metrics_table,
    save_metrics_json,
)

__all__ = [
    "ConfusionMatrix",
    "compute_metrics",
    "confusion_matrix",
    "format_metrics_table",
    "save_metrics_json",
]
