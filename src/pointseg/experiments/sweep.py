"""Sweeps: many training runs from one YAML file, resumable, with a results table and plots.

A sweep file::

    name: small
    out: runs/experiments/small
    base:                       # TrainConfig settings shared by every run
      data: ../shared/data/dubai-aerial
      classes: dubai
      image_size: 128
    grid:                       # every combination of these values is one run
      n_points: [10, 30, 50]
      seed: [0, 1]
    extra:                      # further runs, each merged into base (e.g. the upper bound)
      - {supervision: full}

Shipped sweeps (``pointseg list experiments``) are named instead of a path: ``small`` (the
CPU study on the Dubai set), ``paper-landcoverai`` and ``paper-oxford-pet`` (the paper's
studies, for a GPU).

Each run is a directory ``out/runs/<key=value,...>`` holding what ``pointseg train`` writes.
A finished run (``model.pt`` and ``metrics.json``) with the sweep's settings is skipped; an
interrupted run with the same settings resumes from its ``last.ckpt`` (at most one epoch lost);
any other run folder is replaced only once its new run has finished (``overwrite``). A run that
fails gets ``error.txt`` and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import logging
import math
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pointseg.experiments.protocol import group_folds, mean_se, paired_difference
from pointseg.io.atomic import write_text_atomic
from pointseg.training.config import TrainConfig
from pointseg.training.rundir import is_finished_run

__all__ = [
    "RunRecord",
    "Sweep",
    "list_sweep_presets",
    "load_sweep",
    "prepare_folds",
    "resolve_sweep_file",
    "run_sweep",
    "summarise",
]

logger = logging.getLogger(__name__)


@dataclass
class Sweep:
    """A parsed sweep file."""

    name: str
    out: Path
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)
    folds: str | None = None
    compare: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    fold_files: list[Path] = field(default_factory=list)
    loop: dict[str, Any] | None = None

    def runs(self, *, with_folds: bool = True) -> list[tuple[str, dict[str, Any]]]:
        """``(run name, settings)`` for every run, grid first, then the extra runs.

        With ``folds``, every run is repeated on every fold (``,fold=K`` in its name and the
        fold's split file as ``split_file``); :func:`prepare_folds` writes the fold files
        (``with_folds=False``: the runs before that expansion). With ``loop``, every run is
        repeated per strategy (``,strategy=S``; the settings carry ``strategy``).
        """
        runs = self._base_runs()
        if self.loop:  # a simulated annotation loop per strategy
            runs = [
                (
                    f"{name},strategy={st}" if name != "base" else f"strategy={st}",
                    {**settings, "strategy": st},
                )
                for name, settings in runs
                for st in self.loop["strategies"]
            ]
        if not self.folds or not with_folds:
            return runs
        if not self.fold_files:
            raise ValueError("the folds are not prepared yet: call prepare_folds(sweep) first")
        return [
            (f"{name},fold={k}", {**settings, "split_file": str(path)})
            for name, settings in runs
            for k, path in enumerate(self.fold_files)
        ]

    def _base_runs(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        keys = sorted(self.grid)
        for values in itertools.product(*(self.grid[k] for k in keys)):
            varied = dict(zip(keys, values, strict=True))
            out.append((_run_name(varied), {**self.base, **varied}))
        seeds = self.grid.get("seed", [self.base.get("seed", 0)])
        for extra in self.extra:
            for seed in seeds if "seed" not in extra else [extra["seed"]]:
                varied = {**extra, "seed": seed}
                out.append((_run_name(varied), {**self.base, **varied}))
        return out


def _fmt(value: Any) -> str:
    if isinstance(value, Mapping):
        return "-".join(f"{k}{_fmt(v)}" for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return "-".join(_fmt(v) for v in value)
    return str(value).replace("/", "_").replace(" ", "")


def _run_name(varied: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={_fmt(v)}" for k, v in sorted(varied.items())) or "base"


def list_sweep_presets() -> list[str]:
    """Names of the sweep files shipped with pointseg (``pointseg experiment NAME``)."""
    from importlib import resources

    files = resources.files("pointseg") / "experiments" / "presets"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def resolve_sweep_file(value: str | Path) -> Path:
    """A sweep file path, or the path of a shipped sweep preset."""
    from importlib import resources

    path = Path(value)
    if path.is_file():
        return path
    if path.is_dir():
        raise ValueError(f"sweep file {path} is a folder; give the sweep's YAML file")
    if str(value) in list_sweep_presets():
        return Path(str(resources.files("pointseg") / "experiments" / "presets" / f"{value}.yaml"))
    raise FileNotFoundError(
        f"sweep file {value} does not exist and is not a shipped sweep "
        f"({', '.join(list_sweep_presets())})"
    )


def load_sweep(path: str | Path, *, base_overrides: Mapping[str, Any] | None = None) -> Sweep:
    """Read and check a sweep file; every setting must be a valid TrainConfig field.

    Parameters
    ----------
    path : path or str
        A sweep file or the name of a shipped sweep (:func:`list_sweep_presets`).
    base_overrides : mapping, optional
        Settings replacing those of the file's ``base`` (e.g. ``{"data": "/my/copy"}``).
    """
    path = resolve_sweep_file(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"sweep file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"sweep file {path}: expected a mapping with base/grid/extra")
    keys = ("name", "out", "base", "grid", "extra", "folds", "compare", "loop")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ValueError(f"sweep file {path}: unknown keys {unknown}; use {', '.join(keys)}")
    base = {**dict(data.get("base") or {}), **dict(base_overrides or {})}
    grid = {k: (v if isinstance(v, list) else [v]) for k, v in (data.get("grid") or {}).items()}
    extra = list(data.get("extra") or [])
    from dataclasses import fields

    valid = {f.name for f in fields(TrainConfig)} - {"out"}
    for where, entry in [("base", base), ("grid", grid), *[("extra", e) for e in extra]]:
        if where == "base" and base_overrides and not isinstance(entry, dict):
            raise ValueError(f"sweep file {path}: 'base' must be a mapping")
        if not isinstance(entry, dict):
            raise ValueError(f"sweep file {path}: every entry of '{where}' must be a mapping")
        bad = sorted(set(entry) - valid)
        if bad:
            raise ValueError(
                f"sweep file {path} ({where}): unknown settings {bad}; valid: {sorted(valid)}"
            )
    folds = data.get("folds")
    _check_folds(path, folds, base)
    compare = _check_compare(path, data.get("compare") or [], valid)
    name = str(data.get("name") or path.stem)
    out = Path(data.get("out") or Path("runs") / "experiments" / name)
    loop = _check_loop(path, data.get("loop"))
    return Sweep(
        name=name,
        out=out,
        base=base,
        grid=grid,
        extra=extra,
        folds=folds,
        compare=compare,
        loop=loop,
    )


def _check_loop(path: Path, loop: Any) -> dict[str, Any] | None:
    """``loop: {strategies: [...], rounds, clicks_per_round, min_distance, reference_clicks}``."""
    if loop is None:
        return None
    from pointseg.experiments.loop import LoopSettings

    keys = {"strategies", "rounds", "clicks_per_round", "min_distance", "reference_clicks"}
    if not isinstance(loop, dict) or set(loop) - keys or not loop.get("strategies"):
        raise ValueError(
            f"sweep file {path}: loop is a mapping with strategies (a list) and optionally "
            f"rounds, clicks_per_round, min_distance, reference_clicks; got {loop!r}"
        )
    options = {k: v for k, v in loop.items() if k != "strategies"}
    try:
        for strategy in loop["strategies"]:
            LoopSettings(strategy=strategy, **options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sweep file {path}: loop: {exc}") from exc
    return dict(loop)


#: Datasets whose split is official: cross-validation would mix their test set into training.
_OFFICIAL_SPLITS = ("landcoverai", "loveda", "oxford_pet", "potsdam", "vaihingen")


def _check_folds(path: Path, folds: Any, base: Mapping[str, Any]) -> None:
    """``folds: by_group`` needs ``group_pattern``, refuses ``split_file`` and official splits."""
    if folds is None:
        return
    if folds != "by_group":
        raise ValueError(f"sweep file {path}: folds must be 'by_group', got {folds!r}")
    dataset = base.get("dataset", "folder")
    if dataset in _OFFICIAL_SPLITS:
        raise ValueError(
            f"sweep file {path}: dataset {dataset!r} has an official train/test split, so "
            "cross-validation is off for it: remove 'folds' (seeds still average the noise)"
        )
    if dataset == "rasters":
        raise ValueError(
            f"sweep file {path}: the rasters dataset validates on held-out points, not "
            "groups of images: remove 'folds'"
        )
    if base.get("split_file"):
        raise ValueError(
            f"sweep file {path}: folds by group replace the split, so a split_file is refused "
            "(to keep a fixed test set, drop 'folds'); remove split_file from base"
        )
    if not base.get("group_pattern"):
        raise ValueError(
            f"sweep file {path}: folds by group need base.group_pattern, the regex naming each "
            "image's group (e.g. 't\\d+$' for the Dubai tiles)"
        )


def _check_compare(path: Path, compare: Any, valid: set[str]) -> list[dict[str, dict[str, Any]]]:
    """``compare: [{a: {setting: value}, b: {setting: value}}, ...]``."""
    if not isinstance(compare, list):
        raise ValueError(f"sweep file {path}: compare must be a list of {{a: ..., b: ...}}")
    out = []
    for entry in compare:
        if not isinstance(entry, dict) or set(entry) != {"a", "b"}:
            raise ValueError(
                f"sweep file {path}: every compare entry is {{a: {{...}}, b: {{...}}}}, "
                f"got {entry!r}"
            )
        for side in ("a", "b"):
            if not isinstance(entry[side], dict) or not entry[side]:
                raise ValueError(f"sweep file {path}: compare {side} must be a mapping")
            bad = sorted(set(entry[side]) - valid)
            if bad:
                raise ValueError(f"sweep file {path}: compare {side}: unknown settings {bad}")
        out.append({"a": dict(entry["a"]), "b": dict(entry["b"])})
    return out


def prepare_folds(sweep: Sweep) -> list[Path]:
    """Write one split file per fold under ``out/folds/`` (``folds: by_group``)."""
    cfg = TrainConfig.from_dict({k: v for k, v in sweep.base.items() if k != "out"})
    names = cfg.open_dataset(None, require_masks=False).names
    files = []
    for k, fold in enumerate(group_folds(names, cfg.group_pattern)):
        text = yaml.safe_dump({s: fold[s] for s in ("train", "val", "test")}, sort_keys=False)
        header = f"# fold {k}: test {fold['groups']['test']}, val {fold['groups']['val']}\n"
        files.append(write_text_atomic(sweep.out / "folds" / f"fold-{k}.yaml", header + text))
    sweep.fold_files = files
    return files


@dataclass
class RunRecord:
    """One line of ``results.csv``."""

    run: str
    status: str
    settings: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    label_stats: dict[str, Any] = field(default_factory=dict)
    seconds: float = math.nan
    error: str = ""
    rounds: list[dict[str, Any]] = field(default_factory=list)


def failed_run(
    name: str, settings: dict[str, Any], run_dir: Path, exc: Exception, started: float
) -> RunRecord:
    """Record a run that raised: its traceback in ``error.txt``; the sweep goes on."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "error.txt", traceback.format_exc())
    logger.warning("run %s failed: %s", name, exc)
    return RunRecord(
        name, "failed", settings, seconds=time.perf_counter() - started, error=str(exc)
    )


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())


def run_sweep(
    sweep: Sweep,
    *,
    train: Callable[[TrainConfig], Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[RunRecord]:
    """Run (or skip) every run of ``sweep``; write results.csv, results.md and plots.

    Parameters
    ----------
    sweep : Sweep
    train : callable, optional
        ``train(cfg)`` (default :func:`pointseg.training.run_training`).
    overrides : mapping, optional
        Settings forced on every run (e.g. ``{"progress": False}``).
    """
    if train is None:
        from pointseg.training import run_training as train
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(
            "a sweep runs in one process, not under torchrun or srun: run it as usual with "
            "--set devices=N, and each run starts its own N training processes"
        )
    if sweep.folds and not sweep.fold_files:
        prepare_folds(sweep)
    records = []
    for name, settings in sweep.runs():
        run_dir = sweep.out / "runs" / name
        settings = {**settings, **(overrides or {}), "out": str(run_dir)}
        if sweep.loop:
            from pointseg.experiments.loop import run_loop_record

            records.append(run_loop_record(sweep.loop, name, settings, run_dir, train))
            continue
        if is_finished_run(run_dir) and (run_dir / "metrics.json").is_file():
            changed = _changed_settings(run_dir, settings)
            if not changed:
                logger.info("skipping finished run %s", name)
                records.append(_finished(name, settings, run_dir))
                continue
            logger.warning(
                "run %s finished with other settings (%s); running it again",
                name,
                ", ".join(changed),
            )
        t = time.perf_counter()
        # the sweep owns its run folders: an interrupted run with the same settings resumes
        # from its last epoch, anything else is replaced once the new run finishes
        if (run_dir / "checkpoints" / "last.ckpt").is_file() and not _changed_settings(
            run_dir, settings
        ):
            settings = {**settings, "resume": True, "overwrite": False}
        else:
            settings = {**settings, "resume": False, "overwrite": True}
        # the log goes beside the run folder while it trains (a replaced folder would take it
        # along) and into it afterwards
        log = sweep.out / "runs" / f".{name}.train.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if settings["resume"] and (run_dir / "train.log").is_file():
            os.replace(run_dir / "train.log", log)
        try:
            with _run_log(log, append=settings["resume"]):
                logger.info("run %s: %s", name, settings)
                cfg = TrainConfig.from_dict(settings)
                train(cfg)
        except Exception as exc:  # a failed run is recorded, the sweep goes on
            run_dir.mkdir(parents=True, exist_ok=True)
            os.replace(log, run_dir / "train.log")
            records.append(failed_run(name, settings, run_dir, exc, t))
            continue
        os.replace(log, run_dir / "train.log")
        (run_dir / "error.txt").unlink(missing_ok=True)
        record = _finished(name, settings, run_dir)
        record.seconds = time.perf_counter() - t
        write_text_atomic(run_dir / "seconds.txt", f"{record.seconds:.1f}\n")
        records.append(record)
    if sweep.loop:
        from pointseg.experiments.loop import write_loop_results

        write_loop_results(sweep, records)
    else:
        write_results(sweep, records)
    return records


@contextlib.contextmanager
def _run_log(path: Path, *, append: bool = False) -> Iterator[None]:
    """Copy pointseg's log records (INFO and above) into ``path`` while a run trains."""
    handler = logging.FileHandler(path, mode="a" if append else "w", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("pointseg")
    level = package.level
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)  # the file gets INFO even when the console is quiet
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()


# settings that do not change a run's result
_NEUTRAL = frozenset({"out", "progress", "resume", "overwrite", "cache_dir", "num_workers"})


def _changed_settings(run_dir: Path, settings: Mapping[str, Any]) -> list[str]:
    """Names of the settings in which a finished run's saved config differs from ``settings``."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return []
    try:
        saved = TrainConfig.from_yaml(saved_path).to_dict()
        wanted = TrainConfig.from_dict(dict(settings)).to_dict()
    except (ValueError, TypeError, yaml.YAMLError):
        return ["config.yaml unreadable"]
    return sorted(k for k in wanted if k not in _NEUTRAL and saved.get(k) != wanted[k])


def _finished(name: str, settings: dict[str, Any], run_dir: Path) -> RunRecord:
    metrics = _read_json(run_dir / "metrics.json")
    stats_path = run_dir / "label_stats.json"
    stats = _read_json(stats_path) if stats_path.is_file() else {}
    seconds_path = run_dir / "seconds.txt"
    seconds = float(seconds_path.read_text()) if seconds_path.is_file() else math.nan
    return RunRecord(name, "done", settings, metrics, stats, seconds)


_COLUMNS = (
    "run",
    "status",
    "supervision",
    "n_points",
    "points_clicked",
    "points_per_image",
    "labelled_pixels",
    "labelled_fraction",
    "test_miou",
    "val_miou",
    "test_pixel_accuracy",
    "miou_per_100_points",
    "seconds",
    "error",
)


def _row(sweep: Sweep, r: RunRecord) -> dict[str, Any]:
    test = r.metrics.get("test", {})
    val = r.metrics.get("val", {})
    supervision = r.settings.get("supervision", "points")
    clicked = r.label_stats.get("n_points", math.nan) if supervision == "points" else math.nan
    miou = test.get("miou", math.nan)
    row = {
        "run": r.run,
        "status": r.status,
        "supervision": supervision,
        "n_points": r.settings.get("n_points", 50) if supervision == "points" else "-",
        "points_clicked": clicked,
        "points_per_image": clicked / r.label_stats["n_images"]
        if clicked == clicked and r.label_stats.get("n_images")
        else math.nan,
        "labelled_pixels": r.label_stats.get("labelled_pixels", math.nan),
        "labelled_fraction": r.label_stats.get("labelled_fraction", math.nan),
        "test_miou": miou,
        "val_miou": val.get("miou", math.nan),
        "test_pixel_accuracy": test.get("pixel_accuracy", math.nan),
        "miou_per_100_points": 100 * miou / clicked if clicked and clicked == clicked else math.nan,
        "seconds": round(r.seconds, 1) if r.seconds == r.seconds else math.nan,
        "error": r.error,
    }
    defaults = TrainConfig()
    for key in sorted(set(sweep.grid) | {k for e in sweep.extra for k in e}):
        if key not in row:
            row[key] = _fmt(r.settings.get(key, getattr(defaults, key)))
    if sweep.folds:  # the pairing keys of cross-validated comparisons
        row["seed"] = _fmt(r.settings.get("seed", defaults.seed))
        row["fold"] = Path(r.settings["split_file"]).stem.split("-", 1)[1]
    return row


def _sort_key(values: tuple) -> tuple:
    return tuple((0, float(v), "") if _is_number(v) else (1, 0.0, str(v)) for v in values)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def summarise(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean ± std (and standard error) of test mIoU over seeds (and folds), by ``keys``.

    Only finished runs count.

    Each group also carries the mean annotation cost of its runs: ``points_clicked`` (points
    clicked over the training set), ``points_per_image``, ``labelled_fraction`` (share of
    training pixels with a label) and ``miou_per_100_points`` (test mIoU per 100 clicks).
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["status"] != "done":
            continue
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    out = []
    for values, members in sorted(groups.items(), key=lambda kv: _sort_key(kv[0])):
        mious = [float(r["test_miou"]) for r in members]

        def mean_of(key: str, members: list[Mapping[str, Any]] = members) -> float:
            vals = [float(r.get(key, math.nan)) for r in members]
            vals = [v for v in vals if v == v]
            return float(np.mean(vals)) if vals else math.nan

        out.append(
            {
                **dict(zip(keys, values, strict=True)),
                "mean": float(np.mean(mious)),
                "std": float(np.std(mious)),
                "se": mean_se(mious)[1],
                "n": len(mious),
                "points_clicked": mean_of("points_clicked"),
                "points_per_image": mean_of("points_per_image"),
                "labelled_fraction": mean_of("labelled_fraction"),
                "miou_per_100_points": mean_of("miou_per_100_points"),
            }
        )
    return out


def _table_keys(
    sweep: Sweep, rows: Sequence[Mapping[str, Any]], extra_cols: Sequence[str]
) -> list[str]:
    """The settings that vary between runs (seeds excepted): the rows of results.md."""
    keys = []
    if len({r["supervision"] for r in rows}) > 1:
        keys.append("supervision")
    varied = set(sweep.grid) | {k for e in sweep.extra for k in e}
    if "n_points" in varied:
        keys.append("n_points")
    keys += [k for k in extra_cols if k not in ("seed", "fold") and k not in keys]
    return keys or ["supervision"]


def write_results(sweep: Sweep, records: Sequence[RunRecord]) -> None:
    """``results.csv`` (one row per run), ``results.md`` (mean ± std over seeds) and plots."""
    rows = [_row(sweep, r) for r in records]
    extra_cols = [k for k in rows[0] if k not in _COLUMNS] if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*_COLUMNS, *extra_cols], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    sweep.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(sweep.out / "results.csv", buf.getvalue())
    keys = _table_keys(sweep, rows, extra_cols)
    summary = summarise(rows, keys)
    spread, count = ("s.e.", "runs") if sweep.folds else ("std", "seeds")
    lines = [
        f"# {sweep.name}",
        "",
        "Clicks: query points clicked over the whole training set (points/image: per image). "
        "Labelled: share of training pixels with a pseudo-label (or a mask label). "
        "mIoU / 100 clicks: test mIoU per 100 clicked points, the annotation trade-off.",
    ]
    if sweep.folds:
        lines += [
            "",
            f"Cross-validated by group: {len(sweep.fold_files)} folds (each group the test "
            "split once), × seeds; mean ± standard error over folds × seeds.",
        ]
    lines += [
        "",
        "| "
        + " | ".join(keys)
        + f" | test mIoU (mean ± {spread}) | clicks | points/image | labelled | mIoU / 100 clicks"
        f" | {count} |",
        "|" + "---|" * (len(keys) + 6),
    ]

    def num(value: float, fmt: str) -> str:
        return format(value, fmt) if value == value else "-"

    for s in summary:
        cells = [str(s[k]) for k in keys] + [
            f"{s['mean']:.4f} ± {num(s['se'] if sweep.folds else s['std'], '.4f')}",
            num(s["points_clicked"], ".0f"),
            num(s["points_per_image"], ".1f"),
            num(s["labelled_fraction"], ".1%"),
            num(s["miou_per_100_points"], ".3f"),
            str(s["n"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _comparison_lines(sweep, rows, keys)
    failed = [r.run for r in records if r.status != "done"]
    if failed:
        lines += ["", f"Failed runs ({len(failed)}): " + ", ".join(failed) + " (see error.txt)."]
    write_text_atomic(sweep.out / "results.md", "\n".join(lines) + "\n")
    _plot_against(sweep, rows, keys, x="n_points", filename="miou_vs_points.png")
    _plot_against(sweep, rows, keys, x="n_segments", filename="miou_vs_superpixels.png")


def _comparison_lines(
    sweep: Sweep, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> list[str]:
    """The ``compare`` pairs of results.md: paired differences with their standard errors."""
    if not sweep.compare:
        return []
    done = [r for r in rows if r["status"] == "done"]
    pair_cols = ["fold", "seed"] if sweep.folds else ["seed"]
    lines = [
        "",
        "## Paired comparisons",
        "",
        f"a − b on runs paired by {', '.join(pair_cols)} and every other setting; resolved "
        "when |mean| > 2 × its standard error.",
        "",
        "| a | b | within | mean difference | s.e. | pairs | resolved |",
        "|---|---|---|---|---|---|---|",
    ]

    def text(spec: Mapping[str, Any]) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in spec.items())

    for entry in sweep.compare:
        a, b = entry["a"], entry["b"]
        others = [k for k in keys if k not in a and k not in b]
        subsets: list[dict[str, Any]] = [{}]
        if others:
            values = sorted({tuple(str(r.get(k)) for k in others) for r in done}, key=_sort_key)
            subsets += [dict(zip(others, v, strict=True)) for v in values]
        for within in subsets:
            members = [r for r in done if all(str(r.get(k)) == v for k, v in within.items())]
            d = paired_difference(
                members,
                {k: _fmt(v) for k, v in a.items()},
                {k: _fmt(v) for k, v in b.items()},
                pair_on=[*pair_cols, *others],
            )
            if not d["n"]:
                continue
            se = f"{d['se']:.4f}" if d["se"] == d["se"] else "-"
            lines.append(
                f"| {text(a)} | {text(b)} | {text(within) or 'all'} | {d['mean']:+.4f} | {se} "
                f"| {d['n']} | {'yes' if d['resolved'] else 'no'} |"
            )
    return lines


def _plot_against(
    sweep: Sweep, rows: Sequence[Mapping[str, Any]], keys: Sequence[str], *, x: str, filename: str
) -> Path | None:
    """Test mIoU (mean ± std over seeds) of the point runs against setting ``x``.

    One line per combination of the other varied settings (mean ± std over folds and seeds);
    the fully supervised runs are horizontal dashed lines. With one fully supervised setting and
    clicks on x, a second panel draws each line's ratio to it. Nothing is drawn when ``x``
    takes fewer than two values.
    """
    defaults = TrainConfig()
    done = [r for r in rows if r["status"] == "done"]
    points = [r for r in done if r["supervision"] == "points"]
    full = [r for r in done if r["supervision"] == "full"]
    xs = {str(r.get(x, getattr(defaults, x))) for r in points}
    if len(xs) < 2:
        return None
    others = [k for k in keys if k not in (x, "seed", "supervision", "n_points", "n_segments")]
    if x == "n_segments":
        others.append("n_points")  # superpixel counts compare at a fixed number of points
    series: dict[tuple, dict[float, list[float]]] = {}
    for r in points:
        label = tuple(r.get(k) for k in others)
        xv = float(r.get(x, getattr(defaults, x)))
        series.setdefault(label, {}).setdefault(xv, []).append(float(r["test_miou"]))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pointseg.io.atomic import atomic_write

    full_keys = [k for k in others if k != "n_points"]
    full_groups: dict[tuple, list[float]] = {}
    for r in full:
        label = tuple(r.get(k) for k in full_keys)
        full_groups.setdefault(label, []).append(float(r["test_miou"]))
    # with one fully supervised line and clicks on x: a second panel, the ratio to it
    ratio_to = float(np.mean(next(iter(full_groups.values())))) if len(full_groups) == 1 else None
    if x != "n_points":
        ratio_to = None
    if ratio_to is not None:
        fig, (ax, rax) = plt.subplots(1, 2, figsize=(10, 3.8))
    else:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color_of: dict[tuple, str] = {}
    for i, (label, by_x) in enumerate(sorted(series.items(), key=lambda kv: _sort_key(kv[0]))):
        if len(by_x) < 2 and x == "n_segments":
            continue
        color = colors[i % len(colors)]
        color_of.setdefault(
            tuple(v for k, v in zip(others, label, strict=True) if k != "n_points"), color
        )
        xv = sorted(by_x)
        name = ", ".join(f"{k}={v}" for k, v in zip(others, label, strict=True)) or "points"
        ax.errorbar(
            xv,
            [np.mean(by_x[v]) for v in xv],
            yerr=[np.std(by_x[v]) for v in xv],
            marker="o",
            capsize=3,
            color=color,
            label=name,
        )
        if ratio_to is not None and ratio_to > 0:
            rax.plot(
                xv, [np.mean(by_x[v]) / ratio_to for v in xv], marker="o", color=color, label=name
            )
    ordered = sorted(full_groups.items(), key=lambda kv: _sort_key(kv[0]))
    for label, mious in ordered:
        name = ", ".join(f"{k}={v}" for k, v in zip(full_keys, label, strict=True))
        ax.axhline(
            float(np.mean(mious)),
            color=color_of.get(label, "k"),
            linestyle="--",
            label="full masks" + (f" ({name})" if name else ""),
        )
    xlabel = "query points per image" if x == "n_points" else "superpixels per image"
    ax.set(xlabel=xlabel, ylabel="test mIoU", title=sweep.name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if ratio_to is not None:
        rax.axhline(1.0, color="k", linestyle="--")
        rax.set(
            xlabel=xlabel,
            ylabel="test mIoU / fully supervised",
            title=f"ratio to full masks ({ratio_to:.3f})",
        )
        rax.grid(alpha=0.3)
    fig.tight_layout()
    path = sweep.out / filename
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
