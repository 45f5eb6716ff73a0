"""``pointseg points``: simulate query points from dense masks and write a CSV."""

from __future__ import annotations

import argparse

from pointseg.cli._common import DATA_SETTINGS, add_setting_flags, open_dataset

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("points", help="simulate query points from dense masks and write a CSV")
    p.add_argument("data", help="folder dataset (images/, masks/)")
    p.add_argument("--out", required=True, help="CSV file (image,x,y,class)")
    p.add_argument("--n-points", type=int, default=50)
    p.add_argument("--scheme", default="per_class", help="per_class, uniform or grid")
    p.add_argument("--seed", type=int, default=0)
    add_setting_flags(p, DATA_SETTINGS)
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="all")


def run(args: argparse.Namespace) -> int:
    from pointseg.io.outputs import check_output_file
    from pointseg.points import image_seed, list_point_schemes, sample_points, write_points_csv

    check_output_file(args.out, what="--out", suffix=".csv")
    if args.scheme not in list_point_schemes():
        raise ValueError(
            f"--scheme {args.scheme!r} is unknown; available point schemes: "
            f"{', '.join(list_point_schemes())}"
        )
    if args.n_points < 1:
        raise ValueError(f"--n-points must be >= 1, got {args.n_points}")
    ds = open_dataset(args, args.split)
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
