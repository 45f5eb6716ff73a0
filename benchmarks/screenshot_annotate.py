"""The README's screenshot of ``pointseg annotate`` (1280 x 800, headless Chromium).

Makes four synthetic 512 px scenes, starts ``pointseg annotate`` on them, clicks points of the
reference class (read from the synthetic masks) with the keys and the mouse as a user would,
and saves the page with the pseudo-label overlay; then presses Train (T), waits for the model,
and saves the page again with the prediction overlay and the proposed next clicks
(``--loop-out``). Needs Debian's ``chromium`` and the ``playwright`` package (dev extra); no
browser is downloaded.

Usage: python benchmarks/screenshot_annotate.py [--out docs/annotate.png]
       [--loop-out docs/annotate-loop.png] [--points 20] [--setting=--propagation
       --setting=point_aware ...]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

from pointseg.data import make_synthetic_dataset

IDLE = """() => {
    const p = window.pointseg;
    return !!p && p.ready && !p.busy && (!p.overlayVisible || p.lastOverlayVersion === p.version);
}"""


def start_server(data: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "pointseg", "annotate", str(data), "--port", "0", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found: list[str] = []

    def drain() -> None:
        for line in proc.stdout:
            match = re.search(r"open (http://\S+)", line)
            if match:
                found.append(match.group(1))

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 180
    while not found:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("pointseg annotate did not start")
        time.sleep(0.1)
    return proc, found[0]


def pick_points(mask: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """``n`` pixels well inside regions of one class, spread over the classes present."""
    h, w = mask.shape
    r = 12
    by_class: dict[int, list[tuple[int, int]]] = {}
    for _ in range(4000):
        x, y = (int(v) for v in rng.integers(r, (w - r, h - r)))
        win = mask[y - r : y + r + 1, x - r : x + r + 1]
        if (win == mask[y, x]).all():
            by_class.setdefault(int(mask[y, x]), []).append((x, y))
    out: list[tuple[int, int, int]] = []
    while len(out) < n and any(by_class.values()):
        for c, cands in sorted(by_class.items()):
            if cands and len(out) < n:
                x, y = cands.pop()
                if all(abs(x - a) + abs(y - b) > 40 for a, b, _ in out):
                    out.append((x, y, c))
    return out


def click_points(page, points: list[tuple[int, int, int]]) -> None:
    for x, y, c in points:
        page.keyboard.press(str(c + 1))
        xy = page.evaluate(f"() => window.pointseg.imageToClient({x}, {y})")
        page.mouse.click(xy["x"], xy["y"])
        page.wait_for_function(IDLE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/annotate.png")
    parser.add_argument("--loop-out", default="docs/annotate-loop.png")
    parser.add_argument("--points", type=int, default=20, help="points on the image shown")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="FLAG",
        help="a flag of pointseg annotate, e.g. --setting=--propagation --setting=point_aware",
    )
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_synthetic_dataset(Path(tmp) / "data", n_images=4, size=512, seed=0)
        masks = [np.asarray(Image.open(p)) for p in sorted((data / "masks").glob("*.png"))]
        proc, url = start_server(
            data, "--runs", str(Path(tmp) / "runs"), "--train-epochs", "30", *args.setting
        )
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(120_000)
                page.goto(url)
                page.wait_for_function(IDLE)
                for i in (3, 2, 1):  # points on the other images: progress in the list
                    page.click(f'#images li[data-id="{i}"]')
                    page.wait_for_function(f"window.pointseg.imageId === '{i}'")
                    page.wait_for_function(IDLE)
                    click_points(page, pick_points(masks[i], 4 * i, rng))
                page.keyboard.press("p")
                page.wait_for_function("window.pointseg.imageId === '0'")
                page.wait_for_function(IDLE)
                points = pick_points(masks[0], args.points, rng)
                click_points(page, points)
                x, y, _ = points[-1]
                xy = page.evaluate(f"() => window.pointseg.imageToClient({x}, {y})")
                page.mouse.click(xy["x"] + 2, xy["y"] + 2)  # select one point
                page.wait_for_function(IDLE)
                page.evaluate("() => new Promise(r => requestAnimationFrame(r))")
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out)
                # the loop: train, then the prediction and the proposals on the page
                page.keyboard.press("Escape")
                page.keyboard.press("t")
                page.wait_for_function(
                    "window.pointseg.modelVersion >= 1 && "
                    "window.pointseg.predictionDrawnVersion === window.pointseg.modelVersion && "
                    "window.pointseg.proposals.length > 0",
                    timeout=600_000,
                )
                page.keyboard.press("o")  # the prediction alone
                page.wait_for_function(IDLE)
                page.evaluate("() => new Promise(r => requestAnimationFrame(r))")
                page.screenshot(path=args.loop_out)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"wrote {args.out} and {args.loop_out}")


if __name__ == "__main__":
    main()
