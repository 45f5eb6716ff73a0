"""Training: configuration, data preparation, the Lightning task and the run driver."""

from pointseg.training.callbacks import EpochCSVLogger, read_history
from pointseg.training.config import TrainConfig
from pointseg.training.data import (
    PreparedSplit,
    SegmentationArrayDataset,
    band_statistics,
    prepare_split,
)
from pointseg.training.task import SegmentationTask
from pointseg.training.train import (
    TrainResult,
    default_cache_dir,
    evaluate_prepared,
    prepare_splits,
    run_training,
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
]
