"""``pointseg superpixels``: benchmark superpixel methods on a dataset with masks."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointseg.cli._common import (
    DATA_SETTINGS,
    add_setting_flags,
    int_list,
    open_dataset,
    progress_wrapper,
)

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "superpixels",
        help="benchmark superpixel methods on a dataset with masks (table + CSV)",
    )
    p.add_argument("data")
    p.add_argument("--methods", default="hers,slic,felzenszwalb", help="comma-separated names")
    p.add_argument(
        "--counts", type=int_list, default=[100, 300, 600], help="comma-separated counts"
    )
    p.add_argument("--n-points", type=int, default=50, help="query points for the pseudo-labels")
    p.add_argument("--image-size", type=int, default=256, help="square resize (0 keeps sizes)")
    p.add_argument("--max-images", type=int, help="only the first N images of the split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", help="write the table as CSV here")
    p.add_argument("--overlays", help="folder for superpixel boundary overlays")
    p.add_argument("--n-overlays", type=int, default=2, help="images to draw overlays for")
    add_setting_flags(p, DATA_SETTINGS)
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="all")


def run(args: argparse.Namespace) -> int:
    from pointseg.benchmarking.superpixels import (
        benchmark_superpixels,
        format_superpixel_table,
        write_superpixel_csv,
    )
    from pointseg.data.transforms import resize_image, resize_labels
    from pointseg.io import write_png
    from pointseg.io.outputs import check_output_dir, check_output_file
    from pointseg.superpixels import list_superpixel_methods
    from pointseg.superpixels.evaluation import boundary_map
    from pointseg.viz.colors import display_image

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in list_superpixel_methods()]
    if unknown or not methods:
        raise ValueError(
            f"--methods {args.methods!r}: unknown {unknown or 'empty'}; available superpixel "
            f"methods: {', '.join(list_superpixel_methods())}"
        )
    if min(args.counts) < 1:
        raise ValueError(f"--counts must be positive, got {args.counts}")
    for name in ("n_points", "n_overlays"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
    if args.csv:
        check_output_file(args.csv, what="--csv", suffix=".csv")
    if args.overlays:
        check_output_dir(args.overlays, what="--overlays")
    ds = open_dataset(args, args.split)
    n = min(len(ds), args.max_images or len(ds))
    progress = progress_wrapper(not args.quiet, "superpixels")

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
        counts=args.counts,
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
