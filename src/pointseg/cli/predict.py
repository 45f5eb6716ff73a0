"""``pointseg predict``: class maps (PNG, GeoTIFF) and overlays, whole images or tiled rasters."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pointseg.cli._common import int_list, progress_wrapper
from pointseg.cli._dask import add_dask_flags, client_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="class maps (PNG, GeoTIFF) and overlays for images")
    p.add_argument(
        "model", help="model.pt written by 'pointseg train', or a .onnx from 'pointseg export'"
    )
    p.add_argument("input", help="an image or a folder of images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--bands",
        type=int_list,
        help="zero-based band indices of the input to feed the model (default: the bands the "
        "model was trained on)",
    )
    p.add_argument("--no-overlays", action="store_true")
    g = p.add_argument_group(
        "large rasters",
        "--tiled predicts GeoTIFFs of any size in overlapping tiles with blended overlaps, in "
        "bounded memory, into tiled compressed GeoTIFFs with the source CRS and transform",
    )
    g.add_argument("--tiled", action="store_true", help="tiled prediction of GeoTIFFs")
    g.add_argument(
        "--tile-size",
        type=int,
        help="tile side in model pixels (default 512)",
    )
    g.add_argument(
        "--overlap",
        type=int,
        help="overlap of tiles (default: the training window / 8, else the tile size / 8)",
    )
    g.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (4)")
    p.add_argument(
        "--scale",
        type=float,
        help="model pixels per image pixel (default: the scale the model was trained at, "
        "stored in model.pt; 0.5 = half resolution)",
    )
    g.add_argument("--nodata", type=float, help="source nodata value (default: the file's)")
    g.add_argument("--probabilities", action="store_true", help="also write STEM_probs.tif")
    g.add_argument("--cog", action="store_true", help="write Cloud-Optimized GeoTIFFs")
    g.add_argument(
        "--block-size",
        type=int,
        help="output block side in pixels (multiple of 256): memory of a serial run (default "
        "1024), one Dask task each with --dask-* (default 2048); the output is the same",
    )
    add_dask_flags(p)


def _check(args: argparse.Namespace) -> None:
    from pointseg.io.outputs import check_input_file, check_output_dir

    check_input_file(args.model, what="model")
    if not Path(args.input).exists():
        raise FileNotFoundError(f"input {args.input} does not exist")
    check_output_dir(args.out, what="--out")
    if args.tile_size is not None and args.tile_size < 16:
        raise ValueError(f"--tile-size must be >= 16, got {args.tile_size}")
    if (
        args.overlap is not None
        and args.tile_size is not None
        and not 0 <= args.overlap < args.tile_size
    ):
        raise ValueError(
            f"--overlap must be between 0 and the tile size - 1 ({args.tile_size - 1}), "
            f"got {args.overlap}"
        )
    if args.block_size is not None and args.block_size < 1:
        raise ValueError(f"--block-size must be >= 1 (e.g. 2048), got {args.block_size}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.scale is not None and not args.scale > 0:
        raise ValueError(f"--scale must be > 0, got {args.scale}")


def run(args: argparse.Namespace) -> int:
    from pointseg.predict import predict_folder

    _check(args)
    with client_from_args(args) as client:
        if args.tiled:
            return _predict_tiled(args, client)
        files = predict_folder(
            args.model,
            args.input,
            args.out,
            device=args.device,
            overlays=not args.no_overlays,
            bands=args.bands,
            scale=args.scale,
            progress=progress_wrapper(not args.quiet, "predicting"),
            client=client,
            overwrite=args.overwrite,
        )
    print(f"{len(files)} class maps -> {args.out}")
    return 0


def _predict_tiled(args: argparse.Namespace, client: Any) -> int:
    from pointseg.distributed import TasksFailed
    from pointseg.predict import open_model
    from pointseg.predict.blocks import DEFAULT_BLOCK, predict_raster_dask
    from pointseg.predict.tiled import predict_raster

    source = Path(args.input)
    if source.is_dir():
        inputs = sorted(
            p for p in source.iterdir() if p.suffix.lower() in (".tif", ".tiff", ".vrt")
        )
        if not inputs:
            raise FileNotFoundError(f"{source} holds no GeoTIFF (.tif, .tiff, .vrt) to predict")
    else:
        inputs = [source]
    from pointseg.predict.tiled import default_overlap, predict_tile

    model, spec = open_model(args.model, device=args.device)
    scale = args.scale if args.scale is not None else float(spec.scale or 1.0)
    tile_size = args.tile_size or (predict_tile(spec.window) if spec.window else 512)
    overlap = args.overlap
    if overlap is None and spec.window:
        overlap = min(default_overlap(spec.window), tile_size - 1)
    if overlap is not None and not 0 <= overlap < tile_size:
        raise ValueError(
            f"--overlap must be between 0 and the tile size - 1 ({tile_size - 1}), got {overlap}"
        )
    out_dir = Path(args.out)
    failures, n_tasks = [], 0
    for path in inputs:
        options = {
            "tile_size": tile_size,
            "overlap": overlap,
            "batch_size": args.batch_size,
            "probabilities": out_dir / f"{path.stem}_probs.tif" if args.probabilities else None,
            "cog": args.cog,
            "nodata": args.nodata,
            "scale": scale,
            "bands": args.bands,
            "progress": not args.quiet,
        }
        if client is None:
            if args.block_size is not None:
                options["block_size"] = args.block_size
            summary = predict_raster(model, spec, path, out_dir / f"{path.stem}.tif", **options)
        else:
            try:
                summary = predict_raster_dask(
                    args.model,
                    path,
                    out_dir / f"{path.stem}.tif",
                    client=client,
                    block_size=args.block_size or DEFAULT_BLOCK,
                    device=args.device,
                    overwrite=args.overwrite,
                    **options,
                )
            except TasksFailed as exc:  # the other rasters still run
                failures.extend(exc.failures)
                n_tasks += exc.n_tasks
                continue
            n_tasks += summary["blocks"] - summary["blocks_reused"]
            if summary["skipped"]:
                print(f"{path.name}: {summary['out']} exists, skipped (--overwrite redoes it)")
                continue
        h, w = summary["shape"]
        print(
            f"{path.name}: {w}x{h} px -> {summary['out']} ({summary['seconds']:.1f} s, "
            f"{summary['megapixels_per_s']:.2f} MP/s)"
        )
    if failures:
        raise TasksFailed(failures, n_tasks, "raster blocks")
    return 0
