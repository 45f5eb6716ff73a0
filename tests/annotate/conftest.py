"""Fixtures of the annotate tests: start ``pointseg annotate`` as a real server process."""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

STARTUP_S = 120  # the first start in a fresh checkout compiles numba kernels


@dataclass
class Server:
    """A running ``pointseg annotate`` process."""

    proc: subprocess.Popen
    url: str  # the page URL it printed (with ?token= when it has one)
    base: str  # scheme://host:port
    data: Path
    log: list[str]


def _start(data: Path, *extra: str) -> Server:
    cmd = [sys.executable, "-m", "pointseg", "annotate", str(data), "--port", "0", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:  # keep reading so the server never blocks on a full pipe
        for line in proc.stdout:
            log.append(line)
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        match = re.search(r"open (http://\S+)", line)
        if match:
            url = match.group(1)
            return Server(proc, url, url.split("?")[0].rstrip("/"), data, log)
    proc.kill()
    proc.wait()
    raise AssertionError("pointseg annotate did not start:\n" + "".join(log))


def _stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
    server.proc.wait()


@pytest.fixture(scope="session")
def annotate():
    """``annotate.start(data, *args) -> Server`` and ``annotate.stop(server)``; every server
    still running at the end of the session is stopped."""
    started: list[Server] = []

    def start(data: Path, *extra: str) -> Server:
        server = _start(data, *extra)
        started.append(server)
        return server

    yield SimpleNamespace(start=start, stop=_stop)
    for server in started:
        _stop(server)


@pytest.fixture(scope="session")
def raster_data(tmp_path_factory):
    """A 1100 x 1100 synthetic orthophoto (rasters dataset) without its clicks; copy it first."""
    from pointseg.data.synthetic_raster import make_synthetic_raster

    root = tmp_path_factory.mktemp("raster") / "data"
    make_synthetic_raster(root, size=1100, points_per_tile=2, seed=2)
    (root / "points.geojson").unlink()
    return root


# ------------------------------------------------------------------------------ the browser

#: Debian's system browser; nothing downloads one.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Default wait of every page action in the browser tests.
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through Playwright; skips, saying why, when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.skip(
            "the playwright Python package is not installed (it is in the dev extra: "
            "pip install -e '.[dev]')"
        )
    if CHROMIUM is None:
        pytest.skip(
            "Debian's chromium is not installed (apt-get install chromium; `make test` installs "
            "it when run as root)"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def context(browser):
    """A 1280 x 800 page context; an uncaught error in the page fails the test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    yield ctx
    ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"
