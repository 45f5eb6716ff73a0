import hashlib
import io
import json
import shutil
import tarfile
import zipfile

import pytest

from pointseg.data.archives import (
    ChecksumError,
    extract_archive,
    file_md5,
    is_extracted,
    locate_archives,
    marker_path,
    verify_md5,
)


def _tar(path, members, *, mode="w:gz"):
    """Write a tar with ``{name: bytes}`` regular files (``None``: a directory)."""
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_md5_is_chunked_and_checked(tmp_path):
    f = tmp_path / "blob.bin"
    data = bytes(range(256)) * 1000
    f.write_bytes(data)
    want = hashlib.md5(data).hexdigest()
    assert file_md5(f, chunk_size=777) == want
    assert verify_md5(f, want.upper()) == want
    with pytest.raises(ChecksumError, match=rf"blob.bin: MD5 is {want} but .*{'0' * 32}.*again"):
        verify_md5(f, "0" * 32, hint="https://example.org")
    with pytest.raises(ValueError, match="32 hex digits"):
        verify_md5(f, "abc")


@pytest.mark.parametrize("kind", ["tar.gz", "plain tar named .tar.gz", "zip"])
def test_extracts_keeps_paths_skips_resource_forks_and_marks_done(tmp_path, kind):
    members = {
        "data/": None,
        "data/a.txt": b"a",
        "data/sub/b.txt": b"b",
        "data/sub/._b.txt": b"junk",
        "__MACOSX/data/._a.txt": b"junk",
    }
    if kind == "zip":
        arc = _zip(tmp_path / "d.zip", {k: v or b"" for k, v in members.items() if v is not None})
    else:
        mode = "w:gz" if kind == "tar.gz" else "w"
        arc = _tar(tmp_path / "d.tar.gz", members, mode=mode)
    dest = tmp_path / "out"
    assert not is_extracted(arc, dest)
    extract_archive(arc, dest, md5=file_md5(arc))
    assert (dest / "data" / "a.txt").read_bytes() == b"a"
    assert (dest / "data" / "sub" / "b.txt").read_bytes() == b"b"
    assert not (dest / "data" / "sub" / "._b.txt").exists()
    assert not (dest / "__MACOSX").exists()
    assert is_extracted(arc, dest)
    info = json.loads(marker_path(arc, dest).read_text())
    assert info["archive"] == arc.name and info["files"] == 2
    assert sorted(p.name for p in dest.iterdir()) == [f".{arc.name}.extracted", "data"]
    # a completed archive is skipped; force re-extracts
    (dest / "data" / "a.txt").unlink()
    extract_archive(arc, dest)
    assert not (dest / "data" / "a.txt").exists()
    extract_archive(arc, dest, force=True)
    assert (dest / "data" / "a.txt").exists()
    assert info["entries"] == ["data"]
    shutil.rmtree(dest / "data")  # a deleted result is extracted again despite the marker
    assert not is_extracted(arc, dest)
    extract_archive(arc, dest)
    assert (dest / "data" / "sub" / "b.txt").exists()


def test_checksum_mismatch_extracts_nothing(tmp_path):
    arc = _tar(tmp_path / "d.tar.gz", {"data/a.txt": b"a"})
    dest = tmp_path / "out"
    with pytest.raises(ChecksumError, match="d.tar.gz: MD5"):
        extract_archive(arc, dest, md5="f" * 32, hint="get it at X")
    assert not (dest / "data").exists() and not is_extracted(arc, dest)


@pytest.mark.parametrize(
    "bad", ["../evil.txt", "data/../../evil.txt", "/abs/evil.txt", "C:/evil.txt"]
)
@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_unsafe_members_are_rejected(tmp_path, bad, fmt):
    members = {"data/ok.txt": b"ok", bad: b"evil"}
    if fmt == "tar":
        arc = _tar(tmp_path / "bad.tar", members, mode="w")
    else:
        arc = tmp_path / "bad.zip"
        with zipfile.ZipFile(arc, "w") as zf:
            for name, data in members.items():
                zf.writestr(zipfile.ZipInfo(name), data)  # ZipInfo keeps the name as given
    dest = tmp_path / "deep" / "out"
    with pytest.raises(ValueError, match="refusing to extract"):
        extract_archive(arc, dest)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()
    assert not (dest / "data").exists() and not is_extracted(arc, dest)


def test_links_are_rejected(tmp_path):
    arc = tmp_path / "link.tar"
    with tarfile.open(arc, "w") as tar:
        info = tarfile.TarInfo("data/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="link or special file"):
        extract_archive(arc, tmp_path / "out")
    zarc = tmp_path / "link.zip"
    with zipfile.ZipFile(zarc, "w") as zf:
        zi = zipfile.ZipInfo("data/link")
        zi.external_attr = 0o120777 << 16
        zf.writestr(zi, "/etc/passwd")
    with pytest.raises(ValueError, match="symbolic link"):
        extract_archive(zarc, tmp_path / "out")


def test_interrupted_extraction_is_not_mistaken_for_complete(tmp_path):
    arc = _zip(tmp_path / "Train.zip", {"Train/a.txt": b"a"})
    dest = tmp_path / "out"
    stale = dest / ".extracting-Train.zip" / "Train"
    stale.mkdir(parents=True)
    (stale / "half.txt").write_text("partial")
    assert not is_extracted(arc, dest)
    extract_archive(arc, dest)
    assert not (dest / ".extracting-Train.zip").exists()
    assert (dest / "Train" / "a.txt").exists() and not (dest / "Train" / "half.txt").exists()
    # an existing folder is merged, files replaced
    arc2 = _zip(tmp_path / "More.zip", {"Train/a.txt": b"new", "Train/b.txt": b"b"})
    extract_archive(arc2, dest)
    assert (dest / "Train" / "a.txt").read_bytes() == b"new" and (dest / "Train" / "b.txt").exists()


def test_not_an_archive_and_missing_archive(tmp_path):
    page = tmp_path / "Train.zip"
    page.write_text("<html>quota exceeded</html>")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        extract_archive(page, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"nope.zip does not exist; download it \(URL\)"):
        extract_archive(tmp_path / "nope.zip", tmp_path / "out", hint="URL")


def test_locate_archives(tmp_path):
    (tmp_path / "A.zip").write_bytes(b"")
    (tmp_path / "C.zip").write_bytes(b"")
    found = locate_archives(None, root=tmp_path, required=["A.zip"], optional=["B.zip", "C.zip"])
    assert found == {"A.zip": tmp_path / "A.zip", "C.zip": tmp_path / "C.zip"}
    assert locate_archives([tmp_path / "A.zip"], root="x", required=["A.zip"]) == {
        "A.zip": tmp_path / "A.zip"
    }
    with pytest.raises(FileNotFoundError, match=r"B.zip not found in .*; download them from U"):
        locate_archives(tmp_path, root="x", required=["A.zip", "B.zip"], hint="U")
