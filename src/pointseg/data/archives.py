"""Downloaded dataset archives: MD5 checks and safe, resumable extraction into a folder.

The dataset loaders (Oxford-IIIT Pet, LoveDA, ...) never download anything; their
``prepare_*`` functions take the official archives the user downloaded and extract them
with :func:`extract_archive`, which

* checks the archive's MD5 (chunked, so multi-GB files need little memory);
* rejects members with absolute paths, drive letters or ``..`` components, and links or
  device files (a hostile archive cannot write outside the target folder);
* skips macOS resource forks (``._*`` files and ``__MACOSX/``);
* extracts into a hidden temporary folder inside the target and only then moves the
  top-level entries into place, and finally writes a completion marker
  ``.<archive name>.extracted``. A crash leaves the temporary folder (removed on the next
  run), never a half-filled dataset folder that looks complete; a completed archive is
  skipped on the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from pointseg.io.atomic import write_text_atomic

__all__ = [
    "ChecksumError",
    "extract_archive",
    "file_md5",
    "is_extracted",
    "locate_archives",
    "marker_path",
    "verify_md5",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """An archive's checksum differs from the expected one (incomplete or wrong download)."""


def file_md5(path: str | Path, *, chunk_size: int = _CHUNK) -> str:
    """MD5 of a file as 32 lower-case hex digits, read in chunks of ``chunk_size`` bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: str | Path, expected: str, *, hint: str = "") -> str:
    """Check that ``path`` has the MD5 ``expected``; return the MD5.

    Raises
    ------
    ChecksumError
        Naming the file, both checksums and the fix (``hint`` is appended, e.g. the URL).
    """
    path = Path(path)
    if not re.fullmatch(r"[0-9a-fA-F]{32}", expected or ""):
        raise ValueError(f"expected MD5 for {path} must be 32 hex digits, got {expected!r}")
    got = file_md5(path)
    if got != expected.lower():
        raise ChecksumError(
            f"{path}: MD5 is {got} but the official archive has {expected.lower()}; the "
            "download is incomplete or not the official file. Download it again"
            + (f" ({hint})" if hint else "")
            + ", or pass verify_checksum=False if you trust this file"
        )
    return got


def marker_path(archive: str | Path, dest: str | Path) -> Path:
    """The completion marker that :func:`extract_archive` writes for ``archive`` in ``dest``."""
    return Path(dest) / f".{Path(archive).name}.extracted"


def is_extracted(archive: str | Path, dest: str | Path) -> bool:
    """Whether ``archive`` (same name and size) was fully extracted into ``dest`` before.

    True only when the completion marker exists, matches the archive, and every top-level
    entry the archive produced is still there (deleting e.g. ``dest/images`` makes the
    next :func:`extract_archive` extract again).
    """
    marker = marker_path(archive, dest)
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    archive = Path(archive)
    return (
        isinstance(info, dict)
        and info.get("archive") == archive.name
        and (not archive.is_file() or info.get("size") == archive.stat().st_size)
        and all((Path(dest) / str(e)).exists() for e in info.get("entries", []))
    )


def _member_parts(name: str, archive: Path) -> tuple[str, ...]:
    """The path parts of an archive member, or an error when it could escape the target."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise ValueError(
            f"archive {archive} holds a member with an absolute path ({name!r}); refusing to "
            "extract it. Use the official archive"
        )
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if ".." in parts:
        raise ValueError(
            f"archive {archive} holds a member that points outside the target folder "
            f"({name!r}); refusing to extract it. Use the official archive"
        )
    return parts


def _is_resource_fork(parts: Sequence[str]) -> bool:
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1].startswith("._"))


def _extract_tar(archive: Path, tmp: Path, skip_resource_forks: bool) -> int:
    count = 0
    with tarfile.open(archive, "r:*") as tar:  # "r:*": some ".tar.gz" files are plain tar
        members = []
        for member in tar:
            parts = _member_parts(member.name, archive)
            if not parts or (skip_resource_forks and _is_resource_fork(parts)):
                continue
            if not (member.isfile() or member.isdir()):
                raise ValueError(
                    f"archive {archive} holds a link or special file ({member.name!r}); "
                    "refusing to extract it. Use the official archive"
                )
            members.append(member)
            count += member.isfile()
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp, members=members, **kwargs)  # members checked above
    return count


def _extract_zip(archive: Path, tmp: Path, skip_resource_forks: bool) -> int:
    count = 0
    with zipfile.ZipFile(archive) as zf:
        infos = []
        for info in zf.infolist():
            parts = _member_parts(info.filename, archive)
            if not parts or (skip_resource_forks and _is_resource_fork(parts)):
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ValueError(
                    f"archive {archive} holds a symbolic link ({info.filename!r}); refusing to "
                    "extract it. Use the official archive"
                )
            infos.append((info, parts))
        for info, parts in infos:
            target = tmp.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            count += 1
    return count


def _merge(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``; directories are merged, files replaced."""
    if not dst.exists():
        os.replace(src, dst)
    elif src.is_dir() and dst.is_dir():
        for child in sorted(src.iterdir()):
            _merge(child, dst / child.name)
        src.rmdir()
    else:
        if dst.is_dir():
            shutil.rmtree(dst)
        os.replace(src, dst)


def extract_archive(
    archive: str | Path,
    dest: str | Path,
    *,
    md5: str | None = None,
    skip_resource_forks: bool = True,
    force: bool = False,
    hint: str = "",
) -> Path:
    """Extract a zip or tar (optionally gzip/bzip2/xz-compressed) archive into ``dest``.

    Parameters
    ----------
    archive : path
        The archive file; its format is recognised from its content, not its name.
    dest : path
        Target folder (created). Member paths are kept, so ``Train.zip`` holding
        ``Train/Urban/...`` gives ``dest/Train/Urban/...``.
    md5 : str, optional
        Expected MD5 (32 hex digits); checked before anything is extracted.
    skip_resource_forks : bool
        Skip ``._*`` files and ``__MACOSX/`` (macOS metadata, not data).
    force : bool
        Extract even when the completion marker says it was done.
    hint : str
        Appended to error messages (e.g. where to download the archive).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    FileNotFoundError
        The archive does not exist.
    ChecksumError
        The MD5 differs from ``md5``.
    ValueError
        Unknown format, or a member that is absolute, climbs out with ``..``, or is a link.
    """
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(
            f"archive {archive} does not exist" + (f"; download it ({hint})" if hint else "")
        )
    if not force and is_extracted(archive, dest):
        logger.info("%s is already extracted into %s; skipping", archive.name, dest)
        return dest
    if md5 is not None:
        logger.info("checking the MD5 of %s", archive)
        verify_md5(archive, md5, hint=hint)
    if zipfile.is_zipfile(archive):
        extract = _extract_zip
    elif tarfile.is_tarfile(archive):
        extract = _extract_tar
    else:
        raise ValueError(
            f"{archive} is neither a zip nor a tar archive; the download may be an HTML error "
            "page or incomplete" + (f" ({hint})" if hint else "")
        )
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".extracting-{archive.name}"
    if tmp.exists():
        logger.info("removing %s left by an interrupted extraction", tmp)
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        logger.info("extracting %s into %s", archive, dest)
        n_files = extract(archive, tmp, skip_resource_forks)
        entries = sorted(p.name for p in tmp.iterdir())
        for name in entries:
            _merge(tmp / name, dest / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    info = {
        "archive": archive.name,
        "size": archive.stat().st_size,
        "md5": md5,
        "files": n_files,
        "entries": entries,
    }
    write_text_atomic(marker_path(archive, dest), json.dumps(info) + "\n")
    logger.info("extracted %d files from %s", n_files, archive.name)
    return dest


def locate_archives(
    archives: str | Path | Iterable[str | Path] | None,
    *,
    root: str | Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    hint: str = "",
) -> dict[str, Path]:
    """Find named archive files.

    Parameters
    ----------
    archives : path, iterable of paths or None
        A folder holding the archives, or the archive files themselves; None looks in
        ``root``.
    root : path
        The dataset folder (default place of the archives).
    required, optional : sequence of str
        File names that must / may be present (e.g. ``"Train.zip"``).
    hint : str
        Where to download them, for the error message.

    Returns
    -------
    dict
        File name -> path, for every required and every present optional archive.

    Raises
    ------
    FileNotFoundError
        Naming the missing archives, where they were looked for, and the download hint.
    """
    wanted = [*required, *optional]
    found: dict[str, Path] = {}
    if archives is None or isinstance(archives, (str, Path)):
        folder = Path(root) if archives is None else Path(archives)
        if folder.is_file():
            candidates: list[Path] = [folder]
            where = str(folder.parent)
        else:
            candidates = [folder / name for name in wanted]
            where = str(folder)
    else:
        candidates = [Path(p) for p in archives]
        where = ", ".join(str(p) for p in candidates) or "(no files given)"
    for path in candidates:
        if path.is_file() and path.name in wanted:
            found[path.name] = path
    missing = [name for name in required if name not in found]
    if missing:
        raise FileNotFoundError(
            f"archive(s) {', '.join(missing)} not found in {where}"
            + (f"; download them from {hint}" if hint else "")
            + " and pass their folder (or the files) as archives="
        )
    return found
