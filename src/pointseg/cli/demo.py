"""``pointseg demo``: the whole pipeline on synthetic (or your) data, with a report."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from pointseg.cli._common import quiet_lightning

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
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


def run(args: argparse.Namespace) -> int:
    from pointseg.io.outputs import check_output_dir

    check_output_dir(args.out, what="output folder")
    from pointseg.demo import DemoSettings, run_demo

    quiet_lightning()
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
