"""``pointseg synthetic``: generate the synthetic aerial dataset (tiles or one large raster)."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument(
        "--mixed",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="images of random sizes and aspects: height and width drawn between MIN and MAX "
        "pixels, each a mosaic of --size px scenes (one ground resolution for all)",
    )
    p.add_argument("--points-per-tile", type=int, default=8, help="--raster: clicks per scene")
    p.add_argument(
        "--nodata-columns", type=int, default=0, help="--raster: width of a nodata strip"
    )


def run(args: argparse.Namespace) -> int:
    from pointseg.io.outputs import check_output_dir

    check_output_dir(args.out, what="output folder")
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
    if args.mixed:
        import numpy as np

        from pointseg.data.synthetic import make_mosaic_dataset

        lo, hi = args.mixed
        if not 16 <= lo <= hi:
            raise ValueError(f"--mixed MIN MAX needs 16 <= MIN <= MAX, got {lo} {hi}")
        if args.n_images < 1:
            raise ValueError(f"--n-images must be >= 1, got {args.n_images}")
        rng = np.random.default_rng(args.seed)
        shapes = [tuple(int(v) for v in rng.integers(lo, hi + 1, 2)) for _ in range(args.n_images)]
        root = make_mosaic_dataset(args.out, shapes=shapes, tile=args.size, seed=args.seed)
        print(
            f"{args.n_images} synthetic mosaics of {lo}..{hi} px per side (scenes of "
            f"{args.size} px) in {root} (class file {root / 'classes.yaml'})"
        )
        return 0
    root = make_synthetic_dataset(
        args.out, n_images=args.n_images, size=args.size, seed=args.seed, overwrite=args.overwrite
    )
    print(f"{args.n_images} synthetic scenes in {root} (class file {root / 'classes.yaml'})")
    return 0
