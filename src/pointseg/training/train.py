"""``run_training``: data → points → pseudo-labels → Lightning fit → model.pt + metrics."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from pointseg.io.atomic import remove_stale_temp_files, write_text_atomic
from pointseg.labels import PseudoLabelCache
from pointseg.metrics import ConfusionMatrix, save_metrics_json
from pointseg.models.registry import ModelSpec, save_model
from pointseg.points import load_points, no_supervision_message
from pointseg.training.callbacks import AtomicCheckpointIO, EpochCSVLogger
from pointseg.training.config import TrainConfig
from pointseg.training.data import (
    PreparedSplit,
    SegmentationArrayDataset,
    band_statistics,
    prepare_split,
)
from pointseg.training.distributed import (
    DistContext,
    RankShard,
    launched_externally,
    run_in_processes,
    setup_distributed,
)
from pointseg.training.rundir import check_resume, check_run_folder, open_run_folder
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
    #: this process's rank in a distributed run (0 also for one process): rank 0 writes
    rank: int = 0
    #: trained by processes this call started (read back from the run folder)
    launched: bool = False


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
    indices: Sequence[int] | None = None,
    reduce: Any = None,
) -> dict[str, Any]:
    """Dataset-level metrics of ``model`` on a prepared split's dense masks (or its targets).

    ``indices`` limits the images (one rank's share); ``reduce`` sums the confusion matrix
    over ranks before the metrics are computed.
    """
    ds = SegmentationArrayDataset(split, mean=spec.mean, std=spec.std, use_masks=True)
    cm = ConfusionMatrix(spec.num_classes, class_names=spec.class_names, background=spec.background)
    model.eval().to(device)
    order = list(range(len(ds))) if indices is None else list(indices)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        y = ds.masks[chunk].to(device, torch.long)
        cm.update(model(ds.take(chunk).to(device)).argmax(1), y)
    if reduce is not None:
        cm = cm.with_counts(reduce(cm.matrix))
    return cm.compute()


def _loader(
    ds: SegmentationArrayDataset, cfg: TrainConfig, *, shuffle: bool, dist: DistContext
) -> DataLoader:
    """Training (``shuffle``) or validation loader; in a distributed run each rank's share."""
    opts = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}
    if dist.distributed and shuffle:  # seeded shuffle, a disjoint share per rank
        sampler = torch.utils.data.DistributedSampler(
            ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=cfg.seed
        )
        return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, **opts)
    if dist.distributed:  # validation: a share per rank, padded with ignored copies
        shard = RankShard(ds, rank=dist.rank, world_size=dist.world_size)
        return DataLoader(shard, batch_size=cfg.batch_size, **opts)
    gen = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=shuffle,
        generator=gen if shuffle else None,
        **opts,
    )


def run_training(
    cfg: TrainConfig,
    *,
    splits: dict[str, PreparedSplit] | None = None,
    callbacks: Sequence[L.Callback] = (),
    progress: Any = None,
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
    progress : callable, optional
        Wraps the loop over images while preparing the splits (e.g. ``tqdm``).

    The run folder is a transaction (:mod:`pointseg.training.rundir`): an existing run is
    refused unless ``cfg.overwrite`` (replaced once this run finishes) or ``cfg.resume``
    (continued; the model, bands and classes must not change). ``model.pt`` is written last,
    so a folder with it holds a finished run.

    With ``cfg.devices``/``cfg.num_nodes`` above 1 this runs in each process of a distributed
    run (:mod:`pointseg.training.distributed`); rank 0 writes, and the other ranks return a
    result with their ``rank`` and no metrics. Called outside such processes (no torchrun or
    srun) with several devices on one node, it starts ``cfg.devices`` torchrun processes
    and returns what they wrote (``launched``).
    """
    cfg.validate()
    t0 = time.perf_counter()
    if cfg.devices * cfg.num_nodes > 1 and not launched_externally():
        return _train_in_processes(cfg, callbacks, t0)
    dist = setup_distributed(
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        accelerator=cfg.accelerator,
        strategy=cfg.strategy,
    )

    def check_saved(saved: dict[str, Any]) -> None:
        for change in check_resume(saved, cfg.to_dict(), run_dir=Path(cfg.out)):
            logger.info("resuming with a changed setting: %s", change)

    # the dataset, its class file, mapping and band counts are checked before anything is written
    cfg.open_dataset(None, require_masks=False).check_bands()
    folder = dist.from_main(
        lambda: open_run_folder(
            cfg.out, overwrite=cfg.overwrite, resume=cfg.resume, saved_check=check_saved
        )
    )
    try:
        result = _train_in(cfg, folder.work, splits, callbacks, progress, t0, dist)
    except BaseException:
        if dist.is_main:
            folder.abort()
        raise
    if not dist.is_main:
        result.run_dir = folder.final
        return result
    final = folder.commit()
    result.run_dir = final
    result.model_path = final / result.model_path.name
    return result


def _train_in_processes(
    cfg: TrainConfig, callbacks: Sequence[L.Callback], t0: float
) -> TrainResult:
    """Start the training processes here (torchrun) and read their finished run back."""
    if callbacks:
        raise ValueError(
            "callbacks cannot be passed to training processes started here; launch "
            "this script with torchrun instead (README: Scaling out)"
        )
    # what rank 0 would refuse is refused here, before any process starts
    cfg.open_dataset(None, require_masks=False).check_bands()
    check_run_folder(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume)
    saved = Path(cfg.out) / "config.yaml"
    if cfg.resume and saved.is_file():
        check_resume(yaml.safe_load(saved.read_text()) or {}, cfg.to_dict(), run_dir=saved.parent)
    run_in_processes(cfg)
    return _read_run(Path(cfg.out), time.perf_counter() - t0)


def _read_run(run_dir: Path, seconds: float) -> TrainResult:
    """The result of a finished run, read from its folder."""
    from pointseg.training.callbacks import read_history

    def read(name: str) -> dict[str, Any]:
        path = run_dir / name
        return json.loads(path.read_text()) if path.is_file() else {}

    rows = [r for p in sorted(run_dir.glob("history*.csv")) for r in read_history(p)]
    scores = [r["val_miou"] for r in rows if r["val_miou"] == r["val_miou"]]
    return TrainResult(
        run_dir=run_dir,
        model_path=run_dir / "model.pt",
        best_val_miou=max(scores) if scores else float("nan"),
        epochs=len(read_history(run_dir / "history.csv")),
        seconds=seconds,
        metrics=read("metrics.json"),
        label_stats=read("label_stats.json"),
        launched=True,
    )


def _train_in(
    cfg: TrainConfig,
    run_dir: Path,
    splits: dict[str, PreparedSplit] | None,
    callbacks: Sequence[L.Callback],
    progress: Any,
    t0: float,
    dist: DistContext,
) -> TrainResult:
    if dist.is_main:
        cfg.save(run_dir / "config.yaml")
    else:
        progress = None  # rank 0 shows it
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.dataset == "rasters":
        if splits is not None:
            raise ValueError("prepared splits cannot be given to a run on the rasters dataset")
        return _run_raster_training(cfg, run_dir, callbacks, t0, dist)
    if cfg.mode == "window":
        if splits is not None:
            raise ValueError("prepared splits cannot be given to a run on windows")
        return _run_window_training(cfg, run_dir, callbacks, progress, t0, dist)

    from pointseg.predict.evaluate import evaluate_dataset

    if splits is None:
        splits = dist.main_first(lambda: prepare_splits(cfg, progress=progress))
    train, val = splits["train"], splits["val"]
    class_map = train.class_map
    if class_map is None:
        class_map = cfg.open_dataset("train").class_map

    mean, std = band_statistics(train.images)
    spec = _model_spec(cfg, class_map, train.images.shape[-1], mean, std, cfg.resize_size)
    train_ds = SegmentationArrayDataset(train, mean=mean, std=std, augment=True)
    val_ds = SegmentationArrayDataset(val, mean=mean, std=std, use_masks=True)
    task, trainer, best = _fit(
        cfg,
        spec,
        _loader(train_ds, cfg, shuffle=True, dist=dist),
        _loader(val_ds, cfg, shuffle=False, dist=dist),
        run_dir,
        callbacks,
        dist=dist,
    )
    device = next(task.model.parameters()).device
    metrics: dict[str, Any] = {}
    for name in ("val", "test"):
        split = splits.get(name)
        if split is None or not len(split.names):
            continue
        ds = cfg.open_dataset(name, require_masks=False)
        if (
            split.masks is not None
            and ds.names == split.names
            and all(r.mask is not None for r in ds.records)
        ):  # one confusion matrix at native resolution, as pointseg evaluate scores
            metrics[name] = evaluate_dataset(
                task.model,
                spec,
                ds,
                device=device,
                indices=dist.shard(len(ds)),
                reduce=dist.sum,
            )
        else:  # the split's clicks on the training grid
            metrics[name] = evaluate_prepared(
                task.model,
                split,
                spec,
                device=device,
                batch_size=cfg.batch_size,
                indices=dist.shard(len(split.names)),
                reduce=dist.sum,
            )
    return _finish(
        cfg, run_dir, task.model, spec, best, trainer, metrics, train.stats, t0, splits, dist
    )


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
        scale=float(cfg.scale or 1.0),
        window=cfg.window_size,
        resize_mode=cfg.resize_mode,
    )


def _fit(
    cfg: TrainConfig,
    spec: ModelSpec,
    train_loader: DataLoader,
    val_loader: DataLoader,
    run_dir: Path,
    callbacks: Sequence[L.Callback],
    *,
    whole_image: Any = None,
    stage: str = "",
    init_state: Mapping[str, Any] | None = None,
    dist: DistContext | None = None,
) -> tuple[SegmentationTask, L.Trainer, float]:
    """Lightning fit with checkpoints, early stopping and the CSV log; best weights loaded.

    ``stage`` (e.g. ``round1``) keeps a later stage's checkpoints and history apart
    (``checkpoints/round1/``, ``history-round1.csv``); ``init_state`` starts the model from
    given weights (a resumed stage starts from its own ``last.ckpt`` instead). With ``dist``
    distributed, Lightning trains with DDP on ``cfg.devices`` x ``cfg.num_nodes`` processes (the
    loaders already hold each rank's share) and rank 0 writes.
    """
    dist = dist or DistContext()
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
        regulariser=cfg.regulariser,
        regulariser_options=cfg.regulariser_options,
        regulariser_weight=cfg.regulariser_weight,
    )
    task.whole_image = whole_image
    if init_state is not None:
        task.model.load_state_dict(init_state)
    ckpt_dir = run_dir / "checkpoints" / stage if stage else run_dir / "checkpoints"
    if dist.is_main:
        remove_stale_temp_files(ckpt_dir)  # half-written checkpoints of a killed run
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_miou", mode="max"
    )
    # last.ckpt after every epoch, improved or not: a kill loses at most one epoch
    last_checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, enable_version_counter=False
    )
    all_callbacks: list[L.Callback] = [
        checkpoint,
        last_checkpoint,
        L.pytorch.callbacks.EarlyStopping(
            monitor="val_miou", mode="max", patience=cfg.early_stop_patience
        ),
        EpochCSVLogger(run_dir / (f"history-{stage}.csv" if stage else "history.csv")),
        *callbacks,
    ]
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.max_epochs,
        accelerator=_accelerator(cfg.accelerator),
        **_device_settings(cfg, dist),
        precision=cfg.precision,
        logger=False,
        callbacks=all_callbacks,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=int(cfg.val_every),
        deterministic=False,
        plugins=[AtomicCheckpointIO()],
    )
    last = ckpt_dir / "last.ckpt"
    done = ckpt_dir / STAGE_DONE
    finished = _finished_stage(done) if cfg.resume else None
    if finished is not None and int(cfg.max_epochs) <= int(finished["max_epochs"]):
        # a resumed run does not train a finished stage again (unless given more epochs)
        state = torch.load(finished["best_path"], map_location="cpu", weights_only=True)
        task.load_state_dict(state["state_dict"])
        trainer.fit_loop.epoch_progress.current.completed = int(finished["epochs"])
        logger.info("stage %s finished before: its best weights from %s", stage or "1", done)
        return task, trainer, float(finished["best"])
    resume_from = str(last) if cfg.resume and last.is_file() else None
    trainer.fit(task, train_loader, val_loader, ckpt_path=resume_from)

    best_path = checkpoint.best_model_path
    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        task.load_state_dict(state)
    best = checkpoint.best_model_score
    best = float(best) if best is not None else float("nan")
    if best_path and dist.is_main:
        record = {"best": best, "epochs": trainer.current_epoch, "max_epochs": cfg.max_epochs}
        record["best_file"] = Path(best_path).name  # beside this file: the folder may move
        write_text_atomic(done, json.dumps(record))
    return task, trainer, best


def _device_settings(cfg: TrainConfig, dist: DistContext) -> dict[str, Any]:
    """Trainer settings of one process, or of DDP over the ranks of ``dist``."""
    if not dist.distributed:
        return {"devices": 1}
    from lightning.pytorch.strategies import DDPStrategy

    strategy = DDPStrategy(
        process_group_backend=torch.distributed.get_backend(),
        find_unused_parameters=cfg.strategy == "ddp_find_unused_parameters_true",
    )
    # the loaders already hold each rank's disjoint share (DrawSampler, RankShard)
    return {
        "devices": cfg.devices,
        "num_nodes": cfg.num_nodes,
        "strategy": strategy,
        "use_distributed_sampler": False,
    }


#: Written in a stage's checkpoint folder once it has trained: a resumed run skips the stage.
STAGE_DONE = "stage-done.json"


def _finished_stage(path: Path) -> dict[str, Any] | None:
    """The record of a finished stage, or None (absent, unreadable or its weights gone)."""
    try:
        record = json.loads(path.read_text())
        record["best_path"] = path.parent / str(record["best_file"])
        if record["best_path"].is_file():
            return record
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _finish(
    cfg: TrainConfig,
    run_dir: Path,
    model: torch.nn.Module,
    spec: ModelSpec,
    best: float,
    trainer: L.Trainer,
    metrics: dict[str, Any],
    label_stats: dict[str, Any],
    t0: float,
    splits: dict[str, PreparedSplit],
    dist: DistContext,
) -> TrainResult:
    model_path = run_dir / "model.pt"
    if not dist.is_main:  # rank 0 writes
        return TrainResult(
            run_dir=run_dir,
            model_path=model_path,
            best_val_miou=best,
            epochs=trainer.current_epoch,
            seconds=time.perf_counter() - t0,
            rank=dist.rank,
        )
    save_metrics_json(metrics, run_dir / "metrics.json")
    save_metrics_json(label_stats, run_dir / "label_stats.json")
    model_path = save_model(model_path, model, spec)  # last: marks a finished run
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
    cfg: TrainConfig, run_dir: Path, callbacks: Sequence[L.Callback], t0: float, dist: DistContext
) -> TrainResult:
    """Training from windows of large rasters and a point file (see training.windows)."""
    from pointseg.data.rasters import RasterDataset
    from pointseg.predict.evaluate import evaluate_label_rasters
    from pointseg.predict.tiled import default_overlap, predict_raster, predict_tile
    from pointseg.training.windows import DrawSampler, prepare_raster_training

    if cfg.points_file is None:
        raise ValueError(
            "training from rasters needs a point file: set points_file (--points clicks.gpkg, "
            "a GeoJSON/GeoPackage/Shapefile in any CRS, or CSV with --points-crs)"
        )
    if cfg.supervision != "points":
        raise ValueError("the rasters dataset trains from points only: set supervision=points")
    window = cfg.window_size or 256
    dataset = cfg.open_dataset(None, require_masks=False)
    if not isinstance(dataset, RasterDataset):  # pragma: no cover - registry invariant
        raise TypeError(f"dataset 'rasters' built {type(dataset).__name__}")
    class_map = dataset.class_map
    from pointseg.training.windows import raster_shape

    # on rasters, a GeoJSON holds map coordinates (RFC 7946 lon/lat unless it says otherwise)
    points, report = load_points(
        cfg.points_file,
        images={r.name: r.image for r in dataset.records},
        image_sizes=lambda: {r.name: raster_shape(r.image)[:2] for r in dataset.records},
        class_names=list(class_map.names),
        crs=cfg.points_crs,
        geojson_map=True,
    )
    if not any(len(p) for p in points.values()):
        raise ValueError(no_supervision_message(report, where="the rasters"))
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir() / "raster-labels"
    prep = dist.main_first(
        lambda: prepare_raster_training(
            dataset,
            points,
            window=window,
            scale=float(cfg.scale or 1.0),
            superpixel_area=cfg.superpixel_area,
            pseudo=cfg.pseudo_label_settings(),
            split_seed=cfg.split_seed,
            cache_dir=cache_dir,
            progress=cfg.progress and dist.is_main,
        )
    )
    spec = _model_spec(cfg, class_map, len(prep.indexes), prep.mean, prep.std, None)
    train_loader = DataLoader(
        prep.train,
        batch_size=cfg.batch_size,
        sampler=DrawSampler(
            len(prep.train), seed=cfg.seed, rank=dist.rank, world_size=dist.world_size
        ),
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
    )
    val_loader = DataLoader(
        RankShard(prep.val, rank=dist.rank, world_size=dist.world_size)
        if dist.distributed
        else prep.val,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
    )
    task, trainer, best = _fit(cfg, spec, train_loader, val_loader, run_dir, callbacks, dist=dist)

    metrics: dict[str, Any] = {
        "val": _evaluate_loader(task.model, val_loader, spec, reduce=dist.sum)
    }
    metrics["val"]["scored"] = "held-out points"
    pairs = []
    for src in prep.sources if dist.is_main else ():  # whole maps: rank 0
        if src.reference is None or not prep.options.score_references:
            continue
        pred = run_dir / "predictions" / f"{src.name}.tif"
        predict_raster(
            task.model,
            spec,
            src.image,
            pred,
            tile_size=predict_tile(window),
            overlap=default_overlap(window),
            scale=float(cfg.scale or 1.0),
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
    return _finish(cfg, run_dir, task.model, spec, best, trainer, metrics, stats, t0, {}, dist)


@torch.no_grad()
def _evaluate_loader(
    model: torch.nn.Module, loader: DataLoader, spec: ModelSpec, *, reduce: Any = None
) -> dict[str, Any]:
    """One confusion matrix over ``loader`` (summed over ranks by ``reduce``)."""
    cm = ConfusionMatrix(spec.num_classes, class_names=spec.class_names, background=spec.background)
    model.eval()
    device = next(model.parameters()).device
    for batch in loader:
        cm.update(model(batch["image"].to(device)).argmax(1), batch["mask"].to(device))
    if reduce is not None:
        cm = cm.with_counts(reduce(cm.matrix))
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
    points, report = _split_points(cfg, datasets)
    cache = PseudoLabelCache(
        Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir() / "pseudo-labels"
    )
    pseudo = cfg.pseudo_label_settings()
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
            image_size=cfg.resize_size,
            resize_mode=cfg.resize_mode,
            superpixel_area=cfg.superpixel_area,
            n_classes=class_map.n_classes,
            points=points,
            n_points=cfg.n_points,
            point_scheme=cfg.point_scheme,
            seed=cfg.seed,
            pseudo=pseudo,
            cache=cache,
            progress=progress,
        )
        if (
            name == "train"
            and cfg.supervision == "points"
            and not out[name].stats.get("labelled_pixels")
        ):
            raise ValueError(_no_training_labels(ds, points, report))
    return out


def _split_points(cfg: TrainConfig, datasets: dict[str, Any]) -> tuple[Any, Any]:
    """The point file's points in each split's source pixels (``(None, None)`` without one)."""
    if cfg.points_file is None:
        return None, None
    class_map = datasets["train"].class_map

    def sizes() -> dict[str, tuple[int, int]]:
        return {n: ds.image_size(i) for ds in datasets.values() for i, n in enumerate(ds.names)}

    return load_points(
        cfg.points_file,
        images={r.name: r.image for ds in datasets.values() for r in ds.records},
        image_sizes=sizes,
        class_names=list(class_map.names),
        crs=cfg.points_crs,
    )


def _run_window_training(
    cfg: TrainConfig,
    run_dir: Path,
    callbacks: Sequence[L.Callback],
    progress: Any,
    t0: float,
    dist: DistContext,
) -> TrainResult:
    """Training on windows of any dataset at native resolution (training.image_windows)."""
    from pointseg.predict.evaluate import evaluate_dataset
    from pointseg.predict.tiled import default_overlap, predict_array, predict_tile
    from pointseg.training.image_windows import (
        ImageWindowDataset,
        WholeImageDataset,
        prepare_window_training,
    )
    from pointseg.training.windows import DrawSampler

    window = int(cfg.window_size or 0)
    scale = float(cfg.scale or 1.0)
    needs_masks = cfg.supervision == "full" or cfg.points_file is None
    datasets = {s: cfg.open_dataset(s, require_masks=needs_masks) for s in ("train", "val", "test")}
    for name in ("train", "val"):
        if len(datasets[name]) == 0:
            raise ValueError(
                f"the {name} split is empty ({len(datasets['train'])} train, "
                f"{len(datasets['val'])} val images); adjust the split fractions or the split file"
            )
    class_map = datasets["train"].class_map
    points, report = _split_points(cfg, datasets)
    pseudo = cfg.pseudo_label_settings()
    side = window / scale
    area = float(cfg.pixels_per_segment() or 0)  # never None on windows
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir() / "window-labels"
    target = "full" if cfg.supervision == "full" else "pseudo"
    prep = dist.main_first(  # rank 0 fills the label cache; the others then read it
        lambda: prepare_window_training(
            datasets["train"],
            target=target,
            n_classes=class_map.n_classes,
            pixels_per_segment=area,
            pseudo=pseudo,
            cache_dir=cache_dir,
            points=points,
            n_points=cfg.n_points,
            point_scheme=cfg.point_scheme,
            seed=cfg.seed,
            progress=progress,
        )
    )
    if target == "pseudo" and not prep.stats.get("labelled_pixels"):
        raise ValueError(_no_training_labels(datasets["train"], points, report))
    spec = _model_spec(cfg, class_map, prep.in_channels, prep.mean, prep.std, None)
    length = cfg.windows_per_epoch or max(
        cfg.batch_size,
        sum(
            max(1, math.ceil(s.height * scale / window))
            * max(1, math.ceil(s.width * scale / window))
            for s in prep.sources
        ),
    )

    def windows(sources: Sequence[Any]) -> ImageWindowDataset:
        return ImageWindowDataset(
            datasets["train"],
            sources,
            window=window,
            scale=scale,
            mean=prep.mean,
            std=prep.std,
            target=target,
            length=length,
            cache_bytes=float(cfg.window_cache_mb) * 2**20,
            seed=cfg.seed,
            with_valid=cfg.regulariser is not None,
        )

    val_data = datasets["val"]
    indices = list(range(len(val_data)))
    if cfg.max_val_images and len(indices) > cfg.max_val_images:
        keep = np.random.default_rng(cfg.split_seed).permutation(len(indices))[: cfg.max_val_images]
        indices = sorted(keep.tolist())
    val_ds: Any = WholeImageDataset(val_data, indices=indices, points=points)
    if dist.distributed:  # a share of the images per rank; one matrix summed over ranks
        val_ds = RankShard(val_ds, rank=dist.rank, world_size=dist.world_size)
    loader_opts = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}

    def train_loader(sources: Sequence[Any]) -> DataLoader:
        return DataLoader(
            windows(sources),
            batch_size=cfg.batch_size,
            sampler=DrawSampler(length, seed=cfg.seed, rank=dist.rank, world_size=dist.world_size),
            **loader_opts,
        )

    val_loader = DataLoader(
        val_ds, batch_size=1, collate_fn=WholeImageDataset.collate, **loader_opts
    )

    def whole(model: torch.nn.Module, image: Any) -> Any:
        return predict_array(
            model,
            spec,
            image,
            tile_size=predict_tile(window, image.shape[:2], scale),
            overlap=default_overlap(window),
            scale=scale,
            batch_size=cfg.batch_size,
        )

    logger.info(
        "windows of %d px at scale %g (%d native px), %d per epoch over %d training images; "
        "superpixels of %.0f native px²; validation on %d whole image(s) every %d epoch(s)%s",
        window,
        scale,
        round(side),
        length,
        len(prep.sources),
        area,
        len(indices),
        cfg.val_every,
        f"; {dist.world_size} processes, this one rank {dist.rank}" if dist.distributed else "",
    )
    task, trainer, best = _fit(
        cfg,
        spec,
        train_loader(prep.sources),
        val_loader,
        run_dir,
        callbacks,
        whole_image=whole,
        dist=dist,
    )
    rounds: list[dict[str, Any]] = []
    if cfg.self_train_rounds:
        task, trainer, best, rounds = _self_train(
            cfg,
            run_dir,
            callbacks,
            prep,
            datasets["train"],
            pseudo,
            (task, trainer, best),
            whole=whole,
            train_loader=train_loader,
            val_loader=val_loader,
            spec=spec,
            dist=dist,
        )
    device = next(task.model.parameters()).device
    metrics: dict[str, Any] = {}
    for name in ("val", "test"):
        ds = datasets[name]
        if len(ds) and all(r.mask is not None for r in ds.records):
            metrics[name] = evaluate_dataset(
                task.model, spec, ds, device=device, indices=dist.shard(len(ds)), reduce=dist.sum
            )
            metrics[name]["scored"] = "whole images at native resolution, tiled"
    stats: dict[str, Any] = {**prep.stats, "windows_per_epoch": float(length)}
    if rounds:
        stats["self_train"] = rounds
    if report is not None:
        stats["points_report"] = report.counts()
    return _finish(cfg, run_dir, task.model, spec, best, trainer, metrics, stats, t0, {}, dist)


def _self_train(
    cfg: TrainConfig,
    run_dir: Path,
    callbacks: Sequence[L.Callback],
    prep: Any,
    train_data: Any,
    pseudo: Any,
    first: tuple[SegmentationTask, L.Trainer, float],
    *,
    whole: Any,
    train_loader: Any,
    val_loader: DataLoader,
    spec: ModelSpec,
    dist: DistContext,
) -> tuple[SegmentationTask, L.Trainer, float, list[dict[str, Any]]]:
    """``cfg.self_train_rounds`` rounds of completed labels and training from the last weights.

    Each round starts from the best weights so far (by validation mIoU), on the click labels
    completed by that model (:func:`~pointseg.training.self_training.self_training_round`).
    The model kept is the round with the best validation mIoU; every round's label coverage,
    accuracy and validation mIoU are returned (and logged).
    """
    from pointseg.training.self_training import image_superpixels, self_training_round

    area, fills = prep.areas

    def superpixels(index: int, sample: dict[str, Any]) -> np.ndarray:
        return image_superpixels(
            sample["image"],
            pixels_per_segment=area,
            pseudo=pseudo,
            fill_pixels_per_segment=fills,
            valid=sample.get("valid"),
            levels=prep.levels(train_data.records[index].image),
        )

    kept = first
    rounds = []
    for r in range(1, int(cfg.self_train_rounds) + 1):
        t_round = time.perf_counter()
        model = kept[0].model
        model.eval()
        with torch.no_grad():
            sources, info = self_training_round(
                functools.partial(whole, model),
                train_data,
                prep.sources,
                threshold=float(cfg.self_train_threshold),
                superpixels=superpixels,
                out_dir=run_dir / "self-train" / f"round{r}",
                share=dist.shard,
                reduce=dist.sum,
            )
        logger.info(
            "self-training round %d: labels cover %.1f %% of the training pixels (+%.1f %% "
            "from predictions)%s",
            r,
            100 * info["labelled_fraction"],
            100 * info["added_fraction"],
            f", {100 * info['pseudo_accuracy']:.1f} % right (added: "
            f"{100 * info['added_accuracy']:.1f} %)"
            if "pseudo_accuracy" in info
            else "",
        )
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        task_r, trainer_r, best_r = _fit(
            cfg,
            spec,
            train_loader(sources),
            val_loader,
            run_dir,
            callbacks,
            whole_image=whole,
            stage=f"round{r}",
            init_state=state,
            dist=dist,
        )
        info.update(
            round=float(r),
            best_val_miou=best_r,
            seconds=round(time.perf_counter() - t_round, 1),
        )
        rounds.append(info)
        logger.info("self-training round %d: best val mIoU %.4f", r, best_r)
        if best_r >= kept[2] or kept[2] != kept[2]:
            kept = (task_r, trainer_r, best_r)
    return (*kept, rounds)


def _no_training_labels(ds: Any, points: Any, report: Any) -> str:
    """Why the training split got no labelled pixel from its points."""
    if report is None:
        return (
            "the simulated points label no training pixel: the masks of the training split "
            "hold only ignore pixels"
        )
    elsewhere = sum(len(p) for n, p in points.items() if n not in set(ds.names))
    text = no_supervision_message(report)
    if elsewhere:
        text += (
            f"; {elsewhere} kept point(s) lie on validation/test images, none on the "
            f"{len(ds)} training images"
        )
    return text
