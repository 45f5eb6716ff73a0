"""Labelling and prediction on a 2-worker Dask LocalCluster: the same files as the serial path,
reruns that reuse finished work, failed inputs retried then reported by name."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

import rasterio
import torch
from PIL import Image
from rasterio.transform import from_origin

from pointseg.cli import main
from pointseg.distributed import (
    Task,
    TasksFailed,
    check_dask_options,
    dask_client,
    run_tasks,
)
from pointseg.models import ModelSpec, get_model, save_model
from pointseg.predict import open_model, predict_folder
from pointseg.predict.blocks import predict_raster_dask, work_folder
from pointseg.predict.tiled import predict_raster


@pytest.fixture(scope="module")
def client():
    """One 2-worker LocalCluster (processes, one thread each) for the whole module."""
    with dask_client(workers=2) as c:
        yield c


@pytest.fixture
def cli_on(client, monkeypatch):
    """Commands given --dask-workers run on the module's cluster instead of a new one."""
    import pointseg.distributed

    @contextlib.contextmanager
    def shared(*, scheduler=None, workers=None, timeout=30.0):
        check_dask_options(scheduler=scheduler, workers=workers)
        yield client if (scheduler or workers) else None

    monkeypatch.setattr(pointseg.distributed, "dask_client", shared)
    return client


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory) -> Path:
    spec = ModelSpec(
        name="unet",
        num_classes=3,
        in_channels=3,
        options={"base_channels": 4, "depth": 2},
        class_names=["a", "b", "c"],
        class_colors=[[0, 0, 0], [255, 0, 0], [0, 0, 255]],
        mean=[100.0] * 3,
        std=[40.0] * 3,
    )
    torch.manual_seed(0)
    model = get_model("unet", num_classes=3, in_channels=3, base_channels=4, depth=2)
    return save_model(tmp_path_factory.mktemp("model") / "model.pt", model, spec)


def _write_raster(path: Path, height: int, width: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (127 + 100 * np.sin(xx / 23.0) * np.cos(yy / 31.0)).astype(np.int64)
    data = np.clip(base[None] + rng.integers(-40, 40, (3, height, width)), 1, 255)
    data = data.astype(np.uint8)
    data[:, :40, :50] = 0  # nodata corner
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=height,
        width=width,
        count=3,
        dtype="uint8",
        crs="EPSG:2180",
        transform=from_origin(500000, 300000, 0.25, 0.25),
        nodata=0,
        tiled=True,
        blockxsize=128,
        blockysize=128,
        compress="deflate",
    ) as dst:
        dst.write(data)
    return path


def _same_raster(a: Path, b: Path) -> None:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert (x.crs, x.transform, x.nodata, x.dtypes) == (y.crs, y.transform, y.nodata, y.dtypes)
        np.testing.assert_array_equal(x.read(), y.read())
        np.testing.assert_array_equal(x.read_masks(), y.read_masks())


# ----------------------------------------------------------------------------- labelling


def test_pseudolabels_on_two_workers_fill_the_training_cache_as_serial(
    tiny_synthetic, tmp_path, cli_on, monkeypatch
):
    common = ["--image-size", "64", "--n-segments", "30", "--split", "train"]
    serial, dist = tmp_path / "serial", tmp_path / "dask"
    argv = ["-q", "pseudolabels", str(tiny_synthetic), "--out", str(serial / "png"), *common]
    assert main([*argv, "--cache-dir", str(serial / "cache")]) == 0
    argv = ["-q", "pseudolabels", str(tiny_synthetic), "--out", str(dist / "png"), *common]
    argv += ["--cache-dir", str(dist / "cache"), "--dask-workers", "2"]
    assert main(argv) == 0
    pngs = sorted(p.name for p in (serial / "png").glob("*.png"))
    assert len(pngs) >= 10 and pngs == sorted(p.name for p in (dist / "png").glob("*.png"))
    for name in pngs:
        assert (serial / "png" / name).read_bytes() == (dist / "png" / name).read_bytes()
    entries = sorted(p.relative_to(serial / "cache") for p in (serial / "cache").rglob("*.png"))
    assert len(entries) == len(pngs)
    assert entries == sorted(p.relative_to(dist / "cache") for p in (dist / "cache").rglob("*.png"))
    for rel in entries:
        assert (serial / "cache" / rel).read_bytes() == (dist / "cache" / rel).read_bytes()

    # a rerun skips the images whose PNG exists (they are not rewritten)
    before = {p.name: p.stat().st_mtime_ns for p in (dist / "png").glob("*.png")}
    assert main(argv) == 0
    assert before == {p.name: p.stat().st_mtime_ns for p in (dist / "png").glob("*.png")}

    # training on whole resized images reads these entries: no superpixel is recomputed
    from pointseg.labels.settings import PseudoLabelSettings
    from pointseg.training import TrainConfig
    from pointseg.training.train import prepare_splits

    def no_segments(self, image):
        raise AssertionError("training recomputed a pseudo-label the cache holds")

    monkeypatch.setattr(PseudoLabelSettings, "segments", no_segments)
    cfg = TrainConfig(
        data=str(tiny_synthetic), resize=64, n_segments=30, cache_dir=str(dist / "cache")
    )
    cfg.validate()
    prepared = prepare_splits(cfg, names=("train",))
    assert len(prepared["train"].names) == len(pngs)


def test_window_pseudolabels_on_two_workers_fill_the_window_cache_training_reads(
    tiny_synthetic, tmp_path, cli_on, monkeypatch
):
    """--window: native labels under training's keys, identical to serial; training reads them."""
    common = ["--window", "32", "--n-segments", "30", "--split", "train", "--seed", "4"]
    serial, dist = tmp_path / "serial", tmp_path / "dask"
    for where, extra in ((serial, []), (dist, ["--dask-workers", "2"])):
        argv = ["-q", "pseudolabels", str(tiny_synthetic), "--out", str(where / "png"), *common]
        assert main([*argv, "--cache-dir", str(where / "cache"), *extra]) == 0
    files = sorted(p.relative_to(serial / "cache") for p in (serial / "cache").rglob("*.np*"))
    pngs = sorted(p.name for p in (serial / "png").glob("*.png"))
    assert len(pngs) >= 10 and len(files) >= 2 * len(pngs)  # labels and superpixel levels
    assert files == sorted(p.relative_to(dist / "cache") for p in (dist / "cache").rglob("*.np*"))
    for rel in files:
        assert (serial / "cache" / rel).read_bytes() == (dist / "cache" / rel).read_bytes()
    for name in pngs:
        assert (serial / "png" / name).read_bytes() == (dist / "png" / name).read_bytes()

    # windowed training with the same settings finds every label: nothing is segmented again
    import pointseg.training.image_windows as windows
    from pointseg.training import TrainConfig
    from pointseg.training.train import _split_points

    def no_labels(*args, **kwargs):
        raise AssertionError("training recomputed a pseudo-label the cache holds")

    monkeypatch.setattr(windows, "label_image", no_labels)
    cfg = TrainConfig(
        data=str(tiny_synthetic), window=32, n_segments=30, seed=4, cache_dir=str(dist / "cache")
    )
    cfg.validate()
    ds = cfg.open_dataset("train", require_masks=True)
    assert _split_points(cfg, {"train": ds}) == (None, None)
    prep = windows.prepare_window_training(
        ds,
        target="pseudo",
        n_classes=ds.class_map.n_classes,
        pixels_per_segment=cfg.pixels_per_segment(),
        pseudo=cfg.pseudo_label_settings(),
        cache_dir=dist / "cache",
        n_points=cfg.n_points,
        seed=cfg.seed,
    )
    assert all(s.labels is not None and s.labels.is_file() for s in prep.sources)


# ---------------------------------------------------------------------------- prediction


@pytest.mark.parametrize(
    ("batch_size", "shape", "blocks"), [(1, (300, 520), 6), (4, (700, 900), 12)]
)
def test_tiled_raster_on_two_workers_matches_serial(
    model_pt, tmp_path, client, batch_size, shape, blocks
):
    src = _write_raster(tmp_path / "ortho.tif", *shape)
    model, spec = open_model(model_pt, device="cpu")
    options = {"tile_size": 128, "overlap": 16, "batch_size": batch_size}
    predict_raster(
        model, spec, src, tmp_path / "serial.tif", probabilities=tmp_path / "sp.tif", **options
    )
    summary = predict_raster_dask(
        model_pt,
        src,
        tmp_path / "dask.tif",
        client=client,
        probabilities=tmp_path / "dp.tif",
        block_size=256,  # none aligned with the serial 1024-px blocks
        **options,
    )
    assert summary["blocks"] == blocks and summary["blocks_reused"] == 0
    _same_raster(tmp_path / "serial.tif", tmp_path / "dask.tif")
    if batch_size == 1:
        _same_raster(tmp_path / "sp.tif", tmp_path / "dp.tif")
    else:  # tiles share batches with other tiles than serially: last-bit differences
        with rasterio.open(tmp_path / "sp.tif") as a, rasterio.open(tmp_path / "dp.tif") as b:
            diff = np.abs(a.read().astype(int) - b.read().astype(int))
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert not work_folder(tmp_path / "dask.tif").exists()


def test_folder_on_two_workers_matches_serial(model_pt, tmp_path, client):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        _write_raster(images / f"geo{i}.tif", 96 + 16 * i, 80, seed=i)
    rgb = np.random.default_rng(5).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(images / "photo.png")
    serial = predict_folder(model_pt, images, tmp_path / "serial", device="cpu")
    dist = predict_folder(model_pt, images, tmp_path / "dask", device="cpu", client=client)
    assert [p.name for p in serial] == [p.name for p in dist]
    assert len(serial) == 7  # 4 PNGs and 3 GeoTIFFs
    for name in ["geo0.png", "geo1.png", "geo2.png", "photo.png"]:
        for sub in ("", "overlays"):
            a, b = tmp_path / "serial" / sub / name, tmp_path / "dask" / sub / name
            assert a.read_bytes() == b.read_bytes()
    for i in range(3):
        _same_raster(tmp_path / "serial" / f"geo{i}.tif", tmp_path / "dask" / f"geo{i}.tif")

    # a rerun skips the images whose outputs exist; overwrite=True redoes them
    # (the class maps are still listed: the run's result is whole)
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "dask").rglob("*.*")}
    again = predict_folder(model_pt, images, tmp_path / "dask", client=client)
    assert again == dist
    assert stamp == {p: p.stat().st_mtime_ns for p in (tmp_path / "dask").rglob("*.*")}
    (tmp_path / "dask" / "overlays" / "geo1.png").unlink()
    assert predict_folder(model_pt, images, tmp_path / "dask", client=client) == dist
    changed = sorted(
        str(p.relative_to(tmp_path / "dask"))
        for p in (tmp_path / "dask").rglob("*.*")
        if stamp.get(p) != p.stat().st_mtime_ns
    )
    assert changed == ["geo1.png", "geo1.tif", "overlays/geo1.png"]  # only the incomplete image


def _corrupt_tile(path: Path, col: int, row: int) -> bytes:
    """Overwrite one compressed tile of ``path`` with garbage; returns the file's bytes."""
    original = path.read_bytes()
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1))
        size = int(src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)
    return original


def test_rerun_reuses_the_blocks_a_failed_run_finished(model_pt, tmp_path, client):
    src = _write_raster(tmp_path / "ortho.tif", 700, 900)
    stat = src.stat()
    model, spec = open_model(model_pt, device="cpu")
    options = {"tile_size": 128, "overlap": 16, "batch_size": 2, "block_size": 256}
    predict_raster(model, spec, src, tmp_path / "serial.tif", **options)
    out = tmp_path / "dask.tif"

    # run 1: the bottom-right source tile is unreadable, so the blocks around it fail
    original = _corrupt_tile(src, col=6, row=5)
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(TasksFailed) as info:
        predict_raster_dask(model_pt, src, out, client=client, **options)
    failed = [f.name for f in info.value.failures]
    assert failed and all(n.startswith("ortho.tif block rows ") for n in failed)
    assert "ortho.tif block rows 512:700 cols 768:900" in failed
    assert all(f.attempts == 2 for f in info.value.failures)
    assert info.value.failures[0].error.startswith("ValueError: cannot read pixels of ")
    assert not out.exists()
    finished = sorted(work_folder(out).glob("r*-c*.npz"))
    assert len(finished) == 12 - len(failed) and len(finished) >= 6

    # poison one finished block: if the rerun recomputed it, the output would not show it
    poisoned = work_folder(out) / "r0-c256.npz"
    with np.load(poisoned) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["labels"] = np.full_like(arrays["labels"], 2)
    np.savez_compressed(poisoned, **arrays)

    # run 2 on the repaired source (same bytes, same mtime): only the failed blocks run
    src.write_bytes(original)
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    summary = predict_raster_dask(model_pt, src, out, client=client, **options)
    assert summary["blocks_reused"] == len(finished)
    assert summary["blocks"] - summary["blocks_reused"] == len(failed)
    with rasterio.open(out) as res, rasterio.open(tmp_path / "serial.tif") as ref:
        got, want = res.read(1), ref.read(1)
        assert (res.crs, res.transform, res.nodata) == (ref.crs, ref.transform, ref.nodata)
    assert (got[0:256, 256:512] == 2).all()  # the poisoned block came from its file
    got[0:256, 256:512] = want[0:256, 256:512]
    np.testing.assert_array_equal(got, want)
    assert not work_folder(out).exists()


@pytest.mark.slow
def test_killed_distributed_prediction_reruns_without_redoing_finished_blocks(
    model_pt, tmp_path, cli_on
):
    """SIGKILL of a whole `predict --tiled --dask-workers 2` run (client, cluster, workers)."""
    import signal
    import subprocess
    import time

    src = _write_raster(tmp_path / "ortho.tif", 2048, 2048)
    flags = ["--tiled", "--tile-size", "128", "--overlap", "16", "--batch-size", "2"]
    flags += ["--block-size", "256"]
    out = tmp_path / "maps"
    argv = ["-q", "predict", str(model_pt), str(src), "--out", str(out), *flags]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pointseg", *argv, "--dask-workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    work = work_folder(out / "ortho.tif")
    deadline = time.monotonic() + 120
    while len(list(work.glob("r*-c*.npz"))) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the run ended (exit {proc.returncode}) or stalled before the kill")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # client, local cluster and workers at once
    proc.wait(timeout=30)
    finished = sorted(work.glob("r*-c*.npz"))
    assert not (out / "ortho.tif").exists(), "the run finished before the kill"
    assert 2 <= len(finished) < 64

    # poison every finished block: a recomputed block would not show it in the map
    blocks = []
    for path in finished:
        r0, c0 = (int(v[1:]) for v in path.stem.split("-"))
        blocks.append((slice(r0, r0 + 256), slice(c0, c0 + 256)))
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["labels"] = np.full_like(arrays["labels"], 2)
        np.savez_compressed(path, **arrays)

    assert main([*argv, "--dask-workers", "2"]) == 0  # the rerun, on the shared cluster
    model, spec = open_model(model_pt, device="cpu")
    options = {"tile_size": 128, "overlap": 16, "batch_size": 2}
    predict_raster(model, spec, src, tmp_path / "serial.tif", **options)
    with rasterio.open(out / "ortho.tif") as res, rasterio.open(tmp_path / "serial.tif") as ref:
        got, want = res.read(1), ref.read(1)
        assert (res.crs, res.transform, res.nodata) == (ref.crs, ref.transform, ref.nodata)
    for block in blocks:  # each block finished before the kill came from its file
        assert (got[block] == 2).all()
        got[block] = want[block]
    np.testing.assert_array_equal(got, want)  # the others were computed, as serial
    assert not work.exists()


def test_corrupt_image_is_retried_then_reported_by_name(model_pt, tmp_path, cli_on, capsys, caplog):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
            images / f"ok{i}.png"
        )
    good = (images / "ok0.png").read_bytes()
    (images / "broken.png").write_bytes(good[: len(good) // 2])  # header fine, data cut
    out = tmp_path / "pred"
    argv = ["predict", str(model_pt), str(images), "--out", str(out), "--dask-workers", "2"]
    assert main(argv) == 2  # the status of every failed command
    assert "broken.png failed" in caplog.text and "retrying (attempt 2 of 2)" in caplog.text
    err = capsys.readouterr().err
    assert "1 of 4 images failed after 2 attempts" in err and "broken.png: " in err
    assert sorted(p.name for p in out.glob("*.png")) == ["ok0.png", "ok1.png", "ok2.png"]


def test_run_tasks_retries_a_failed_task_once(client, tmp_path):
    fail_first_time = _by_value(_FAIL_FIRST_TIME, "fail_first_time")
    flaky = Task("flaky", fail_first_time, (str(tmp_path / "attempts"),))
    assert run_tasks(client, [flaky]) == {"flaky": 2}
    assert (tmp_path / "attempts").read_text() == "xx"
    with pytest.raises(TasksFailed, match="1 of 2 inputs failed after 1 attempts"):
        run_tasks(
            client,
            [Task("bad", fail_first_time, (str(tmp_path / "again"),)), Task("ok", len, ("ab",))],
            retries=0,
        )


_FAIL_FIRST_TIME = """
def fail_first_time(counter):
    with open(counter, "a") as f:
        f.write("x")
    with open(counter) as f:
        attempts = len(f.read())
    if attempts == 1:
        raise OSError("transient failure")
    return attempts
"""


def _by_value(source: str, name: str):
    """A function the workers get by value (they cannot import this test module)."""
    namespace = {"__name__": "pointseg_test_tasks"}  # not importable: pickled by value
    exec(source, namespace)
    return namespace[name]


# ------------------------------------------------------------------------------- options


def test_dask_options_exclude_each_other(tiny_synthetic, tmp_path, capsys):
    argv = ["pseudolabels", str(tiny_synthetic), "--out", str(tmp_path / "pl")]
    argv += ["--dask-scheduler", "tcp://127.0.0.1:1", "--dask-workers", "2"]
    assert main(argv) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="exclude each other"):
        check_dask_options(scheduler="tcp://127.0.0.1:1", workers=2)
    with pytest.raises(ValueError, match="--dask-workers must be an integer >= 1, got 0"):
        check_dask_options(workers=0)


def test_missing_dask_names_the_install_command(model_pt, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / "a.png")
    argv = ["predict", str(model_pt), str(images), "--out", str(tmp_path / "o")]
    assert main([*argv, "--dask-workers", "2"]) == 2
    assert 'pip install "pointseg[dask]"' in capsys.readouterr().err
    assert not (tmp_path / "o" / "a.png").exists()
