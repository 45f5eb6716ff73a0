"""The ``pointseg`` command line: one module per command. Only this package configures
logging and progress bars.

Every command validates its settings, files and outputs before any expensive step; any error
is one line on stderr (exit status 2) with a hint to rerun with ``-vv`` for the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pointseg.cli import (
    annotate,
    demo,
    evaluate,
    experiment,
    export,
    listing,
    points,
    predict,
    prepare,
    pseudolabels,
    superpixels,
    synthetic,
    train,
)
from pointseg.cli._common import CommandParser, report_error, setup_logging

__all__ = ["build_parser", "main"]

#: The commands, in the order of ``pointseg --help``.
COMMANDS = {
    "demo": demo,
    "synthetic": synthetic,
    "points": points,
    "pseudolabels": pseudolabels,
    "superpixels": superpixels,
    "train": train,
    "annotate": annotate,
    "experiment": experiment,
    "evaluate": evaluate,
    "predict": predict,
    "export": export,
    "prepare": prepare,
    "list": listing,
}


def build_parser() -> CommandParser:
    """The argument parser of ``pointseg``."""
    from pointseg import __version__

    parser = CommandParser(
        prog="pointseg",
        description="Semantic segmentation of aerial imagery from a few clicked query points.",
    )
    parser.add_argument("--version", action="version", version=f"pointseg {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="warnings only, no progress bars"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pointseg``; returns the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:  # usage errors (one line, status 2), --help, --version
        return exc.code if isinstance(exc.code, int) else 2
    if extra:
        print(
            f"pointseg {args.command}: error: unrecognized arguments: {' '.join(extra)} "
            f"(see 'pointseg {args.command} --help')",
            file=sys.stderr,
        )
        return 2
    # the other processes of a distributed run log warnings only (rank 0 tells the story)
    other_rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) != "0"
    setup_logging(-1 if args.quiet or other_rank else args.verbose)
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose > 1:
            raise
        report_error(args.command, exc)
        return 2
