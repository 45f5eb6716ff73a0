"""Experiment sweeps: many training runs from one YAML file (``pointseg experiment``)."""

from pointseg.experiments.sweep import RunRecord, Sweep, load_sweep, run_sweep, summarise

__all__ = ["RunRecord", "Sweep", "load_sweep", "run_sweep", "summarise"]
