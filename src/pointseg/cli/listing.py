"""``pointseg list``: the names of every registry."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_parser", "run"]


def _registries() -> dict[str, Callable[[], list[str]]]:
    from pointseg import data, experiments, losses, models, points, proposals, superpixels

    return {
        "models": models.list_models,
        "losses": losses.list_losses,
        "regularisers": losses.list_regularisers,
        "superpixels": superpixels.list_superpixel_methods,
        "schemes": points.list_point_schemes,
        "datasets": data.list_datasets,
        "presets": data.list_class_presets,
        "maps": data.list_map_presets,
        "experiments": experiments.list_sweep_presets,
        "proposals": proposals.list_proposal_strategies,
    }


WHAT = (
    "models",
    "losses",
    "regularisers",
    "superpixels",
    "schemes",
    "datasets",
    "presets",
    "maps",
    "experiments",
    "proposals",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models, losses, superpixel methods, ...")
    p.add_argument(
        "what",
        choices=WHAT,
        help="regularisers: losses on unlabelled pixels; presets: class files; maps: class "
        "mapping files; experiments: sweep presets; proposals: click-proposal strategies",
    )


def run(args: argparse.Namespace) -> int:
    print("\n".join(_registries()[args.what]()))
    return 0
