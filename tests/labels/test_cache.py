"""Tests for the on-disk pseudo-label cache."""

import numpy as np
import pytest

from pointseg.labels import PseudoLabelCache


def _inputs():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8)
    points = np.array([[1, 2, 0], [5, 7, 3]], dtype=np.int64)
    settings = {"method": "slic", "n_segments": 300, "seed": 0, "n_classes": 5, "options": {}}
    return image, points, settings


def _labels(shape=(16, 20)):
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=shape).astype(np.uint8)  # includes 255 (ignore)


def test_put_get_round_trip_exact(tmp_path):
    cache = PseudoLabelCache(tmp_path / "cache")
    key = cache.key(*_inputs())
    assert cache.get(key) is None
    labels = _labels()
    cache.put(key, labels)
    path = tmp_path / "cache" / key[:2] / f"{key}.png"
    assert path.is_file()
    got = cache.get(key)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, labels)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_key_format_and_sensitivity():
    image, points, settings = _inputs()
    key = PseudoLabelCache.key(image, points, settings)
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    assert PseudoLabelCache.key(image.copy(), points.copy(), dict(settings)) == key
    reordered = dict(reversed(list(settings.items())))
    assert PseudoLabelCache.key(image, points, reordered) == key
    changed_points = points.copy()
    changed_points[0, 2] = 1
    changed_image = image.copy()
    changed_image[0, 0, 0] ^= 1
    others = {
        PseudoLabelCache.key(image, changed_points, settings),
        PseudoLabelCache.key(image, points[:1], settings),
        PseudoLabelCache.key(image, points, {**settings, "n_segments": 200}),
        PseudoLabelCache.key(image, points, {**settings, "options": {"compactness": 5}}),
        PseudoLabelCache.key(changed_image, points, settings),
        PseudoLabelCache.key(image.astype(np.float32), points, settings),
        PseudoLabelCache.key(image.reshape(20, 16, 3), points, settings),
    }
    assert key not in others
    assert len(others) == 7


def test_key_settings_must_be_json():
    image, points, _ = _inputs()
    assert PseudoLabelCache.key(image, points, {"n": np.int64(3)})  # numpy scalars ok
    with pytest.raises(ValueError, match="JSON"):
        PseudoLabelCache.key(image, points, {"fn": object()})


def test_get_or_compute_calls_fn_once(tmp_path):
    cache = PseudoLabelCache(tmp_path)
    calls = []

    def fn():
        calls.append(1)
        return _labels()

    a = cache.get_or_compute(*_inputs(), fn)
    b = cache.get_or_compute(*_inputs(), fn)
    assert len(calls) == 1
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, _labels())


@pytest.mark.parametrize("payload", [b"not a png at all", "truncate"])
def test_corrupt_file_is_recomputed(tmp_path, payload, caplog):
    cache = PseudoLabelCache(tmp_path)
    image, points, settings = _inputs()
    key = cache.key(image, points, settings)
    cache.put(key, _labels())
    path = cache.path(key)
    if payload == "truncate":
        path.write_bytes(path.read_bytes()[:60])
    else:
        path.write_bytes(payload)
    assert cache.get(key) is None
    assert "corrupt" in caplog.text
    calls = []

    def fn():
        calls.append(1)
        return _labels()

    out = cache.get_or_compute(image, points, settings, fn)
    assert len(calls) == 1
    np.testing.assert_array_equal(out, _labels())
    np.testing.assert_array_equal(cache.get(key), _labels())  # overwritten


def test_wrong_shape_entry_is_recomputed(tmp_path):
    cache = PseudoLabelCache(tmp_path)
    image, points, settings = _inputs()
    cache.put(cache.key(image, points, settings), np.zeros((3, 3), np.uint8))
    out = cache.get_or_compute(image, points, settings, _labels)
    np.testing.assert_array_equal(out, _labels())


def test_invalid_key_and_labels(tmp_path):
    cache = PseudoLabelCache(tmp_path)
    for bad in ["../../etc/passwd", "ABC", "g" * 64]:
        with pytest.raises(ValueError, match="64 lowercase hex"):
            cache.get(bad)
    key = "0" * 64
    with pytest.raises(ValueError, match=r"0\.\.255"):
        cache.put(key, np.full((2, 2), 256))
    with pytest.raises(ValueError, match="2-D"):
        cache.put(key, np.zeros((2, 2, 1), np.uint8))
    with pytest.raises(ValueError, match="integer"):
        cache.put(key, np.zeros((2, 2), float))
    cache.put(key, np.array([[0, 255]], dtype=np.int64))  # integer in range: accepted
    np.testing.assert_array_equal(cache.get(key), [[0, 255]])


def test_first_put_removes_stale_temp_files_of_dead_writers(tmp_path):
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    cache = PseudoLabelCache(tmp_path / "cache")
    key = cache.key(*_inputs())
    folder = tmp_path / "cache" / key[:2]
    folder.mkdir(parents=True)
    stale = folder / f".{key}.png.{proc.pid}.abcd1234.tmp.png"
    live = folder / f".{key}.png.{os.getpid()}.abcd1234.tmp.png"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    cache.put(key, _labels())
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{key}.png", live.name])
