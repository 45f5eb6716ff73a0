"""``pointseg prepare``: extract (checksums verified) and tile a public dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointseg.cli._common import key_value

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="extract (checksums verified) and tile a public dataset, then list its splits",
        description="landcoverai: --archive landcover.ai.v1.zip, cut into 512 px tiles like the "
        "official split.py (lossless PNG). oxford_pet: images.tar.gz + annotations.tar.gz. "
        "loveda: Train.zip, Val.zip (Test.zip). potsdam / vaihingen: the ISPRS files under ROOT, "
        "tiled. Without --archive the archives are looked for in ROOT.",
    )
    p.add_argument(
        "dataset", choices=("landcoverai", "oxford_pet", "loveda", "potsdam", "vaihingen")
    )
    p.add_argument("root", help="dataset folder (created for the archives' content)")
    p.add_argument(
        "--archive", action="append", default=[], help="a downloaded archive (repeatable)"
    )
    p.add_argument("--no-verify", action="store_true", help="skip the MD5 check of the archives")
    p.add_argument(
        "--dataset-option",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option, e.g. tile_size=256 (potsdam/vaihingen) or keep_georef=true",
    )


def run(args: argparse.Namespace) -> int:
    from pointseg import data
    from pointseg.data.landcoverai import LANDCOVERAI_FILENAME
    from pointseg.io.outputs import check_input_file, check_output_dir

    root = Path(args.root)
    check_output_dir(root, what="dataset folder")
    verify = not args.no_verify
    archives = [check_input_file(a, what="--archive") for a in args.archive] or None
    options = dict(args.dataset_option)
    progress = not args.quiet
    if args.dataset == "landcoverai":
        if archives is not None and len(archives) != 1:
            raise ValueError("landcoverai takes one --archive (landcover.ai.v1.zip)")
        zip_path = archives[0] if archives else None
        if zip_path is None and (root / LANDCOVERAI_FILENAME).is_file():
            zip_path = root / LANDCOVERAI_FILENAME
        if zip_path is not None:
            data.prepare_landcoverai(
                root,
                zip_path=zip_path,
                verify_checksum=verify,
                progress=progress,
                **{k: v for k, v in options.items() if k in ("tiles_dir", "keep_georef")},
            )
    elif args.dataset == "oxford_pet":
        data.prepare_oxford_pet(root, archives=archives, verify_checksum=verify)
    elif args.dataset == "loveda":
        data.prepare_loveda(root, archives=archives, verify_checksum=verify)
    elif archives is not None:
        raise ValueError(
            f"{args.dataset} finds the ISPRS files (or their official zips) under ROOT; "
            "--archive is not used"
        )
    if args.dataset in ("potsdam", "vaihingen", "landcoverai"):
        options.setdefault("progress", progress)
    ds = data.get_dataset(args.dataset, root=root, split=None, **options)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in ds.splits.items())
    print(
        f"{args.dataset} in {root}: {len(ds)} images ({sizes}); classes {list(ds.class_map.names)}"
    )
    return 0
