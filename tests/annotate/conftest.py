"""Fixtures of the annotate tests: start ``pointseg annotate`` as a real server process."""

from __future__ import annotations

import queue
import re
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
