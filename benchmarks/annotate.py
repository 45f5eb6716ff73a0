"""Latency and memory of ``pointseg annotate``, measured over HTTP against a real server.

1. Click latency: a click's POST to its overlay received (``overlay.png`` of the new version),
   p50/p95 over many clicks on a 1000x1000 image after its first view, at the default training
   grid (256 px, squashed) and at native resolution (``--resize 0``); and the first view of
   an image not seen yet (image info, its tiles, overlay and boundaries).
2. Large rasters: a 10000x10000 orthophoto from ``pointseg synthetic --raster`` opened with
   ``--dataset rasters``, panned over every pyramid level with clicks and overlay tiles; the
   server's peak RSS (VmHWM).

    .venv/bin/python benchmarks/annotate.py                 # both
    .venv/bin/python benchmarks/annotate.py --skip-raster   # latency only
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np


def _start(data: Path, *args: str) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "pointseg", "-q", "annotate", str(data), "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        match = re.search(r"open (http://\S+)", line)
        if match:
            return proc, match.group(1).rstrip("/")
    raise RuntimeError(f"server did not start: {proc.stderr.read()}")  # type: ignore[union-attr]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=600) as r:
        return r.read()


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def _peak_rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def latency(root: Path, n_clicks: int, image_size: int) -> dict:
    from pointseg.data import make_synthetic_dataset

    data = root / "tiles"
    if not data.is_dir():
        make_synthetic_dataset(data, n_images=4, size=1000, seed=0)
    for p in data.glob("points.*"):
        p.unlink()
    proc, url = _start(data, "--resize", str(image_size))
    try:
        state = json.loads(_get(f"{url}/api/state"))
        version = state["version"]
        _get(f"{url}/api/images/0/overlay.png")  # numba kernels compiled, first image warm
        t = time.perf_counter()  # first view of an image not seen yet
        info = json.loads(_get(f"{url}/api/images/1"))
        for level in range(info["levels"]):
            n = -(-max(info["width"], info["height"]) // (256 * 2**level))
            if n <= 2:  # the page asks the tiles of one level: the one that fits its view
                for tx in range(n):
                    for ty in range(n):
                        _get(f"{url}/api/images/1/tiles/{level}/{tx}/{ty}.png")
                break
        _get(f"{url}/api/images/1/overlay.png?v={version}")
        _get(f"{url}/api/images/1/boundaries.png")
        first_view = time.perf_counter() - t
        rng = np.random.default_rng(0)
        times = []
        for _ in range(n_clicks):
            x, y = rng.uniform(0, 1000, 2)
            t = time.perf_counter()
            r = _post(
                f"{url}/api/images/1/points",
                {"x": float(x), "y": float(y), "class": int(rng.integers(5)), "version": version},
            )
            version = r["version"]
            _get(f"{url}/api/images/1/overlay.png?v={version}")
            times.append(time.perf_counter() - t)
        ms = np.array(times) * 1000
        return {
            "image_size": image_size or "native",
            "first_view_s": round(first_view, 2),
            "click_p50_ms": round(float(np.percentile(ms, 50)), 1),
            "click_p95_ms": round(float(np.percentile(ms, 95)), 1),
            "clicks": n_clicks,
        }
    finally:
        proc.kill()
        proc.wait()


def raster(root: Path, size: int) -> dict:
    data = root / f"raster{size}"
    if not (data / "images").is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pointseg",
                "-q",
                "synthetic",
                str(data),
                "--raster",
                "--size",
                str(size),
            ],
            check=True,
        )
    for p in list(data.glob("points.g*")):
        p.unlink()
    proc, url = _start(data, "--dataset", "rasters", "--window", "256")
    try:
        t0 = time.perf_counter()
        info = json.loads(_get(f"{url}/api/images/0"))
        version = json.loads(_get(f"{url}/api/state"))["version"]
        tiles = 0
        rng = np.random.default_rng(0)
        # pan: from the whole raster down to full resolution, a 4x3-tile view at each level,
        # centred on a random spot; a few clicks with their overlay tiles at full resolution
        for level in range(info["levels"] - 1, -1, -1):
            n = -(-size // (256 * 2**level))
            cx, cy = rng.integers(0, n, 2)
            for tx in range(max(0, cx - 2), min(n, cx + 2)):
                for ty in range(max(0, cy - 1), min(n, cy + 2)):
                    _get(f"{url}/api/images/0/tiles/{level}/{tx}/{ty}.png")
                    tiles += 1
        clicks = 0
        for _ in range(6):
            x, y = rng.uniform(0, size, 2)
            r = _post(
                f"{url}/api/images/0/points",
                {"x": float(x), "y": float(y), "class": int(rng.integers(5)), "version": version},
            )
            version = r["version"]
            clicks += 1
            _get(f"{url}/api/images/0/overlay/0/{int(x) // 256}/{int(y) // 256}.png?v={version}")
        return {
            "raster": f"{size}x{size}",
            "tiles": tiles,
            "clicks": clicks,
            "seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_mib": round(_peak_rss_mib(proc.pid), 0),
        }
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=60)
    parser.add_argument("--raster-size", type=int, default=10000)
    parser.add_argument("--skip-raster", action="store_true")
    parser.add_argument("--work", help="folder for the generated data (default: a temp folder)")
    args = parser.parse_args()
    root = Path(args.work or tempfile.mkdtemp(prefix="pointseg-annotate-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    for image_size in (256, 0):
        print(latency(root, args.clicks, image_size), flush=True)
    if not args.skip_raster:
        print(raster(root, args.raster_size), flush=True)


if __name__ == "__main__":
    main()
