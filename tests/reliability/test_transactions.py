"""Training runs are transactions: a failing rerun never damages the finished run in --out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml


@pytest.fixture
def finished_run(env, tmp_path) -> Path:
    """A copy of the session's finished tiny run (model.pt, config.yaml, checkpoints/)."""
    run = Path(shutil.copytree(env.run, tmp_path / "run", copy_function=shutil.copy2))
    assert (run / "model.pt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    return run


def _train(env, run: Path, *extra: str) -> list[str]:
    return ["-q", "train", str(env.data), "--out", str(run), *env.train_args(), *extra]


def _no_staging_left(run: Path) -> None:
    left = sorted(p.name for p in run.parent.glob(f".{run.name}.*"))
    assert not left, f"temporary run folders left beside {run}: {left}"


def test_rerun_without_overwrite_is_refused(env, finished_run, capsys, helpers):
    before = helpers.tree_state(finished_run)
    argv = _train(env, finished_run)
    rc, out, err = helpers.run_main(argv, capsys)
    helpers.assert_one_line_failure(rc, out, err, argv=argv, contains=["--overwrite"])
    assert helpers.tree_state(finished_run) == before
    _no_staging_left(finished_run)


def test_overwrite_failing_at_run_time_keeps_old_run(env, finished_run, capsys, helpers):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: --accelerator cuda would not fail")
    before = helpers.tree_state(finished_run)
    argv = _train(env, finished_run, "--overwrite", "--accelerator", "cuda")
    rc, out, err = helpers.run_main(argv, capsys)
    helpers.assert_one_line_failure(rc, out, err, argv=argv, contains=["cuda"])
    assert helpers.tree_state(finished_run) == before
    _no_staging_left(finished_run)


def test_overwrite_with_points_labelling_nothing_keeps_old_run(
    env, finished_run, tmp_path, capsys, helpers
):
    points = tmp_path / "elsewhere.csv"  # valid syntax; every point lies outside its image
    points.write_text(
        "image,x,y,class\n" + "".join(f"scene_{i:04d},{60 + i},5,building\n" for i in range(12))
    )
    before = helpers.tree_state(finished_run)
    argv = _train(env, finished_run, "--overwrite", "--points", str(points))
    rc, out, err = helpers.run_main(argv, capsys)
    helpers.assert_one_line_failure(rc, out, err, argv=argv, contains=["outside"])
    assert helpers.tree_state(finished_run) == before
    _no_staging_left(finished_run)


@pytest.mark.parametrize("change", ["model-options", "bands", "classes"])
def test_resume_refuses_changed_settings(env, finished_run, tmp_path, change, capsys, helpers):
    if change == "model-options":
        extra = ["--model-options", '{"base_channels": 8, "depth": 2}']
    elif change == "bands":
        extra = ["--bands", "0,1"]
    else:
        spec = yaml.safe_load((env.data / "classes.yaml").read_text())
        spec["classes"][1]["name"] = "house"
        other = tmp_path / "other_classes.yaml"
        other.write_text(yaml.safe_dump(spec))
        extra = ["--classes", str(other)]
    before = helpers.tree_state(finished_run)
    # the changed flag comes last, so it wins over the tiny run's own --model-options
    argv = _train(env, finished_run, "--resume", "--max-epochs", "3", *extra)
    rc, out, err = helpers.run_main(argv, capsys)
    helpers.assert_one_line_failure(rc, out, err, argv=argv, contains=["resume"])
    assert helpers.tree_state(finished_run) == before, "a refused --resume wrote into the run"


@pytest.mark.slow
def test_successful_overwrite_replaces_the_run(env, finished_run, capsys, helpers):
    old = helpers.tree_state(finished_run)
    argv = _train(env, finished_run, "--overwrite", "--seed", "7")
    rc, _out, err = helpers.run_main(argv, capsys)
    assert rc == 0, err
    new = helpers.tree_state(finished_run)
    assert new["model.pt"] != old["model.pt"], "model.pt was not replaced"
    assert new["config.yaml"][0] != old["config.yaml"][0]
    assert yaml.safe_load((finished_run / "config.yaml").read_text())["seed"] == 7
    for name in ("history.csv", "metrics.json", "checkpoints/last.ckpt"):
        assert name in new, name
    _no_staging_left(finished_run)
