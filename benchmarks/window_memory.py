"""Peak memory of windowed training against the number of images (issue 14).

Writes folder datasets of N synthetic 512 x 512 tiles (16 generated scenes, copied to N
files: the loader reads and decodes every file as a separate image) and trains on windows
read from disk with full supervision, each N in a fresh process; reports the process's peak
RSS (``ru_maxrss``). Memory must not grow with N: the decoded-image cache is bounded
(``--window-cache-mb``), labels and images are read per window, band statistics use at most
32 images.

Usage: python benchmarks/window_memory.py [--sizes 100 5000] [--windows 512] [--json F]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_tiles(root: Path, n: int, size: int = 512) -> Path:
    from pointseg.data.synthetic import make_synthetic_dataset

    seeds = make_synthetic_dataset(root / "_seed", n_images=16, size=size, seed=0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        files = sorted((seeds / sub).glob("*.png"))
        for i in range(n):
            shutil.copyfile(files[i % len(files)], root / sub / f"tile_{i:05d}.png")
    shutil.copyfile(seeds / "classes.yaml", root / "classes.yaml")
    shutil.rmtree(seeds)
    return root


def train_once(data: str, out: str, windows: int, cache_mb: float) -> None:
    import logging
    import warnings

    from pointseg.training import TrainConfig, run_training

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    t = time.perf_counter()
    cfg = TrainConfig(
        data=data,
        out=out,
        supervision="full",
        window=256,
        windows_per_epoch=windows,
        max_epochs=2,
        max_val_images=4,
        fractions=(0.98, 0.01, 0.01),
        model="unet",
        model_options={"base_channels": 8},
        window_cache_mb=cache_mb,
        accelerator="cpu",
    )
    run_training(cfg)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"peak_rss_mib": round(peak_mib, 1), "seconds": round(time.perf_counter() - t, 1)}
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 5000])
    p.add_argument("--windows", type=int, default=512, help="windows per epoch (2 epochs)")
    p.add_argument("--window-cache-mb", type=float, default=256.0)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--_train", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._train:
        train_once(*args._train, args.windows, args.window_cache_mb)
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            data = make_tiles(Path(tmp) / f"tiles-{n}", n)
            cmd = [
                sys.executable,
                __file__,
                "--_train",
                str(data),
                str(Path(tmp) / f"run-{n}"),
                "--windows",
                str(args.windows),
                "--window-cache-mb",
                str(args.window_cache_mb),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = {"n_images": n, **json.loads(out.strip().splitlines()[-1])}
            results.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(data)
    base = results[0]["peak_rss_mib"]
    summary = {
        "windows_per_epoch": args.windows,
        "window_cache_mb": args.window_cache_mb,
        "runs": results,
        "growth": round(results[-1]["peak_rss_mib"] / base - 1, 3),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
