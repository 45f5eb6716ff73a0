"""``pointseg export``: ONNX models (checked against PyTorch), also for the Deepness QGIS plugin."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX (dynamic size; checked against PyTorch)",
        description="Needs onnx and onnxruntime (pip install onnx onnxruntime). The ONNX file "
        "carries the model's classes, bands and normalisation; 'pointseg predict MODEL.onnx' "
        "runs it through onnxruntime. With --deepness the file is made for the Deepness QGIS "
        "plugin instead.",
    )
    p.add_argument("model", help="model.pt (or its run folder)")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (9-20; default 18)")
    p.add_argument(
        "--fixed-size",
        type=int,
        nargs=2,
        metavar=("HEIGHT", "WIDTH"),
        help="export for one input size instead of any height/width",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the check against PyTorch")
    g = p.add_argument_group(
        "Deepness (QGIS)",
        "--deepness writes a model that the Deepness QGIS plugin runs as it is: a fixed "
        "square input of --tiles-size, uint8 pixels / 255 as the plugin feeds them "
        "(normalisation baked in), class probabilities out, and the plugin's metadata",
    )
    g.add_argument("--deepness", action="store_true", help="export for the Deepness plugin")
    g.add_argument("--tiles-size", type=int, help="input tile side (default: training size)")
    g.add_argument("--tiles-overlap", type=int, help="tile overlap in percent")
    g.add_argument("--resolution-cm", type=float, help="ground resolution in cm per pixel")
    g.add_argument("--raster", help="a GeoTIFF of the training imagery giving the resolution")
    g.add_argument("--seg-thresh", type=float, help="plugin's probability threshold (0)")
    g.add_argument("--seg-small-segment", type=int, help="plugin's small-segment removal (0)")
    g.add_argument(
        "--allow-non-rgb",
        action="store_true",
        help="export a model whose band count is not 3 (bands then mapped by hand in QGIS)",
    )
    g.add_argument(
        "--no-uint8-check",
        action="store_true",
        help="skip the check that the model was trained on 8-bit pixels",
    )


def run(args: argparse.Namespace) -> int:
    from pointseg.io.outputs import check_output_file

    check_output_file(args.out, what="output", suffix=".onnx")
    if args.deepness:
        from pointseg.export import export_deepness

        if args.fixed_size:
            raise ValueError("--fixed-size does not apply to --deepness: use --tiles-size")
        out = export_deepness(
            args.model,
            args.out,
            tiles_size=args.tiles_size,
            tiles_overlap=args.tiles_overlap,
            resolution_cm=args.resolution_cm,
            raster=args.raster,
            seg_thresh=args.seg_thresh or 0.0,
            seg_small_segment=args.seg_small_segment or 0,
            allow_non_rgb=args.allow_non_rgb,
            check_uint8=not args.no_uint8_check,
            opset=args.opset,
            verify=not args.no_verify,
        )
        print(f"Deepness ONNX model -> {out} (load it in QGIS: Deepness > Model file path)")
        return 0
    deepness_only = [
        flag
        for flag, value in (
            ("--tiles-size", args.tiles_size),
            ("--tiles-overlap", args.tiles_overlap),
            ("--resolution-cm", args.resolution_cm),
            ("--raster", args.raster),
            ("--seg-thresh", args.seg_thresh),
            ("--seg-small-segment", args.seg_small_segment),
            ("--allow-non-rgb", args.allow_non_rgb or None),
            ("--no-uint8-check", args.no_uint8_check or None),
        )
        if value is not None
    ]
    if deepness_only:
        raise ValueError(f"{', '.join(deepness_only)} only apply with --deepness")
    from pointseg.export import export_onnx

    out = export_onnx(
        args.model,
        args.out,
        opset=args.opset,
        dynamic_size=args.fixed_size is None,
        input_size=tuple(args.fixed_size) if args.fixed_size else None,
        verify=not args.no_verify,
    )
    checked = "" if args.no_verify else " (outputs checked against PyTorch)"
    print(f"ONNX model -> {out}{checked}")
    return 0
