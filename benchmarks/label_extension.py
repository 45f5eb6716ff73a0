"""What the additions beyond the paper's label extension cost (issue 15).

1. Propagation: the majority vote against the point-aware walk through the HERS hierarchy, on a
   synthetic mosaic, once the superpixel levels are computed (they are cached per image and do
   not depend on the clicks), and the levels themselves.
2. The dense CRF regulariser: forward and backward on a training batch, against a UNet
   training step on the same batch (forward, backward, Adam), for a few windows.

Usage: python benchmarks/label_extension.py [--size 1024] [--clicks 50 200] [--threads 2]
       [--json F]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pointseg.data.synthetic import generate_mosaic
from pointseg.labels import PseudoLabelSettings
from pointseg.losses import get_loss, get_regulariser
from pointseg.models import get_model
from pointseg.points import sample_points
from pointseg.superpixels.hers import clear_hers_cache


def best_of(fn, repeats: int) -> float:
    """The fastest of ``repeats`` calls, in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def propagation(size: int, clicks: list[int], area: float) -> list[dict]:
    image, mask = generate_mosaic(seed=0, shape=(size, size), tile=128)
    n_segments = max(2, round(size * size / area))
    rows = []
    for propagation in ("majority", "point_aware"):
        settings = PseudoLabelSettings(n_segments=n_segments, propagation=propagation)
        clear_hers_cache()
        t = time.perf_counter()
        levels = settings.segments(image)
        levels_s = time.perf_counter() - t
        for n in clicks:
            pts = sample_points(mask, n_points=n, scheme="per_class", seed=0)
            seconds = best_of(lambda: settings.propagate(levels, pts, n_classes=5), 5)  # noqa: B023
            rows.append(
                {
                    "propagation": propagation,
                    "clicks": n,
                    "levels_s": round(levels_s, 3),
                    "propagate_ms": round(1000 * seconds, 2),
                }
            )
    return rows


def regulariser(batch: int, window: int, classes: int) -> list[dict]:
    torch.manual_seed(0)
    model = get_model("unet", num_classes=classes, in_channels=3, base_channels=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, window, window)
    y = torch.randint(0, classes, (batch, window, window))
    y[:, ::2] = 255
    loss = get_loss("masked_mse")

    def step() -> None:
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()

    step_s = best_of(step, 5)
    rows = [{"what": "UNet-16 training step", "ms": round(1000 * step_s, 1)}]
    for radius, downsample in ((5, 2), (3, 2), (5, 1), (3, 1)):
        reg = get_regulariser("crf", radius=radius, downsample=downsample)
        logits = torch.randn(batch, classes, window, window, requires_grad=True)

        def forward_backward(reg=reg, logits=logits) -> None:
            reg(logits, x).backward()

        seconds = best_of(forward_backward, 5)
        rows.append(
            {
                "what": f"crf radius {radius}, downsample {downsample}",
                "ms": round(1000 * seconds, 1),
                "share_of_step": round(seconds / step_s, 3),
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024, help="side of the mosaic (pixels)")
    p.add_argument("--clicks", type=int, nargs="+", default=[50, 200])
    p.add_argument("--area", type=float, default=1000.0, help="superpixel area (pixels²)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "propagation": propagation(args.size, args.clicks, args.area),
        "regulariser": regulariser(args.batch, args.window, args.classes),
        "settings": vars(args) | {"json": str(args.json) if args.json else None},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
