"""On-disk cache of pseudo-label maps as lossless 8-bit grayscale PNGs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pointseg.io.atomic import atomic_open, remove_stale_temp_files

__all__ = ["PseudoLabelCache"]

logger = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _as_label_map(labels: Any) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"labels must be a non-empty 2-D (H, W) map, got shape {arr.shape}.")
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be an integer (uint8) map, got dtype {arr.dtype}.")
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(
            f"labels must lie in 0..255 to be stored as 8-bit PNG, got range "
            f"{int(arr.min())}..{int(arr.max())}."
        )
    return arr.astype(np.uint8)


class PseudoLabelCache:
    """Content-addressed cache of pseudo-labels under ``root``.

    Entries live at ``root/<key[:2]>/<key>.png`` as 8-bit grayscale PNGs (lossless),
    written atomically (:func:`pointseg.io.atomic.atomic_open`: temporary file in the same
    folder, then :func:`os.replace`), so concurrent writers of the same key are safe.
    Unreadable entries are treated as misses. The first write into a folder removes the
    temporary files that killed processes left there.

    Parameters
    ----------
    root : str or os.PathLike
        Cache folder; created on the first write.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._swept: set[Path] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"

    @staticmethod
    def key(image: np.ndarray, points: np.ndarray, settings: Mapping[str, Any]) -> str:
        """Hash an image, its points and the pseudo-label settings.

        Parameters
        ----------
        image : np.ndarray, shape (H, W) or (H, W, C)
            The image; its bytes, shape and dtype enter the key.
        points : np.ndarray, shape (N, 3), integer
            Query points (x, y, class); hashed as int64.
        settings : Mapping
            JSON-serialisable settings (numpy scalars/arrays allowed); hashed as
            ``json.dumps(settings, sort_keys=True)``.

        Returns
        -------
        str
            64 lowercase hex digits (sha256).
        """
        image = np.ascontiguousarray(image)
        pts = np.ascontiguousarray(np.asarray(points).reshape(-1, 3), dtype=np.int64)
        try:
            settings_json = json.dumps(dict(settings), sort_keys=True, default=_json_default)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"settings must be JSON-serialisable to build a cache key ({err}); "
                "pass plain numbers, strings, lists and dicts."
            ) from err
        h = hashlib.sha256()
        h.update(b"pointseg.pseudo-label.v1\0")
        h.update(f"image:{image.shape}:{image.dtype.str}\0".encode())
        h.update(image.tobytes())
        h.update(f"\0points:{pts.shape}\0".encode())
        h.update(pts.tobytes())
        h.update(b"\0settings:")
        h.update(settings_json.encode())
        return h.hexdigest()

    def path(self, key: str) -> Path:
        """Return the file path of ``key`` (``root/<key[:2]>/<key>.png``)."""
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(
                f"cache key must be 64 lowercase hex digits as returned by key(), got {key!r}."
            )
        return self.root / key[:2] / f"{key}.png"

    def get(self, key: str) -> np.ndarray | None:
        """Load a cached label map.

        Parameters
        ----------
        key : str
            A key from :meth:`key`.

        Returns
        -------
        np.ndarray, shape (H, W), uint8, or None
            None on a miss or when the file is unreadable (logged as a warning).
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with Image.open(path) as im:
                if im.mode != "L":
                    raise ValueError(f"expected an 8-bit grayscale PNG, got mode {im.mode!r}")
                labels = np.array(im, dtype=np.uint8)
        except Exception as err:  # any decoding failure is a miss, never a crash
            logger.warning(
                "corrupt pseudo-label cache entry %s (%s); treating as a miss", path, err
            )
            return None
        return labels

    def put(self, key: str, labels: np.ndarray) -> None:
        """Store a label map atomically.

        Parameters
        ----------
        key : str
            A key from :meth:`key`.
        labels : np.ndarray, shape (H, W), integer in 0..255
            Stored as an 8-bit grayscale PNG; an existing entry is overwritten.
        """
        path = self.path(key)
        arr = _as_label_map(labels)
        if path.parent not in self._swept:
            remove_stale_temp_files(path.parent)
            self._swept.add(path.parent)
        with atomic_open(path, "wb") as f:
            Image.fromarray(arr).save(f, format="PNG")

    def get_or_compute(
        self,
        image: np.ndarray,
        points: np.ndarray,
        settings: Mapping[str, Any],
        fn: Callable[[], np.ndarray],
    ) -> np.ndarray:
        """Return the cached label map, computing and storing it with ``fn()`` on a miss.

        Parameters
        ----------
        image : np.ndarray, shape (H, W) or (H, W, C)
        points : np.ndarray, shape (N, 3), integer
        settings : Mapping
            See :meth:`key`.
        fn : Callable[[], np.ndarray]
            Computes the (H, W) label map (values 0..255) on a miss.

        Returns
        -------
        np.ndarray, shape (H, W), uint8
        """
        key = self.key(image, points, settings)
        cached = self.get(key)
        expected_shape = np.shape(image)[:2]
        if cached is not None and cached.shape == expected_shape:
            logger.debug("pseudo-label cache hit %s", key)
            return cached
        if cached is not None:
            logger.warning(
                "pseudo-label cache entry %s has shape %s, expected %s; recomputing",
                key,
                cached.shape,
                expected_shape,
            )
        labels = _as_label_map(fn())
        self.put(key, labels)
        logger.debug("pseudo-label cache miss %s: computed and stored", key)
        return labels
