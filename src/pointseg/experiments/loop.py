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
    """

    strategy: str = "entropy"
    rounds: int = 4
    clicks_per_round: int = 5
    min_distance: float = 8.0

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
    from pointseg.training.data import training_view

    probs, segs, grid_pts, pseudo, scale = {}, {}, {}, {}, {}
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
        h, w = sample["image"].shape[:2]
        scale[name] = (w / view.shape[1], h / view.shape[0])
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
        sx, sy = scale[p.image]
        h, w = samples[p.image]["image"].shape[:2]
        out[p.image].append((min(int((p.x + 0.5) * sx), w - 1), min(int((p.y + 0.5) * sy), h - 1)))
    return out


def _answer(mask: np.ndarray, clicks: list[tuple[int, int]], existing: np.ndarray) -> np.ndarray:
    """The annotator's answers: the mask's class at each proposed pixel (ignore: no click)."""
    taken = {(int(x), int(y)) for x, y, _ in existing}
    new = [(x, y, int(mask[y, x])) for x, y in clicks if mask[y, x] != IGNORE_INDEX]
    new = [p for p in new if p[:2] not in taken]
    if not new:
        return existing
    return np.concatenate([existing, np.array(new, np.int64)])


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
    for r in range(loop.rounds):
        folder = out / f"round-{r}"
        points_file = write_points_csv(folder / "points.csv", points, class_names=names)
        result = train(
            replace(cfg, out=str(folder / "run"), points_file=str(points_file), overwrite=True)
        )
        clicks = int(sum(len(p) for p in points.values()))
        rows.append(
            {
                "round": r,
                "strategy": loop.strategy,
                "clicks": clicks,
                "clicks_per_image": clicks / len(points),
                "test_miou": result.metrics.get("test", {}).get("miou", float("nan")),
                "val_miou": result.metrics.get("val", {}).get("miou", float("nan")),
            }
        )
        logger.info(
            "round %d (%s): %d clicks, test mIoU %.4f",
            r,
            loop.strategy,
            clicks,
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
        model, spec = load_model(result.model_path)
        proposed = _propose_round(
            model.eval(),
            spec,
            samples,
            points,
            settings,
            loop,
            image_size=cfg.image_size,
            n_classes=len(names),
            seed=cfg.seed * 1000 + r,
            segments_cache=segments_cache,
        )
        points = {n: _answer(samples[n]["mask"], proposed[n], points[n]) for n in samples}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "loop.csv", buf.getvalue())
    return rows
