"""Run folders as transactions (pointseg.training.rundir)."""

import os
import subprocess
import sys

import pytest
import yaml

from pointseg.training.rundir import check_resume, is_finished_run, open_run_folder


def _finished_run(path):
    (path / "checkpoints").mkdir(parents=True)
    (path / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    (path / "config.yaml").write_text(yaml.safe_dump({"model": "unet", "lr": 0.1}))
    (path / "model.pt").write_bytes(b"old model")
    return path


def test_a_new_folder_trains_in_place(tmp_path):
    run = open_run_folder(tmp_path / "new", overwrite=False, resume=False)
    assert not run.staged and run.work == tmp_path / "new" and run.work.is_dir()


def test_an_existing_run_is_refused_without_overwrite(tmp_path):
    old = _finished_run(tmp_path / "run")
    with pytest.raises(FileExistsError, match="--overwrite"):
        open_run_folder(old, overwrite=False, resume=False)
    assert (old / "model.pt").read_bytes() == b"old model"


def test_overwrite_stages_and_keeps_the_old_run_until_commit(tmp_path):
    old = _finished_run(tmp_path / "run")
    run = open_run_folder(old, overwrite=True, resume=False)
    assert run.staged and run.work.name == f".run.run-{os.getpid()}"
    (run.work / "model.pt").write_bytes(b"new model")
    run.abort()  # a failure: the old run stays whole, the staging folder goes
    assert (old / "model.pt").read_bytes() == b"old model" and not run.work.exists()
    run = open_run_folder(old, overwrite=True, resume=False)
    (run.work / "model.pt").write_bytes(b"new model")
    assert run.commit() == old
    assert (old / "model.pt").read_bytes() == b"new model"
    assert not (old / "checkpoints").exists()  # nothing of the old run is mixed in
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_stale_staging_folders_of_dead_pids_are_removed(tmp_path):
    old = _finished_run(tmp_path / "run")
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = tmp_path / f".run.run-{int(proc.stdout)}"
    dead.mkdir()
    alive = tmp_path / f".run.run-{os.getppid()}"
    alive.mkdir()
    open_run_folder(old, overwrite=True, resume=False).abort()
    assert not dead.exists() and alive.exists()


def test_a_failed_new_run_without_a_checkpoint_leaves_nothing(tmp_path):
    run = open_run_folder(tmp_path / "new", overwrite=False, resume=False)
    (run.work / "config.yaml").write_text("x: 1")
    run.abort()
    assert not (tmp_path / "new").exists()
    run = open_run_folder(tmp_path / "kept", overwrite=False, resume=False)
    (run.work / "checkpoints").mkdir()
    (run.work / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    run.abort()  # resumable: kept
    assert (tmp_path / "kept" / "checkpoints" / "last.ckpt").is_file()


def test_resume_needs_a_checkpoint_and_checks_before_writing(tmp_path):
    with pytest.raises(ValueError, match="nothing to resume"):
        open_run_folder(tmp_path / "none", overwrite=False, resume=True)
    old = _finished_run(tmp_path / "run")
    seen = []
    run = open_run_folder(old, overwrite=False, resume=True, saved_check=seen.append)
    assert run.work == old and seen == [{"model": "unet", "lr": 0.1}]
    with pytest.raises(ValueError, match="exclude"):
        open_run_folder(old, overwrite=True, resume=True)


def test_check_resume_refuses_model_bands_and_classes_changes(tmp_path):
    saved = {"model": "unet", "model_options": {"base_channels": 8}, "bands": None, "lr": 0.1}
    assert check_resume(saved, {**saved, "lr": 0.01}, run_dir=tmp_path) == ["lr: 0.1 -> 0.01"]
    for change in ({"model_options": {"base_channels": 16}}, {"bands": [0, 1]}, {"model": "fcn"}):
        with pytest.raises(ValueError, match="--resume"):
            check_resume(saved, {**saved, **change}, run_dir=tmp_path)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("classes: [x, y]\n")
    b.write_text("classes: [x, y]\n")
    assert check_resume({"classes": str(a)}, {"classes": str(b)}, run_dir=tmp_path) == [
        f"classes: {str(a)!r} -> {str(b)!r}"
    ]
    b.write_text("classes: [x, z]\n")
    with pytest.raises(ValueError, match="classes"):
        check_resume({"classes": str(a)}, {"classes": str(b)}, run_dir=tmp_path)


def test_is_finished_run(tmp_path):
    assert not is_finished_run(tmp_path)
    assert is_finished_run(_finished_run(tmp_path / "r"))
