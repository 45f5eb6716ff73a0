"""Tiled prediction throughput against the bare model, per tile size and overlap (issue 14).

The bare model's throughput is its forward pass (no gradient) on batches of tiles of the same
size and batch size, already in memory, in model pixels per second. Tiled prediction
(:func:`pointseg.predict.predict_array`: validation, ``pointseg evaluate`` and
``pointseg predict`` of models trained on windows) is timed over a whole image, in image
pixels per second at ``scale=1``: the ratio is what tiling, overlap, blending and reflection
cost. The default of a model trained on ``--window W`` windows is a 512-px tile (smaller for
small images) with ``W // 8`` overlap.

Usage: python benchmarks/predict_tiles.py [--image 2048 3072] [--window 256] [--json F]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from pointseg.models import get_model
from pointseg.models.registry import ModelSpec
from pointseg.predict.tiled import default_overlap, predict_array, predict_tile


def bare_pixels_per_s(model: torch.nn.Module, size: int, batch: int, repeats: int) -> float:
    x = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        model(x)  # warm-up
        t = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return repeats * batch * size * size / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", type=int, nargs=2, default=[2048, 3072], help="height width")
    p.add_argument("--window", type=int, default=256, help="the model's training window")
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.manual_seed(0)
    model = get_model("unet", num_classes=5, in_channels=3, base_channels=args.base_channels)
    model.eval()
    spec = ModelSpec(name="unet", num_classes=5, in_channels=3, mean=[128.0] * 3, std=[50.0] * 3)
    h, w = args.image
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    default_tile = predict_tile(args.window, (h, w), 1.0)
    settings = [
        ("before issue 14: 512 px tiles, 64 px overlap", 512, 64),
        (
            f"default: {default_tile} px tiles, {default_overlap(args.window)} px overlap",
            default_tile,
            default_overlap(args.window),
        ),
    ]
    rows = []
    for label, tile, overlap in settings:
        bare = bare_pixels_per_s(model, tile, args.batch_size, max(2, 4096**2 // (tile * tile * 4)))
        t = time.perf_counter()
        predict_array(
            model, spec, image, tile_size=tile, overlap=overlap, batch_size=args.batch_size
        )
        rate = h * w / (time.perf_counter() - t)
        rows.append(
            {
                "setting": label,
                "megapixels_per_s": round(rate / 1e6, 3),
                "bare_megapixels_per_s": round(bare / 1e6, 3),
                "ratio_to_bare": round(rate / bare, 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "image": f"{w}x{h}",
        "model": f"unet base_channels={args.base_channels}",
        "threads": torch.get_num_threads(),
        "settings": rows,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
