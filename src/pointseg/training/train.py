"""``run_training``: data → points → pseudo-labels → Lightning fit → model.pt + metrics."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from pointseg.labels import PseudoLabelCache
from pointseg.metrics import ConfusionMatrix, save_metrics_json
from pointseg.models.registry import ModelSpec, save_model
from pointseg.points import read_geo_points, read_points
from pointseg.training.callbacks import EpochCSVLogger
from pointseg.training.config import TrainConfig
from pointseg.training.data import (
    PreparedSplit,
    SegmentationArrayDataset,
    band_statistics,
    prepare_split,
)
from pointseg.training.task import SegmentationTask

__all__ = [
    "TrainResult",
    "default_cache_dir",
    "evaluate_prepared",
    "prepare_splits",
    "run_training",
]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    model_path: Path
    best_val_miou: float
    epochs: int
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    label_stats: dict[str, float] = field(default_factory=dict)
    splits: dict[str, PreparedSplit] = field(default_factory=dict)


def default_cache_dir() -> Path:
    """``$POINTSEG_CACHE`` or ``$XDG_CACHE_HOME/pointseg`` (``~/.cache/pointseg``)."""
    env = os.environ.get("POINTSEG_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pointseg"


def _accelerator(name: str) -> str:
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"accelerator {name!r} asked for but CUDA is not available here")
        return "gpu"
    if name not in ("auto", "cpu"):
        raise ValueError(f"accelerator must be auto, cpu or cuda, got {name!r}")
    return name


@torch.no_grad()
def evaluate_prepared(
    model: torch.nn.Module,
    split: PreparedSplit,
    spec: ModelSpec,
    *,
    device: torch.device,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Dataset-level metrics of ``model`` on a prepared split's dense masks (or its targets)."""
    ds = SegmentationArrayDataset(split, mean=spec.mean, std=spec.std, use_masks=True)
    cm = ConfusionMatrix(spec.num_classes, class_names=spec.class_names, background=spec.background)
    model.eval().to(device)
    for start in range(0, len(ds), batch_size):
        x = ds.batch(start, start + batch_size).to(device)
        y = ds.masks[start : start + batch_size].to(device, torch.long)
        cm.update(model(x).argmax(1), y)
    return cm.compute()


def _loader(ds: SegmentationArrayDataset, cfg: TrainConfig, *, shuffle: bool) -> DataLoader:
    gen = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=shuffle,
        num_workers=cfg.num_workers,
        generator=gen if shuffle else None,
        persistent_workers=cfg.num_workers > 0,
    )


def run_training(
    cfg: TrainConfig,
    *,
    splits: dict[str, PreparedSplit] | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> TrainResult:
    """Train one model as ``cfg`` says, and write the run directory.

    The run directory ``cfg.out`` receives ``config.yaml`` (resolved settings),
    ``history.csv`` (one row per epoch), ``checkpoints/`` (Lightning ``best.ckpt`` and
    ``last.ckpt`` for resuming), ``model.pt`` (the best weights plus everything needed to rebuild
    the model; loads with ``weights_only=True``), ``label_stats.json`` and ``metrics.json``
    (validation and test metrics of the best model).

    Parameters
    ----------
    cfg : TrainConfig
    splits : dict, optional
        Already prepared ``train``/``val``/``test`` splits (used by the demo to share work).
    callbacks : sequence of lightning.Callback
        Extra callbacks (timers, custom loggers).
    """
    cfg.validate()
    t0 = time.perf_counter()
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.dataset == "rasters":
        if splits is not None:
            raise ValueError("prepared splits cannot be given to a run on the rasters dataset")
        return _run_raster_training(cfg, run_dir, callbacks, t0)

    if splits is None:
        splits = prepare_splits(cfg)
    train, val = splits["train"], splits["val"]
    class_map = train.class_map
    if class_map is None:
        class_map = cfg.open_dataset("train").class_map

    mean, std = band_statistics(train.images)
    spec = _model_spec(cfg, class_map, train.images.shape[-1], mean, std, cfg.image_size)
    train_ds = SegmentationArrayDataset(train, mean=mean, std=std, augment=True)
    val_ds = SegmentationArrayDataset(val, mean=mean, std=std, use_masks=True)
    task, trainer, best = _fit(
        cfg,
        spec,
        _loader(train_ds, cfg, shuffle=True),
        _loader(val_ds, cfg, shuffle=False),
        run_dir,
        callbacks,
    )
    model_path = save_model(run_dir / "model.pt", task.model, spec)

    device = next(task.model.parameters()).device
    metrics: dict[str, Any] = {}
    for name in ("val", "test"):
        split = splits.get(name)
        if split is not None and len(split.names):
            metrics[name] = evaluate_prepared(
                task.model, split, spec, device=device, batch_size=cfg.batch_size
            )
    return _finish(cfg, run_dir, model_path, best, trainer, metrics, train.stats, t0, splits)


def _model_spec(
    cfg: TrainConfig,
    class_map: Any,
    in_channels: int,
    mean: list[float],
    std: list[float],
    image_size: int | None,
) -> ModelSpec:
    return ModelSpec(
        name=cfg.model,
        num_classes=class_map.n_classes,
        in_channels=in_channels,
        options={**cfg.model_options, **({"weights": cfg.weights} if cfg.weights else {})},
        class_names=list(class_map.names),
        class_colors=[list(c) for c in class_map.colors],
        background=class_map.background,
        mean=mean,
        std=std,
        image_size=image_size,
        bands=cfg.bands,
    )


def _fit(
    cfg: TrainConfig,
    spec: ModelSpec,
    train_loader: DataLoader,
    val_loader: DataLoader,
    run_dir: Path,
    callbacks: Sequence[L.Callback],
) -> tuple[SegmentationTask, L.Trainer, float]:
    """Lightning fit with checkpoints, early stopping and the CSV log; best weights loaded."""
    task = SegmentationTask(
        model=cfg.model,
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        model_options=spec.options,
        loss=cfg.loss,
        loss_options=cfg.loss_options,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        plateau_patience=cfg.plateau_patience,
        class_names=spec.class_names,
        background=spec.background,
    )
    ckpt_dir = run_dir / "checkpoints"
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_miou", mode="max", save_last=True
    )
    all_callbacks: list[L.Callback] = [
        checkpoint,
        L.pytorch.callbacks.EarlyStopping(
            monitor="val_miou", mode="max", patience=cfg.early_stop_patience
        ),
        EpochCSVLogger(run_dir / "history.csv"),
        *callbacks,
    ]
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.max_epochs,
        accelerator=_accelerator(cfg.accelerator),
        devices=1,
        precision=cfg.precision,
        logger=False,
        callbacks=all_callbacks,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    last = ckpt_dir / "last.ckpt"
    resume_from = str(last) if cfg.resume and last.is_file() else None
    if cfg.resume and resume_from is None:
        logger.warning("resume asked but %s does not exist: training from the start", last)
    if resume_from is None and ckpt_dir.is_dir():
        stale = sorted(ckpt_dir.glob("*.ckpt"))
        if stale:
            logger.warning(
                "starting afresh in %s: removing %d old checkpoint(s)", run_dir, len(stale)
            )
            for path in stale:
                path.unlink()
    trainer.fit(task, train_loader, val_loader, ckpt_path=resume_from)

    best_path = checkpoint.best_model_path
    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        task.load_state_dict(state)
    best = checkpoint.best_model_score
    return task, trainer, float(best) if best is not None else float("nan")


def _finish(
    cfg: TrainConfig,
    run_dir: Path,
    model_path: Path,
    best: float,
    trainer: L.Trainer,
    metrics: dict[str, Any],
    label_stats: dict[str, Any],
    t0: float,
    splits: dict[str, PreparedSplit],
) -> TrainResult:
    save_metrics_json(metrics, run_dir / "metrics.json")
    save_metrics_json(label_stats, run_dir / "label_stats.json")
    result = TrainResult(
        run_dir=run_dir,
        model_path=model_path,
        best_val_miou=best,
        epochs=trainer.current_epoch,
        seconds=time.perf_counter() - t0,
        metrics=metrics,
        label_stats=label_stats,
        splits=splits,
    )
    logger.info(
        "trained %s in %.1f s, %d epochs, best val mIoU %.4f",
        cfg.model,
        result.seconds,
        result.epochs,
        result.best_val_miou,
    )
    return result


def _run_raster_training(
    cfg: TrainConfig, run_dir: Path, callbacks: Sequence[L.Callback], t0: float
) -> TrainResult:
    """Training from windows of large rasters and a point file (see training.windows)."""
    from pointseg.data.rasters import RasterDataset
    from pointseg.predict.evaluate import evaluate_label_rasters
    from pointseg.predict.tiled import predict_raster
    from pointseg.training.windows import DrawSampler, prepare_raster_training

    if cfg.points_file is None:
        raise ValueError(
            "training from rasters needs a point file: set points_file (--points clicks.gpkg, "
            "a GeoJSON/GeoPackage/Shapefile in any CRS, or CSV with --points-crs)"
        )
    if cfg.supervision != "points":
        raise ValueError("the rasters dataset trains from points only: set supervision=points")
    if cfg.image_size is None:
        raise ValueError("the rasters dataset needs image_size: the side of the training windows")
    dataset = cfg.open_dataset(None, require_masks=False)
    if not isinstance(dataset, RasterDataset):  # pragma: no cover - registry invariant
        raise TypeError(f"dataset 'rasters' built {type(dataset).__name__}")
    class_map = dataset.class_map
    paths = [r.image for r in dataset.records]
    # on rasters, a GeoJSON holds map coordinates (RFC 7946 lon/lat unless it says otherwise)
    geojson = Path(cfg.points_file).suffix.lower() in (".geojson", ".json")
    if cfg.map_points() or geojson:
        crs = None if cfg.points_crs in (None, "file") else cfg.points_crs
        points, report = read_geo_points(
            cfg.points_file, paths, class_names=list(class_map.names), crs=crs
        )
    else:
        from pointseg.training.windows import raster_shape

        sizes = {r.name: raster_shape(r.image)[:2] for r in dataset.records}
        points, report = read_points(
            cfg.points_file, class_names=list(class_map.names), image_sizes=sizes
        )
    logger.info("%s", report)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir() / "raster-labels"
    prep = prepare_raster_training(
        dataset,
        points,
        window=cfg.image_size,
        n_segments=cfg.n_segments,
        superpixels=cfg.superpixels,
        fill_counts=cfg.fill_counts,
        superpixel_options=cfg.superpixel_options,
        seed=cfg.seed,
        split_seed=cfg.split_seed,
        cache_dir=cache_dir,
        progress=cfg.progress,
    )
    spec = _model_spec(cfg, class_map, len(prep.indexes), prep.mean, prep.std, None)
    train_loader = DataLoader(
        prep.train,
        batch_size=cfg.batch_size,
        sampler=DrawSampler(len(prep.train), seed=cfg.seed),
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
    )
    val_loader = DataLoader(
        prep.val,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
    )
    task, trainer, best = _fit(cfg, spec, train_loader, val_loader, run_dir, callbacks)
    model_path = save_model(run_dir / "model.pt", task.model, spec)

    metrics: dict[str, Any] = {"val": _evaluate_loader(task.model, val_loader, spec)}
    metrics["val"]["scored"] = "held-out points"
    pairs = []
    for src in prep.sources:
        if src.reference is None:
            continue
        pred = run_dir / "predictions" / f"{src.name}.tif"
        predict_raster(
            task.model,
            spec,
            src.image,
            pred,
            tile_size=cfg.image_size,
            batch_size=cfg.batch_size,
            nodata=prep.options.nodata,
            progress=cfg.progress,
        )
        pairs.append((pred, src.reference))
    if pairs:
        metrics["test"] = evaluate_label_rasters(
            pairs,
            class_map=dataset.source_class_map,
            remap=dataset.remap,
            background=spec.background,
        )
        metrics["test"]["scored"] = "reference label rasters (whole maps)"
    stats = {**prep.stats, "points_report": report.counts()}
    return _finish(cfg, run_dir, model_path, best, trainer, metrics, stats, t0, {})


@torch.no_grad()
def _evaluate_loader(model: torch.nn.Module, loader: DataLoader, spec: ModelSpec) -> dict[str, Any]:
    cm = ConfusionMatrix(spec.num_classes, class_names=spec.class_names, background=spec.background)
    model.eval()
    device = next(model.parameters()).device
    for batch in loader:
        cm.update(model(batch["image"].to(device)).argmax(1), batch["mask"].to(device))
    return cm.compute()


def prepare_splits(
    cfg: TrainConfig,
    *,
    progress: Any = None,
    names: Sequence[str] = ("train", "val", "test"),
) -> dict[str, PreparedSplit]:
    """Prepare the train split with ``cfg.supervision`` and val/test with dense masks.

    ``names`` limits which splits are loaded (val/test do not depend on the supervision, so
    runs that differ only in it can share them).
    """
    needs_masks = cfg.supervision == "full" or cfg.points_file is None
    datasets = {s: cfg.open_dataset(s, require_masks=needs_masks) for s in ("train", "val", "test")}
    class_map = datasets["train"].class_map
    points = None
    if cfg.points_file is not None and cfg.map_points():
        rasters = [r.image for ds in datasets.values() for r in ds.records]
        crs = None if cfg.points_crs in (None, "file") else cfg.points_crs
        points, geo_report = read_geo_points(
            cfg.points_file, rasters, class_names=list(class_map.names), crs=crs
        )
        logger.info("%s", geo_report)
    elif cfg.points_file is not None:
        sizes: dict[str, tuple[int, int]] = {}
        for ds in datasets.values():
            for i, name in enumerate(ds.names):
                sizes[name] = ds.image_size(i)
        points, report = read_points(
            cfg.points_file, class_names=list(class_map.names), image_sizes=sizes
        )
        logger.info("%s", report)
    cache = PseudoLabelCache(
        Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir() / "pseudo-labels"
    )
    out = {}
    for name, ds in datasets.items():
        if len(ds) == 0:
            if name in ("train", "val"):
                raise ValueError(
                    f"the {name} split is empty ({len(datasets['train'].splits['train'])} train, "
                    f"{len(datasets['val'].splits['val'])} val images); adjust the split fractions "
                    "or the split file"
                )
            continue
        if name not in names:
            continue
        if name == "train":
            target = "full" if cfg.supervision == "full" else "pseudo"
        else:
            target = "full" if ds.records[0].mask is not None else "points"
        out[name] = prepare_split(
            ds,
            target=target,
            image_size=cfg.image_size,
            n_classes=class_map.n_classes,
            points=points,
            n_points=cfg.n_points,
            point_scheme=cfg.point_scheme,
            seed=cfg.seed,
            superpixels=cfg.superpixels,
            n_segments=cfg.n_segments,
            fill_counts=cfg.fill_counts,
            superpixel_options=cfg.superpixel_options,
            cache=cache,
            progress=progress,
        )
    return out
