"""The model in the loop of the ``pointseg annotate`` page, in headless Chromium.

Click a few points, press Train, see the trained model's prediction drawn over the image, and
answer the clicks it proposes (confirm one with a class key, skip one). Drives Debian's
``chromium`` (never a downloaded browser) through Playwright's Python package, against a real
``pointseg annotate`` server that trains in a background process; skipped, with the reason,
when either is missing (as test_browser.py).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# skips, saying why, without the playwright package; the `browser` fixture (conftest.py) also
# skips without Debian's chromium
playwright = pytest.importorskip(
    "playwright.sync_api",
    reason="the playwright package is in the dev extra: pip install -e '.[dev]'",
)

pytestmark = pytest.mark.slow
PlaywrightTimeout = playwright.TimeoutError

TOKEN = "browser-model-test-token"
WAIT_MS = 30_000  # as the context fixture of conftest.py
TRAIN_MS = 150_000  # start the training process, 3 epochs on 3 images of 64 px, predict
IDLE = """() => {
    const p = window.pointseg;
    return !!p && p.ready && !p.busy && (!p.overlayVisible || p.lastOverlayVersion === p.version);
}"""
SAMPLE = """(xy) => {
    const cv = document.getElementById("viewer");
    const r = cv.getBoundingClientRect();
    const k = cv.width / r.width;
    const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height);
    return xy.map(([x, y]) => {
        const c = window.pointseg.imageToClient(x, y);
        const px = Math.floor((c.x - r.left) * k), py = Math.floor((c.y - r.top) * k);
        const i = 4 * (py * cv.width + px);
        return [d.data[i], d.data[i + 1], d.data[i + 2]];
    });
}"""  # canvas RGB at the centres of image pixels [[x, y], ...]
WHITE_AROUND = """([x, y, radius]) => {
    const cv = document.getElementById("viewer");
    const r = cv.getBoundingClientRect();
    const k = cv.width / r.width;
    const c = window.pointseg.imageToClient(x, y);
    const cx = Math.round((c.x - r.left) * k), cy = Math.round((c.y - r.top) * k);
    const R = Math.ceil(radius * k);
    const d = cv.getContext("2d").getImageData(cx - R, cy - R, 2 * R + 1, 2 * R + 1).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
        if (d[i] === 255 && d[i + 1] === 255 && d[i + 2] === 255) n++;
    return n;
}"""  # pure white canvas pixels within `radius` screen px of image pixel (x, y)
CLASSES = (0, 2)  # background and woodland: both cover a lot of every synthetic scene


# ---------------------------------------------------------------------------------- server


@pytest.fixture
def model_server(annotate, tmp_path: Path):
    """Four 64 x 64 synthetic scenes without masks (the masks only say where to click)."""
    from pointseg.data import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "data", n_images=4, size=64)
    masks = {p.stem: np.array(Image.open(p)) for p in sorted((data / "masks").glob("*.png"))}
    shutil.rmtree(data / "masks")
    (data / "synthetic.yaml").unlink()
    srv = annotate.start(
        data,
        *("--token", TOKEN, "--image-size", "64", "--n-segments", "40"),
        *("--train-epochs", "3", "--proposals", "5", "--runs", str(tmp_path / "runs")),
    )
    yield srv, masks
    annotate.stop(srv)


# ---------------------------------------------------------------------------------- browser


def _idle(page) -> None:
    page.wait_for_function(IDLE)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _state(page, name: str):
    return page.evaluate(f"() => window.pointseg.{name}")


def _click_pixel(page, x: float, y: float) -> None:
    c = page.evaluate(f"() => window.pointseg.imageToClient({x}, {y})")
    page.mouse.click(c["x"], c["y"])


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def _csv_rows(server) -> list[tuple[str, int, int, str]]:
    path = server.data / "points.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return sorted((r["image"], int(r["x"]), int(r["y"]), r["class"]) for r in csv.DictReader(f))


def _interior(mask: np.ndarray, cls: int, n: int) -> list[tuple[int, int]]:
    """``n`` pixels (x, y) deep inside class ``cls``, apart from each other."""
    from scipy.ndimage import distance_transform_edt

    depth = distance_transform_edt(np.pad(mask == cls, 1))[1:-1, 1:-1]
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    out = []
    for _ in range(n):
        y, x = np.unravel_index(np.argmax(depth), depth.shape)
        assert depth[y, x] >= 2, f"class {cls} has no interior left"
        out.append((int(x), int(y)))
        depth[np.hypot(xx - x, yy - y) < 10] = 0
    return out


def _prediction(page, image_id: str) -> np.ndarray:
    """The server's prediction (h, w, 4) for the current model, fetched as the page does."""
    w, h, data = page.evaluate(
        """async (id) => {
            const token = new URLSearchParams(location.search).get("token");
            const m = window.pointseg.modelVersion;
            const r = await fetch(`/api/images/${id}/prediction.png?m=${m}`,
                                  {headers: {"X-Token": token}});
            const bmp = await createImageBitmap(await r.blob());
            const cv = new OffscreenCanvas(bmp.width, bmp.height);
            const g = cv.getContext("2d");
            g.drawImage(bmp, 0, 0);
            return [bmp.width, bmp.height, Array.from(g.getImageData(0, 0, bmp.width,
                                                                     bmp.height).data)];
        }""",
        image_id,
    )
    return np.array(data, dtype=np.uint8).reshape(h, w, 4)


def _wait(page, condition: str, timeout_ms: float, server, what: str) -> None:
    try:
        page.wait_for_function(condition, timeout=timeout_ms)
    except PlaywrightTimeout:
        logs = "".join(server.log[-40:])
        for log in sorted(server.data.parent.glob("runs/job-*/train.log")):
            logs += f"\n--- {log}\n" + log.read_text()[-4000:]
        raise AssertionError(
            f"timed out waiting for {what}; model status {_state(page, 'model')}, "
            f"status line {page.inner_text('#status')!r}\n{logs}"
        ) from None


# ---------------------------------------------------------------------------------- test


def test_train_see_the_prediction_and_answer_the_proposals(context, model_server):
    server, masks = model_server
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_function(IDLE)
    _idle(page)
    assert _state(page, "modelVersion") == 0
    assert _state(page, "model")["state"] == "idle"
    assert _state(page, "predictionDrawnVersion") is None
    assert _state(page, "proposals") == [] and _state(page, "activeProposal") is None
    assert page.is_enabled("#train") and page.is_disabled("#stop-train")
    assert page.is_disabled("#propose")
    assert not page.is_checked("#show-prediction")

    page.keyboard.press("t")  # no clicks yet: the server says what it needs
    page.wait_for_function("document.getElementById('status').textContent.includes('422')")
    assert "error" in page.get_attribute("#status", "class")
    assert _state(page, "model")["job"] == 0

    # two classes on three of the four images, through the page
    classes = _state(page, "classes")
    names = [c["name"] for c in classes]
    colors = np.array([_rgb(c["color"]) for c in classes])
    images = {im["id"]: im["name"] for im in _state(page, "images")}
    expected = []
    for image_id in ("0", "1", "2"):
        page.click(f'#images li[data-id="{image_id}"]')
        page.wait_for_function(f"window.pointseg.imageId === '{image_id}'")
        _idle(page)
        for cls in CLASSES:
            page.keyboard.press(str(cls + 1))
            for x, y in _interior(masks[images[image_id]], cls, 2):
                _click_pixel(page, x, y)
                _idle(page)
                expected.append((images[image_id], x, y, names[cls]))
    assert _csv_rows(server) == sorted(expected)

    # train; the page follows the training and draws the model's prediction when it is done
    page.click("#train")
    page.wait_for_function("window.pointseg.model.job === 1")
    if _state(page, "model")["state"] == "running":
        assert page.is_disabled("#train")
        assert "training" in page.inner_text("#model-status")
    _wait(
        page,
        "window.pointseg.modelVersion >= 1 && "
        "window.pointseg.predictionDrawnVersion === window.pointseg.modelVersion",
        TRAIN_MS,
        server,
        "the trained model's prediction",
    )
    model = _state(page, "model")
    assert model["state"] == "done" and model["points_trained"] == len(expected)
    assert page.is_checked("#show-prediction")  # on by itself with the first model
    assert page.is_enabled("#train") and page.is_disabled("#stop-train")
    assert "ready" in page.inner_text("#model-status")

    # the first proposals come by themselves: listed, the first active and shown
    _wait(
        page,
        "window.pointseg.proposals.length > 0 && window.pointseg.activeProposal === 0",
        WAIT_MS,
        server,
        "the proposals",
    )
    _idle(page)
    proposals = _state(page, "proposals")
    assert 1 <= len(proposals) <= 5
    for p in proposals:
        assert p["image"] in images and p["answer"] is None
        assert 0 <= p["x"] < 64 and 0 <= p["y"] < 64 and 0 <= p["predicted"] < len(names)
    assert page.locator("#proposal-list li").count() == len(proposals)
    assert page.get_attribute("#proposal-list li.current", "data-index") == "0"
    assert f"proposal 1 of {len(proposals)}" in page.inner_text("#proposal-info")
    first = proposals[0]
    assert _state(page, "imageId") == first["image"]
    here = [p for p in proposals if p["image"] == first["image"]]
    assert _state(page, "proposalsDrawn") == len(here)
    assert page.evaluate(WHITE_AROUND, [first["x"], first["y"], 14]) > 30  # the active marker

    # the prediction, drawn pixel for pixel (opacity 1, pseudo-label overlay off) away from
    # the markers, and gone when switched off (M)
    page.keyboard.press("o")
    page.eval_on_selector(
        "#opacity", "e => { e.value = '1'; e.dispatchEvent(new Event('input')); }"
    )
    _idle(page)
    assert _state(page, "predictionDrawnVersion") == _state(page, "modelVersion")
    pred = _prediction(page, first["image"])
    marks = [(p["x"], p["y"]) for p in _state(page, "points")] + [(p["x"], p["y"]) for p in here]
    samples = [
        (x, y)
        for y in range(1, 64, 3)
        for x in range(1, 64, 3)
        if min(np.hypot(x - mx, y - my) for mx, my in marks) > 3
    ]
    ph, pw = pred.shape[:2]
    expected_rgb = np.array([pred[y * ph // 64, x * pw // 64] for x, y in samples], dtype=float)
    opaque = expected_rgb[:, 3] == 255
    assert opaque.mean() > 0.9  # the prediction covers the image, unlike the pseudo-labels
    shown = np.array(page.evaluate(SAMPLE, samples), dtype=float)
    np.testing.assert_allclose(shown[opaque], expected_rgb[opaque, :3], atol=1)
    is_class = (np.abs(shown[:, None, :] - colors[None]).max(-1) <= 1).any(-1)
    assert is_class.mean() > 0.9
    page.keyboard.press("m")
    _idle(page)
    assert not page.is_checked("#show-prediction")
    assert _state(page, "predictionDrawnVersion") is None
    plain = np.array(page.evaluate(SAMPLE, samples), dtype=float)
    assert (np.abs(plain[:, None, :] - colors[None]).max(-1) <= 1).any(-1).mean() < 0.2
    page.keyboard.press("m")
    page.keyboard.press("o")
    _idle(page)
    assert _state(page, "predictionDrawnVersion") == _state(page, "modelVersion")

    # a class key confirms the active proposal: a point of that class at its pixel
    page.keyboard.press("2")
    _wait(page, "window.pointseg.proposals[0].answer !== null", WAIT_MS, server, "the answer")
    nxt = 1 if len(proposals) > 1 else None
    page.wait_for_function(f"window.pointseg.activeProposal === {'null' if nxt is None else nxt}")
    _idle(page)
    confirmed = (images[first["image"]], first["x"], first["y"], names[1])
    assert _csv_rows(server) == sorted([*expected, confirmed])
    assert _state(page, "proposals")[0]["answer"] == {"class": 1}
    assert _state(page, "currentClass") == 1
    if nxt is not None:
        assert _state(page, "imageId") == proposals[1]["image"]
        assert page.get_attribute("#proposal-list li.current", "data-index") == "1"

    # undo takes the point back and opens the proposal again; a class key answers it anew
    version = _state(page, "version")
    page.keyboard.press("Control+z")
    page.wait_for_function(f"window.pointseg.version > {version}")
    page.wait_for_function("window.pointseg.activeProposal === 0")
    _idle(page)
    assert _csv_rows(server) == sorted(expected)
    assert _state(page, "proposals")[0]["answer"] is None
    assert _state(page, "imageId") == first["image"]
    page.keyboard.press("2")
    page.wait_for_function(f"window.pointseg.activeProposal === {'null' if nxt is None else nxt}")
    _idle(page)
    assert _csv_rows(server) == sorted([*expected, confirmed])

    # S skips the active proposal (the server is told) and moves on to the next one
    if nxt is not None:
        skipped = proposals[1]
        with page.expect_response(lambda r: r.url.endswith("/api/proposals/skip")) as response:
            page.keyboard.press("s")
        assert response.value.ok and response.value.json()["skipped"] >= 1
        after = 2 if len(proposals) > 2 else "null"
        page.wait_for_function(f"window.pointseg.activeProposal === {after}")
        _idle(page)
        assert _state(page, "proposals")[1]["answer"] == "skipped"
        assert _csv_rows(server) == sorted([*expected, confirmed])  # a skip adds no point

        # R asks again: neither the confirmed nor the skipped spot comes back
        with page.expect_response(lambda r: "/api/proposals?" in r.url) as response:
            page.keyboard.press("r")
        assert response.value.ok
        page.wait_for_function("window.pointseg.activeProposal === 0")
        _idle(page)
        again = {(p["image"], p["x"], p["y"]) for p in _state(page, "proposals")}
        assert (first["image"], first["x"], first["y"]) not in again
        assert (skipped["image"], skipped["x"], skipped["y"]) not in again

    # a second training can be stopped; the model trained first stays
    version = _state(page, "modelVersion")
    page.keyboard.press("t")
    page.wait_for_function("window.pointseg.model.job === 2")
    if _state(page, "model")["state"] == "running":
        page.wait_for_function("!document.getElementById('stop-train').disabled")
        page.click("#stop-train")
        page.wait_for_function("window.pointseg.model.state === 'stopped'")
        assert "stopped" in page.inner_text("#model-status")
        assert page.is_enabled("#train") and page.is_disabled("#stop-train")
    assert _state(page, "modelVersion") >= version
