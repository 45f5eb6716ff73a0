"""Fault-injection suite: shared tiny data, a tiny trained model and the failure checks.

Everything is built once per session in a temporary folder: a 12-image 48 px synthetic
dataset, a 4-band copy of it, a 512 px synthetic GeoTIFF, a tiny finished training run
(``model.pt``) and, for the kill tests, a 2048 px GeoTIFF.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

#: Training settings that keep a run to a few seconds on a laptop CPU.
TINY_MODEL = '{"base_channels": 4, "depth": 2}'

#: Where a write must fail even for root (/sys is read-only here).
READ_ONLY_OUT = Path("/sys/pointseg-test/out")

#: Temporary files of pointseg.io.atomic: ``.{name}.{pid}.{random}.tmp{suffix}``.
TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp(?:\..*)?$")

#: Wall-clock limit of every subprocess wait.
TIMEOUT = 120


def tiny_train_args(cache: Path, *, max_epochs: int = 1) -> list[str]:
    """The flags of a tiny CPU training run."""
    return [
        "--image-size",
        "32",
        "--model-options",
        TINY_MODEL,
        "--max-epochs",
        str(max_epochs),
        "--batch-size",
        "4",
        "--n-segments",
        "30",
        "--accelerator",
        "cpu",
        "--cache-dir",
        str(cache),
    ]


@dataclass
class Env:
    """The session's shared inputs (never written by the tests)."""

    root: Path  # everything below but the cache
    cache: Path  # pseudo-label cache (written by training runs)
    data: Path  # folder dataset: 12 RGB PNG scenes of 48 px, masks, classes.yaml
    data4: Path  # the same scenes as 4-band GeoTIFFs
    raster: Path  # `pointseg synthetic --raster --size 512`: images/scene.tif, points.geojson
    run: Path  # a finished tiny run on `data` (model.pt, config.yaml, checkpoints/)

    @property
    def model(self) -> Path:
        return self.run / "model.pt"

    @property
    def tif4(self) -> Path:
        """One 4-band georeferenced GeoTIFF (48 px)."""
        return self.data4 / "images" / "scene_0000.tif"

    def train_args(self, *, max_epochs: int = 1) -> list[str]:
        return tiny_train_args(self.cache, max_epochs=max_epochs)


def _write_four_band_copy(src: Path, dst: Path) -> Path:
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    (dst / "images").mkdir(parents=True)
    shutil.copytree(src / "masks", dst / "masks")
    shutil.copy(src / "classes.yaml", dst / "classes.yaml")
    for png in sorted((src / "images").glob("*.png")):
        rgb = np.asarray(Image.open(png).convert("RGB"))
        nir = rgb.mean(axis=2).astype(np.uint8)
        bands = np.concatenate([np.moveaxis(rgb, -1, 0), nir[None]], axis=0)
        with rasterio.open(
            dst / "images" / f"{png.stem}.tif",
            "w",
            driver="GTiff",
            width=rgb.shape[1],
            height=rgb.shape[0],
            count=4,
            dtype="uint8",
            crs="EPSG:2180",
            transform=from_origin(600000, 5500000, 0.5, 0.5),
            photometric="RGB",
            alpha="UNSPECIFIED",  # band 4 is near-infrared: GDAL's default would be alpha
        ) as out:
            out.write(bands)
    return dst


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    from pointseg.cli import main
    from pointseg.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("reliability")
    cache = tmp_path_factory.mktemp("reliability-cache")
    data = make_synthetic_dataset(root / "data", n_images=12, size=48, seed=1)
    data4 = _write_four_band_copy(data, root / "data4")
    raster = root / "raster"
    assert main(["-q", "synthetic", str(raster), "--raster", "--size", "512"]) == 0
    run = root / "run"
    argv = ["-q", "train", str(data), "--out", str(run), *tiny_train_args(cache)]
    assert main(argv) == 0
    assert (run / "model.pt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    return Env(root=root, cache=cache, data=data, data4=data4, raster=raster, run=run)


@pytest.fixture(scope="session")
def big_raster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2048 px 3-band synthetic GeoTIFF (a few seconds of prediction)."""
    from pointseg.data.synthetic_raster import make_synthetic_raster

    root = tmp_path_factory.mktemp("reliability-big")
    make_synthetic_raster(root, size=2048)
    path = root / "images" / "scene.tif"
    assert path.is_file()
    return path


@pytest.fixture
def read_only_out() -> Path:
    """A path that cannot be written (the case is skipped where it can)."""
    try:
        READ_ONLY_OUT.mkdir(parents=True)
    except OSError:
        return READ_ONLY_OUT
    shutil.rmtree(READ_ONLY_OUT.parent, ignore_errors=True)
    pytest.skip(f"{READ_ONLY_OUT} is writable here")


# ----------------------------------------------------------------------------- checks


def visible_files(*roots: Path) -> dict[str, tuple[int, int]]:
    """``{path: (size, mtime_ns)}`` of every file under ``roots`` whose path has no hidden
    component (hidden names are temporary files and folders)."""
    out: dict[str, tuple[int, int]] = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                st = path.stat()
                out[str(path)] = (st.st_size, st.st_mtime_ns)
    return out


def tree_state(root: Path) -> dict[str, tuple[str, int]]:
    """``{relative path: (sha256, mtime_ns)}`` of every file under ``root``, hidden included."""
    out: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = (digest, path.stat().st_mtime_ns)
    return out


def assert_one_line_failure(
    rc: int | None, out: str, err: str, *, argv: Iterable[str] = (), contains: Iterable[str] = ()
) -> str:
    """Exit status 2, exactly one non-empty line on stderr, no traceback; returns the line."""
    cmd = " ".join(map(str, argv))
    assert "Traceback" not in out + err, f"traceback from `{cmd}`:\n{err[-3000:]}"
    assert rc == 2, f"`{cmd}` exited {rc} (expected 2); stderr: {err[-2000:]!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), (
        f"`{cmd}`: stderr is not one non-empty line: {err[-2000:]!r}"
    )
    for text in contains:
        assert text.lower() in lines[0].lower(), f"`{cmd}`: {text!r} not in {lines[0]!r}"
    return lines[0]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``pointseg.cli.main(argv)`` in this process; an escaping exception fails the test."""
    from pointseg.cli import main

    capsys.readouterr()
    try:
        rc = main(argv)
    except BaseException as exc:  # a traceback at the command line
        captured = capsys.readouterr()
        pytest.fail(
            f"main({argv}) raised {type(exc).__name__}: {exc} (stderr {captured.err[-500:]!r})"
        )
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def pointseg_cmd(*args: str) -> list[str]:
    """The real entry point in a subprocess."""
    return [sys.executable, "-m", "pointseg", *args]


def run_cli(args: list[str], *, cwd: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        pointseg_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def temp_files(root: Path, *, pid: int | None = None) -> list[Path]:
    """Temporary files of pointseg.io.atomic under ``root`` (of ``pid`` when given)."""
    found = []
    for path in root.rglob(".*"):
        m = TEMP_RE.match(path.name)
        if m and (pid is None or int(m["pid"]) == pid):
            found.append(path)
    return found


@pytest.fixture
def helpers() -> Callable[..., object]:
    """The check functions above, for the test modules (importlib mode: no conftest import)."""

    class _Helpers:
        visible_files = staticmethod(visible_files)
        tree_state = staticmethod(tree_state)
        assert_one_line_failure = staticmethod(assert_one_line_failure)
        run_main = staticmethod(run_main)
        pointseg_cmd = staticmethod(pointseg_cmd)
        run_cli = staticmethod(run_cli)
        temp_files = staticmethod(temp_files)
        tiny_train_args = staticmethod(tiny_train_args)
        TIMEOUT = TIMEOUT
        TEMP_RE = TEMP_RE

    return _Helpers
