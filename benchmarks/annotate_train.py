"""Train from the annotate page: seconds from pressing Train to the first prediction overlay.

A real ``pointseg annotate`` server on 20 synthetic scenes of 512 x 512 px (default settings:
the 256-px training grid, HERS superpixels, the page's CPU preset), 10 clicks per image
answered from the masks over HTTP, then ``POST /api/model/train`` and a poll of
``GET /api/model`` until the model is loaded, then the prediction overlay of the image on
screen and the first proposals. Prints the timings (and the training status) as JSON.

    .venv/bin/python benchmarks/annotate_train.py
    .venv/bin/python benchmarks/annotate_train.py --images 20 --size 512 --clicks 10
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from annotate import _get, _post, _start  # the shared server helpers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--clicks", type=int, default=10, help="clicks per image")
    ap.add_argument("--seed", type=int, default=0)
    args, extra = ap.parse_known_args()
    from pointseg.data import make_synthetic_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = make_synthetic_dataset(
            Path(tmp) / "data", n_images=args.images, size=args.size, seed=args.seed
        )
        proc, url = _start(data, "--runs", str(Path(tmp) / "runs"), *extra)
        try:
            state = json.loads(_get(f"{url}/api/state"))
            rng = np.random.default_rng(args.seed)
            version = state["version"]
            for img in state["images"]:
                mask = np.asarray(Image.open(data / "masks" / f"{img['name']}.png"))
                for _ in range(args.clicks):
                    x, y = (int(v) for v in rng.integers(0, args.size, 2))
                    body = {
                        "x": x + 0.5,
                        "y": y + 0.5,
                        "class": int(mask[y, x]),
                        "version": version,
                    }
                    version = _post(f"{url}/api/images/{img['id']}/points", body)["version"]
            _get(f"{url}/api/images/0/overlay.png?v={version}")  # the page is on image 0
            t0 = time.perf_counter()
            _post(f"{url}/api/model/train", {})
            while (status := json.loads(_get(f"{url}/api/model")))["state"] == "running":
                time.sleep(0.5)
            t_model = time.perf_counter() - t0
            _get(f"{url}/api/images/0/prediction.png?m={status['model_version']}")
            t_overlay = time.perf_counter() - t0
            props = json.loads(_get(f"{url}/api/proposals"))["proposals"]
            t_proposals = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait()
    print(
        json.dumps(
            {
                "images": args.images,
                "size": args.size,
                "clicks": args.images * args.clicks,
                "model_ready_s": round(t_model, 1),
                "first_overlay_s": round(t_overlay, 1),
                "first_proposals_s": round(t_proposals, 1),
                "proposals": len(props),
                "status": status,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
