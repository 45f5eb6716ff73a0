"""The ``--dask-scheduler`` / ``--dask-workers`` options of the commands that run on Dask."""

from __future__ import annotations

import argparse
import contextlib
import logging
from typing import Any

__all__ = ["add_dask_flags", "client_from_args", "uses_dask"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def add_dask_flags(parser: argparse.ArgumentParser) -> None:
    """Add the mutually exclusive ``--dask-scheduler`` and ``--dask-workers`` options."""
    g = parser.add_argument_group(
        'distributed (Dask; needs pip install "pointseg[dask]")',
        "one task per image (or raster block), each on one thread; a failed task is retried "
        "once, then reported by name while the others complete (exit status 2); a rerun "
        "skips the images and blocks whose outputs exist",
    )
    x = g.add_mutually_exclusive_group()
    x.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.1:8786; "
        "start it with 'dask scheduler' and workers with 'dask worker ADDRESS --nthreads 1')",
    )
    x.add_argument(
        "--dask-workers",
        metavar="N",
        type=_positive_int,
        help="start a local Dask cluster of N worker processes (one thread each)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="with --dask-*: recompute inputs whose outputs exist (default: skip them); "
        "serial runs always rewrite their outputs",
    )


def uses_dask(args: argparse.Namespace) -> bool:
    """Whether the command was asked to run on Dask."""
    return args.dask_scheduler is not None or args.dask_workers is not None


def client_from_args(args: argparse.Namespace) -> Any:
    """Context manager yielding the Dask client of the options (None: run serially).

    Dask's own INFO records (cluster start and stop) are turned down to warnings unless the
    command runs with ``-vv``.
    """
    from pointseg.distributed import dask_client

    if getattr(args, "verbose", 0) < 2 and uses_dask(args):
        with contextlib.suppress(ImportError):  # dask_client names the install command
            import distributed  # noqa: F401  (sets its loggers' levels on import)
        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] in ("distributed", "dask"):
                logging.getLogger(name).setLevel(logging.WARNING)

    return dask_client(scheduler=args.dask_scheduler, workers=args.dask_workers)
