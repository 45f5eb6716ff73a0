"""Training: configuration, data preparation, the Lightning task and the run driver.

The Lightning parts (the task, callbacks and :func:`run_training`) are imported on first use,
so that tools which only need the settings and the data path (``pointseg annotate``) do not
pay for Lightning's import (about 270 MB of memory).
"""

from importlib import import_module
from typing import Any

from pointseg.training.config import TrainConfig
from pointseg.training.data import (
    PreparedSplit,
    SegmentationArrayDataset,
    band_statistics,
    prepare_split,
    training_view,
)

__all__ = [
    "EpochCSVLogger",
    "PreparedSplit",
    "SegmentationArrayDataset",
    "SegmentationTask",
    "TrainConfig",
    "TrainResult",
    "band_statistics",
    "default_cache_dir",
    "evaluate_prepared",
    "prepare_split",
    "prepare_splits",
    "read_history",
    "run_training",
    "training_view",
]

#: Names imported on first use, and their modules.
_LAZY = {
    "EpochCSVLogger": "pointseg.training.callbacks",
    "read_history": "pointseg.training.callbacks",
    "SegmentationTask": "pointseg.training.task",
    "TrainResult": "pointseg.training.train",
    "default_cache_dir": "pointseg.training.train",
    "evaluate_prepared": "pointseg.training.train",
    "prepare_splits": "pointseg.training.train",
    "run_training": "pointseg.training.train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pointseg.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
