"""Read and write clicked query points (CSV and GeoJSON in pixel coordinates).

Coordinate convention: ``x`` is the column and ``y`` the row, in pixels; ``(0, 0)`` is the
top-left corner of the top-left pixel, so a real-valued coordinate lies in pixel
``(floor(x), floor(y))``.  Readers return ``{image_stem: points}`` where ``points`` is an
``(N, 3)`` ``int64`` array of ``[x, y, class]`` sorted by ``(y, x)``, together with a
:class:`PointReport` counting what was read, kept and dropped.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np

from pointseg.io.atomic import atomic_open

__all__ = [
    "CSV_COLUMNS",
    "SUPPORTED_POINT_SUFFIXES",
    "DropCounts",
    "PointReport",
    "image_stem",
    "read_points",
    "read_points_csv",
    "read_points_geojson",
    "write_points_csv",
]

logger = logging.getLogger(__name__)

#: File suffixes understood by :func:`read_points`.
SUPPORTED_POINT_SUFFIXES: tuple[str, ...] = (".csv", ".geojson", ".json")

#: Required CSV columns, in the order :func:`write_points_csv` writes them.
CSV_COLUMNS: tuple[str, ...] = ("image", "x", "y", "class")

#: Raster file suffixes stripped from image names to get the image stem.
_IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".jp2", ".npy"}
)

_ON_INVALID = ("raise", "warn")

#: How many example messages are kept per kind of problem.
MAX_MESSAGES_PER_KIND = 5


class DropCounts:
    """Counters shared by the point reports: each names its drop counters in ``DROPS``.

    Every point read is either kept or counted in exactly one drop counter, so
    ``n_read == n_kept + n_dropped``.
    """

    DROPS: ClassVar[tuple[tuple[str, str], ...]] = ()
    n_read: int
    n_kept: int
    n_duplicate: int

    @property
    def n_invalid(self) -> int:
        """Points dropped as invalid (everything dropped except duplicates)."""
        return sum(getattr(self, name) for name, _ in self.DROPS if name != "n_duplicate")

    @property
    def n_dropped(self) -> int:
        """All points not kept (invalid points and duplicates)."""
        return self.n_invalid + self.n_duplicate

    def counts(self) -> dict[str, int]:
        """The counters as a plain dict (handy for logging and JSON)."""
        out = {"n_read": self.n_read, "n_kept": self.n_kept}
        out.update((name, getattr(self, name)) for name, _ in self.DROPS)
        return out

    def dropped_text(self) -> str:
        """``"; dropped 3 duplicate, 1 malformed"``, or ``""`` when nothing was dropped."""
        dropped = [f"{getattr(self, n)} {what}" for n, what in self.DROPS if getattr(self, n)]
        return "; dropped " + ", ".join(dropped) if dropped else ""


@dataclass
class PointReport(DropCounts):
    """What a point reader read, kept and dropped.

    Every point read is either kept or counted in exactly one of the drop counters, so
    ``n_read == n_kept + n_dropped``.

    Attributes
    ----------
    source : str
        The file read.
    n_read : int
        Points read (a MultiPoint counts each of its points; a non-point geometry counts 1).
    n_kept : int
        Points returned.
    n_outside : int
        Points outside their image (negative, or beyond the size in ``image_sizes``).
    n_unknown_class : int
        Points whose class is neither a known name nor an index in range.
    n_duplicate : int
        Extra copies of a point (same image, pixel and class); one copy is kept.
    n_conflicting : int
        Points sharing a pixel with a point of another class; all of them are dropped.
    n_unknown_image : int
        Points of images missing from ``image_sizes``.
    n_malformed : int
        Points with an unparsable or missing value, or a non-point geometry.
    messages : list of str
        The first few examples of each kind of problem.
    """

    source: str = ""
    n_read: int = 0
    n_kept: int = 0
    n_outside: int = 0
    n_unknown_class: int = 0
    n_duplicate: int = 0
    n_conflicting: int = 0
    n_unknown_image: int = 0
    n_malformed: int = 0
    messages: list[str] = field(default_factory=list)

    #: The drop counters, in the order they are reported.
    DROPS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("n_outside", "outside their image"),
        ("n_unknown_class", "with unknown class"),
        ("n_unknown_image", "of unknown images"),
        ("n_duplicate", "duplicate"),
        ("n_conflicting", "conflicting"),
        ("n_malformed", "malformed"),
    )

    def __str__(self) -> str:
        head = f"{self.source or 'points'}: read {self.n_read}, kept {self.n_kept}"
        head += self.dropped_text()
        if self.messages:
            head += "\n" + "\n".join(f"  {m}" for m in self.messages)
        return head


# --------------------------------------------------------------------------------------------
# shared validation


def read_point_text(path: Path) -> str:
    """A point file's text: UTF-8 (with or without BOM), or UTF-16/32 with a BOM.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is a folder or not text in one of those encodings (naming the byte and the fix).
    """
    if path.is_dir():
        raise ValueError(f"point file {path} is a folder; give the file itself")
    if not path.is_file():
        raise FileNotFoundError(f"point file {path} does not exist")
    data = path.read_bytes()
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    encoding = next((enc for bom, enc in boms if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"point file {path} is not {encoding.upper()} text (byte 0x{data[exc.start]:02x} at "
            f"position {exc.start}); save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)"
        ) from None


def _check_on_invalid(on_invalid: str) -> str:
    if on_invalid not in _ON_INVALID:
        raise ValueError(f"on_invalid must be one of {list(_ON_INVALID)}, got {on_invalid!r}")
    return on_invalid


def _class_lookup(class_names: Sequence[str]) -> dict[str, int]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise ValueError(
            f"class_names must be a sequence of class names, got {type(class_names).__name__}"
        )
    lookup: dict[str, int] = {}
    for i, name in enumerate(class_names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class_names[{i}] must be a non-empty string, got {name!r}")
        key = name.strip().casefold()
        if key in lookup:
            raise ValueError(
                f"class_names has duplicate name {name!r} (case-insensitive): {list(class_names)}"
            )
        lookup[key] = i
    if not lookup:
        raise ValueError("class_names must not be empty")
    return lookup


def _check_image_sizes(
    image_sizes: Mapping[str, tuple[int, int]] | None,
) -> dict[str, tuple[int, int]] | None:
    if image_sizes is None:
        return None
    checked: dict[str, tuple[int, int]] = {}
    for stem, size in image_sizes.items():
        try:
            height, width = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(
                f"image_sizes[{stem!r}] must be (height, width), got {size!r}"
            ) from None
        if height <= 0 or width <= 0:
            raise ValueError(f"image_sizes[{stem!r}] must be positive (height, width), got {size}")
        checked[str(stem)] = (height, width)
    return checked


def image_stem(name: str) -> str:
    """Image stem of a name from a point file: directories and a raster suffix are stripped.

    Parameters
    ----------
    name : str
        E.g. ``"tile_01"``, ``"tile_01.png"`` or ``"images/tile_01.tif"``.

    Returns
    -------
    str
        E.g. ``"tile_01"``.  Only raster suffixes (``.png``, ``.tif``, ``.jpg``, ...) are
        stripped, so stems containing dots (``"a.b"``) survive.
    """
    base = PurePosixPath(name.strip().replace("\\", "/")).name
    suffix = PurePosixPath(base).suffix
    if suffix.lower() in _IMAGE_SUFFIXES:
        return base[: -len(suffix)]
    return base


class _PointCollector:
    """Validates points one at a time and assembles the result and report."""

    def __init__(
        self,
        path: Path,
        *,
        class_names: Sequence[str],
        image_sizes: Mapping[str, tuple[int, int]] | None,
        on_invalid: str,
    ) -> None:
        self.path = path
        self.class_names = list(class_names)
        self.lookup = _class_lookup(class_names)
        self.image_sizes = _check_image_sizes(image_sizes)
        self.raise_on_invalid = _check_on_invalid(on_invalid) == "raise"
        self.report = PointReport(source=str(path))
        self._n_messages: dict[str, int] = {}
        # (image, x, y) -> {class: location of its first occurrence}
        self._seen: dict[tuple[str, int, int], dict[int, str]] = {}

    # -- problems ----------------------------------------------------------------------------

    def _problem(self, kind: str, message: str, *, invalid: bool = True, count: int = 1) -> None:
        setattr(self.report, kind, getattr(self.report, kind) + count)
        if invalid and self.raise_on_invalid:
            raise ValueError(message)
        n = self._n_messages.get(kind, 0)
        if n < MAX_MESSAGES_PER_KIND:
            self.report.messages.append(message)
        self._n_messages[kind] = n + 1

    def _class_hint(self) -> str:
        return (
            f"use one of the class names {self.class_names} (case-insensitive) "
            f"or an integer index 0..{len(self.class_names) - 1}"
        )

    # -- parsing -----------------------------------------------------------------------------

    def _parse_class(self, value: Any) -> int | None:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, str):
            text = value.strip()
            if text.casefold() in self.lookup:
                return self.lookup[text.casefold()]
            try:
                number: float = float(text)
            except ValueError:
                return None
        elif isinstance(value, int | float):
            number = value
        else:
            return None
        if not math.isfinite(number) or number != int(number):
            return None
        index = int(number)
        return index if 0 <= index < len(self.class_names) else None

    @staticmethod
    def _parse_coord(value: Any) -> float | None:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return None
        elif isinstance(value, int | float):
            number = float(value)
        else:
            return None
        return number if math.isfinite(number) else None

    # -- the point ---------------------------------------------------------------------------

    def malformed(self, loc: str, message: str) -> None:
        """Count a point that could not be read at all."""
        self.report.n_read += 1
        self._problem("n_malformed", f"{loc}: {message}")

    def add(self, loc: str, image: Any, x: Any, y: Any, cls: Any) -> None:
        """Validate one point and remember it if valid.

        ``loc`` names the place in the file (e.g. ``"points.csv line 12"``).
        """
        self.report.n_read += 1
        if isinstance(image, int) and not isinstance(image, bool):
            image = str(image)  # GeoJSON may hold numeric image ids
        if not isinstance(image, str) or not image.strip():
            self._problem(
                "n_malformed",
                f"{loc}: missing or empty image name {image!r}; give the image file stem",
            )
            return
        stem = image_stem(image)

        fx, fy = self._parse_coord(x), self._parse_coord(y)
        if fx is None or fy is None:
            axis, raw = ("x", x) if fx is None else ("y", y)
            self._problem(
                "n_malformed",
                f"{loc}: {axis}={raw!r} is not a finite number; give pixel coordinates",
            )
            return

        label = self._parse_class(cls)
        if label is None:
            self._problem(
                "n_unknown_class",
                f"{loc}: class {cls!r} is not a known class; {self._class_hint()}",
            )
            return

        size = None
        if self.image_sizes is not None:
            size = self.image_sizes.get(stem)
            if size is None:
                known = sorted(self.image_sizes)
                shown = ", ".join(repr(k) for k in known[:5]) + (", ..." if len(known) > 5 else "")
                self._problem(
                    "n_unknown_image",
                    f"{loc}: image {stem!r} is not among the {len(known)} known images "
                    f"({shown}); the image column must hold the image file stem",
                )
                return

        px, py = math.floor(fx), math.floor(fy)
        height, width = size if size is not None else (None, None)
        for axis, raw, pixel, extent, what in (
            ("x", x, px, width, "width"),
            ("y", y, py, height, "height"),
        ):
            if pixel < 0 or (extent is not None and pixel >= extent):
                bounds = f"{what} {extent}" if extent is not None else "negative coordinate"
                limit = f"0 <= {axis} < {extent}" if extent is not None else f"{axis} >= 0"
                self._problem(
                    "n_outside",
                    f"{loc}: {axis}={raw} is outside image {stem!r} ({bounds}); pixel "
                    f"coordinates must satisfy {limit} ({axis} is the "
                    f"{'column' if axis == 'x' else 'row'}, origin at the top-left corner)",
                )
                return

        key = (stem, px, py)
        classes = self._seen.setdefault(key, {})
        if label in classes:
            self._problem(
                "n_duplicate",
                f"{loc}: duplicate of {classes[label]} (image {stem!r}, x={px}, y={py}, "
                f"class {self.class_names[label]!r}); dropped",
                invalid=False,
            )
            return
        if classes and self.raise_on_invalid:
            other, other_loc = next(iter(classes.items()))
            raise ValueError(
                f"{loc}: class {self.class_names[label]!r} conflicts with class "
                f"{self.class_names[other]!r} at {other_loc} for the same pixel "
                f"(image {stem!r}, x={px}, y={py}); keep only one of the two points"
            )
        classes[label] = loc

    def finish(self) -> tuple[dict[str, np.ndarray], PointReport]:
        """Resolve conflicts and return ``({stem: points}, report)``."""
        rows: dict[str, list[tuple[int, int, int]]] = {}
        for (stem, px, py), classes in self._seen.items():
            if len(classes) > 1:
                names = ", ".join(
                    f"{self.class_names[c]!r} ({where})" for c, where in classes.items()
                )
                self._problem(
                    "n_conflicting",
                    f"conflicting classes {names} at pixel x={px}, y={py} of image {stem!r}; "
                    "all dropped",
                    invalid=False,
                    count=len(classes),
                )
                continue
            (label,) = classes
            rows.setdefault(stem, []).append((px, py, label))
        result: dict[str, np.ndarray] = {}
        for stem in sorted(rows):
            pts = np.asarray(rows[stem], dtype=np.int64).reshape(-1, 3)
            result[stem] = pts[np.lexsort((pts[:, 0], pts[:, 1]))]
        self.report.n_kept = sum(len(p) for p in result.values())

        if self.report.n_read == 0:
            logger.warning("%s contains no points", self.path)
        elif self.report.n_dropped:
            logger.warning("dropped %d point(s): %s", self.report.n_dropped, self.report)
        return result, self.report


# --------------------------------------------------------------------------------------------
# readers


def read_points_csv(
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str],
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    on_invalid: str = "warn",
) -> tuple[dict[str, np.ndarray], PointReport]:
    """Read clicked points from a CSV file with columns ``image,x,y,class``.

    Parameters
    ----------
    path : str or os.PathLike
        CSV file with a header row naming at least ``image``, ``x``, ``y``, ``class`` (any
        order, case-insensitive; extra columns are ignored).  ``image`` is the image stem (a
        raster suffix such as ``.png`` is stripped); ``x`` (column) and ``y`` (row) are pixel
        coordinates, floats allowed (pixel = floor); ``class`` is a class name
        (case-insensitive) or an integer index.
    class_names : sequence of str
        The dataset's class names; index ``i`` is class ``i``.
    image_sizes : mapping of str to (int, int), optional
        ``{stem: (height, width)}``.  When given, points outside ``[0, width) x [0, height)``
        are invalid and images not in the mapping are unknown.
    on_invalid : {"warn", "raise"}
        ``"raise"``: the first invalid point (outside, unknown class, unknown image,
        unparsable value, conflicting class) raises ``ValueError``.  ``"warn"``: invalid points
        are skipped and counted, and one warning summarises the counts.  Duplicates (same
        image, pixel and class) are always dropped silently apart from that summary.

    Returns
    -------
    points : dict of str to np.ndarray
        ``{stem: points}``, each ``(N, 3)`` ``int64`` ``[x, y, class]`` sorted by ``(y, x)``;
        only images with at least one kept point appear, in sorted order.
    report : PointReport
        Counts and example messages.

    Raises
    ------
    ValueError
        If required columns are missing, ``on_invalid="raise"`` and a point is invalid, or an
        argument is invalid.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    collector = _PointCollector(
        path, class_names=class_names, image_sizes=image_sizes, on_invalid=on_invalid
    )
    with io.StringIO(read_point_text(path), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)  # skip leading blank lines
        if header is None:
            return collector.finish()
        columns = [cell.strip().casefold() for cell in header]
        missing = [c for c in CSV_COLUMNS if c not in columns]
        if missing:
            raise ValueError(
                f"{path}: missing required column(s) {missing}; the header must contain "
                f"{list(CSV_COLUMNS)} (any order), found columns {header}"
            )
        repeated = sorted({c for c in CSV_COLUMNS if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"{path}: column(s) {repeated} appear more than once in {header}")
        index = {c: columns.index(c) for c in CSV_COLUMNS}
        needed = max(index.values()) + 1
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            loc = f"{path.name} line {reader.line_num}"
            if len(row) < needed:
                collector.malformed(
                    loc, f"row has {len(row)} field(s) but the header has {len(header)}"
                )
                continue
            collector.add(
                loc,
                row[index["image"]],
                row[index["x"]],
                row[index["y"]],
                row[index["class"]],
            )
    return collector.finish()


def read_points_geojson(
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str],
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    on_invalid: str = "warn",
    image_property: str = "image",
    class_property: str = "class",
) -> tuple[dict[str, np.ndarray], PointReport]:
    """Read clicked points from a GeoJSON FeatureCollection in pixel coordinates.

    Parameters
    ----------
    path : str or os.PathLike
        GeoJSON ``FeatureCollection`` of ``Point`` / ``MultiPoint`` features whose
        coordinates are ``[x, y]`` in pixels (``x`` column, ``y`` row, origin at the top-left
        corner; pixel = floor).  Other geometries are counted as malformed.
    class_names : sequence of str
        The dataset's class names; index ``i`` is class ``i``.
    image_sizes : mapping of str to (int, int), optional
        ``{stem: (height, width)}``; see :func:`read_points_csv`.
    on_invalid : {"warn", "raise"}
        See :func:`read_points_csv`; a non-point geometry is invalid too.
    image_property, class_property : str
        Feature properties holding the image stem and the class (name or integer index).

    Returns
    -------
    points : dict of str to np.ndarray
        ``{stem: points}``, each ``(N, 3)`` ``int64`` ``[x, y, class]`` sorted by ``(y, x)``.
    report : PointReport
        Counts and example messages.

    Raises
    ------
    ValueError
        If the file is not valid JSON or not a FeatureCollection, or as in
        :func:`read_points_csv`.
    """
    path = Path(path)
    collector = _PointCollector(
        path, class_names=class_names, image_sizes=image_sizes, on_invalid=on_invalid
    )
    text = read_point_text(path)
    if not text.strip():
        return collector.finish()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    if isinstance(data, dict) and data.get("type") == "Feature":
        features: Any = [data]
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise ValueError(f"{path}: 'features' of the FeatureCollection must be a list")
    else:
        kind = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path}: expected a GeoJSON FeatureCollection of Point features, got {kind!r}"
        )

    for i, feature in enumerate(features):
        loc = f"{path.name} features[{i}]"
        if not isinstance(feature, dict):
            collector.malformed(loc, "feature is not a JSON object")
            continue
        geometry = feature.get("geometry")
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            collector.malformed(loc, "'properties' is not a JSON object")
            continue
        gtype = geometry.get("type") if isinstance(geometry, dict) else None
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if gtype == "Point":
            positions, locs = [coords], [loc]
        elif gtype == "MultiPoint" and isinstance(coords, list):
            positions = coords
            locs = [f"{loc} point {j}" for j in range(len(coords))]
        else:
            collector.malformed(
                loc,
                f"geometry type {gtype!r} is not a Point or MultiPoint; only clicked points "
                "are supported",
            )
            continue
        image = props.get(image_property)
        cls = props.get(class_property)
        for position, where in zip(positions, locs, strict=True):
            if not isinstance(position, list | tuple) or len(position) < 2:
                collector.malformed(where, f"coordinates {position!r} are not [x, y]")
                continue
            if image is None:
                collector.malformed(where, f"missing property {image_property!r} (image stem)")
                continue
            if class_property not in props:
                collector.malformed(
                    where, f"missing property {class_property!r} (class name or index)"
                )
                continue
            collector.add(where, image, position[0], position[1], cls)
    return collector.finish()


def read_points(
    path: str | os.PathLike[str], **kwargs: Any
) -> tuple[dict[str, np.ndarray], PointReport]:
    """Read points from a ``.csv`` or ``.geojson`` / ``.json`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The point file; its suffix picks the reader.
    **kwargs
        Passed to :func:`read_points_csv` or :func:`read_points_geojson`.

    Returns
    -------
    tuple of (dict of str to np.ndarray, PointReport)
        As returned by the reader.

    Raises
    ------
    ValueError
        If the suffix is not supported.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_points_csv(path, **kwargs)
    if suffix in (".geojson", ".json"):
        return read_points_geojson(path, **kwargs)
    raise ValueError(
        f"{path}: unsupported point file suffix {path.suffix!r}; "
        f"supported suffixes are {list(SUPPORTED_POINT_SUFFIXES)}"
    )


# --------------------------------------------------------------------------------------------
# writer


def write_points_csv(
    path: str | os.PathLike[str],
    points_by_image: Mapping[str, np.ndarray],
    *,
    class_names: Sequence[str],
) -> Path:
    """Write points to a CSV file ``image,x,y,class`` with class names, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; parent directories are created.  The file is written to a temporary
        file in the same directory and moved into place
        (:func:`pointseg.io.atomic.atomic_open`).
    points_by_image : mapping of str to np.ndarray
        ``{stem: points}``, each ``(N, 3)`` integer ``[x, y, class]``.  Images are written in
        sorted order, points in the given order.
    class_names : sequence of str
        Class names; ``class`` index ``i`` is written as ``class_names[i]``.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        If an array is not ``(N, 3)`` integer, or holds negative coordinates or a class index
        out of range.
    """
    path = Path(path)
    _class_lookup(class_names)
    names = list(class_names)
    rows: list[tuple[str, int, int, str]] = []
    for stem in sorted(points_by_image):
        pts = np.asarray(points_by_image[stem])
        if pts.size == 0:
            continue
        if pts.ndim != 2 or pts.shape[1] != 3 or not np.issubdtype(pts.dtype, np.integer):
            raise ValueError(
                f"points of image {stem!r} must be an (N, 3) integer array [x, y, class], "
                f"got shape {pts.shape} dtype {pts.dtype}"
            )
        if (pts[:, :2] < 0).any():
            raise ValueError(f"points of image {stem!r} have negative coordinates")
        bad = (pts[:, 2] < 0) | (pts[:, 2] >= len(names))
        if bad.any():
            raise ValueError(
                f"points of image {stem!r} have class index {int(pts[bad][0, 2])} outside "
                f"0..{len(names) - 1} (class_names={names})"
            )
        rows.extend((str(stem), int(x), int(y), names[int(c)]) for x, y, c in pts.tolist())

    with atomic_open(path, "w", encoding="utf-8", newline="", fsync=True) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return path
