"""The ``pointseg`` command line. Only this module configures logging and progress bars."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

logger = logging.getLogger("pointseg")


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    # the console shows `level` even when a library logger is turned up for a file handler
    # (the sweep runner copies INFO records into each run's train.log)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance.*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")


def _quiet_lightning() -> None:
    """Lightning sets its own loggers to INFO when imported: turn them down afterwards."""
    import lightning  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _progress(enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return lambda it: tqdm(it, desc=desc, leave=False)


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({exc})") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"k\": 1}}', got {text!r}"
        )
    return value


def _bands(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"bands must be comma-separated integers, got {text!r}"
        ) from exc


def _key_value(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value


def _add_split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        help="dataset loader for --data: folder (default), landcoverai, oxford_pet, loveda, "
        "potsdam, vaihingen, rasters (GeoTIFFs of any size trained on in windows from "
        "--points; see 'pointseg list datasets')",
    )
    p.add_argument(
        "--dataset-option",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a loader option, e.g. border=class for oxford_pet, block_size=2048 for rasters "
        "(repeatable)",
    )
    p.add_argument(
        "--classes",
        help="class file (YAML) or a preset name (e.g. dubai); default DATA/classes.yaml",
    )
    p.add_argument(
        "--remap",
        help="class mapping file or preset (e.g. dubai-to-landcoverai) translating the classes",
    )
    p.add_argument("--split-file", help="YAML or 'stem,split' list of train/val/test")
    p.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=(0.7, 0.15, 0.15),
        metavar=("TRAIN", "VAL", "TEST"),
    )
    p.add_argument("--split-seed", type=int, help="seed of the seeded split (0)")
    p.add_argument(
        "--group-pattern", help=r"regex naming each file's group, kept in one split (e.g. 't\d+$')"
    )
    p.add_argument("--bands", type=_bands, help="zero-based band indices to use, e.g. 0,1,2,3")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pointseg``."""
    from pointseg import __version__

    parser = argparse.ArgumentParser(
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

    p = sub.add_parser(
        "demo",
        help="the whole pipeline on synthetic (or your) data, with a report",
        description="Defaults: see pointseg.demo.DemoSettings (synthetic: 120 scenes of 96 px, "
        "50 points, HERS with 500 superpixels, UNet of width 16, 40 epochs).",
    )
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--data", help="a folder dataset instead of the synthetic scenes")
    p.add_argument("--classes", help="class file or preset name for --data")
    p.add_argument("--group-pattern", help=r"split by group, e.g. 't\d+$' for the Dubai tiles")
    p.add_argument("--n-images", type=int, help="synthetic images (120)")
    p.add_argument("--size", type=int, help="synthetic image size (96)")
    p.add_argument("--image-size", type=int, help="training size (synthetic size; 256 real)")
    p.add_argument("--n-points", type=int, help="query points per image (50)")
    p.add_argument("--superpixels", help="superpixel method (hers)")
    p.add_argument("--n-segments", type=int, help="superpixels (500 synthetic, 300 real)")
    p.add_argument("--model", help="model name (unet)")
    p.add_argument("--base-channels", type=int, help="width of the unet (16)")
    p.add_argument("--batch-size", type=int, help="(8)")
    p.add_argument("--max-epochs", type=int, help="(40)")
    p.add_argument("--early-stop-patience", type=int, help="epochs without gain (10)")
    p.add_argument("--lr", type=float, help="Adam learning rate (0.002)")
    p.add_argument("--loss", help="loss of both runs (masked_mse)")
    p.add_argument("--seed", type=int, help="(0)")
    p.add_argument("--accelerator", help="auto (default), cpu or cuda")

    p = sub.add_parser("synthetic", help="generate the synthetic aerial dataset")
    p.add_argument("out")
    p.add_argument("--n-images", type=int, default=120)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--raster",
        action="store_true",
        help="one large georeferenced orthophoto of --size pixels (mosaic of 512 px scenes) "
        "with a reference raster and lon/lat clicks, for --dataset rasters",
    )
    p.add_argument("--points-per-tile", type=int, default=8, help="--raster: clicks per scene")
    p.add_argument(
        "--nodata-columns", type=int, default=0, help="--raster: width of a nodata strip"
    )

    p = sub.add_parser("points", help="simulate query points from dense masks and write a CSV")
    p.add_argument("data", help="folder dataset (images/, masks/)")
    p.add_argument("--out", required=True, help="CSV file (image,x,y,class)")
    p.add_argument("--n-points", type=int, default=50)
    p.add_argument("--scheme", default="per_class", help="per_class, uniform or grid")
    p.add_argument("--seed", type=int, default=0)
    _add_split_args(p)
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="all")

    p = sub.add_parser("pseudolabels", help="write superpixel pseudo-labels (PNG) for inspection")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--points", help="CSV/GeoJSON points (pixel coordinates); default: sampled from masks"
    )
    p.add_argument("--n-points", type=int, default=50)
    p.add_argument("--scheme", default="per_class")
    p.add_argument("--superpixels", default="hers")
    p.add_argument("--n-segments", type=int, default=300)
    p.add_argument("--image-size", type=int, help="resize first (square)")
    p.add_argument("--seed", type=int, default=0)
    _add_split_args(p)
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="train")

    p = sub.add_parser(
        "superpixels",
        help="benchmark superpixel methods on a dataset with masks (table + CSV)",
    )
    p.add_argument("data")
    p.add_argument("--methods", default="hers,slic,felzenszwalb", help="comma-separated names")
    p.add_argument("--counts", default="100,300,600", help="comma-separated superpixel counts")
    p.add_argument("--n-points", type=int, default=50, help="query points for the pseudo-labels")
    p.add_argument("--image-size", type=int, default=256, help="square resize (0 keeps sizes)")
    p.add_argument("--max-images", type=int, help="only the first N images of the split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", help="write the table as CSV here")
    p.add_argument("--overlays", help="folder for superpixel boundary overlays")
    p.add_argument("--n-overlays", type=int, default=2, help="images to draw overlays for")
    _add_split_args(p)
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="all")

    p = sub.add_parser("train", help="train a model from query points (or full masks)")
    p.add_argument("data", nargs="?", help="folder dataset (images/, masks/)")
    p.add_argument("--config", help="YAML of training settings; command-line options override it")
    p.add_argument("--out", help="run directory (default runs/train)")
    _add_split_args(p)
    p.add_argument("--supervision", choices=("points", "full"))
    p.add_argument(
        "--points",
        dest="points_file",
        help="point labels: CSV/GeoJSON in pixel coordinates, or map coordinates with "
        "--points-crs (GeoPackage/Shapefile: always map coordinates)",
    )
    p.add_argument(
        "--points-crs",
        help="the points are in map coordinates: 'file' (the file's CRS; GeoJSON default "
        "WGS84) or a CRS such as EPSG:4326 for a CSV with x,y,class columns",
    )
    p.add_argument("--n-points", type=int, help="simulated points per image (default 50)")
    p.add_argument("--point-scheme", help="per_class (default), uniform or grid")
    p.add_argument("--superpixels", help="superpixel method (default hers)")
    p.add_argument("--n-segments", type=int, help="superpixels per image (default 300)")
    p.add_argument(
        "--fill-counts",
        type=lambda t: [int(v) for v in t.split(",") if v.strip()],
        help="coarser superpixel counts that fill unlabelled pixels, e.g. 150,75 (multi-scale)",
    )
    p.add_argument(
        "--image-size", type=int, help="square training size (default 256; 0 keeps sizes)"
    )
    p.add_argument("--model", help="model name (default unet); see 'pointseg list models'")
    p.add_argument("--model-options", type=_json_arg, help="JSON, e.g. '{\"base_channels\": 16}'")
    p.add_argument("--weights", help="'imagenet' (must be cached locally) or a local weights file")
    p.add_argument("--loss", help="masked_mse (default) or partial_ce")
    p.add_argument("--loss-options", type=_json_arg)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--early-stop-patience", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--accelerator", help="auto (default), cpu or cuda")
    p.add_argument("--precision", help="32-true (default), 16-mixed, bf16-mixed")
    p.add_argument("--num-workers", type=int)
    p.add_argument("--cache-dir", help="pseudo-label cache (default ~/.cache/pointseg)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")

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
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a base setting of every run, e.g. accelerator=cuda (repeatable)",
    )

    p = sub.add_parser("evaluate", help="metrics of a trained model on a split, native resolution")
    p.add_argument("model", help="model.pt written by 'pointseg train'")
    p.add_argument("data")
    _add_split_args(p)
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="test")
    p.add_argument("--out", help="write the metrics as JSON here")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("predict", help="class maps (PNG, GeoTIFF) and overlays for images")
    p.add_argument(
        "model", help="model.pt written by 'pointseg train', or a .onnx from 'pointseg export'"
    )
    p.add_argument("input", help="an image or a folder of images")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-overlays", action="store_true")
    g = p.add_argument_group(
        "large rasters",
        "--tiled predicts GeoTIFFs of any size in overlapping tiles with blended overlaps, in "
        "bounded memory, into tiled compressed GeoTIFFs with the source CRS and transform",
    )
    g.add_argument("--tiled", action="store_true", help="tiled prediction of GeoTIFFs")
    g.add_argument("--tile-size", type=int, default=512, help="tile side in model pixels (512)")
    g.add_argument("--overlap", type=int, help="overlap of tiles (default tile size / 8)")
    g.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (4)")
    g.add_argument("--scale", type=float, default=1.0, help="resample factor for the model (1)")
    g.add_argument("--nodata", type=float, help="source nodata value (default: the file's)")
    g.add_argument("--probabilities", action="store_true", help="also write STEM_probs.tif")
    g.add_argument("--cog", action="store_true", help="write Cloud-Optimized GeoTIFFs")

    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX (dynamic size; checked against PyTorch)",
        description="Needs onnx and onnxruntime (pip install onnx onnxruntime). The ONNX file "
        "carries the model's classes, bands and normalisation; 'pointseg predict MODEL.onnx' "
        "runs it through onnxruntime.",
    )
    p.add_argument("model", help="model.pt (or its run folder)")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (9-20; default 18)")
    p.add_argument(
        "--fixed-size",
        type=int,
        nargs=2,
        metavar=("HEIGHT", "WIDTH"),
        help="export for one input size instead of any height/width",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the check against PyTorch")

    p = sub.add_parser(
        "prepare",
        help="extract (checksums verified) and tile a public dataset, then list its splits",
        description="landcoverai: --archive landcover.ai.v1.zip, cut into 512 px tiles like the "
        "official split.py (lossless PNG). oxford_pet: images.tar.gz + annotations.tar.gz. "
        "loveda: Train.zip, Val.zip (Test.zip). potsdam / vaihingen: the ISPRS files under ROOT, "
        "tiled. Without --archive the archives are looked for in ROOT.",
    )
    p.add_argument(
        "dataset", choices=("landcoverai", "oxford_pet", "loveda", "potsdam", "vaihingen")
    )
    p.add_argument("root", help="dataset folder (created for the archives' content)")
    p.add_argument(
        "--archive", action="append", default=[], help="a downloaded archive (repeatable)"
    )
    p.add_argument("--no-verify", action="store_true", help="skip the MD5 check of the archives")
    p.add_argument(
        "--dataset-option",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option, e.g. tile_size=256 (potsdam/vaihingen) or keep_georef=true",
    )

    p = sub.add_parser("list", help="list registered models, losses, superpixel methods, ...")
    p.add_argument(
        "what",
        choices=(
            "models",
            "losses",
            "superpixels",
            "schemes",
            "datasets",
            "presets",
            "maps",
            "experiments",
        ),
        help="presets: class files; maps: class mapping files; experiments: sweep presets",
    )
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from pointseg.demo import DemoSettings, run_demo

    _quiet_lightning()
    given = {
        f.name: getattr(args, f.name)
        for f in fields(DemoSettings)
        if getattr(args, f.name, None) is not None
    }
    s = DemoSettings(**given, progress=not args.quiet)
    summary = run_demo(s)
    print(
        f"\ntest mIoU: {summary['test_miou_points']:.4f} with {s.n_points} points/image, "
        f"{summary['test_miou_full']:.4f} with full masks (ratio {summary['miou_ratio']:.3f}); "
        f"{summary['wall_seconds']:.0f} s\nreport: {Path(s.out) / 'report.md'}"
    )
    return 0


def _cmd_synthetic(args: argparse.Namespace) -> int:
    from pointseg.data import make_synthetic_dataset

    if args.raster:
        from pointseg.data.synthetic_raster import make_synthetic_raster

        made = make_synthetic_raster(
            args.out,
            size=args.size,
            points_per_tile=args.points_per_tile,
            seed=args.seed,
            nodata_columns=args.nodata_columns,
        )
        print(
            f"{args.size}x{args.size} orthophoto {made['image']} (EPSG:2180), reference "
            f"{made['mask']}, {made['n_points']} clicks in {made['points']} (EPSG:4326), "
            f"class file {made['classes']}"
        )
        return 0
    root = make_synthetic_dataset(
        args.out, n_images=args.n_images, size=args.size, seed=args.seed, overwrite=args.overwrite
    )
    print(f"{args.n_images} synthetic scenes in {root} (class file {root / 'classes.yaml'})")
    return 0


def _dataset(args: argparse.Namespace, split: str | None, *, require_masks: bool = True):
    from pointseg.training import TrainConfig

    cfg = TrainConfig(
        data=args.data,
        dataset=args.dataset or "folder",
        dataset_options=dict(args.dataset_option),
        classes=args.classes,
        remap=args.remap,
        split_file=args.split_file,
        fractions=tuple(args.fractions),
        split_seed=args.split_seed or 0,
        group_pattern=args.group_pattern,
        bands=args.bands,
    )
    cfg.validate()
    return cfg.open_dataset(None if split == "all" else split, require_masks=require_masks)


def _cmd_points(args: argparse.Namespace) -> int:
    from pointseg.points import image_seed, sample_points, write_points_csv

    ds = _dataset(args, args.split)
    out = {}
    for i in range(len(ds)):
        s = ds[i]
        out[s["name"]] = sample_points(
            s["mask"],
            n_points=args.n_points,
            scheme=args.scheme,
            seed=image_seed(args.seed, s["name"]),
        )
    write_points_csv(args.out, out, class_names=list(ds.class_map.names))
    print(f"{sum(len(v) for v in out.values())} points for {len(out)} images -> {args.out}")
    return 0


def _cmd_pseudolabels(args: argparse.Namespace) -> int:
    import numpy as np

    from pointseg.data.transforms import resize_image, scale_points
    from pointseg.io import write_png
    from pointseg.labels import make_pseudo_label, propagation_stats
    from pointseg.points import image_seed, read_points, sample_points

    ds = _dataset(args, args.split, require_masks=args.points is None)
    names = list(ds.class_map.names)
    user = None
    if args.points:
        sizes = {n: ds.image_size(i) for i, n in enumerate(ds.names)}
        user, report = read_points(args.points, class_names=names, image_sizes=sizes)
        logger.info("%s", report)
    colors = [tuple(c) for c in ds.class_map.colors]
    cov = []
    for i in range(len(ds)):
        s = ds[i]
        image, name = s["image"], s["name"]
        size = (args.image_size,) * 2 if args.image_size else image.shape[:2]
        if user is not None:
            pts = user.get(name, np.zeros((0, 3), np.int64))
        else:
            pts = sample_points(
                s["mask"],
                n_points=args.n_points,
                scheme=args.scheme,
                seed=image_seed(args.seed, name),
            )
        pts = scale_points(pts, from_shape=image.shape[:2], to_shape=size)
        img = resize_image(image, size)
        pseudo = make_pseudo_label(
            img,
            pts,
            n_classes=len(names),
            method=args.superpixels,
            n_segments=args.n_segments,
            seed=args.seed,
        )
        write_png(Path(args.out) / f"{name}.png", pseudo, palette=colors)
        if "mask" in s and not args.image_size:
            cov.append(propagation_stats(pseudo, s["mask"]))
    msg = f"{len(ds)} pseudo-labels -> {args.out}"
    if cov:
        msg += (
            f"; mean coverage {np.mean([c['coverage'] for c in cov]):.3f}, "
            f"accuracy {np.nanmean([c['accuracy'] for c in cov]):.3f}"
        )
    print(msg)
    return 0


def _cmd_superpixels(args: argparse.Namespace) -> int:
    from pointseg.data.transforms import resize_image, resize_labels
    from pointseg.io import write_png
    from pointseg.superpixels.evaluation import (
        benchmark_superpixels,
        boundary_map,
        format_superpixel_table,
        write_superpixel_csv,
    )
    from pointseg.viz.colors import display_image

    ds = _dataset(args, args.split)
    n = min(len(ds), args.max_images or len(ds))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        counts = [int(c) for c in args.counts.split(",") if c.strip()]
    except ValueError as exc:
        raise ValueError(f"--counts must be comma-separated integers, got {args.counts!r}") from exc

    progress = _progress(not args.quiet, "superpixels")

    def samples():
        for i in progress(range(n)) if progress else range(n):
            s = ds[i]
            image, mask = s["image"], s["mask"]
            if args.image_size:
                size = (args.image_size, args.image_size)
                image, mask = resize_image(image, size), resize_labels(mask, size)
            yield s["name"], image, mask

    drawn = set(ds.names[: args.n_overlays]) if args.overlays else set()

    def overlay(name, method, count, image, segments):
        if name in drawn:
            out = display_image(image).copy()
            out[boundary_map(segments)] = (255, 255, 0)
            write_png(Path(args.overlays) / f"{name}_{method}_{count}.png", out)

    rows = benchmark_superpixels(
        samples(),
        methods=methods,
        counts=counts,
        n_classes=ds.class_map.n_classes,
        n_points=args.n_points,
        seed=args.seed,
        on_segments=overlay if drawn else None,
    )
    print(f"{n} images, {args.n_points} points each, image size {args.image_size or 'native'}:")
    print(format_superpixel_table(rows))
    if args.csv:
        write_superpixel_csv(args.csv, rows)
        print(f"table -> {args.csv}")
    return 0


_TRAIN_KEYS = (
    "dataset",
    "classes",
    "remap",
    "split_file",
    "split_seed",
    "group_pattern",
    "bands",
    "supervision",
    "points_file",
    "points_crs",
    "n_points",
    "point_scheme",
    "superpixels",
    "n_segments",
    "fill_counts",
    "model",
    "model_options",
    "weights",
    "loss",
    "loss_options",
    "lr",
    "batch_size",
    "max_epochs",
    "early_stop_patience",
    "seed",
    "accelerator",
    "precision",
    "num_workers",
    "cache_dir",
)


def _cmd_train(args: argparse.Namespace) -> int:
    from pointseg.data import resolve_class_file
    from pointseg.metrics import format_metrics_table
    from pointseg.training import TrainConfig, prepare_splits, run_training

    _quiet_lightning()

    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    if args.data:
        cfg.data = args.data
    if args.out:
        cfg.out = args.out
    for key in _TRAIN_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    if tuple(args.fractions) != (0.7, 0.15, 0.15):
        cfg.fractions = tuple(args.fractions)
    cfg.dataset_options = {**cfg.dataset_options, **dict(args.dataset_option)}
    if args.image_size is not None:
        cfg.image_size = args.image_size or None
    if cfg.classes:
        cfg.classes = str(resolve_class_file(cfg.classes))
    cfg.resume = args.resume
    cfg.progress = not args.quiet
    cfg.validate()
    if cfg.dataset == "rasters":  # windows of large rasters: nothing to prepare in memory
        result = run_training(cfg)
        for name, metrics in result.metrics.items():
            print(f"\n{name} metrics ({metrics.get('scored', '')}):")
            print(format_metrics_table(metrics))
        if (result.run_dir / "predictions").is_dir():
            print(f"\npredicted maps: {result.run_dir / 'predictions'}")
        print(f"\nmodel: {result.model_path}\nrun directory: {result.run_dir}")
        return 0
    splits = prepare_splits(cfg, progress=_progress(cfg.progress, "preparing"))
    result = run_training(cfg, splits=splits)
    for name, metrics in result.metrics.items():
        print(f"\n{name} metrics ({len(splits[name].names)} images):")
        print(format_metrics_table(metrics))
    print(f"\nmodel: {result.model_path}\nrun directory: {result.run_dir}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from pointseg.experiments import load_sweep, run_sweep

    _quiet_lightning()
    base = dict(args.set)
    if args.data:
        base["data"] = args.data
    sweep = load_sweep(args.sweep, base_overrides=base)
    if args.out:
        sweep.out = Path(args.out)
    records = run_sweep(sweep, overrides={"progress": False})
    done = sum(r.status == "done" for r in records)
    print((sweep.out / "results.md").read_text())
    print(f"{done} of {len(records)} runs done -> {sweep.out / 'results.csv'}")
    return 0 if done == len(records) else 1


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pointseg.metrics import format_metrics_table, save_metrics_json
    from pointseg.predict import evaluate_dataset, open_model, resolve_device

    device = resolve_device(args.device)
    model, spec = open_model(args.model, device=device)
    if args.bands is None:
        args.bands = spec.bands
    ds = _dataset(args, args.split)
    metrics = evaluate_dataset(
        model, spec, ds, device=device, progress=_progress(not args.quiet, "evaluating")
    )
    print(f"{args.split} split, {len(ds)} images:")
    print(format_metrics_table(metrics))
    if args.out:
        save_metrics_json(metrics, args.out)
        print(f"metrics -> {args.out}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from pointseg.predict import predict_folder

    if args.tiled:
        return _predict_tiled(args)
    files = predict_folder(
        args.model,
        args.input,
        args.out,
        device=args.device,
        overlays=not args.no_overlays,
        progress=_progress(not args.quiet, "predicting"),
    )
    print(f"{len(files)} class maps -> {args.out}")
    return 0


def _predict_tiled(args: argparse.Namespace) -> int:
    from pointseg.predict import open_model
    from pointseg.predict.tiled import predict_raster

    source = Path(args.input)
    if source.is_dir():
        inputs = sorted(
            p for p in source.iterdir() if p.suffix.lower() in (".tif", ".tiff", ".vrt")
        )
        if not inputs:
            raise FileNotFoundError(f"{source} holds no GeoTIFF (.tif, .tiff, .vrt) to predict")
    elif source.is_file():
        inputs = [source]
    else:
        raise FileNotFoundError(f"input {source} does not exist")
    model, spec = open_model(args.model, device=args.device)
    out_dir = Path(args.out)
    for path in inputs:
        summary = predict_raster(
            model,
            spec,
            path,
            out_dir / f"{path.stem}.tif",
            tile_size=args.tile_size,
            overlap=args.overlap,
            batch_size=args.batch_size,
            probabilities=out_dir / f"{path.stem}_probs.tif" if args.probabilities else None,
            cog=args.cog,
            nodata=args.nodata,
            scale=args.scale,
            progress=not args.quiet,
        )
        h, w = summary["shape"]
        print(
            f"{path.name}: {w}x{h} px -> {summary['out']} ({summary['seconds']:.1f} s, "
            f"{summary['megapixels_per_s']:.2f} MP/s)"
        )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pointseg.export import export_onnx

    out = export_onnx(
        args.model,
        args.out,
        opset=args.opset,
        dynamic_size=args.fixed_size is None,
        input_size=tuple(args.fixed_size) if args.fixed_size else None,
        verify=not args.no_verify,
    )
    checked = "" if args.no_verify else " (outputs checked against PyTorch)"
    print(f"ONNX model -> {out}{checked}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from pointseg import data
    from pointseg.data.landcoverai import LANDCOVERAI_FILENAME

    root = Path(args.root)
    verify = not args.no_verify
    archives = [Path(a) for a in args.archive] or None
    options = dict(args.dataset_option)
    progress = not args.quiet
    if args.dataset == "landcoverai":
        if archives is not None and len(archives) != 1:
            raise ValueError("landcoverai takes one --archive (landcover.ai.v1.zip)")
        zip_path = archives[0] if archives else None
        if zip_path is None and (root / LANDCOVERAI_FILENAME).is_file():
            zip_path = root / LANDCOVERAI_FILENAME
        if zip_path is not None:
            data.prepare_landcoverai(
                root,
                zip_path=zip_path,
                verify_checksum=verify,
                progress=progress,
                **{k: v for k, v in options.items() if k in ("tiles_dir", "keep_georef")},
            )
    elif args.dataset == "oxford_pet":
        data.prepare_oxford_pet(root, archives=archives, verify_checksum=verify)
    elif args.dataset == "loveda":
        data.prepare_loveda(root, archives=archives, verify_checksum=verify)
    elif archives is not None:
        raise ValueError(
            f"{args.dataset} finds the ISPRS files (or their official zips) under ROOT; "
            "--archive is not used"
        )
    if args.dataset in ("potsdam", "vaihingen", "landcoverai"):
        options.setdefault("progress", progress)
    ds = data.get_dataset(args.dataset, root=root, split=None, **options)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in ds.splits.items())
    print(
        f"{args.dataset} in {root}: {len(ds)} images ({sizes}); classes {list(ds.class_map.names)}"
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    if args.what == "models":
        from pointseg.models import list_models as fn
    elif args.what == "losses":
        from pointseg.losses import list_losses as fn
    elif args.what == "superpixels":
        from pointseg.superpixels import list_superpixel_methods as fn
    elif args.what == "schemes":
        from pointseg.points import list_point_schemes as fn
    elif args.what == "datasets":
        from pointseg.data import list_datasets as fn
    elif args.what == "maps":
        from pointseg.data import list_map_presets as fn
    elif args.what == "experiments":
        from pointseg.experiments import list_sweep_presets as fn
    else:
        from pointseg.data import list_class_presets as fn
    print("\n".join(fn()))
    return 0


_COMMANDS = {
    "demo": _cmd_demo,
    "synthetic": _cmd_synthetic,
    "points": _cmd_points,
    "pseudolabels": _cmd_pseudolabels,
    "superpixels": _cmd_superpixels,
    "train": _cmd_train,
    "experiment": _cmd_experiment,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "export": _cmd_export,
    "prepare": _cmd_prepare,
    "list": _cmd_list,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pointseg``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(-1 if args.quiet else args.verbose)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError, ImportError) as exc:
        if args.verbose > 1:
            raise
        print(f"pointseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
