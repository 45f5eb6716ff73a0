"""``pointseg experiment``: a resumable sweep of trainings from a YAML file."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointseg.cli._common import key_value, quiet_lightning

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run a sweep of trainings from a YAML file (resumable)")
    p.add_argument(
        "sweep",
        help="sweep file (name, out, base, grid, extra) or a shipped sweep: small, "
        "paper-landcoverai, paper-oxford-pet (see 'pointseg list experiments')",
    )
    p.add_argument("--out", help="override the sweep's output folder")
    p.add_argument("--data", help="override the dataset root of every run")
    p.add_argument(
        "--set",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a base setting of every run, e.g. accelerator=cuda (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from pointseg.experiments import load_sweep, run_sweep
    from pointseg.io.outputs import check_output_dir

    quiet_lightning()
    base = dict(args.set)
    if args.data:
        base["data"] = args.data
    sweep = load_sweep(args.sweep, base_overrides=base)
    if args.out:
        sweep.out = Path(args.out)
    check_output_dir(sweep.out, what="sweep folder")
    records = run_sweep(sweep, overrides={"progress": False})
    done = sum(r.status == "done" for r in records)
    print((sweep.out / "results.md").read_text())
    print(f"{done} of {len(records)} runs done -> {sweep.out / 'results.csv'}")
    return 0 if done == len(records) else 1
