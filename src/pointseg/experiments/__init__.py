"""Experiment sweeps: many training runs from one YAML file (``pointseg experiment``).

``folds: by_group`` cross-validates a sweep by group and ``compare`` reports paired
differences (:mod:`pointseg.experiments.protocol`).
"""

from pointseg.experiments.protocol import group_folds, mean_se, paired_difference
from pointseg.experiments.sweep import (
    RunRecord,
    Sweep,
    list_sweep_presets,
    load_sweep,
    prepare_folds,
    resolve_sweep_file,
    run_sweep,
    summarise,
)

__all__ = [
    "RunRecord",
    "Sweep",
    "group_folds",
    "list_sweep_presets",
    "load_sweep",
    "mean_se",
    "paired_difference",
    "prepare_folds",
    "resolve_sweep_file",
    "run_sweep",
    "summarise",
]
