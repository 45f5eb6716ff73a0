"""``pointseg evaluate``: metrics of a trained model on a split, at native resolution."""

from __future__ import annotations

import argparse

from pointseg.cli._common import DATA_SETTINGS, add_setting_flags, open_dataset, progress_wrapper

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics of a trained model on a split, native resolution")
    p.add_argument("model", help="model.pt written by 'pointseg train'")
    p.add_argument("data")
    add_setting_flags(
        p,
        DATA_SETTINGS,
        help_override={"bands": "zero-based band indices (default: the model's own)"},
    )
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="test")
    p.add_argument("--out", help="write the metrics as JSON here")
    p.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    from pointseg.io.outputs import check_output_file
    from pointseg.metrics import format_metrics_table, save_metrics_json
    from pointseg.predict import evaluate_dataset, open_model, resolve_device

    if args.out:
        check_output_file(args.out, what="--out")
    device = resolve_device(args.device)
    model, spec = open_model(args.model, device=device)
    if args.bands is None:
        args.bands = spec.bands
    ds = open_dataset(args, args.split)
    metrics = evaluate_dataset(
        model, spec, ds, device=device, progress=progress_wrapper(not args.quiet, "evaluating")
    )
    print(f"{args.split} split, {len(ds)} images:")
    print(format_metrics_table(metrics))
    if args.out:
        save_metrics_json(metrics, args.out)
        print(f"metrics -> {args.out}")
    return 0
