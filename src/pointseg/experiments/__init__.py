"""Experiment sweeps: many training runs from one YAML file (``pointseg experiment``)."""

from pointseg.experiments.sweep import (
    RunRecord,
    Sweep,
    list_sweep_presets,
    load_sweep,
    resolve_sweep_file,
    run_sweep,
    summarise,
)

__all__ = [
    "RunRecord",
    "Sweep",
    "list_sweep_presets",
    "load_sweep",
    "resolve_sweep_file",
    "run_sweep",
    "summarise",
]
