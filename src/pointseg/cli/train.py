"""``pointseg train``: train a model from query points (or full masks).

Every flag comes from a :class:`~pointseg.training.TrainConfig` field (its type from the
annotation, its help from :data:`~pointseg.training.config.SETTING_HELP`), so a new setting
is a new flag without touching this module.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from pointseg.cli._common import (
    add_setting_flags,
    config_from_args,
    progress_wrapper,
    quiet_lightning,
)

__all__ = ["add_parser", "run"]

#: TrainConfig fields with no flag: ``progress`` follows ``--quiet``; ``data`` is positional.
_NO_FLAG = ("data", "progress")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from pointseg.training import TrainConfig

    p = sub.add_parser("train", help="train a model from query points (or full masks)")
    p.add_argument("data", nargs="?", help="dataset root (images/, masks/), or rasters")
    p.add_argument("--config", help="YAML of training settings; command-line options override it")
    add_setting_flags(p, [f.name for f in fields(TrainConfig) if f.name not in _NO_FLAG])


def run(args: argparse.Namespace) -> int:
    from pointseg.data import resolve_class_file
    from pointseg.metrics import format_metrics_table
    from pointseg.training import TrainConfig, run_training

    quiet_lightning()
    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    cfg = config_from_args(args, cfg)
    if args.data:
        cfg.data = args.data
    if cfg.classes:
        cfg.classes = str(resolve_class_file(cfg.classes))
    cfg.progress = not args.quiet
    result = run_training(cfg, progress=progress_wrapper(cfg.progress, "preparing"))
    if result.rank or result.launched:  # rank 0 of the training processes has reported
        return 0
    for name, metrics in result.metrics.items():
        split = result.splits.get(name)
        scored = f"{len(split.names)} images" if split is not None else metrics.get("scored", "")
        print(f"\n{name} metrics ({scored}):")
        print(format_metrics_table(metrics))
    if (result.run_dir / "predictions").is_dir():
        print(f"\npredicted maps: {result.run_dir / 'predictions'}")
    print(f"\nmodel: {result.model_path}\nrun directory: {result.run_dir}")
    return 0
