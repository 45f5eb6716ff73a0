"""Tests for the one atomic writer (pointseg.io.atomic)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pointseg.io import atomic as atomic_module
from pointseg.io import (
    atomic_open,
    atomic_write,
    remove_stale_temp_files,
    scratch_file,
    scratch_path,
    temp_path_for,
    write_bytes_atomic,
    write_text_atomic,
)


@pytest.fixture
def umask():
    """Set the process umask for one test (restored afterwards)."""
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(mask: int) -> None:
        os.umask(mask)
        atomic_module._umask_by_setting.cache_clear()  # the fallback caches it

    yield set_umask
    os.umask(old)
    atomic_module._umask_by_setting.cache_clear()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_crash_inside_with_leaves_old_content_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        assert tmp.exists() and tmp.parent == tmp_path
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]

    with pytest.raises(RuntimeError), atomic_open(target, "wb") as fh:
        fh.write(b"half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_writers_replace_the_target(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    assert write_text_atomic(target, "héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"
    write_bytes_atomic(target, b"\x00\x01", fsync=True)
    assert target.read_bytes() == b"\x00\x01"
    with atomic_open(target, "w", newline="") as fh:
        fh.write("a\r\nb")
    assert target.read_bytes() == b"a\r\nb"
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(target, "a"):
            pass
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_temp_name_has_pid_and_target_suffix(tmp_path: Path) -> None:
    target = tmp_path / "map.png"
    with atomic_write(target) as tmp:
        name = tmp.name
        assert name.startswith(f".map.png.{os.getpid()}.")
        assert name.endswith(".tmp.png")
        assert tmp.suffix == ".png"
        tmp.write_bytes(b"x")
    other = temp_path_for(target, suffix=".tiled.tif")
    assert other.name.startswith(f".map.png.{os.getpid()}.")
    assert other.name.endswith(".tmp.tiled.tif")
    with scratch_path(target) as scratch:
        assert scratch.exists() and f".{os.getpid()}." in scratch.name
    assert not scratch.exists()


@pytest.mark.parametrize("read_proc", [True, False], ids=["proc", "os.umask"])
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_permissions_follow_the_umask(
    tmp_path: Path, umask, monkeypatch, mask: int, mode: int, read_proc: bool
) -> None:
    if not read_proc:  # platforms without /proc/self/status
        monkeypatch.setattr(atomic_module, "_umask_from_proc", lambda: None)
    umask(mask)
    for i, write in enumerate(
        (
            lambda p: write_text_atomic(p, "x"),
            lambda p: write_bytes_atomic(p, b"x"),
            lambda p: _via_path(p),
        )
    ):
        target = tmp_path / f"f{i}.txt"
        write(target)
        assert target.stat().st_mode & 0o777 == mode
        # a plain open() gives the same bits
        plain = tmp_path / f"plain{i}.txt"
        plain.write_text("x")
        assert plain.stat().st_mode & 0o777 == mode


def _via_path(path: Path) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text("x")


def test_remove_stale_temp_files_of_dead_pids_only(tmp_path: Path) -> None:
    dead = _dead_pid()
    mine = os.getpid()
    stale = [
        tmp_path / f".out.tif.{dead}.abc123_x.tmp.tif",
        tmp_path / f".out.tif.{dead}.q1w2e3r4.tmp.tiled.tif",
        tmp_path / f".metrics.json.{dead}.zz9.tmp.json",
    ]
    kept = [
        tmp_path / f".out.tif.{mine}.abc123_x.tmp.tif",  # this (live) process
        tmp_path / ".out.tif.k2j3h4.tmp.tif",  # no pid: not ours to judge
        tmp_path / "out.tif",  # a result
        tmp_path / f"report.{dead}.txt",  # not a temporary file
    ]
    for p in stale + kept:
        p.write_bytes(b"x")
    removed = remove_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert all(not p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert remove_stale_temp_files(tmp_path) == []
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_remove_stale_keeps_live_process_files(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f".x.png.{proc.pid}.abcdefgh.tmp.png"
        live.write_bytes(b"x")
        init = tmp_path / ".x.png.1.abcdefgh.tmp.png"  # pid 1 is always alive
        init.write_bytes(b"x")
        assert remove_stale_temp_files(tmp_path) == []
        assert live.exists() and init.exists()
    finally:
        proc.kill()
        proc.wait()
    assert remove_stale_temp_files(tmp_path) == [live]


def test_scratch_file_is_gone_when_closed(tmp_path: Path) -> None:
    fh = scratch_file(tmp_path / "sub")
    try:
        fh.write(b"abc")
        fh.seek(0)
        assert fh.read() == b"abc"
    finally:
        fh.close()
    assert list((tmp_path / "sub").iterdir()) == []
