"""Check outputs before the work: a file where a file is meant, a folder that can be written.

Every command calls these on its outputs before any expensive step, so a typo in ``--out`` or
a read-only folder is reported at once, not after an hour of training.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["check_input_file", "check_output_dir", "check_output_file"]


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")  # pragma: no cover - a relative path always has "." above it


def _probe_writable(folder: Path, *, what: str, target: Path) -> None:
    """Create and remove a file in ``folder``: the only test that also holds for root."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".pointseg-probe-{os.getpid()}-", dir=folder)
    except OSError as exc:
        raise PermissionError(
            f"{what} {target}: cannot write in {folder} ({exc.strerror or exc}); choose a "
            "writable location"
        ) from None
    os.close(fd)
    os.unlink(name)


def _check_parent(path: Path, *, what: str) -> None:
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise ValueError(
            f"{what} {path}: {existing} is a file, not a folder; choose another location"
        )
    _probe_writable(existing, what=what, target=path)


def check_output_file(
    path: str | os.PathLike[str], *, what: str = "output file", suffix: str = ".json"
) -> Path:
    """Check that ``path`` can be written as a file (its folder is created later).

    Raises
    ------
    ValueError
        If ``path`` is an existing folder, or a file stands where a parent folder is needed.
    PermissionError
        If the folder cannot be written.
    """
    path = Path(path)
    if str(path) in ("", "."):
        raise ValueError(f"{what} is empty; give a file name")
    if path.is_dir():
        raise ValueError(
            f"{what} {path} is an existing folder; give a file name such as "
            f"{path / ('out' + suffix)}"
        )
    _check_parent(path, what=what)
    return path


def check_output_dir(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """Check that ``path`` is (or can be created as) a writable folder.

    Raises
    ------
    ValueError
        If ``path`` (or a parent) is an existing file.
    PermissionError
        If the folder cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file; give a folder")
    if path.is_dir():
        _probe_writable(path, what=what, target=path)
    else:
        _check_parent(path, what=what)
    return path


def check_input_file(path: str | os.PathLike[str], *, what: str = "input file") -> Path:
    """Check that ``path`` is an existing, readable file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give the file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{what} {path} cannot be read; check its permissions")
    return path
