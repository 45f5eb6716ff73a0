"""A simulated annotator: rounds of clicks, training and proposals, measured without a person.

Round 0 clicks ``clicks_per_round`` random points per training image. Every round then trains
a model on the clicks so far (from scratch each round: no warm start), and the next clicks
come either from a proposal strategy (:func:`pointseg.proposals.propose_clicks` on the model's
probabilities, on the training grid where the pseudo-labels are built) answered from the
ground-truth masks, or, for the random baselines ``per_class`` (the paper's scheme: it uses the
masks to know which classes are present) and ``uniform``, from fresh random clicks at the new
budget. Each round's clicks, run folder and test mIoU are kept, so mIoU against total clicks
can be compared between strategies at equal cost.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.constants import IGNORE_INDEX
from pointseg.io.atomic import write_text_atomic
from pointseg.points import image_seed, sample_points, write_points_csv

__all__ = ["RANDOM_BASELINES", "LoopSettings", "run_annotation_loop"]

logger = logging.getLogger(__name__)

#: Strategies that click at random instead of asking a model (point sampling schemes).
RANDOM_BASELINES = ("per_class", "uniform")


@dataclass(frozen=True)
class LoopSettings:
    """How the simulated annotator works.

    Parameters
    ----------
    strategy : str
        A proposal strategy (:func:`pointseg.proposals.list_proposal_strategies`) or a random
        baseline (``per_class``, ``uniform``).
    rounds : int
        Trainings; the last one is trained on ``rounds * clicks_per_round`` clicks per image.
    clicks_per_round : int
        Clicks per training image and round.
    min_distance : float
        No two proposals of one image closer than this, in training-grid pixels.
    reference_clicks : int, optional
        For the random baselines only: one more training on this many random clicks per
        image (e.g. 50, the paper's budget), the mIoU the strategies try to reach with fewer
        clicks (row ``round = "reference"`` in ``loop.csv``).
    """

    strategy: str = "entropy"
    rounds: int = 4
    clicks_per_round: int = 5
    min_distance: float = 8.0
    reference_clicks: int | None = None

    def __post_init__(self) -> None:
        from pointseg.proposals import list_proposal_strategies

        valid = [*RANDOM_BASELINES, *list_proposal_strategies()]
        if self.strategy not in valid:
            raise ValueError(f"unknown strategy {self.strategy!r}; available: {', '.join(valid)}")
        if self.rounds < 1 or self.clicks_per_round < 1:
            raise ValueError(
                f"rounds and clicks_per_round must be >= 1, got {self.rounds}, "
                f"{self.clicks_per_round}"
            )
        if self.reference_clicks is not None and (
            not isinstance(self.reference_clicks, int) or self.reference_clicks < 1
        ):
            raise ValueError(
                f"reference_clicks must be a positive integer, got {self.reference_clicks!r}"
            )


def _initial(mask: np.ndarray, n: int, scheme: str, seed: int) -> np.ndarray:
    return sample_points(mask, n_points=n, scheme=scheme, seed=seed)


def _propose_round(
    model: Any,
    spec: Any,
    samples: dict[str, dict[str, Any]],
    points: dict[str, np.ndarray],
    settings: Any,
    loop: LoopSettings,
    *,
    image_size: int | None,
    n_classes: int,
    seed: int,
    segments_cache: dict[str, list[np.ndarray]],
) -> dict[str, list[tuple[int, int]]]:
    """Proposals per image, in source pixels."""
    import torch

    from pointseg.predict.inference import predict_logits
    from pointseg.proposals import propose_clicks
    from pointseg.training.data import source_pixel, training_view

    probs, segs, grid_pts, pseudo = {}, {}, {}, {}
    for name, sample in samples.items():
        view, pts = training_view(sample["image"], points[name], image_size=image_size)
        if name not in segments_cache:
            segments_cache[name] = settings.segments(view)
        levels = segments_cache[name]
        logits = predict_logits(model, spec, view)
        probs[name] = torch.softmax(logits, dim=0).cpu().numpy()
        segs[name] = levels[0]
        grid_pts[name] = pts
        pseudo[name] = settings.propagate(levels, pts, n_classes=n_classes)
    proposals = propose_clicks(
        loop.strategy,
        probabilities=probs,
        segments=segs,
        points=grid_pts,
        pseudo_labels=pseudo,
        per_image=loop.clicks_per_round,
        min_distance=loop.min_distance,
        seed=seed,
    )
    out: dict[str, list[tuple[int, int]]] = {name: [] for name in samples}
    for p in proposals:
        shape = samples[p.image]["image"].shape[:2]
        grid = segs[p.image].shape
        out[p.image].append(source_pixel(p.x, p.y, grid_shape=grid, source_shape=shape))
    return out


def _answer(mask: np.ndarray, clicks: list[tuple[int, int]], existing: np.ndarray) -> np.ndarray:
    """The annotator's answers: the mask's class at each proposed pixel (ignore: no click)."""
    taken = {(int(x), int(y)) for x, y, _ in existing}
    new = [(x, y, int(mask[y, x])) for x, y in clicks if mask[y, x] != IGNORE_INDEX]
    new = [p for p in new if p[:2] not in taken]
    if not new:
        return existing
    return np.concatenate([existing, np.array(new, np.int64)])


def _finished_round(
    folder: Path, points: dict[str, np.ndarray], names: list[str]
) -> tuple[Path, dict[str, Any]] | None:
    """A round already trained on exactly these clicks (a resumed loop keeps it)."""
    import json

    from pointseg.training.rundir import is_finished_run

    run, saved = folder / "run", folder / "points.csv"
    if not (is_finished_run(run) and saved.is_file() and (run / "metrics.json").is_file()):
        return None
    probe = folder / f".points-check-{os.getpid()}.csv"
    try:
        write_points_csv(probe, points, class_names=names)
        same = probe.read_bytes() == saved.read_bytes()
    finally:
        probe.unlink(missing_ok=True)
    if not same:
        return None
    logger.info("round %s was already trained on these clicks: kept", folder.name)
    return run / "model.pt", json.loads((run / "metrics.json").read_text())


def run_annotation_loop(
    cfg: Any,
    loop: LoopSettings,
    *,
    out: str | Path,
    train: Callable[[Any], Any] | None = None,
) -> list[dict[str, Any]]:
    """Run the simulated annotation rounds for one training configuration.

    Parameters
    ----------
    cfg : TrainConfig
        The training settings of every round (its split, model, schedule); its training split
        must have masks (they answer the proposals).
    loop : LoopSettings
    out : path
        ``round-R/`` run folders with their ``points.csv``, and ``loop.csv`` (one row per
        round: clicks, clicks per image, test and validation mIoU).
    train : callable, optional
        ``train(cfg) -> TrainResult`` (default :func:`pointseg.training.run_training`).

    A rerun keeps every round already trained on the same clicks: an interrupted loop resumes
    at its first unfinished round.

    Returns
    -------
    list of dict
        The rows of ``loop.csv``.
    """
    from pointseg.models import load_model

    if train is None:
        from pointseg.training import run_training as train
    out = Path(out)
    dataset = cfg.open_dataset("train", require_masks=True)
    names = list(dataset.class_map.names)
    samples = {s["name"]: s for s in (dataset[i] for i in range(len(dataset)))}
    settings = cfg.pseudo_label_settings()
    k = loop.clicks_per_round
    scheme = loop.strategy if loop.strategy in RANDOM_BASELINES else "uniform"
    points = {
        n: _initial(s["mask"], k, scheme, image_seed(cfg.seed, n)) for n, s in samples.items()
    }
    segments_cache: dict[str, list[np.ndarray]] = {}
    rows: list[dict[str, Any]] = []

    def train_on(folder: Path, points: dict[str, np.ndarray], label: Any) -> Path:
        done = _finished_round(folder, points, names)
        if done is None:  # not trained yet, or trained on other clicks: (re)train
            points_file = write_points_csv(folder / "points.csv", points, class_names=names)
            trained = train(
                replace(cfg, out=str(folder / "run"), points_file=str(points_file), overwrite=True)
            )
            done = (trained.model_path, trained.metrics)
        model_path, metrics = done
        clicks = int(sum(len(p) for p in points.values()))
        rows.append(
            {
                "round": label,
                "strategy": loop.strategy,
                "clicks": clicks,
                "clicks_per_image": clicks / len(points),
                "test_miou": metrics.get("test", {}).get("miou", float("nan")),
                "val_miou": metrics.get("val", {}).get("miou", float("nan")),
            }
        )
        return model_path

    for r in range(loop.rounds):
        model_path = train_on(out / f"round-{r}", points, r)
        logger.info(
            "round %d (%s): %d clicks, test mIoU %.4f",
            r,
            loop.strategy,
            rows[-1]["clicks"],
            rows[-1]["test_miou"],
        )
        if r == loop.rounds - 1:
            break
        if loop.strategy in RANDOM_BASELINES:  # a fresh random draw at the next budget
            points = {
                n: _initial(s["mask"], k * (r + 2), scheme, image_seed(cfg.seed, n))
                for n, s in samples.items()
            }
            continue
        model, spec = load_model(model_path)
        proposed = _propose_round(
            model.eval(),
            spec,
            samples,
            points,
            settings,
            loop,
            image_size=cfg.resize_size,
            n_classes=len(names),
            seed=cfg.seed * 1000 + r,
            segments_cache=segments_cache,
        )
        points = {n: _answer(samples[n]["mask"], proposed[n], points[n]) for n in samples}
    if loop.reference_clicks and loop.strategy in RANDOM_BASELINES:
        reference = {
            n: _initial(s["mask"], loop.reference_clicks, scheme, image_seed(cfg.seed, n))
            for n, s in samples.items()
        }
        train_on(out / "reference", reference, "reference")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "loop.csv", buf.getvalue())
    return rows


# ------------------------------------------------------------------------------- sweeps


def run_loop_record(
    loop: dict[str, Any], name: str, settings: dict[str, Any], run_dir: Path, train: Any
) -> Any:
    """One run of a ``loop:`` sweep: the annotation loop of one strategy (resumable)."""
    import time

    from pointseg.experiments.sweep import RunRecord, failed_run
    from pointseg.training.config import TrainConfig

    t = time.perf_counter()
    strategy = settings["strategy"]
    cfg_settings = {k: v for k, v in settings.items() if k not in ("strategy", "out")}
    options = {k: v for k, v in loop.items() if k != "strategies"}
    try:
        cfg = TrainConfig.from_dict(cfg_settings)
        rows = run_annotation_loop(
            cfg, LoopSettings(strategy=strategy, **options), out=run_dir, train=train
        )
    except Exception as exc:  # a failed run is recorded, the sweep goes on
        return failed_run(name, settings, run_dir, exc, t)
    (run_dir / "error.txt").unlink(missing_ok=True)
    last = rows[-1]
    return RunRecord(
        name,
        "done",
        settings,
        metrics={"test": {"miou": last["test_miou"]}, "val": {"miou": last["val_miou"]}},
        seconds=time.perf_counter() - t,
        rounds=rows,
    )


def write_loop_results(sweep: Any, records: list[Any]) -> None:
    """``loop_results.csv`` (one row per run and round), ``results.md`` and a plot.

    The table gives test mIoU (mean ± s.e. over folds × seeds) per strategy and round; every
    proposal strategy is compared with each random baseline at the same round, fold and seed.
    """
    from pointseg.experiments.protocol import mean_se, paired_difference

    rows = []
    for rec in records:
        fold = (
            Path(rec.settings["split_file"]).stem.split("-", 1)[1]
            if sweep.folds and rec.settings.get("split_file")
            else "-"
        )
        for r in rec.rounds:
            rows.append(
                {
                    "run": rec.run,
                    "strategy": rec.settings["strategy"],
                    "fold": fold,
                    "seed": rec.settings.get("seed", 0),
                    **{k: v for k, v in r.items() if k != "strategy"},
                }
            )
    sweep.out.mkdir(parents=True, exist_ok=True)
    failed = [r.run for r in records if r.status != "done"]
    lines = [f"# {sweep.name}: simulated annotation loop", ""]
    if rows:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(sweep.out / "loop_results.csv", buf.getvalue())
        references = [r for r in rows if r["round"] == "reference"]
        rows = [r for r in rows if r["round"] != "reference"]
        strategies = list(dict.fromkeys(r["strategy"] for r in rows))
        rounds = sorted({r["round"] for r in rows})
        lines += [
            "Test mIoU (mean ± s.e. over folds × seeds) after each round; clicks per training "
            "image in brackets. Models are retrained from scratch every round.",
            "",
            "| strategy | " + " | ".join(f"round {r}" for r in rounds) + " |",
            "|---|" + "---|" * len(rounds),
        ]
        for st in strategies:
            cells = []
            for rnd in rounds:
                sel = [r for r in rows if r["strategy"] == st and r["round"] == rnd]
                mean, se, _ = mean_se([float(r["test_miou"]) for r in sel])
                cpi = np.mean([r["clicks_per_image"] for r in sel]) if sel else float("nan")
                se_text = f"{se:.4f}" if se == se else "-"
                cells.append(f"{mean:.4f} ± {se_text} ({cpi:.1f})")
            lines.append(f"| {st} | " + " | ".join(cells) + " |")
        baselines = [b for b in RANDOM_BASELINES if b in strategies]
        others = [s for s in strategies if s not in RANDOM_BASELINES]
        if baselines and others:
            lines += [
                "",
                "## Paired differences against random clicks",
                "",
                "strategy − baseline at the same round, fold and seed; resolved when |mean| > "
                "2 × its standard error.",
                "",
                "| strategy | baseline | round | difference | s.e. | pairs | resolved |",
                "|---|---|---|---|---|---|---|",
            ]
            for st in others:
                for base in baselines:
                    for rnd in rounds:
                        d = paired_difference(
                            [r for r in rows if r["round"] == rnd],
                            {"strategy": st},
                            {"strategy": base},
                            pair_on=["fold", "seed"],
                        )
                        if not d["n"]:
                            continue
                        se_text = f"{d['se']:.4f}" if d["se"] == d["se"] else "-"
                        lines.append(
                            f"| {st} | {base} | {rnd} | {d['mean']:+.4f} | {se_text} | {d['n']} "
                            f"| {'yes' if d['resolved'] else 'no'} |"
                        )
        if references:
            lines += _goal_lines(rows, references, strategies)
        _plot_loop(sweep.out / "miou_vs_clicks.png", rows, strategies, references)
    if failed:
        lines += ["", f"Failed runs ({len(failed)}): " + ", ".join(failed) + " (see error.txt)."]
    write_text_atomic(sweep.out / "results.md", "\n".join(lines) + "\n")


def _goal_lines(
    rows: list[dict[str, Any]], references: list[dict[str, Any]], strategies: list[str]
) -> list[str]:
    """Which strategy reaches the random reference (e.g. 50 clicks per image), and with what.

    For every random baseline with a reference run and every strategy: the first round whose
    mean test mIoU reaches the reference's mean, its clicks per image against the reference's,
    and the paired difference (same fold and seed) at that round.
    """
    from pointseg.experiments.protocol import mean_se, paired_difference

    lines = [
        "",
        "## Reaching the random reference",
        "",
        "The first round whose mean test mIoU reaches the mean of the reference run (random "
        "clicks at a fixed budget, same folds and seeds); `half` = at most half the reference's "
        "clicks; difference = round − reference paired on fold and seed.",
        "",
        "| reference | reference mIoU | strategy | round reached | clicks/image | half | "
        "difference | s.e. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for base in dict.fromkeys(r["strategy"] for r in references):
        ref_rows = [r for r in references if r["strategy"] == base]
        ref_mean, ref_se, _ = mean_se([float(r["test_miou"]) for r in ref_rows])
        ref_cpi = float(np.mean([r["clicks_per_image"] for r in ref_rows]))
        label = f"{base} {ref_cpi:.0f}/image"
        for st in strategies:
            reached = None
            for rnd in sorted({r["round"] for r in rows if r["strategy"] == st}):
                sel = [r for r in rows if r["strategy"] == st and r["round"] == rnd]
                if mean_se([float(r["test_miou"]) for r in sel])[0] >= ref_mean:
                    reached = (rnd, sel)
                    break
            if reached is None:
                lines.append(
                    f"| {label} | {ref_mean:.4f} ± {ref_se:.4f} | {st} | not reached | - | no "
                    "| - | - |"
                )
                continue
            rnd, sel = reached
            cpi = float(np.mean([r["clicks_per_image"] for r in sel]))
            pairs = [{**r, "side": "a"} for r in sel] + [{**r, "side": "b"} for r in ref_rows]
            d = paired_difference(pairs, {"side": "a"}, {"side": "b"}, pair_on=["fold", "seed"])
            se_text = f"{d['se']:.4f}" if d["se"] == d["se"] else "-"
            lines.append(
                f"| {label} | {ref_mean:.4f} ± {ref_se:.4f} | {st} | {rnd} | {cpi:.1f} | "
                f"{'yes' if cpi <= ref_cpi / 2 else 'no'} | {d['mean']:+.4f} | {se_text} |"
            )
    return lines


def _plot_loop(
    path: Path,
    rows: list[dict[str, Any]],
    strategies: list[str],
    references: list[dict[str, Any]] = (),
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pointseg.experiments.protocol import mean_se
    from pointseg.io.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(6, 4))
    for st in strategies:
        xs, ys, es = [], [], []
        for rnd in sorted({r["round"] for r in rows if r["strategy"] == st}):
            sel = [r for r in rows if r["strategy"] == st and r["round"] == rnd]
            mean, se, _ = mean_se([float(r["test_miou"]) for r in sel])
            xs.append(np.mean([r["clicks_per_image"] for r in sel]))
            ys.append(mean)
            es.append(se if se == se else 0.0)
        style = "--" if st in RANDOM_BASELINES else "-"
        ax.errorbar(xs, ys, yerr=es, label=st, linestyle=style, marker="o", capsize=3)
    for base in dict.fromkeys(r["strategy"] for r in references):
        sel = [r for r in references if r["strategy"] == base]
        mean = mean_se([float(r["test_miou"]) for r in sel])[0]
        cpi = np.mean([r["clicks_per_image"] for r in sel])
        ax.axhline(mean, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            f"{base}, {cpi:.0f} clicks/image",
            (0.01, mean),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            color="grey",
            va="bottom",
        )
    ax.set_xlabel("clicks per training image")
    ax.set_ylabel("test mIoU (mean ± s.e.)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
