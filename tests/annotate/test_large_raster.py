"""A 10000 x 10000 orthophoto is opened and panned in bounded memory (peak RSS < 1.5 GB)."""

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SIZE = 10_000


def _get(url):
    with urllib.request.urlopen(url, timeout=300) as r:
        return r.read()


def test_a_10000_px_raster_is_panned_in_bounded_memory(annotate, tmp_path):
    data = tmp_path / "big"
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
            str(SIZE),
        ],
        check=True,
        timeout=600,
    )
    (data / "points.geojson").unlink()
    server = annotate.start(data, "--dataset", "rasters", "--image-size", "256")
    proc, url = server.proc, server.base
    try:
        info = json.loads(_get(f"{url}/api/images/0"))
        assert (info["width"], info["height"], info["overlay"]) == (SIZE, SIZE, "tiled")
        version = json.loads(_get(f"{url}/api/state"))["version"]
        for level in range(info["levels"] - 1, -1, -1):  # zoom in from the whole raster
            n = -(-SIZE // (256 * 2**level))
            centre = n // 2
            for tx in range(max(0, centre - 2), min(n, centre + 2)):
                for ty in range(max(0, centre - 1), min(n, centre + 2)):
                    assert _get(f"{url}/api/images/0/tiles/{level}/{tx}/{ty}.png")
        for x, y in ((5000.5, 5000.5), (5300, 4900), (9990, 20)):
            req = urllib.request.Request(
                f"{url}/api/images/0/points",
                data=json.dumps({"x": x, "y": y, "class": 1, "version": version}).encode(),
                method="POST",
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=300) as r:
                version = json.loads(r.read())["version"]
            tile = f"{int(x) // 256}/{int(y) // 256}"
            assert _get(f"{url}/api/images/0/overlay/0/{tile}.png?v={version}")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak_mib = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
        assert peak_mib < 1536, f"peak RSS {peak_mib:.0f} MiB"
    finally:
        annotate.stop(server)
