"""The ``pointseg annotate`` page in headless Chromium, against the real server.

Drives Debian's ``chromium`` (never a downloaded browser) through Playwright's Python package;
skipped, with the reason, when either is missing. Each test starts ``pointseg annotate`` as a
subprocess on a free port with an access token, on a small synthetic dataset. The last section
is the model in the loop: click a few points, press Train, see the trained model's prediction
drawn over the image, and answer the clicks it proposes (confirm one with a class key, skip
one), against a server that trains in a background process.
"""

from __future__ import annotations

import csv
import re
import shutil
import time
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

TOKEN = "browser-test-token"
STARTUP_S = 120  # first start in a fresh checkout compiles numba kernels
WAIT_MS = 30_000  # as the context fixture of conftest.py
IDLE = """() => {
    const p = window.pointseg;
    return !!p && p.ready && !p.busy && (!p.overlayVisible || p.lastOverlayVersion === p.version);
}"""
YELLOW = """() => {
    const cv = document.getElementById("viewer");
    const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
        if (d[i] === 255 && d[i + 1] === 255 && d[i + 2] === 0) n++;
    return n;
}"""  # canvas pixels of the superpixel boundaries' colour


# ---------------------------------------------------------------------------------- server


@pytest.fixture(scope="module")
def synthetic_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pointseg.data import make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path_factory.mktemp("annotate") / "data", n_images=3, size=128
    )


@pytest.fixture
def server(annotate, synthetic_template: Path, tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_template, data)
    srv = annotate.start(data, "--token", TOKEN, "--resize", "0", "--superpixels", "slic")
    yield srv
    annotate.stop(srv)


# ---------------------------------------------------------------------------------- browser


def _open(context, server):
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_function(IDLE)
    return page


def _idle(page) -> None:
    page.wait_for_function(IDLE)
    _frame(page)


def _frame(page) -> None:
    """Wait until the page has drawn a frame (drawing happens in requestAnimationFrame)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _state(page, name: str):
    return page.evaluate(f"() => window.pointseg.{name}")


def _click_pixel(page, x: float, y: float, *, dx: float = 0, dy: float = 0) -> None:
    c = page.evaluate(f"() => window.pointseg.imageToClient({x}, {y})")
    page.mouse.click(c["x"] + dx, c["y"] + dy)


def _canvas_rgba(page, x: float, y: float) -> np.ndarray:
    """The canvas pixel at the centre of image pixel (x, y)."""
    return np.array(
        page.evaluate(
            """([x, y]) => {
                const cv = document.getElementById("viewer");
                const r = cv.getBoundingClientRect();
                const c = window.pointseg.imageToClient(x, y);
                const k = cv.width / r.width;
                const px = Math.floor((c.x - r.left) * k), py = Math.floor((c.y - r.top) * k);
                return Array.from(cv.getContext("2d").getImageData(px, py, 1, 1).data);
            }""",
            [float(x), float(y)],
        ),
        dtype=float,
    )


def _server_png(page, image_id: str, what: str) -> np.ndarray:
    """The server's ``overlay`` (current version) or ``prediction`` (current model) of an
    image, (H, W, 4), fetched as the page fetches it."""
    w, h, data = page.evaluate(
        """async ([id, what]) => {
            const token = new URLSearchParams(location.search).get("token");
            const p = window.pointseg;
            const q = what === "overlay" ? `v=${p.version}` : `m=${p.modelVersion}`;
            const r = await fetch(`/api/images/${id}/${what}.png?${q}`,
                                  {headers: {"X-Token": token}});
            const bmp = await createImageBitmap(await r.blob());
            const cv = new OffscreenCanvas(bmp.width, bmp.height);
            const g = cv.getContext("2d");
            g.drawImage(bmp, 0, 0);
            const data = g.getImageData(0, 0, bmp.width, bmp.height).data;
            return [bmp.width, bmp.height, Array.from(data)];
        }""",
        [image_id, what],
    )
    return np.array(data, dtype=np.uint8).reshape(h, w, 4)


def _overlay(page, image_id: str) -> np.ndarray:
    return _server_png(page, image_id, "overlay")


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def _csv_rows(server) -> list[tuple[str, int, int, str]]:
    path = server.data / "points.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["image", "x", "y", "class"]
        return sorted((r["image"], int(r["x"]), int(r["y"]), r["class"]) for r in reader)


def _ui_rows(page) -> list[tuple[str, int, int, str]]:
    """The points of the current image as the page holds them, in the CSV's terms."""
    names = [c["name"] for c in _state(page, "classes")]
    image = next(im for im in _state(page, "images") if im["id"] == _state(page, "imageId"))
    return sorted(
        (image["name"], p["x"], p["y"], names[p["class"]]) for p in _state(page, "points")
    )


# ---------------------------------------------------------------------------------- tests


def test_clicks_add_points_and_the_overlay_follows(context, server):
    page = _open(context, server)
    assert _state(page, "imageId") == "0"
    assert _state(page, "overlayMode") == "single"
    classes = _state(page, "classes")
    colors = [_rgb(c["color"]) for c in classes]
    version0 = _state(page, "version")
    a, b = (30, 30), (90, 40)
    assert _overlay(page, "0")[a[1], a[0], 3] == 0  # nothing labelled yet

    page.keyboard.press("1")
    _click_pixel(page, *a)
    _idle(page)
    assert _state(page, "version") == version0 + 1
    assert _state(page, "lastOverlayVersion") == version0 + 1
    page.keyboard.press("2")
    assert _state(page, "currentClass") == 1
    _click_pixel(page, b[0] + 0.3, b[1] - 0.3)  # off the pixel's centre: still that pixel
    _idle(page)
    assert _state(page, "version") == version0 + 2
    assert _state(page, "lastOverlayVersion") == version0 + 2

    # the preview labels the clicked pixels with the clicked classes
    overlay = _overlay(page, "0")
    assert overlay.shape[:2] == (128, 128)  # --resize 0: the native grid
    assert overlay[a[1], a[0], 3] == 255 and (overlay[a[1], a[0], :3] == colors[0]).all()
    assert overlay[b[1], b[0], 3] == 255 and (overlay[b[1], b[0], :3] == colors[1]).all()

    # the page draws it: half-transparent over the image (default opacity 0.5), pixel for
    # pixel; sampled inside class 1's region, away from the point markers
    region = np.argwhere((overlay[..., :3] == colors[1]).all(-1) & (overlay[..., 3] == 255))
    far = np.minimum(np.hypot(*(region - b[::-1]).T), np.hypot(*(region - a[::-1]).T))
    gy, gx = region[np.argmax(far)]
    assert far.max() * _state(page, "view")["scale"] > 12, "no pixel clear of the markers"
    shown = _canvas_rgba(page, gx, gy)
    page.keyboard.press("o")
    _frame(page)
    assert not _state(page, "overlayVisible")
    plain = _canvas_rgba(page, gx, gy)
    np.testing.assert_allclose(shown[:3], 0.5 * plain[:3] + 0.5 * colors[1], atol=2)
    page.keyboard.press("o")
    page.eval_on_selector(
        "#opacity", "e => { e.value = '1'; e.dispatchEvent(new Event('input')); }"
    )
    _idle(page)
    np.testing.assert_allclose(_canvas_rgba(page, gx, gy)[:3], colors[1], atol=1)

    # counts in the side panels, and the file on disk
    assert page.inner_text('#classes li[data-index="0"] .count') == "1 / 1"
    assert page.inner_text('#classes li[data-index="1"] .count') == "1 / 1"
    assert page.inner_text("#images li.current .count") == "2"
    names = [c["name"] for c in classes]
    assert _csv_rows(server) == sorted([("scene_0000", *a, names[0]), ("scene_0000", *b, names[1])])


def test_reload_select_delete_undo_redo(context, server):
    page = _open(context, server)
    p1, p2 = (20, 100), (100, 20)
    page.keyboard.press("2")
    _click_pixel(page, *p1)
    page.click('#classes li[data-index="3"]')  # any class by clicking it
    assert _state(page, "currentClass") == 3
    _click_pixel(page, *p2)
    _idle(page)
    both = _csv_rows(server)
    assert [(r[1], r[2]) for r in both] == [p1, p2]
    assert _ui_rows(page) == both

    page.reload()
    page.wait_for_function(IDLE)
    assert _ui_rows(page) == both  # the points come back from the server
    assert page.inner_text("#images li.current .count") == "2"

    version = _state(page, "version")
    _click_pixel(page, *p1, dx=4, dy=-3)  # near a point: selects it, adds nothing
    _frame(page)
    selected = _state(page, "selected")
    assert selected is not None
    assert next(p for p in _state(page, "points") if p["id"] == selected)["x"] == p1[0]
    assert _state(page, "version") == version
    page.keyboard.press("Delete")
    _idle(page)
    only_p2 = [r for r in both if (r[1], r[2]) == p2]
    assert _csv_rows(server) == only_p2 == _ui_rows(page)
    assert _state(page, "selected") is None

    steps = [
        (lambda: page.keyboard.press("Control+z"), both),
        (lambda: page.keyboard.press("Control+Shift+z"), only_p2),
        (lambda: page.click("#undo"), both),
        (lambda: page.click("#redo"), only_p2),
        (lambda: page.keyboard.press("Control+z"), both),
        (lambda: page.keyboard.press("Control+y"), only_p2),
    ]
    for step, expected in steps:
        version = _state(page, "version")
        step()
        page.wait_for_function(f"window.pointseg.version > {version}")
        _idle(page)
        assert _csv_rows(server) == expected == _ui_rows(page)


def test_a_stale_tab_reloads_and_errors_are_shown(browser, context, server):
    first = _open(context, server)
    other_window = browser.new_context(viewport={"width": 1280, "height": 800})
    second = _open(other_window, server)  # (a tab in the same window would be throttled)
    second.keyboard.press("3")
    _click_pixel(second, 10, 10)  # the other tab edits
    _idle(second)
    assert len(_csv_rows(server)) == 1

    _click_pixel(first, 60, 60)  # this tab still has the old version: 409, reload
    first.wait_for_function(
        "document.getElementById('status').textContent.includes('changed in another tab')"
    )
    _idle(first)
    assert "warn" in first.get_attribute("#status", "class")
    assert _state(first, "version") == _state(second, "version")
    assert _ui_rows(first) == _ui_rows(second) == _csv_rows(server)  # the click was not saved
    version = _state(second, "version")
    other_window.close()

    first.keyboard.press("Control+z")  # undoes the other tab's point (one history)
    first.wait_for_function(f"window.pointseg.version > {version}")
    _idle(first)
    assert _csv_rows(server) == []
    first.click("#undo")  # nothing left: 409 "nothing to undo" in the status line
    first.wait_for_function(
        "document.getElementById('status').textContent.includes('nothing to undo')"
    )
    assert "error" in first.get_attribute("#status", "class")

    no_token = context.new_page()  # every /api call needs the token from the page URL
    no_token.goto(server.base + "/")
    no_token.wait_for_function("document.getElementById('status').textContent.includes('401')")
    assert not _state(no_token, "ready")


def test_image_navigation_zoom_pan_and_toggles(context, server):
    page = _open(context, server)
    assert page.is_disabled("#prev")
    for key, expected in [("n", "1"), ("PageDown", "2"), ("p", "1"), ("PageUp", "0")]:
        page.keyboard.press(key)
        page.wait_for_function(f"window.pointseg.imageId === '{expected}'")
        _idle(page)
        assert page.get_attribute("#images li.current", "data-id") == expected
    page.click('#images li[data-id="2"]')
    page.wait_for_function("window.pointseg.imageId === '2'")
    assert page.is_disabled("#next")
    page.click("#prev")
    page.wait_for_function("window.pointseg.imageId === '1'")
    _idle(page)

    version = _state(page, "version")
    fit = _state(page, "view")
    page.keyboard.press("+")
    assert _state(page, "view")["scale"] > fit["scale"]
    page.keyboard.press("-")
    assert _state(page, "view")["scale"] == pytest.approx(fit["scale"])
    box = page.locator("#viewer").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"window.pointseg.view.scale > {fit['scale']}")
    page.keyboard.press("f")
    assert _state(page, "view") == pytest.approx(fit)

    page.mouse.move(cx, cy)  # a drag pans and adds no point
    page.mouse.down()
    page.mouse.move(cx + 50, cy + 10, steps=5)
    page.mouse.move(cx + 100, cy + 20, steps=5)
    page.mouse.up()
    view = _state(page, "view")
    assert view["x"] == pytest.approx(fit["x"] - 100 / fit["scale"])
    assert view["y"] == pytest.approx(fit["y"] - 20 / fit["scale"])
    page.keyboard.press("ArrowLeft")
    assert _state(page, "view")["x"] < view["x"]
    _idle(page)
    assert _state(page, "version") == version
    assert _csv_rows(server) == []

    assert page.evaluate(YELLOW) == 0
    page.keyboard.press("b")
    page.wait_for_function(f"({YELLOW})() > 1000")  # superpixel boundaries drawn
    page.keyboard.press("b")
    _idle(page)
    assert page.evaluate(YELLOW) == 0


@pytest.fixture
def big_server(annotate, tmp_path: Path):
    """One 2048 x 2048 image (a 4-level pyramid), previewed on a 256 px training grid."""
    from pointseg.data import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "data", n_images=1, size=32)
    shutil.rmtree(data / "masks")
    (data / "synthetic.yaml").unlink()
    (data / "images" / "scene_0000.png").unlink()
    yy, xx = np.mgrid[0:2048, 0:2048]
    rgb = np.stack([(xx // 8) % 256, (yy // 8) % 256, ((xx + yy) // 16) % 256], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(data / "images" / "big.png", compress_level=1)
    srv = annotate.start(data, "--token", TOKEN, "--image-size", "256", "--superpixels", "grid")
    yield srv
    annotate.stop(srv)


def _visible_tiles(view: dict, level: int, size: dict, width: int, height: int) -> set:
    span = 256 * 2**level
    x0, y0 = view["x"], view["y"]
    x1, y1 = x0 + size["width"] / view["scale"], y0 + size["height"] / view["scale"]
    nx, ny = -(-width // span), -(-height // span)
    return {
        (level, tx, ty)
        for tx in range(max(0, int(x0 // span)), min(nx - 1, int(x1 // span)) + 1)
        for ty in range(max(0, int(y0 // span)), min(ny - 1, int(y1 // span)) + 1)
    }


def test_large_image_requests_only_the_tiles_in_view(context, big_server):
    requested: set[tuple[int, int, int]] = set()
    pattern = re.compile(r"/api/images/0/tiles/(\d+)/(\d+)/(\d+)\.png")

    def on_request(request) -> None:
        match = pattern.search(request.url)
        if match:
            requested.add(tuple(int(g) for g in match.groups()))

    context.on("request", on_request)
    page = _open(context, big_server)
    size = page.locator("#viewer").bounding_box()
    info = next(im for im in _state(page, "images") if im["id"] == "0")
    w, h = info["width"], info["height"]

    # whole image in view at ~0.35 px/px: level 1 (1024 px, 4x4 tiles) over the 1-tile backdrop
    assert _state(page, "level") == 1
    expected = {(3, 0, 0)} | _visible_tiles(_state(page, "view"), 1, size, w, h)
    _until(page, lambda: requested >= expected)
    assert requested == expected

    # zoom in at the centre (one wheel step, ~4.5x), then pan: level-0 tiles only in view
    box = page.locator("#viewer").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -1000)
    _frame(page)
    assert _state(page, "level") == 0
    expected0 = _visible_tiles(_state(page, "view"), 0, size, w, h)
    for _ in range(4):
        page.keyboard.press("ArrowLeft")
        _frame(page)
        expected0 |= _visible_tiles(_state(page, "view"), 0, size, w, h)
    final = _visible_tiles(_state(page, "view"), 0, size, w, h)
    _until(page, lambda: {t for t in requested if t[0] == 0} >= final)
    got0 = {t for t in requested if t[0] == 0}
    assert final <= got0 <= expected0
    assert len(got0) <= 15  # of the 8x8 level-0 tiles
    assert {t[0] for t in requested} == {0, 1, 3}
    assert 0 < _state(page, "tilesCached") <= 384


def _until(page, condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


@pytest.fixture
def raster_server(annotate, tmp_path: Path):
    """A 1100 x 1100 georeferenced orthophoto: tiled overlay, points saved as GeoPackage."""
    from pointseg.data.synthetic_raster import make_synthetic_raster

    data = tmp_path / "data"
    make_synthetic_raster(data, size=1100, points_per_tile=2, seed=2)
    (data / "points.geojson").unlink()
    options = ["block_size=512", "margin=32", "val_fraction=0.3", "val_cell=256"]
    srv = annotate.start(
        data,
        *("--token", TOKEN, "--dataset", "rasters", "--image-size", "128", "--superpixels", "slic"),
        *("--n-segments", "40", *(a for o in options for a in ("--dataset-option", o))),
    )
    yield srv
    annotate.stop(srv)


def _gpkg_pixels(path: Path, raster: Path) -> list[tuple[int, int, str]]:
    """The points of a GeoPackage in pixel coordinates of ``raster``."""
    import struct

    import pyogrio.raw
    import rasterio

    meta, _, geometry, fields = pyogrio.raw.read(path)
    klass = fields[list(meta["fields"]).index("class")]
    with rasterio.open(raster) as src:
        inverse = ~src.transform
    out = []
    for wkb, name in zip(geometry, klass, strict=True):
        order = "<" if wkb[0] == 1 else ">"
        col, row = inverse @ struct.unpack(order + "dd", wkb[5:21])
        out.append((int(col), int(row), str(name)))
    return sorted(out)


def test_large_raster_tiled_overlay_and_held_out_points(context, raster_server):
    overlay_versions: list[int] = []
    context.on(
        "response",
        lambda r: (
            "/overlay/" in r.url
            and r.status == 200
            and overlay_versions.append(int(r.url.rsplit("v=", 1)[1]))
        ),
    )
    page = _open(context, raster_server)
    assert _state(page, "overlayMode") == "tiled"
    names = [c["name"] for c in _state(page, "classes")]
    clicks = [(128 + 256 * i, 128 + 256 * j, (i + j) % 3) for i in range(4) for j in range(4)]
    page.keyboard.press("b")  # no point, no block with superpixels: no boundaries yet
    _idle(page)
    page.wait_for_timeout(300)
    assert page.evaluate(YELLOW) == 0
    for x, y, c in clicks[::2]:  # one point in each of 8 of the 16 validation cells
        page.keyboard.press(str(c + 1))
        _click_pixel(page, x, y)
        _idle(page)  # every overlay tile in view is the one of the new version
    version = _state(page, "version")
    assert _state(page, "lastOverlayVersion") == version and version in overlay_versions
    page.wait_for_function(f"({YELLOW})() > 1000")  # boundary tiles follow the version too

    page.reload()
    page.wait_for_function(IDLE)
    points = _state(page, "points")
    expected = sorted((x, y, names[c]) for x, y, c in clicks[::2])
    assert sorted((p["x"], p["y"], names[p["class"]]) for p in points) == expected
    saved = raster_server.data / "points.gpkg"
    assert _gpkg_pixels(saved, raster_server.data / "images" / "scene.tif") == expected

    # held-out points are drawn as rings: the centre is not the class colour
    held = [p for p in points if p["held_out"]]
    kept = [p for p in points if not p["held_out"]]
    assert held and kept
    page.keyboard.press("o")
    _frame(page)
    colors = [_rgb(c["color"]) for c in _state(page, "classes")]
    for p in kept:
        np.testing.assert_allclose(_canvas_rgba(page, p["x"], p["y"])[:3], colors[p["class"]])
    for p in held:
        assert np.abs(_canvas_rgba(page, p["x"], p["y"])[:3] - colors[p["class"]]).max() > 8


# ---------------------------------------------------------------- the model in the loop

TRAIN_MS = 150_000  # start the training process, 3 epochs on 3 images of 64 px, predict
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
    return _server_png(page, image_id, "prediction")


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
