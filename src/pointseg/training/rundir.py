"""Run folders as transactions: a finished run is never lost to a failing rerun.

- A folder holding a finished run (``model.pt``) or an interrupted one (``checkpoints/``) is
  refused unless ``overwrite`` (replace it) or ``resume`` (continue it) is set.
- With ``overwrite`` the new run trains in a temporary sibling folder
  (``.NAME.run-PID``) that replaces the old folder only when the run has finished, so a
  failure at any epoch leaves the old run whole.
- ``resume`` refuses, before anything is written, a change of model, model options, weights,
  bands or classes; other changes (learning rate, epochs) are logged.
- Temporary folders carry the writer's pid; a later run removes only those of dead pids.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pointseg.io.atomic import pid_alive

__all__ = ["RunFolder", "check_resume", "check_run_folder", "is_finished_run", "open_run_folder"]

logger = logging.getLogger(__name__)

#: What makes a folder a finished run.
FINISHED_MARKER = "model.pt"

#: What a training run writes in its folder.
_RUN_FILES = (
    "config.yaml",
    "history.csv",
    "checkpoints",
    "metrics.json",
    "label_stats.json",
    "predictions",
    "self-train",
    FINISHED_MARKER,
)

#: Settings a resumed run must keep (the checkpoint's weights depend on them).
RESUME_FIXED = ("model", "model_options", "weights", "bands", "classes", "remap", "dataset")


def is_finished_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a finished training run (its ``model.pt``)."""
    return (Path(path) / FINISHED_MARKER).is_file()


def _has_run(path: Path) -> bool:
    return (
        is_finished_run(path) or (path / "checkpoints").is_dir() or (path / "config.yaml").is_file()
    )


def _class_file_text(value: Any) -> Any:
    """A class file's content (its path may differ between two runs of the same classes)."""
    if value is None:
        return None
    path = Path(str(value))
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else value
    except (OSError, yaml.YAMLError):
        return value


def check_resume(saved: dict[str, Any], new: dict[str, Any], *, run_dir: Path) -> list[str]:
    """Refuse a resume that changes what the checkpoint's weights depend on.

    Parameters
    ----------
    saved, new : dict
        The run folder's ``config.yaml`` and the new settings.
    run_dir : Path
        The run folder (named in the messages).

    Returns
    -------
    list of str
        The settings that changed and may change (logged by the caller).

    Raises
    ------
    ValueError
        If a setting of :data:`RESUME_FIXED` changed.
    """
    fixed = []
    for key in RESUME_FIXED:
        old, now = saved.get(key), new.get(key)
        if key == "classes":
            old, now = _class_file_text(old), _class_file_text(now)
        if old != now:
            fixed.append(f"{key}: {saved.get(key)!r} -> {new.get(key)!r}")
    if fixed:
        raise ValueError(
            f"--resume of {run_dir} would change {'; '.join(fixed)}, which the checkpoint "
            "was trained with; keep these settings, or start a new run with --overwrite or "
            "another --out"
        )
    ignore = {"resume", "progress", "overwrite", "out"}
    return [
        f"{k}: {saved.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(saved) | set(new))
        if k not in ignore and saved.get(k) != new.get(k)
    ]


def remove_stale_run_folders(final: Path) -> list[Path]:
    """Remove ``.NAME.run-PID`` siblings of ``final`` left by dead processes."""
    removed = []
    if not final.parent.is_dir():
        return removed
    for p in final.parent.glob(f".{final.name}.run-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
            logger.info("removed %s, left by a run that was killed", p)
    return removed


@dataclass
class RunFolder:
    """Where a run writes (``work``) and where it ends up (``final``)."""

    final: Path
    work: Path
    fresh: bool = False

    @property
    def staged(self) -> bool:
        """Whether the run trains in a temporary sibling that replaces ``final`` at the end."""
        return self.work != self.final

    def commit(self) -> Path:
        """Move a staged run into place (the old run is removed only after the move)."""
        if not self.staged:
            return self.final
        old = self.final.parent / f".{self.final.name}.old-{os.getpid()}"
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.work, self.final)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        logger.info("replaced the run in %s", self.final)
        return self.final

    def abort(self) -> None:
        """Undo a failed run, keeping whatever can be resumed.

        A staged run's temporary folder is dropped (the old run stays as it was). A new run
        in its own folder that failed before its first ``last.ckpt`` leaves nothing behind, so
        a corrected rerun is not refused; one with a ``last.ckpt`` stays for ``--resume``.
        """
        if self.staged:
            shutil.rmtree(self.work, ignore_errors=True)
        elif self.fresh and not (self.work / "checkpoints" / "last.ckpt").is_file():
            for name in _RUN_FILES:
                path = self.work / name
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.work.rmdir()  # only when empty: other files are the user's


def check_run_folder(out: str | os.PathLike[str], *, overwrite: bool, resume: bool) -> None:
    """Raise what :func:`open_run_folder` would refuse, without creating or removing anything.

    Raises
    ------
    FileExistsError
        If ``out`` holds a run and neither ``overwrite`` nor ``resume`` is set.
    ValueError
        If ``out`` is a file, both flags are set, or ``resume`` finds nothing to resume.
    """
    final = Path(out)
    if final.exists() and not final.is_dir():
        raise ValueError(f"run folder {final} is a file; give a folder with --out")
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other: choose one")
    if resume:
        last = final / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise ValueError(
                f"--resume: {last} does not exist, so there is nothing to resume; drop "
                "--resume to start a new run"
            )
    elif final.is_dir() and _has_run(final) and not overwrite:
        what = "a finished run" if is_finished_run(final) else "an interrupted run"
        raise FileExistsError(
            f"{final} holds {what}; pass --overwrite to replace it when the new run "
            "finishes, --resume to continue it, or choose another --out"
        )


def open_run_folder(
    out: str | os.PathLike[str], *, overwrite: bool, resume: bool, saved_check: Any = None
) -> RunFolder:
    """Decide where a run writes; see the module docstring.

    Parameters
    ----------
    out : path
        The run folder.
    overwrite : bool
        Replace an existing run once the new one has finished.
    resume : bool
        Continue the run in ``out`` from ``checkpoints/last.ckpt``.
    saved_check : callable, optional
        Called with the saved ``config.yaml`` dict before resuming (see :func:`check_resume`).

    Raises
    ------
    FileExistsError
        If ``out`` holds a run and neither ``overwrite`` nor ``resume`` is set.
    ValueError
        If ``out`` is a file, both flags are set, or ``resume`` finds nothing to resume.
    """
    final = Path(out)
    check_run_folder(final, overwrite=overwrite, resume=resume)
    remove_stale_run_folders(final)
    if resume:
        saved_path = final / "config.yaml"
        if saved_check is not None and saved_path.is_file():
            saved = yaml.safe_load(saved_path.read_text()) or {}
            saved_check(saved)
        return RunFolder(final=final, work=final)
    if final.is_dir() and _has_run(final):
        work = final.parent / f".{final.name}.run-{os.getpid()}"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        return RunFolder(final=final, work=work)
    final.mkdir(parents=True, exist_ok=True)
    return RunFolder(final=final, work=final, fresh=True)
