"""The state of an annotation session: images, points, versions, undo/redo, the points file.

Every change is written to the points file (atomically) before it is acknowledged, in a format
that ``pointseg train --points`` reads: a CSV ``image,x,y,class`` in pixel coordinates for
plain images, a GeoPackage in the images' map coordinates (the centre of the clicked pixel) for
georeferenced ones, so QGIS opens it too. Edits carry the version they were made on; an edit
made on an older version (another tab) is refused, never merged.
"""

from __future__ import annotations

import itertools
import logging
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.io.atomic import atomic_write, remove_stale_temp_files
from pointseg.points import load_points, write_points_csv

__all__ = ["AnnotationSession", "ImageEntry", "StaleVersion", "default_points_file"]

logger = logging.getLogger(__name__)

#: Suffixes the session writes: map coordinates (georeferenced images) or pixel coordinates.
_MAP_SUFFIXES = (".gpkg",)
_PIXEL_SUFFIXES = (".csv",)


class StaleVersion(Exception):
    """An edit made on an older version than the session's (e.g. another browser tab)."""


@dataclass
class ImageEntry:
    """One image of the session; ``id`` is the only handle clients get."""

    id: str
    name: str
    path: Path
    index: int
    width: int
    height: int
    crs: Any = None
    transform: Any = None

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None


@dataclass
class _Op:
    """One change: points removed and added on one image (undo swaps them)."""

    image: str
    removed: list[tuple[str, int, int, int]] = field(default_factory=list)
    added: list[tuple[str, int, int, int]] = field(default_factory=list)


def _georef(path: Path) -> tuple[Any, Any]:
    if path.suffix.lower() not in (".tif", ".tiff", ".jp2", ".vrt"):
        return None, None
    import rasterio

    with rasterio.open(path) as src:
        if src.crs is None or src.transform.is_identity:
            return None, None
        return src.crs, src.transform


def default_points_file(data: str | Path, georeferenced: bool) -> Path:
    """``DATA/points.gpkg`` for georeferenced images, else ``DATA/points.csv``."""
    data = Path(data)
    folder = data if data.is_dir() else data.parent
    stem = "points" if data.is_dir() else f"{data.stem}_points"
    return folder / f"{stem}{'.gpkg' if georeferenced else '.csv'}"


class AnnotationSession:
    """Images and their points, with a version, undo/redo and the points file.

    Parameters
    ----------
    dataset : RecordDataset
        The images (any dataset pointseg reads; masks are not needed).
    points_file : path, optional
        Read at start when it exists, written on every change; default
        :func:`default_points_file`.
    data : path
        The dataset root (for the default points file).
    """

    def __init__(self, dataset: Any, *, data: str | Path, points_file: str | Path | None = None):
        self.dataset = dataset
        self.class_names = list(dataset.class_map.names)
        self.class_colors = [tuple(int(v) for v in c) for c in dataset.class_map.colors]
        self.images: list[ImageEntry] = []
        for i, rec in enumerate(dataset.records):
            height, width = dataset.image_size(i)
            crs, transform = _georef(rec.image)
            self.images.append(
                ImageEntry(str(i), rec.name, rec.image, i, width, height, crs, transform)
            )
        if not self.images:
            raise ValueError(f"{data} holds no image to annotate")
        self.by_id = {e.id: e for e in self.images}
        self.by_name = {e.name: e for e in self.images}
        georef = {e.georeferenced for e in self.images}
        if len(georef) > 1:
            raise ValueError(
                f"{data} mixes georeferenced and plain images: one points file cannot hold both "
                "map and pixel coordinates; annotate them as two datasets"
            )
        self.georeferenced = georef.pop()
        path = Path(points_file) if points_file else default_points_file(data, self.georeferenced)
        self._check_format(path)
        self.points_file = path
        remove_stale_temp_files(path.parent)  # half-written saves of a killed server
        self.crs = next((e.crs for e in self.images if e.crs is not None), None)
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.points: dict[str, dict[str, tuple[int, int, int]]] = {e.name: {} for e in self.images}
        self.version = 0
        self._undo: list[_Op] = []
        self._redo: list[_Op] = []
        if path.exists():
            self._load(path)
        self.listeners: list[Any] = []  # called with the image name after every change

    # ----------------------------------------------------------------------------- files

    def _check_format(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if path.is_dir():
            raise ValueError(f"points file {path} is a folder; give a file name")
        if self.georeferenced and suffix not in _MAP_SUFFIXES:
            raise ValueError(
                f"points file {path}: the images are georeferenced, so clicks are saved in map "
                "coordinates, which needs a GeoPackage: use a .gpkg file"
            )
        if not self.georeferenced and suffix not in _PIXEL_SUFFIXES:
            raise ValueError(
                f"points file {path}: the images have no georeference, so clicks are saved in "
                "pixel coordinates (image,x,y,class): use a .csv file"
            )
        from pointseg.io.outputs import check_output_file

        check_output_file(path, what="points file", suffix=suffix)

    def _load(self, path: Path) -> None:
        points, report = load_points(
            path,
            images={e.name: e.path for e in self.images},
            image_sizes={e.name: (e.height, e.width) for e in self.images},
            class_names=self.class_names,
        )
        if report.n_dropped:
            logger.warning("%s", report)
        for name, pts in points.items():
            store = self.points[name]
            for x, y, c in np.asarray(pts, np.int64).reshape(-1, 3):
                store[f"p{next(self._ids)}"] = (int(x), int(y), int(c))
        logger.info("read %d point(s) from %s", sum(len(p) for p in self.points.values()), path)

    def _save(self) -> None:
        arrays = {
            name: np.array(list(pts.values()), np.int64).reshape(-1, 3)
            for name, pts in self.points.items()
            if pts
        }
        if self.georeferenced:
            self._save_gpkg(arrays)
        else:
            write_points_csv(self.points_file, arrays, class_names=self.class_names)

    def _save_gpkg(self, arrays: dict[str, np.ndarray]) -> None:
        from pyogrio.raw import write

        geometry, images, classes = [], [], []
        for name, pts in sorted(arrays.items()):
            entry = self.by_name[name]
            for x, y, c in pts:
                # the centre of the clicked pixel, in the file's CRS (the first image's)
                mx, my = entry.transform @ (x + 0.5, y + 0.5)
                if entry.crs != self.crs:
                    from rasterio.warp import transform as warp

                    xs, ys = warp(entry.crs, self.crs, [mx], [my])
                    mx, my = xs[0], ys[0]
                geometry.append(struct.pack("<BIdd", 1, 1, float(mx), float(my)))
                images.append(name)
                classes.append(self.class_names[int(c)])
        with atomic_write(self.points_file) as tmp:
            tmp.unlink(missing_ok=True)  # GDAL creates the GeoPackage itself
            write(
                str(tmp),
                geometry=np.array(geometry, dtype=object),
                field_data=[np.array(images, dtype=object), np.array(classes, dtype=object)],
                fields=["image", "class"],
                layer="points",
                driver="GPKG",
                geometry_type="Point",
                crs=self.crs.to_wkt(),
            )

    # ----------------------------------------------------------------------------- queries

    def entry(self, image_id: str) -> ImageEntry:
        """The image of ``image_id`` (ids come from the session's own listing)."""
        try:
            return self.by_id[str(image_id)]
        except KeyError:
            raise KeyError(f"unknown image id {image_id!r}") from None

    def point_list(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"id": pid, "x": x, "y": y, "class": c}
                for pid, (x, y, c) in self.points[name].items()
            ]

    def point_array(self, name: str) -> np.ndarray:
        """``(N, 3)`` int64 ``[x, y, class]`` of one image (as training reads them)."""
        with self._lock:
            return np.array(list(self.points[name].values()), np.int64).reshape(-1, 3)

    def snapshot(self, name: str) -> tuple[int, np.ndarray]:
        """The version and one image's points, read together."""
        with self._lock:
            return self.version, self.point_array(name)

    def counts(self, name: str) -> list[int]:
        with self._lock:
            out = [0] * len(self.class_names)
            for _, _, c in self.points[name].values():
                out[c] += 1
            return out

    # ----------------------------------------------------------------------------- edits

    def _check_version(self, version: int) -> None:
        if int(version) != self.version:
            raise StaleVersion(
                f"the points changed since version {version} (now {self.version}), e.g. in "
                "another tab: reload to see them"
            )

    def _apply(self, op: _Op, *, undo: bool = False) -> None:
        store = self.points[op.image]
        removed, added = (op.added, op.removed) if undo else (op.removed, op.added)
        for pid, *_ in removed:
            store.pop(pid, None)
        for pid, x, y, c in added:
            store[pid] = (x, y, c)

    def _commit(self, op: _Op, *, undo: bool = False) -> None:
        """Apply ``op``, write the file, then bump the version (a failed write undoes it)."""
        self._apply(op, undo=undo)
        try:
            self._save()
        except BaseException:
            self._apply(op, undo=not undo)
            raise
        self.version += 1
        for listener in self.listeners:
            listener(op.image)

    def add_point(self, image_id: str, x: float, y: float, cls: int, *, version: int) -> dict:
        """Add a point (replacing one on the same pixel); returns it."""
        entry = self.entry(image_id)
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (0 <= col < entry.width and 0 <= row < entry.height):
            raise ValueError(
                f"point ({x}, {y}) is outside image {entry.name} ({entry.width}x{entry.height})"
            )
        if isinstance(cls, bool) or not 0 <= int(cls) < len(self.class_names):
            raise ValueError(
                f"unknown class {cls!r}; classes are 0..{len(self.class_names) - 1} "
                f"({', '.join(self.class_names)})"
            )
        with self._lock:
            self._check_version(version)
            store = self.points[entry.name]
            same = [(pid, *p) for pid, p in store.items() if p[0] == col and p[1] == row]
            pid = f"p{next(self._ids)}"
            op = _Op(entry.name, removed=same, added=[(pid, col, row, int(cls))])
            self._commit(op)
            self._undo.append(op)
            self._redo.clear()
            return {"id": pid, "x": col, "y": row, "class": int(cls)}

    def remove_point(self, image_id: str, point_id: str, *, version: int) -> None:
        entry = self.entry(image_id)
        with self._lock:
            self._check_version(version)
            store = self.points[entry.name]
            if point_id not in store:
                raise KeyError(f"image {entry.name} has no point {point_id!r}")
            op = _Op(entry.name, removed=[(point_id, *store[point_id])])
            self._commit(op)
            self._undo.append(op)
            self._redo.clear()

    def undo(self, *, version: int) -> str:
        """Undo the last change; returns the id of the image it touched."""
        with self._lock:
            self._check_version(version)
            if not self._undo:
                raise LookupError("nothing to undo")
            op = self._undo.pop()
            self._commit(op, undo=True)
            self._redo.append(op)
            return self.by_name[op.image].id

    def redo(self, *, version: int) -> str:
        """Redo the last undone change; returns the id of the image it touched."""
        with self._lock:
            self._check_version(version)
            if not self._redo:
                raise LookupError("nothing to redo")
            op = self._redo.pop()
            self._commit(op)
            self._undo.append(op)
            return self.by_name[op.image].id
