import csv

import pytest
import yaml

from pointseg.experiments import load_sweep, run_sweep
from pointseg.training import run_training


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
    assert (out / "miou_vs_points.png").is_file()
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
