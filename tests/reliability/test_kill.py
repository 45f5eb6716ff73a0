"""SIGKILL in the middle of train, predict and experiment: nothing half-written under a final
name, and the same command run again finishes (train and sweeps resume, not restart)."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

pytestmark = pytest.mark.slow

MAX_EPOCHS = 60


def _start(helpers, args: list[str], cwd: Path) -> subprocess.Popen:
    log = cwd / "killed.log"
    with log.open("w") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(
            helpers.pointseg_cmd(*args), cwd=cwd, stdout=fh, stderr=subprocess.STDOUT
        )


def _kill_when(
    proc: subprocess.Popen, ready: Callable[[], bool], *, timeout: float, delay: float = 0.0
) -> None:
    """SIGKILL ``proc`` once ``ready()`` (plus ``delay`` seconds); fail if it ends first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            hit = ready()
        except Exception:  # a file being replaced while we look: try again
            hit = False
        if hit:
            break
        if proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=30)
            pytest.fail(f"no progress within {timeout} s")
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is not None:
        pytest.fail(f"the command ended (exit {proc.returncode}) before it could be killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _rerun(helpers, args: list[str], cwd: Path, timeout: float) -> None:
    proc = helpers.run_cli(args, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, f"rerun of `pointseg {' '.join(args)}` failed:\n{proc.stderr}"


def _history(path: Path) -> list[dict[str, str]]:
    """Rows of history.csv as strings; every field must be present and numeric."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        assert None not in row and all(v not in (None, "") for v in row.values()), row
        for value in row.values():
            float(value)
    return rows


def _epochs(rows: list[dict[str, str]]) -> list[int]:
    return [int(r["epoch"]) for r in rows]


def _check_run_after_kill(run: Path) -> list[dict[str, str]]:
    """No half-written file under a final name in a killed run folder; its history rows."""
    assert not (run / "model.pt").exists(), "model.pt of a run that was killed mid-way"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert isinstance(config, dict) and "max_epochs" in config
    rows = _history(run / "history.csv")
    assert _epochs(rows) == list(range(len(rows))), _epochs(rows)
    ckpts = [p for p in run.rglob("*.ckpt") if not p.name.startswith(".")]
    assert run / "checkpoints" / "last.ckpt" in ckpts
    for ckpt in ckpts:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        assert "state_dict" in state and "epoch" in state, ckpt
    return rows


def _check_resumed(before: list[dict[str, str]], after: list[dict[str, str]], n: int) -> None:
    """Epochs 0..n-1 once each, and at most one epoch recorded before the kill trained again."""
    assert _epochs(after) == list(range(n)), f"epochs after resume: {_epochs(after)}"
    last_done = int(before[-1]["epoch"])
    retrained = [int(a["epoch"]) for a, b in zip(after, before, strict=False) if a != b]
    assert all(e >= last_done for e in retrained), (
        f"the killed run had finished epochs 0..{last_done}; the resumed one trained "
        f"{retrained} again (at most epoch {last_done} may be repeated)"
    )


def _check_outputs_readable(folder: Path) -> None:
    import rasterio
    from PIL import Image

    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".tif":
            with rasterio.open(path) as ds:
                ds.read()
        elif path.suffix == ".png":
            with Image.open(path) as im:
                im.load()


def test_kill_during_train_then_resume(env, tmp_path, helpers):
    run = tmp_path / "run"
    args = ["-q", "train", str(env.data), "--out", str(run)]
    args += env.train_args(max_epochs=MAX_EPOCHS)
    args += ["--early-stop-patience", "1000", "--plateau-patience", "1000"]
    proc = _start(helpers, args, tmp_path)
    _kill_when(proc, lambda: len(_history(run / "history.csv")) >= 2, timeout=helpers.TIMEOUT)
    before = _check_run_after_kill(run)
    _rerun(helpers, [*args, "--resume"], tmp_path, helpers.TIMEOUT)
    assert (run / "model.pt").is_file()
    _check_resumed(before, _history(run / "history.csv"), MAX_EPOCHS)


def test_kill_during_tiled_predict_then_rerun(env, big_raster, tmp_path, helpers):
    out = tmp_path / "pred"
    args = ["-q", "predict", str(env.model), str(big_raster), "--out", str(out)]
    args += ["--tiled", "--tile-size", "64", "--probabilities"]
    proc = _start(helpers, args, tmp_path)
    _kill_when(
        proc, lambda: out.is_dir() and any(out.iterdir()), timeout=helpers.TIMEOUT, delay=0.5
    )
    _check_outputs_readable(out)
    _rerun(helpers, args, tmp_path, helpers.TIMEOUT)
    _check_outputs_readable(out)
    import rasterio

    with rasterio.open(out / "scene.tif") as res, rasterio.open(big_raster) as src:
        assert res.shape == src.shape and res.transform == src.transform
    assert (out / "scene_probs.tif").is_file()
    left = helpers.temp_files(out)
    assert not left, f"temporary files of dead processes left: {[p.name for p in left]}"


def test_kill_during_folder_predict_then_rerun(env, big_raster, tmp_path, helpers):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        shutil.copy(big_raster, source / f"ortho_{i}.tif")
    out = tmp_path / "pred"
    args = ["-q", "predict", str(env.model), str(source), "--out", str(out)]
    proc = _start(helpers, args, tmp_path)
    _kill_when(proc, lambda: out.is_dir() and any(out.rglob("*")), timeout=helpers.TIMEOUT)
    _check_outputs_readable(out)
    _rerun(helpers, args, tmp_path, helpers.TIMEOUT)
    _check_outputs_readable(out)
    for i in range(3):
        for name in (f"ortho_{i}.png", f"ortho_{i}.tif", f"overlays/ortho_{i}.png"):
            assert (out / name).is_file(), name
    left = helpers.temp_files(out)
    assert not left, f"temporary files of dead processes left: {[p.name for p in left]}"


def test_kill_during_experiment_then_rerun(env, tmp_path, helpers):
    epochs = 30
    sweep_out = tmp_path / "sweep"
    spec = {
        "name": "killed",
        "out": str(sweep_out),
        "base": {
            "data": str(env.data),
            "image_size": 32,
            "model_options": {"base_channels": 4, "depth": 2},
            "batch_size": 4,
            "max_epochs": epochs,
            "early_stop_patience": 1000,
            "plateau_patience": 1000,
            "n_segments": 30,
            "accelerator": "cpu",
            "cache_dir": str(env.cache),
        },
        "grid": {"seed": [0, 1]},
    }
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(spec))
    args = ["-q", "experiment", str(sweep)]
    interrupted: dict[str, Path] = {}

    def mid_run() -> bool:
        for history in sorted((sweep_out / "runs").glob("*/history.csv")):
            if len(_history(history)) >= 3 and not (history.parent / "model.pt").exists():
                interrupted["run"] = history.parent
                return True
        return False

    proc = _start(helpers, args, tmp_path)
    _kill_when(proc, mid_run, timeout=helpers.TIMEOUT)
    run = interrupted["run"]
    before = _check_run_after_kill(run)
    _rerun(helpers, args, tmp_path, 2 * helpers.TIMEOUT)
    with (sweep_out / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["run"] for r in rows) == ["seed=0", "seed=1"], rows
    assert all(r["status"] == "done" for r in rows), [(r["run"], r["status"]) for r in rows]
    for name in ("seed=0", "seed=1"):
        assert (sweep_out / "runs" / name / "model.pt").is_file(), name
    _check_resumed(before, _history(run / "history.csv"), epochs)
