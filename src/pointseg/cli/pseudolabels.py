"""``pointseg pseudolabels``: write the pseudo-labels that training would build, as PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointseg.cli._common import DATA_SETTINGS, add_setting_flags

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pseudolabels", help="write superpixel pseudo-labels (PNG) for inspection")
    p.add_argument("data")
    p.add_argument("--out", required=True, help="output folder")
    add_setting_flags(
        p,
        (
            "points_file",
            "points_crs",
            "n_points",
            "point_scheme",
            "superpixels",
            "n_segments",
            "fill_counts",
            "propagation",
            "superpixel_options",
            "image_size",
            "seed",
        ),
        help_override={
            "points_file": "point file (pixel coordinates, or map coordinates as for 'train'); "
            "default: points sampled from the masks",
            "image_size": "resize first (square); default: keep the size",
        },
    )
    add_setting_flags(p, DATA_SETTINGS)
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="train")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from pointseg.cli._common import config_from_args
    from pointseg.data.transforms import resize_image, scale_points
    from pointseg.io import write_png
    from pointseg.io.outputs import check_output_dir
    from pointseg.labels import propagation_stats
    from pointseg.points import image_seed, load_points, no_supervision_message, sample_points

    cfg = config_from_args(args)
    cfg.data = args.data
    size = cfg.image_size or None  # this command keeps the size by default
    cfg.image_size = None
    cfg.validate()
    settings = cfg.pseudo_label_settings()
    out_dir = check_output_dir(args.out, what="--out")
    ds = cfg.open_dataset(
        None if args.split == "all" else args.split, require_masks=cfg.points_file is None
    )
    names = list(ds.class_map.names)
    user = None
    if cfg.points_file:
        user, report = load_points(
            cfg.points_file,
            images={r.name: r.image for r in ds.records},
            image_sizes=lambda: {n: ds.image_size(i) for i, n in enumerate(ds.names)},
            class_names=names,
            crs=cfg.points_crs,
        )
        if not any(len(user.get(n, ())) for n in ds.names):
            where = f"the {args.split} images" if args.split != "all" else "the images"
            raise ValueError(no_supervision_message(report, where=where))
    colors = [tuple(c) for c in ds.class_map.colors]
    totals = np.zeros(3, np.int64)  # valid, evaluated, correct: one dataset-level ratio
    for i in range(len(ds)):
        s = ds[i]
        image, name = s["image"], s["name"]
        shape = (size, size) if size else image.shape[:2]
        if user is not None:
            pts = user.get(name, np.zeros((0, 3), np.int64))
        else:
            pts = sample_points(
                s["mask"],
                n_points=cfg.n_points,
                scheme=cfg.point_scheme,
                seed=image_seed(cfg.seed, name),
            )
        pts = scale_points(pts, from_shape=image.shape[:2], to_shape=shape)
        pseudo = settings.label(resize_image(image, shape), pts, n_classes=len(names))
        write_png(Path(out_dir) / f"{name}.png", pseudo, palette=colors)
        if s.get("mask") is not None and not size:
            st = propagation_stats(pseudo, s["mask"])
            totals += [int(st["n_valid"]), int(st["n_evaluated"]), int(st["n_correct"])]
    msg = f"{len(ds)} pseudo-labels -> {out_dir}"
    if totals[0]:
        msg += (
            f"; coverage {totals[1] / totals[0]:.3f} of labelled mask pixels, "
            f"accuracy {totals[2] / max(totals[1], 1):.3f} (over all images)"
        )
    print(msg)
    return 0
