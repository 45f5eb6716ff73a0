"""HERS build and cut times (and SLIC for reference) on one image, one core.

Usage::

    NUMBA_NUM_THREADS=1 python benchmarks/superpixels.py [--sizes 256,512] [--large]

``--large`` adds a 4000x4000 scene (tiled synthetic) with its build time and the peak RSS of
the process. The quality table of the README comes from ``pointseg superpixels`` (see there),
which runs :func:`pointseg.benchmarking.benchmark_superpixels` over a dataset.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np

from pointseg.data.synthetic import generate_scene
from pointseg.superpixels import compute_superpixels
from pointseg.superpixels.hers import build_hers_hierarchy


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--large", action="store_true", help="also a 4000x4000 image")
    args = p.parse_args()
    build_hers_hierarchy(generate_scene(seed=0, size=64)[0])  # numba compilation
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        image = generate_scene(seed=1, size=size)[0]
        hier = build_hers_hierarchy(image)
        rows.append(
            {
                "size": size,
                "hers_build_s": round(
                    _median_time(lambda im=image: build_hers_hierarchy(im), args.repeat), 4
                ),
                "hers_cut_ms": round(
                    _median_time(lambda h=hier: h.cut(300), args.repeat * 4) * 1000, 2
                ),
                "slic_300_s": round(
                    _median_time(
                        lambda im=image: compute_superpixels(im, method="slic", n_segments=300),
                        args.repeat,
                    ),
                    4,
                ),
            }
        )
    if args.large:
        tile = generate_scene(seed=2, size=1000)[0]
        image = np.tile(tile, (4, 4, 1))
        t = time.perf_counter()
        hier = build_hers_hierarchy(image)
        build = time.perf_counter() - t
        t = time.perf_counter()
        hier.cut(5000)
        cut = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(
            {
                "size": 4000,
                "hers_build_s": round(build, 2),
                "hers_cut_ms": round(cut * 1000, 1),
                "peak_rss_mb": round(peak_mb),
            }
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
