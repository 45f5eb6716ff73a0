"""Training-loop throughput of ``pointseg train`` against the bare model.

Measures, on the synthetic set and the same batch shape:

* loop: images/s of the training part of each epoch of ``run_training`` (data loading,
  augmentation, pseudo-label targets, loss, logging, Lightning's loop), epochs after the first;
* bare: images/s of a plain ``forward -> loss -> backward -> Adam step`` loop on tensors that
  are already in memory;
* prepare: images/s of query-point sampling + superpixels + label propagation (done once per
  run and cached).

With ``--window W`` the loop trains on windows read from disk per window (mixed-size,
non-square synthetic mosaics written as PNG; ``--scale``), and the bare model runs on
W x W batches.

Usage: python benchmarks/train.py [--size 96] [--n-images 64] [--epochs 4] [--base-channels 16]
       python benchmarks/train.py --window 256 [--scale 0.5] [--n-images 32]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch

from pointseg.data.synthetic import make_mosaic_dataset, make_synthetic_dataset
from pointseg.losses import get_loss
from pointseg.models import get_model
from pointseg.training import TrainConfig, prepare_splits, run_training


class TrainTimer(L.Callback):
    """Seconds from the start of each training epoch to the start of its validation."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._t = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t = time.perf_counter()

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.seconds.append(time.perf_counter() - self._t)


def bare_throughput(cfg: TrainConfig, n_images: int, channels: int, steps: int) -> float:
    model = get_model(cfg.model, num_classes=5, in_channels=channels, **cfg.model_options)
    model.train()
    loss_fn = get_loss(cfg.loss)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    size = cfg.window or cfg.resize
    x = torch.randn(cfg.batch_size, channels, size, size)
    y = torch.randint(0, 5, (cfg.batch_size, size, size))
    y[:, ::2] = 255  # some ignored pixels, as in pseudo-labels
    for _ in range(2):  # warm-up
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return steps * cfg.batch_size / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--n-images", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--window", type=int, help="train on windows of this side read from disk")
    p.add_argument("--scale", type=float, default=1.0, help="with --window: the scale (1)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        if args.window:
            result = _window_benchmark(args, Path(tmp))
        else:
            result = _resize_benchmark(args, Path(tmp))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def _shared(args: argparse.Namespace, tmp: Path) -> dict:
    """Settings both benchmarks train with."""
    return {
        "out": str(tmp / "run"),
        "model": "unet",
        "model_options": {"base_channels": args.base_channels},
        "batch_size": args.batch_size,
        "max_epochs": args.epochs,
        "early_stop_patience": args.epochs,
        "cache_dir": str(tmp / "cache"),
        "accelerator": "cpu",
    }


def _resize_benchmark(args: argparse.Namespace, tmp: Path) -> dict:
    root = make_synthetic_dataset(tmp / "data", n_images=args.n_images, size=args.size, seed=0)
    cfg = TrainConfig(
        data=str(root),
        resize=args.size,
        **_shared(args, tmp),
    )
    t = time.perf_counter()
    splits = prepare_splits(cfg)
    prep_s = time.perf_counter() - t
    n_train = len(splits["train"].names)
    n_all = sum(len(s.names) for s in splits.values())
    timer = TrainTimer()
    run_training(cfg, splits=splits, callbacks=[timer])
    steady = timer.seconds[1:] or timer.seconds
    loop = n_train / (sum(steady) / len(steady))
    steps = -(-n_train // cfg.batch_size)
    bare = bare_throughput(cfg, n_train, 3, steps)
    return {
        "mode": f"resize {args.size}",
        "batch_size": args.batch_size,
        "model": f"unet base_channels={args.base_channels}",
        "threads": torch.get_num_threads(),
        "prepare_images_per_s": round(n_all / prep_s, 1),
        "loop_images_per_s": round(loop, 2),
        "bare_images_per_s": round(bare, 2),
        "ratio": round(loop / bare, 3),
    }


def _window_benchmark(args: argparse.Namespace, tmp: Path) -> dict:
    rng = np.random.default_rng(0)
    side = round(args.window / args.scale)
    shapes = [
        (int(rng.integers(side // 2, 3 * side)), int(rng.integers(side // 2, 3 * side)))
        for _ in range(args.n_images)
    ]
    root = make_mosaic_dataset(tmp / "data", shapes=shapes, tile=256, seed=0)
    n_windows = 8 * args.batch_size
    cfg = TrainConfig(
        data=str(root),
        window=args.window,
        scale=args.scale,
        windows_per_epoch=n_windows,
        max_val_images=1,
        **_shared(args, tmp),
    )
    timer = TrainTimer()
    t = time.perf_counter()
    run_training(cfg, callbacks=[timer])
    total = time.perf_counter() - t
    steady = timer.seconds[1:] or timer.seconds
    loop = n_windows / (sum(steady) / len(steady))
    bare = bare_throughput(cfg, n_windows, 3, n_windows // args.batch_size)
    return {
        "mode": f"windows {args.window} px at scale {args.scale}, read from disk",
        "images": f"{args.n_images} PNG mosaics of {side // 2}..{3 * side} px per side",
        "batch_size": args.batch_size,
        "model": f"unet base_channels={args.base_channels}",
        "threads": torch.get_num_threads(),
        "run_seconds": round(total, 1),
        "loop_windows_per_s": round(loop, 2),
        "bare_windows_per_s": round(bare, 2),
        "ratio": round(loop / bare, 3),
    }


if __name__ == "__main__":
    main()
