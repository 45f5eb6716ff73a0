"""Tiled prediction of large GeoTIFFs (``predict_raster``): throughput and peak memory by size.

For each size N in ``--sizes``, a synthetic N x N 3-band uint8 GeoTIFF (EPSG:2180, tiled,
deflate) is written to a temporary folder and predicted by ``predict_raster`` in a fresh
subprocess, which reports:

* Mpx/s: output megapixels per second, end to end (reading, tiling, model, blending, writing);
* peak RSS: the child's ``ru_maxrss`` (and ``VmHWM``), so sizes do not share an allocator;
* ratio: end-to-end Mpx/s over the bare model's forward Mpx/s, measured in another fresh
  subprocess on batches of random tiles of the same size and batch size (so the ratio counts
  the overlap between tiles, I/O, blending and writing);
* tile px / px: model-input pixels per output pixel (overlap and tiles evaluated twice at
  block-row borders; 1.0 would be no overhead).

Usage: python benchmarks/predict.py [--sizes 1000,4000,10000] [--tile-size 512] [--model unet]
    [--model-option base_channels=16] [--num-classes 6] [--batch-size 4] [--block-size 1024]
    [--overlap N] [--threads N] [--device cpu] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import peak_rss_mib


def write_synthetic(path: Path, size: int, seed: int = 0) -> float:
    """An aerial-looking (smooth patches plus noise) 3-band uint8 GeoTIFF; returns seconds."""
    import rasterio
    from affine import Affine

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    cell = 64
    n = -(-size // cell)
    patches = rng.integers(30, 220, (3, n, n), dtype=np.uint8)
    profile = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:2180",
        "transform": Affine(0.25, 0.0, 500000.0, 0.0, -0.25, 300000.0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "bigtiff": "IF_SAFER",
    }
    strip = 512
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, size, strip):
            h = min(strip, size - y)
            rows = np.arange(y, y + h) // cell
            block = np.repeat(patches[:, rows], cell, axis=2)[:, :, :size]
            noise = rng.integers(-12, 13, block.shape, dtype=np.int16)
            block = np.clip(block.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            dst.write(block, window=rasterio.windows.Window(0, y, size, h))
    return time.perf_counter() - t


# --------------------------------------------------------------------------------------------
# children (run in fresh processes)


def child_predict(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from pointseg.models import load_model
    from pointseg.predict.inference import resolve_device
    from pointseg.predict.tiled import predict_raster

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    model, spec = load_model(args.child_model, map_location=dev)
    before = peak_rss_mib()
    summary = predict_raster(
        model,
        spec,
        args.child_source,
        args.child_out,
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        block_size=args.block_size,
        device=dev,
        progress=args.progress,
    )
    return {"summary": summary, "rss_before": before, "rss": peak_rss_mib()}


def child_bare(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from pointseg.models import load_model
    from pointseg.predict.inference import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    model, spec = load_model(args.child_model, map_location=dev)
    model.to(dev).eval()
    t = args.tile_size
    x = torch.randn(args.batch_size, spec.in_channels, t, t, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(2):  # warm-up
            model(x)
        sync()
        start, batches = time.perf_counter(), 0
        while batches < 3 or time.perf_counter() - start < args.bare_seconds:
            model(x)
            batches += 1
        sync()
        seconds = time.perf_counter() - start
    mpx = batches * args.batch_size * t * t / 1e6
    return {"megapixels_per_s": mpx / seconds, "batches": batches, "rss": peak_rss_mib()}


# --------------------------------------------------------------------------------------------


def run_child(mode: str, argv: list[str], extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, *argv, "--child", mode, *extra]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child {mode} failed (exit {proc.returncode}): {cmd}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_options(items: list[str]) -> dict[str, Any]:
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--model-option takes KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(value)
    return options


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,4000,10000", help="raster sides, comma-separated")
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--overlap", type=int, default=None, help="default: tile_size // 8")
    p.add_argument("--model", default="unet")
    p.add_argument(
        "--model-option",
        action="append",
        default=None,
        help="KEY=VALUE model option (default for unet: base_channels=16, depth=4)",
    )
    p.add_argument("--num-classes", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--bare-seconds", type=float, default=10.0, help="timing of the bare model")
    p.add_argument("--progress", action="store_true", help="progress bars of the children")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child", choices=["predict", "bare"], help=argparse.SUPPRESS)
    p.add_argument("--child-model", help=argparse.SUPPRESS)
    p.add_argument("--child-source", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    if args.child:
        result = child_predict(args) if args.child == "predict" else child_bare(args)
        print(json.dumps(result))
        return

    import torch

    from pointseg.models import ModelSpec, get_model, save_model

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.model_option is None:
        options = {"base_channels": 16, "depth": 4} if args.model == "unet" else {}
    else:
        options = parse_options(args.model_option)
    forwarded = [
        f"--tile-size={args.tile_size}",
        f"--num-classes={args.num_classes}",
        f"--batch-size={args.batch_size}",
        f"--block-size={args.block_size}",
        f"--threads={args.threads}",
        f"--device={args.device}",
        f"--bare-seconds={args.bare_seconds}",
        *([f"--overlap={args.overlap}"] if args.overlap is not None else []),
        *(["--progress"] if args.progress else []),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pointseg-bench-predict-") as tmp:
        tmp_dir = Path(tmp)
        torch.manual_seed(0)
        spec = ModelSpec(
            name=args.model,
            num_classes=args.num_classes,
            in_channels=3,
            options=options,
            mean=[120.0] * 3,
            std=[60.0] * 3,
            class_colors=[[(37 * i) % 256, (91 * i) % 256, (151 * i) % 256] for i in range(6)],
        )
        model = get_model(args.model, num_classes=args.num_classes, in_channels=3, **options)
        model_path = save_model(tmp_dir / "model.pt", model, spec)
        child_model = [f"--child-model={model_path}"]
        bare = run_child("bare", forwarded, child_model)
        print(
            f"bare model: {bare['megapixels_per_s']:.3f} Mpx/s ({bare['batches']} batches)",
            file=sys.stderr,
        )
        for size in sizes:
            src = tmp_dir / f"synthetic_{size}.tif"
            gen_s = write_synthetic(src, size)
            print(f"{size}^2: source written in {gen_s:.1f} s; predicting", file=sys.stderr)
            t = time.perf_counter()
            res = run_child(
                "predict",
                forwarded,
                [*child_model, f"--child-source={src}", f"--child-out={tmp_dir / 'pred.tif'}"],
            )
            wall = time.perf_counter() - t
            s = res["summary"]
            rss = res["rss"].get("VmHWM_mib", res["rss"]["ru_maxrss_mib"])
            tile_px = s["tiles"] * args.tile_size**2 / size**2
            rows.append(
                {
                    "size": size,
                    "megapixels": size * size / 1e6,
                    "tiles": s["tiles"],
                    "tile_px_per_px": tile_px,
                    "seconds": s["seconds"],
                    "child_wall_s": wall,
                    "megapixels_per_s": s["megapixels_per_s"],
                    "bare_megapixels_per_s": bare["megapixels_per_s"],
                    "ratio": s["megapixels_per_s"] / bare["megapixels_per_s"],
                    "peak_rss_mib": rss,
                    "rss_before_predict_mib": res["rss_before"].get("VmRSS_mib"),
                }
            )
            print(f"{size}^2: {s['seconds']:.1f} s, peak RSS {rss:.0f} MiB", file=sys.stderr)
            src.unlink()

    base = rows[0]["peak_rss_mib"] if rows else 1.0
    opts = ", ".join(f"{k}={v}" for k, v in options.items())
    threads = args.threads or torch.get_num_threads()
    print(
        f"model {args.model} ({opts}), {args.num_classes} classes, tile {args.tile_size}, "
        f"overlap {args.overlap if args.overlap is not None else args.tile_size // 8}, "
        f"batch {args.batch_size}, block {args.block_size}, device {args.device}, "
        f"{threads} torch thread(s), {os.cpu_count()} CPU(s), {platform.processor() or '?'}\n"
    )
    print(
        "| size | Mpx | tiles | tile px / px | seconds | Mpx/s | bare Mpx/s | ratio "
        "| peak RSS MiB | RSS vs first |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']}² | {r['megapixels']:.1f} | {r['tiles']} | {r['tile_px_per_px']:.2f} "
            f"| {r['seconds']:.1f} | {r['megapixels_per_s']:.3f} "
            f"| {r['bare_megapixels_per_s']:.3f} | {r['ratio']:.2f} | {r['peak_rss_mib']:.0f} "
            f"| {r['peak_rss_mib'] / base:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"options": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
