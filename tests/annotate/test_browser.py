"""The ``pointseg annotate`` page in headless Chromium, against the real server.

Drives Debian's ``chromium`` (never a downloaded browser) through Playwright's Python package;
skipped, with the reason, when either is missing. Each test starts ``pointseg annotate`` as a
subprocess on a free port with an access token, on a small synthetic dataset.
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
    srv = annotate.start(data, "--token", TOKEN, "--image-size", "0", "--superpixels", "slic")
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


def _overlay(page, image_id: str) -> np.ndarray:
    """The server's overlay (H, W, 4) for the current version, fetched as the page does."""
    flat = page.evaluate(
        """async (id) => {
            const token = new URLSearchParams(location.search).get("token");
            const v = window.pointseg.version;
            const r = await fetch(`/api/images/${id}/overlay.png?v=${v}`,
                                  {headers: {"X-Token": token}});
            const bmp = await createImageBitmap(await r.blob());
            const cv = new OffscreenCanvas(bmp.width, bmp.height);
            const g = cv.getContext("2d");
            g.drawImage(bmp, 0, 0);
            const data = g.getImageData(0, 0, bmp.width, bmp.height).data;
            return [bmp.width, bmp.height, Array.from(data)];
        }""",
        image_id,
    )
    w, h, data = flat
    return np.array(data, dtype=np.uint8).reshape(h, w, 4)


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
    assert overlay.shape[:2] == (128, 128)  # --image-size 0: the native grid
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
