"""Atomic file writes: a crash never leaves a half-written file that looks whole.

Every writer in pointseg goes through :func:`atomic_write` (or its helpers
:func:`atomic_open`, :func:`write_text_atomic`, :func:`write_bytes_atomic`): the data is
written to a temporary file beside the target, named ``.{name}.{pid}.{random}.tmp{suffix}``
(``pid``: the writing process; ``suffix``: the target's, so that writers that pick a format
from the suffix, Pillow and rasterio, still work), which is renamed onto the target with
:func:`os.replace` only once it is complete. The file then has the permissions a plain
``open(path, "w")`` would give a new file (``0o666`` less the umask), not ``mkstemp``'s
``0o600``.

A run killed with ``SIGKILL`` (or a power cut) cannot remove its temporary file;
:func:`remove_stale_temp_files` removes those of processes that are no longer alive.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "TEMP_GLOB",
    "atomic_open",
    "atomic_write",
    "pid_alive",
    "remove_stale_temp_files",
    "scratch_file",
    "scratch_path",
    "temp_path_for",
    "write_bytes_atomic",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

#: Glob pattern matching the temporary files of this module (in one folder).
TEMP_GLOB = ".*.tmp*"
# ".{name}.{pid}.{random}.tmp{suffix}"; mkstemp's random part has no dots
_TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp(?:\..*)?$")


# ------------------------------------------------------------------------------- umask


def _umask_from_proc() -> int | None:
    """The umask from ``/proc/self/status`` (Linux >= 4.7): read without changing it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


@functools.cache
def _umask_by_setting() -> int:
    """The umask via ``os.umask`` (set, then restored at once); once per process.

    Setting the umask is process-wide, so it is done once and cached: a thread creating a
    file in between could otherwise get the wrong permissions.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _current_umask() -> int:
    mask = _umask_from_proc()
    return _umask_by_setting() if mask is None else mask


def _default_mode() -> int:
    """Permission bits of a new file made by ``open(path, "w")``: ``0o666 & ~umask``."""
    return 0o666 & ~_current_umask()


# ------------------------------------------------------------------------ temporary names


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def temp_path_for(path: str | Path, *, suffix: str | None = None) -> Path:
    """Create an empty, uniquely named temporary file beside ``path`` and return its path.

    The name is ``.{name}.{pid}.{random}.tmp{suffix}``, ``suffix`` defaulting to that of
    ``path``; missing parent folders are created. The caller owns the file: rename it with
    :func:`os.replace` or remove it (:func:`atomic_write` and :func:`scratch_path` do both).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=_temp_prefix(path),
        suffix=f".tmp{path.suffix if suffix is None else suffix}",
        dir=path.parent,
    )
    os.close(fd)
    return Path(tmp)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- writers


@contextlib.contextmanager
def atomic_write(
    path: str | Path, *, suffix: str | None = None, fsync: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    Parameters
    ----------
    path : str or Path
        The target; missing parent folders are created.
    suffix : str, optional
        Suffix of the temporary file (after ``.tmp``); default: that of ``path``, so that
        Pillow and rasterio pick the right format.
    fsync : bool, default False
        Flush the file to disk before the rename (durable across a power cut).

    On error the temporary file is removed and ``path`` is untouched. On success the file
    gets ``0o666`` less the umask, as ``open(path, "w")`` gives a new file.
    """
    path = Path(path)
    tmp_path = temp_path_for(path, suffix=suffix)
    try:
        yield tmp_path
        os.chmod(tmp_path, _default_mode())
        if fsync:
            _fsync_path(tmp_path)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(
    path: str | Path,
    mode: str = "w",
    *,
    encoding: str | None = None,
    newline: str | None = None,
    fsync: bool = False,
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; renamed onto ``path`` on success.

    ``mode`` is ``"w"`` (text, ``encoding`` default UTF-8) or ``"wb"``; ``newline`` as for
    :func:`open`. See :func:`atomic_write`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode must be 'w' or 'wb', not {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_write(path) as tmp, open(tmp, mode, encoding=encoding, newline=newline) as fh:
        yield fh
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def write_text_atomic(
    path: str | Path, text: str, *, encoding: str = "utf-8", fsync: bool = False
) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_open(path, "w", encoding=encoding, fsync=fsync) as fh:
        fh.write(text)
    return path


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return path


# ------------------------------------------------------------------------ scratch files


@contextlib.contextmanager
def scratch_path(beside: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary file path beside ``beside`` (named as above); always removed."""
    tmp = temp_path_for(beside, suffix=suffix)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def scratch_file(folder: str | Path) -> IO[bytes]:
    """An unnamed binary scratch file (``w+b``) in ``folder``, gone when closed.

    On Linux it never has a name (``O_TMPFILE``), so even a killed process leaves nothing
    behind; elsewhere it is named like the other temporary files, with the pid.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryFile(dir=folder, prefix=f".scratch.{os.getpid()}.", suffix=".tmp")


# --------------------------------------------------------------------- stale temp files


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process; when in doubt, True (its files are kept)."""
    if pid <= 0 or pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return True
    return True


def remove_stale_temp_files(folder: str | Path, *, pattern: str = TEMP_GLOB) -> list[Path]:
    """Remove the temporary files left in ``folder`` by processes that are no longer alive.

    Only files matching ``pattern`` and named ``.{name}.{pid}.{random}.tmp{suffix}`` (as by
    :func:`atomic_write`) are considered; those of live processes (this one included) are
    kept. Process ids are those of this host (and pid namespace): do not share an output
    folder between containers that write into it at the same time. Files that cannot be
    removed are logged and skipped.

    Returns
    -------
    list of Path
        The removed files, sorted.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    for candidate in sorted(folder.glob(pattern)):
        match = _TEMP_RE.match(candidate.name)
        if match is None or not candidate.is_file() or candidate.is_symlink():
            continue
        if pid_alive(int(match["pid"])):
            continue
        try:
            candidate.unlink()
        except FileNotFoundError:  # removed by someone else meanwhile
            continue
        except OSError as exc:
            logger.warning("cannot remove stale temporary file %s: %s", candidate, exc)
            continue
        removed.append(candidate)
    if removed:
        logger.info(
            "removed %d stale temporary file(s) of dead processes in %s", len(removed), folder
        )
    return removed
