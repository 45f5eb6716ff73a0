"""``pointseg pseudolabels``: write the pseudo-labels that training would build, as PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pointseg.cli._common import DATA_SETTINGS, add_setting_flags
from pointseg.cli._dask import add_dask_flags, client_from_args, uses_dask

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
            "window",
            "scale",
            "superpixel_area",
            "max_region_area",
            "seed",
            "cache_dir",
        ),
        help_override={
            "points_file": "point file (pixel coordinates, or map coordinates as for 'train'); "
            "default: points sampled from the masks",
            "image_size": "resize first (square); default: keep the size",
            "cache_dir": "also fill this pseudo-label cache (the one 'pointseg train --resize "
            "... --cache-dir DIR' reads; default: none; with --window/--scale/"
            "--superpixel-area: the window-label cache training reads, default "
            "~/.cache/pointseg/window-labels)",
            "window": "label as windowed training does (at native resolution, superpixels "
            "of --superpixel-area or (window/scale)^2/--n-segments px^2) and fill its cache",
            "scale": "with --window: the training scale (superpixel area as training sets it)",
            "superpixel_area": "label as windowed training does, with superpixels of this "
            "native area (px^2), and fill its cache",
        },
    )
    add_setting_flags(p, DATA_SETTINGS)
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="train")
    add_dask_flags(p)


def run(args: argparse.Namespace) -> int:

    from pointseg.cli._common import config_from_args
    from pointseg.io.outputs import check_output_dir
    from pointseg.labels.images import PseudoLabelWriter, write_pseudo_labels

    cfg = config_from_args(args)
    cfg.data = args.data
    if any(getattr(args, k) is not None for k in ("window", "scale", "superpixel_area")):
        return _window_labels(args, cfg)
    size = cfg.image_size or None  # this command keeps the size by default
    cfg.image_size = None
    cfg.validate()
    settings = cfg.pseudo_label_settings()
    out_dir = check_output_dir(args.out, what="--out")
    opener = _opener(cfg, args.split)
    ds = opener()
    names = list(ds.class_map.names)
    user = _points(cfg, ds, args.split)
    writer = PseudoLabelWriter(
        settings=settings,
        n_classes=len(names),
        out_dir=Path(out_dir),
        colors=tuple(tuple(int(v) for v in c) for c in ds.class_map.colors),
        size=size,
        n_points=cfg.n_points,
        point_scheme=cfg.point_scheme,
        seed=cfg.seed,
        cache_root=Path(cfg.cache_dir) if cfg.cache_dir else None,
        skip_existing=uses_dask(args) and not args.overwrite,
    )
    with client_from_args(args) as client:
        totals = write_pseudo_labels(
            ds,
            writer,
            points=user,
            client=client,
            opener=opener,
            progress=client is not None and not args.quiet,
        )
    msg = f"{len(ds)} pseudo-labels -> {out_dir}"
    if totals[0]:
        msg += (
            f"; coverage {totals[1] / totals[0]:.3f} of labelled mask pixels, "
            f"accuracy {totals[2] / max(totals[1], 1):.3f} (over all images)"
        )
    print(msg)
    return 0


def _opener(cfg: Any, split: str) -> Any:
    """Opens the split's dataset; picklable, so the Dask workers open the same one with it."""
    import functools

    return functools.partial(
        cfg.open_dataset, None if split == "all" else split, require_masks=cfg.points_file is None
    )


def _points(cfg: Any, ds: Any, split: str) -> Any:
    """The point file's points on ``ds`` (None without a file); refused when none lands."""
    from pointseg.points import load_points, no_supervision_message

    if not cfg.points_file:
        return None
    points, report = load_points(
        cfg.points_file,
        images={r.name: r.image for r in ds.records},
        image_sizes=lambda: {n: ds.image_size(i) for i, n in enumerate(ds.names)},
        class_names=list(ds.class_map.names),
        crs=cfg.points_crs,
    )
    if not any(len(points.get(n, ())) for n in ds.names):
        where = f"the {split} images" if split != "all" else "the images"
        raise ValueError(no_supervision_message(report, where=where))
    return points


def _window_labels(args: argparse.Namespace, cfg: Any) -> int:
    """The native pseudo-labels windowed training builds, into its cache, and their PNGs."""

    import numpy as np

    from pointseg.constants import IGNORE_INDEX
    from pointseg.io import write_png
    from pointseg.io.outputs import check_output_dir
    from pointseg.training import default_cache_dir
    from pointseg.training.image_windows import prepare_window_training

    if cfg.image_size is not None:
        raise ValueError(
            "--image-size resizes whole images, --window/--scale/--superpixel-area label as "
            "windowed training does at native resolution: choose one"
        )
    cfg.validate()  # the geometry defaults of training (window, scale, superpixel area)
    out_dir = Path(check_output_dir(args.out, what="--out"))
    opener = _opener(cfg, args.split)
    ds = opener()
    points = _points(cfg, ds, args.split)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir() / "window-labels"
    with client_from_args(args) as client:
        prep = prepare_window_training(
            ds,
            target="pseudo",
            n_classes=ds.class_map.n_classes,
            pixels_per_segment=float(cfg.pixels_per_segment() or 0),
            pseudo=cfg.pseudo_label_settings(),
            cache_dir=cache_dir,
            points=points,
            n_points=cfg.n_points,
            point_scheme=cfg.point_scheme,
            seed=cfg.seed,
            progress=(lambda it: it) if not args.quiet else None,
            client=client,
            opener=opener,
        )
    palette = [tuple(int(v) for v in c) for c in ds.class_map.colors]
    for src in prep.sources:  # PNGs of the cached labels (an image without points: unlabelled)
        png = out_dir / f"{src.name}.png"
        if uses_dask(args) and not args.overwrite and png.is_file():
            continue
        if src.labels is not None:
            labels = np.load(src.labels)
        else:
            labels = np.full((src.height, src.width), IGNORE_INDEX, np.uint8)
        write_png(png, labels, palette=palette)
    stats = prep.stats
    msg = (
        f"{len(prep.sources)} pseudo-labels -> {out_dir} (cache {cache_dir}); superpixels of "
        f"{stats['pixels_per_segment']:.0f} native px², {stats['labelled_fraction']:.3f} of the "
        "pixels labelled"
    )
    if "pseudo_accuracy" in stats:
        msg += (
            f"; coverage {stats['pseudo_coverage']:.3f} of labelled mask pixels, accuracy "
            f"{stats['pseudo_accuracy']:.3f}"
        )
    print(msg)
    return 0
