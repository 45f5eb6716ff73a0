"""What every command shares: the parser class, argument types, settings flags, logging."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any, NoReturn

__all__ = [
    "CommandParser",
    "add_setting_flags",
    "config_from_args",
    "open_dataset",
    "progress_wrapper",
    "quiet_lightning",
    "setup_logging",
]

logger = logging.getLogger("pointseg")


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2).

    Abbreviated long options are off (``allow_abbrev=False``): ``--out`` never silently means
    ``--output-size``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def setup_logging(verbose: int) -> None:
    """Console logging for the CLI (library modules only log through their loggers).

    Log records go to stdout; stderr is kept for the one-line error of a failing command, so a
    script can tell a failure's reason from the progress of a run.
    """
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    # the console shows `level` even when a library logger is turned up for a file handler
    # (the sweep runner copies INFO records into each run's train.log)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    logging.captureWarnings(True)  # Python warnings join the log on stdout
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance.*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")


def quiet_lightning() -> None:
    """Lightning sets its own loggers to INFO when imported: turn them down afterwards."""
    import lightning  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def progress_wrapper(enabled: bool, desc: str) -> Callable[[Iterable[Any]], Iterable[Any]] | None:
    """A ``tqdm`` wrapper for loops, or None when progress bars are off."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return lambda it: tqdm(it, desc=desc, leave=False)


# ---------------------------------------------------------------------------------------------
# argument types


def json_object(text: str) -> dict[str, Any]:
    """``'{"k": 1}'`` -> dict; anything else is a usage error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({exc})") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"k\": 1}}', got {text!r}"
        )
    return value


def int_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 0,1,2, got {text!r}"
        ) from exc
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return values


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE parsed as YAML (numbers, booleans, lists)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value


# ---------------------------------------------------------------------------------------------
# flags derived from TrainConfig

#: Where a parser records which TrainConfig settings it has flags for.
_SETTINGS_KEY = "_setting_flags"

#: Settings whose flag is not ``--`` + the field name with dashes.
_FLAG_NAMES = {"points_file": "--points", "dataset_options": "--dataset-option"}

#: The settings that pick a dataset and its split (shared by train, points, evaluate, ...).
DATA_SETTINGS = (
    "dataset",
    "dataset_options",
    "classes",
    "remap",
    "split_file",
    "fractions",
    "split_seed",
    "group_pattern",
    "bands",
)


def _flag_kwargs(name: str, hint: Any) -> dict[str, Any]:
    """argparse keywords for a TrainConfig field of type ``hint``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else str
    origin = typing.get_origin(hint) or hint
    if name == "dataset_options":
        return {"type": key_value, "action": "append", "metavar": "KEY=VALUE"}
    if origin is bool:
        return {"action": "store_const", "const": True}
    if origin is dict:
        return {"type": json_object, "metavar": "JSON"}
    if origin is list:
        return {"type": int_list, "metavar": "N,N,..."}
    if origin is tuple:
        n = len(typing.get_args(hint))
        return {"type": float, "nargs": n, "metavar": tuple(f"V{i}" for i in range(n))}
    if origin in (int, float, str):
        return {"type": origin}
    raise TypeError(f"no command-line type for setting {name!r} ({hint!r})")  # pragma: no cover


def add_setting_flags(
    parser: argparse.ArgumentParser,
    names: Sequence[str],
    *,
    help_override: dict[str, str] | None = None,
) -> None:
    """Add one flag per :class:`~pointseg.training.TrainConfig` field in ``names``.

    The flag's type comes from the field's annotation and its help from
    :data:`~pointseg.training.config.SETTING_HELP`; every default is None ("not given"), so
    that :func:`config_from_args` only overrides what was typed.
    """
    from pointseg.training.config import SETTING_HELP, TrainConfig

    given = list(parser.get_default(_SETTINGS_KEY) or [])
    parser.set_defaults(**{_SETTINGS_KEY: given + list(names)})
    hints = typing.get_type_hints(TrainConfig)
    known = {f.name for f in fields(TrainConfig)}
    for name in names:
        if name not in known:  # pragma: no cover - programming error
            raise ValueError(f"{name!r} is not a TrainConfig setting")
        flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
        text = (help_override or {}).get(name, SETTING_HELP[name])
        parser.add_argument(
            flag, dest=name, default=None, help=text, **_flag_kwargs(name, hints[name])
        )


def config_from_args(args: argparse.Namespace, base: Any = None) -> Any:
    """A TrainConfig: ``base`` (or the defaults) with every setting flag that was given.

    Only the flags made by :func:`add_setting_flags` count, so a command's own positional
    ``model`` or ``--out`` never leaks into the settings.
    """
    from pointseg.training import TrainConfig

    cfg = base if base is not None else TrainConfig()
    for name in getattr(args, _SETTINGS_KEY, None) or ():
        value = getattr(args, name)
        if value is None:
            continue
        if name == "dataset_options":
            value = {**cfg.dataset_options, **dict(value)}
        elif name == "fractions":
            value = tuple(value)
        setattr(cfg, name, value)
    return cfg


def open_dataset(args: argparse.Namespace, split: str | None, *, require_masks: bool = True):
    """The dataset named by the data settings of a command (``split="all"``: every image)."""
    cfg = config_from_args(args)
    cfg.data = args.data
    cfg.validate()
    return cfg.open_dataset(None if split == "all" else split, require_masks=require_masks)


def report_error(command: str, exc: BaseException) -> None:
    """Print ``exc`` as one line on stderr with a hint for the traceback."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(
        exc, ValueError | OSError | RuntimeError | ImportError | KeyError | TypeError
    ) or type(exc).__module__ not in ("builtins", "pointseg"):
        text = f"{type(exc).__name__}: {text}"
    print(f"pointseg {command}: error: {text} (rerun with -vv for the traceback)", file=sys.stderr)
