import csv

import pytest
import yaml

from pointseg.experiments import load_sweep, run_sweep
from pointseg.training import TrainConfig, run_training


def _write(tmp_path, data_root, **extra_keys):
    spec = {
        "name": "tiny",
        "out": str(tmp_path / "sweep"),
        "base": {
            "data": str(data_root),
            "image_size": 32,
            "model": "unet",
            "model_options": {"base_channels": 4, "depth": 2},
            "batch_size": 8,
            "max_epochs": 1,
            "n_segments": 20,
            "accelerator": "cpu",
            "cache_dir": str(tmp_path / "cache"),
        },
        "grid": {"n_points": [5, 10]},
        "extra": [{"supervision": "full"}, {"model": "no_such_model"}],
        **extra_keys,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_sweep_runs_records_failures_and_resumes(tiny_synthetic, tmp_path):
    sweep = load_sweep(_write(tmp_path, tiny_synthetic))
    names = [name for name, _ in sweep.runs()]
    assert names == [
        "n_points=5",
        "n_points=10",
        "seed=0,supervision=full",
        "model=no_such_model,seed=0",
    ]
    calls = []

    def train(cfg):
        calls.append(cfg.out)
        return run_training(cfg)

    records = run_sweep(sweep, train=train)
    assert [r.status for r in records] == ["done", "done", "done", "failed"]
    assert "no_such_model" in records[3].error
    out = tmp_path / "sweep"
    assert (out / "runs" / "model=no_such_model,seed=0" / "error.txt").is_file()
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["done", "done", "done", "failed"]
    by_run = {r["run"]: r for r in rows}
    # annotation cost next to mIoU: clicked points and labelled pixels
    assert float(by_run["n_points=10"]["points_clicked"]) > float(
        by_run["n_points=5"]["points_clicked"]
    )
    assert float(by_run["n_points=5"]["labelled_pixels"]) > 0
    assert by_run["seed=0,supervision=full"]["points_clicked"] == "nan"
    assert 0 <= float(by_run["n_points=5"]["test_miou"]) <= 1
    md = (out / "results.md").read_text()
    assert "±" in md and "Failed runs (1)" in md
    from PIL import Image

    with Image.open(out / "miou_vs_points.png") as plot:  # two panels: mIoU, ratio to full
        assert plot.size[0] > 1.5 * plot.size[1]
    # a restart skips the finished runs and retries only the failed one
    calls.clear()
    records = run_sweep(load_sweep(_write(tmp_path, tiny_synthetic)), train=train)
    assert len(calls) == 1 and calls[0].endswith("model=no_such_model,seed=0")
    assert [r.status for r in records] == ["done", "done", "done", "failed"]


def test_bad_sweep_files(tmp_path, tiny_synthetic):
    with pytest.raises(ValueError, match="unknown keys"):
        load_sweep(_write(tmp_path, tiny_synthetic, runs=3))
    path = tmp_path / "s.yaml"
    path.write_text("grid: {epochs: [1, 2]}\n")
    with pytest.raises(ValueError, match="unknown settings.*epochs"):
        load_sweep(path)
    with pytest.raises(FileNotFoundError):
        load_sweep(tmp_path / "missing.yaml")


def test_experiment_command(tiny_synthetic, tmp_path, capsys):
    from pointseg.cli import main

    path = tmp_path / "one.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "base": {
                    "data": str(tiny_synthetic),
                    "image_size": 32,
                    "max_epochs": 1,
                    "model_options": {"base_channels": 4, "depth": 2},
                    "n_segments": 20,
                    "accelerator": "cpu",
                    "cache_dir": str(tmp_path / "c"),
                },
                "grid": {"loss": ["masked_mse", "partial_ce"]},
            }
        )
    )
    assert main(["-q", "experiment", str(path), "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 runs done" in out and "| masked_mse |" in out
    assert main(["-q", "experiment", str(tmp_path / "nope.yaml")]) == 2


def _fake_train(calls):
    """A stand-in for run_training: writes what a finished run leaves, mIoU from settings."""
    import json
    from pathlib import Path

    def train(cfg):
        calls.append(cfg)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.yaml")
        miou = 0.9 if cfg.supervision == "full" else cfg.n_points / 100 + cfg.n_segments / 10000
        (out / "metrics.json").write_text(json.dumps({"test": {"miou": miou}, "val": {}}))
        stats = {"n_images": 4.0, "n_points": 4.0 * cfg.n_points, "labelled_fraction": 0.25}
        (out / "label_stats.json").write_text(json.dumps(stats))
        (out / "model.pt").write_bytes(b"")

    return train


def _sweep_file(tmp_path, grid, extra=()):
    path = tmp_path / "s.yaml"
    spec = {"out": str(tmp_path / "out"), "base": {"data": "x"}, "grid": grid, "extra": extra}
    path.write_text(yaml.safe_dump(spec))
    return path


def test_sweep_reruns_a_finished_run_whose_settings_changed(tmp_path):
    calls = []
    path = _sweep_file(tmp_path, {"n_points": [10]})
    run_sweep(load_sweep(path), train=_fake_train(calls))
    run_sweep(load_sweep(path), train=_fake_train(calls))
    assert len(calls) == 1  # unchanged: skipped
    run_sweep(load_sweep(path, base_overrides={"lr": 0.5}), train=_fake_train(calls))
    assert len(calls) == 2 and calls[-1].lr == 0.5
    # settings that do not change a result (progress, cache) do not force a rerun
    run_sweep(
        load_sweep(path, base_overrides={"lr": 0.5}),
        train=_fake_train(calls),
        overrides={"progress": True, "cache_dir": str(tmp_path)},
    )
    assert len(calls) == 2


def test_results_table_carries_annotation_cost_and_both_plots(tmp_path):
    calls = []
    path = _sweep_file(
        tmp_path,
        {"n_points": [10, 50], "loss": ["masked_mse", "partial_ce"]},
        extra=[
            {"supervision": "full"},
            {"n_segments": 100, "n_points": 50},
            {"n_segments": 600, "n_points": 50},
        ],
    )
    run_sweep(load_sweep(path), train=_fake_train(calls))
    out = tmp_path / "out"
    md = (out / "results.md").read_text()
    assert "clicks" in md and "points/image" in md and "mIoU / 100 clicks" in md
    with (out / "results.csv").open() as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    row = rows["loss=masked_mse,n_points=10"]
    assert float(row["points_clicked"]) == 40 and float(row["points_per_image"]) == 10
    assert float(row["labelled_fraction"]) == 0.25
    assert float(row["miou_per_100_points"]) == pytest.approx(100 * 0.13 / 40)
    assert (out / "miou_vs_points.png").is_file()
    assert (out / "miou_vs_superpixels.png").is_file()


def test_no_superpixel_plot_without_varied_counts(tmp_path):
    run_sweep(load_sweep(_sweep_file(tmp_path, {"n_points": [10, 20]})), train=_fake_train([]))
    assert (tmp_path / "out" / "miou_vs_points.png").is_file()
    assert not (tmp_path / "out" / "miou_vs_superpixels.png").exists()


def test_shipped_sweeps_load_and_name_valid_settings(tmp_path):
    from pointseg.experiments import list_sweep_presets

    names = list_sweep_presets()
    assert {"small", "paper-landcoverai", "paper-oxford-pet"} <= set(names)
    elsewhere = str(tmp_path)  # validation checks that a folder dataset exists
    for name in names:
        sweep = load_sweep(name, base_overrides={"data": elsewhere})
        assert sweep.base["data"] == elsewhere
        runs = sweep.runs(with_folds=False)  # fold sweeps write their split files first
        assert runs
        for _, settings in runs:
            settings = {k: v for k, v in settings.items() if k != "strategy"}  # loop sweeps
            TrainConfig.from_dict(settings).validate()  # names a registered dataset, model...
    small = load_sweep("small")
    points = sorted({s["n_points"] for _, s in small.runs() if s.get("supervision") != "full"})
    assert points == [10, 20, 30, 40, 50]
    assert {s.get("loss") for _, s in small.runs()} == {"masked_mse", "partial_ce"}
    assert any(s.get("supervision") == "full" for _, s in small.runs())


def test_unknown_sweep_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="small"):
        load_sweep("no-such-sweep")


def test_each_run_keeps_a_log_file(tmp_path):
    import logging

    def train(cfg):
        logging.getLogger("pointseg.training.train").info("epoch 0 done")
        _fake_train([])(cfg)

    package = logging.getLogger("pointseg")
    before = package.level
    run_sweep(load_sweep(_sweep_file(tmp_path, {"n_points": [10]})), train=train)
    log = (tmp_path / "out" / "runs" / "n_points=10" / "train.log").read_text()
    assert "epoch 0 done" in log and "run n_points=10" in log
    assert package.level == before and not any(
        isinstance(h, logging.FileHandler) for h in package.handlers
    )
