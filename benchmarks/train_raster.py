"""Training from a large raster plus clicks (``--dataset rasters``): time and peak memory by size.

For each size N in ``--sizes``, a synthetic N x N orthophoto (mosaic of synthetic scenes,
EPSG:2180) with ``--points-per-tile`` lon/lat clicks per 512-pixel scene is written to a
temporary folder, and a fresh subprocess runs ``run_training`` on it from an empty cache:

* pseudo-label s: block-wise superpixels and majority vote over the whole raster;
* train s: the Lightning fit (``--epochs`` x ``--windows`` windows of ``--window`` pixels),
  validation on the held-out points included;
* peak RSS: the child's ``ru_maxrss``, so sizes do not share an allocator. Memory should
  not grow with the raster: only blocks, windows and the points are ever in memory.

Usage: python benchmarks/train_raster.py [--sizes 1000,4000,10000] [--window 256]
    [--windows 64] [--epochs 2] [--points-per-tile 8] [--block-size 1024] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import peak_rss_mib


def child(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from pointseg.training import TrainConfig
    from pointseg.training.train import run_training

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.child_root)
    cfg = TrainConfig(
        data=str(root / "images" / "scene.tif"),  # the raster alone: no reference to score
        dataset="rasters",
        classes=str(root / "classes.yaml"),
        points_file=str(root / "points.geojson"),
        window=args.window,
        n_segments=args.n_segments,
        model="unet",
        model_options={"base_channels": 16},
        max_epochs=args.epochs,
        early_stop_patience=args.epochs,
        batch_size=args.batch_size,
        out=str(root / "run"),
        cache_dir=str(root / "cache"),
        dataset_options={"windows_per_epoch": args.windows, "block_size": args.block_size},
    )
    t = time.perf_counter()
    result = run_training(cfg)
    total = time.perf_counter() - t
    stats = result.label_stats
    return {
        "points": int(stats["n_points"] + stats["n_val_points"]),
        "labelled_fraction": stats["labelled_fraction"],
        "pseudo_label_s": stats["pseudo_label_seconds"],
        "total_s": total,
        "rss": peak_rss_mib(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,4000,10000", help="raster sides, comma-separated")
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--windows", type=int, default=64, help="windows per epoch")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-segments", type=int, default=300, help="superpixels per window")
    p.add_argument("--points-per-tile", type=int, default=8, help="clicks per 512 px scene")
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child-root", help=argparse.SUPPRESS)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if args.child_root:
        print(json.dumps(child(args)))
        return

    from pointseg.data.synthetic_raster import make_synthetic_raster

    names = ("window", "windows", "epochs", "batch_size", "n_segments", "block_size", "threads")
    forwarded = [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in names]
    rows = []
    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    print("| raster | points | labelled | pseudo-labels s | training s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        with tempfile.TemporaryDirectory(prefix="pointseg-bench-train-raster-") as tmp:
            t = time.perf_counter()
            make_synthetic_raster(tmp, size=size, points_per_tile=args.points_per_tile)
            made = time.perf_counter() - t
            cmd = [sys.executable, __file__, *forwarded, f"--child-root={tmp}"]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"benchmark child failed (exit {proc.returncode}): {cmd}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        row.update(size=size, write_s=made)
        rows.append(row)
        train_s = row["total_s"] - row["pseudo_label_s"]
        print(
            f"| {size}² | {row['points']} | {100 * row['labelled_fraction']:.1f}% | "
            f"{row['pseudo_label_s']:.1f} | {train_s:.1f} | {row['rss']['ru_maxrss_mib']:.0f} |",
            flush=True,
        )
    if len(rows) > 1:
        ratio = rows[-1]["rss"]["ru_maxrss_mib"] / rows[0]["rss"]["ru_maxrss_mib"]
        print(f"peak RSS {rows[-1]['size']}² / {rows[0]['size']}²: {ratio:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
