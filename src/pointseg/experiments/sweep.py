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

Each run is a directory ``out/runs/<key=value,...>`` holding what ``pointseg train`` writes.
A run whose ``metrics.json`` exists is skipped, so an interrupted sweep resumes where it stopped;
a run that fails gets ``error.txt`` and the sweep goes on.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pointseg.io.atomic import write_text_atomic
from pointseg.training.config import TrainConfig

__all__ = ["RunRecord", "Sweep", "load_sweep", "run_sweep", "summarise"]

logger = logging.getLogger(__name__)


@dataclass
class Sweep:
    """A parsed sweep file."""

    name: str
    out: Path
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)

    def runs(self) -> list[tuple[str, dict[str, Any]]]:
        """``(run name, settings)`` for every run, grid first, then the extra runs."""
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


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every setting must be a valid TrainConfig field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"sweep file {path}: expected a mapping with base/grid/extra")
    unknown = sorted(set(data) - {"name", "out", "base", "grid", "extra"})
    if unknown:
        raise ValueError(
            f"sweep file {path}: unknown keys {unknown}; use name, out, base, grid, extra"
        )
    base = dict(data.get("base") or {})
    grid = {k: (v if isinstance(v, list) else [v]) for k, v in (data.get("grid") or {}).items()}
    extra = list(data.get("extra") or [])
    from dataclasses import fields

    valid = {f.name for f in fields(TrainConfig)} - {"out"}
    for where, entry in [("base", base), ("grid", grid), *[("extra", e) for e in extra]]:
        if not isinstance(entry, dict):
            raise ValueError(f"sweep file {path}: every entry of '{where}' must be a mapping")
        bad = sorted(set(entry) - valid)
        if bad:
            raise ValueError(
                f"sweep file {path} ({where}): unknown settings {bad}; valid: {sorted(valid)}"
            )
    name = str(data.get("name") or path.stem)
    out = Path(data.get("out") or Path("runs") / "experiments" / name)
    return Sweep(name=name, out=out, base=base, grid=grid, extra=extra)


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
    records = []
    for name, settings in sweep.runs():
        run_dir = sweep.out / "runs" / name
        settings = {**settings, **(overrides or {}), "out": str(run_dir)}
        if (run_dir / "metrics.json").is_file():
            logger.info("skipping finished run %s", name)
            records.append(_finished(name, settings, run_dir))
            continue
        t = time.perf_counter()
        try:
            cfg = TrainConfig.from_dict(settings)
            train(cfg)
        except Exception as exc:  # a failed run is recorded, the sweep goes on
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run_dir / "error.txt", traceback.format_exc())
            logger.warning("run %s failed: %s", name, exc)
            records.append(
                RunRecord(name, "failed", settings, seconds=time.perf_counter() - t, error=str(exc))
            )
            continue
        (run_dir / "error.txt").unlink(missing_ok=True)
        record = _finished(name, settings, run_dir)
        record.seconds = time.perf_counter() - t
        write_text_atomic(run_dir / "seconds.txt", f"{record.seconds:.1f}\n")
        records.append(record)
    write_results(sweep, records)
    return records


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
    "labelled_pixels",
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
        "n_points": r.settings.get("n_points", 50),
        "points_clicked": clicked,
        "labelled_pixels": r.label_stats.get("labelled_pixels", math.nan),
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
    return row


def summarise(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean ± std of test mIoU over seeds, grouped by ``keys`` (finished runs only)."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        if row["status"] != "done":
            continue
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(float(row["test_miou"]))
    out = []
    for values, mious in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        out.append(
            {
                **dict(zip(keys, values, strict=True)),
                "mean": float(np.mean(mious)),
                "std": float(np.std(mious)),
                "n": len(mious),
            }
        )
    return out


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
    keys = [k for k in extra_cols if k != "seed"] or ["supervision"]
    summary = summarise(rows, keys)
    lines = [
        f"# {sweep.name}",
        "",
        "| " + " | ".join(keys) + " | test mIoU (mean ± std) | seeds |",
        "|" + "---|" * (len(keys) + 2),
    ]
    for s in summary:
        cells = [str(s[k]) for k in keys] + [f"{s['mean']:.4f} ± {s['std']:.4f}", str(s["n"])]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r.run for r in records if r.status != "done"]
    if failed:
        lines += ["", f"Failed runs ({len(failed)}): " + ", ".join(failed) + " (see error.txt)."]
    write_text_atomic(sweep.out / "results.md", "\n".join(lines) + "\n")
    _plot(sweep, rows)


def _plot(sweep: Sweep, rows: Sequence[Mapping[str, Any]]) -> None:
    done = [r for r in rows if r["status"] == "done"]
    points = [r for r in done if r["supervision"] == "points"]
    full = [r["test_miou"] for r in done if r["supervision"] == "full"]
    if not points:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pointseg.io.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(5, 3.5))
    by_n: dict[int, list[float]] = {}
    for r in points:
        by_n.setdefault(int(r["n_points"]), []).append(float(r["test_miou"]))
    ns = sorted(by_n)
    means = [np.mean(by_n[n]) for n in ns]
    stds = [np.std(by_n[n]) for n in ns]
    ax.errorbar(ns, means, yerr=stds, marker="o", capsize=3, label="points (pseudo-labels)")
    if full:
        ax.axhline(float(np.mean(full)), color="k", linestyle="--", label="full masks")
    ax.set(xlabel="query points per image", ylabel="test mIoU", title=sweep.name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(sweep.out / "miou_vs_points.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
