"""Throughput of pseudo-labelling and prediction: serial, and on 1 and 2 Dask workers (issue 16).

On generated data (synthetic 256-px scenes, a synthetic RGB raster, an untrained U-Net of
``--base-channels``): pseudo-labels (HERS superpixels + propagation, one PNG per image), folder
prediction (one class map per image) and tiled raster prediction (one GeoTIFF), each timed

* serially, in this process (torch's default thread count: every core), and
* on a ``LocalCluster`` of 1 and of 2 worker processes of one thread each (cluster start-up
  timed apart and not counted; every run writes into a fresh folder).

Prints a table with the speed-ups over the serial run and writes it (JSON, or markdown when
``--out`` ends in ``.md``).

Usage: python benchmarks/scale.py [--images 24] [--raster 2048] [--out scale.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _data(root: Path, n_images: int, raster: int, base_channels: int) -> dict[str, Any]:
    import rasterio
    from rasterio.transform import from_origin

    from pointseg.data import make_synthetic_dataset
    from pointseg.models import ModelSpec, get_model, save_model

    data = make_synthetic_dataset(root / "data", n_images=n_images, size=256, seed=0)
    torch.manual_seed(0)
    model = get_model("unet", num_classes=5, in_channels=3, base_channels=base_channels)
    spec = ModelSpec(
        name="unet",
        num_classes=5,
        in_channels=3,
        options={"base_channels": base_channels},
        class_names=[f"c{i}" for i in range(5)],
        class_colors=[[i * 50, 0, 0] for i in range(5)],
        mean=[128.0] * 3,
        std=[50.0] * 3,
    )
    model_pt = save_model(root / "model.pt", model, spec)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:raster, 0:raster]
    base = 127 + 100 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    pixels = np.clip(base[None] + rng.normal(0, 20, (3, raster, raster)), 0, 255).astype(np.uint8)
    ortho = root / "ortho.tif"
    with rasterio.open(
        ortho,
        "w",
        driver="GTiff",
        height=raster,
        width=raster,
        count=3,
        dtype="uint8",
        crs="EPSG:32640",
        transform=from_origin(300000, 2800000, 0.3, 0.3),
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    ) as dst:
        dst.write(pixels)
    return {"data": data, "model": model_pt, "raster": ortho, "images": data / "images"}


def _runs(inputs: dict[str, Any], work: Path, client: Any, block: int) -> dict[str, float]:
    """Seconds of each workload on ``client`` (None: serially)."""
    from pointseg.labels.images import PseudoLabelWriter, write_pseudo_labels
    from pointseg.predict import open_model, predict_folder
    from pointseg.predict.blocks import predict_raster_dask
    from pointseg.predict.tiled import predict_raster
    from pointseg.training import TrainConfig

    cfg = TrainConfig(data=str(inputs["data"]), n_segments=300)
    cfg.validate()
    ds = cfg.open_dataset(None, require_masks=True)
    writer = PseudoLabelWriter(
        settings=cfg.pseudo_label_settings(),
        n_classes=ds.class_map.n_classes,
        out_dir=work / "pseudo",
        colors=tuple(tuple(int(v) for v in c) for c in ds.class_map.colors),
        n_points=cfg.n_points,
        seed=cfg.seed,
    )
    opener = functools.partial(cfg.open_dataset, None, require_masks=True)
    out: dict[str, float] = {}
    out["pseudo"] = _timed(lambda: write_pseudo_labels(ds, writer, client=client, opener=opener))
    out["folder"] = _timed(
        lambda: predict_folder(
            inputs["model"], inputs["images"], work / "pred", device="cpu", client=client
        )
    )
    options = {"tile_size": 512, "overlap": 64, "batch_size": 4}
    if client is None:
        model, spec = open_model(inputs["model"], device="cpu")
        out["raster"] = _timed(
            lambda: predict_raster(model, spec, inputs["raster"], work / "o.tif", **options)
        )
    else:
        out["raster"] = _timed(
            lambda: predict_raster_dask(
                inputs["model"],
                inputs["raster"],
                work / "o.tif",
                client=client,
                block_size=block,
                **options,
            )
        )
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | unit | serial | 1 worker | 2 workers | 1 worker / serial "
        "| 2 workers / serial | 2 workers / 1 worker |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s, w1, w2 = r["serial"], r["workers_1"], r["workers_2"]
        lines.append(
            f"| {r['workload']} | {r['unit']} | {s:.2f} | {w1:.2f} | {w2:.2f} | "
            f"{w1 / s:.2f}x | {w2 / s:.2f}x | {w2 / w1:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=24, help="synthetic 256-px images")
    p.add_argument("--raster", type=int, default=2048, help="side of the synthetic raster")
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument(
        "--block-size", type=int, default=1024, help="raster block of one Dask task (1024)"
    )
    p.add_argument("--out", help="write the results here (.json, or .md for the table)")
    args = p.parse_args()
    from pointseg.distributed import dask_client

    with tempfile.TemporaryDirectory(prefix="pointseg-scale-") as tmp:
        root = Path(tmp)
        inputs = _data(root, args.images, args.raster, args.base_channels)
        seconds = {"serial": _runs(inputs, root / "serial", None, args.block_size)}
        startup = {}
        for n in (1, 2):
            t = time.perf_counter()
            with dask_client(workers=n) as client:
                startup[n] = time.perf_counter() - t
                # a first pass: the workers import torch and load the model once
                _runs(inputs, root / f"warm{n}", client, args.block_size)
                seconds[f"workers_{n}"] = _runs(
                    inputs, root / f"workers{n}", client, args.block_size
                )
    n_img, mpx = args.images, args.raster**2 / 1e6
    units = {
        "pseudo": ("pseudo-labels (HERS, 300 superpixels, 256 px)", "images/s", n_img),
        "folder": ("folder prediction (256-px PNGs)", "images/s", n_img),
        "raster": (
            f"raster prediction ({args.raster}² px, 512-px tiles, {args.block_size}-px blocks)",
            "Mpx/s",
            mpx,
        ),
    }
    rows = []
    for key, (name, unit, amount) in units.items():
        row = {"workload": name, "unit": unit}
        for run, secs in seconds.items():
            row[run] = amount / secs[key]
            row[f"{run}_seconds"] = round(secs[key], 3)
        rows.append(row)
    table = _table(rows)
    print(table)
    print(
        f"cores: {os.cpu_count()}, serial torch threads: {torch.get_num_threads()}, "
        f"cluster start-up: {startup[1]:.1f} s (1 worker), {startup[2]:.1f} s (2 workers)"
    )
    if args.out:
        result = {
            "rows": rows,
            "cores": os.cpu_count(),
            "serial_torch_threads": torch.get_num_threads(),
            "cluster_startup_s": startup,
            "images": n_img,
            "raster_px": args.raster,
            "block_size": args.block_size,
        }
        text = table + "\n" if args.out.endswith(".md") else json.dumps(result, indent=2)
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
