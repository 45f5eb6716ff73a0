"""Large georeferenced rasters as a dataset: training from windows plus a point file.

``get_dataset("rasters", root=..., classes=...)`` lists the GeoTIFFs to train on. Unlike the
tile datasets, the images are never read whole: :mod:`pointseg.training.windows` samples
windows from them, pseudo-labels them block by block and holds validation points out by
spatial cell. Options of this mode are :class:`RasterOptions` fields, given as
``dataset_options`` (``--dataset-option block_size=2048``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.data.base import Record, RecordDataset
from pointseg.data.classes import ClassMap, load_class_file
from pointseg.data.remap import ClassRemap
from pointseg.points.geo import RASTER_SUFFIXES

__all__ = [
    "RasterDataset",
    "RasterOptions",
    "options_from",
    "read_reference_window",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RasterOptions:
    """Settings of training from large rasters.

    Attributes
    ----------
    block_size : int
        Side of the blocks that are pseudo-labelled at once (superpixels are computed per
        block plus ``margin``); sets the memory of that step (HERS: about 130 bytes per pixel of
        ``(block_size + 2 * margin)^2``). Rounded up to a multiple of 256, the tile of the
        label rasters. Default 1024.
    margin : int
        Context added around each block before computing its superpixels, so that a point near
        a block border still spreads into the next block. Default 64.
    windows_per_epoch : int
        Training windows drawn per epoch. Default 256.
    point_fraction : float
        Share of windows placed so that they contain a random training point (anywhere in the
        window); the others are drawn uniformly among windows holding any pseudo-label.
        Default 0.75.
    val_fraction : float
        Share of the spatial cells holding points whose points are held out for validation
        (never used for pseudo-labels). Default 0.2.
    val_cell : int, optional
        Side of those cells in pixels; default twice the window size. Whole cells are held out
        so that validation points are not next to training points.
    max_val_windows : int
        At most this many validation windows (a seeded subset when the held-out points need
        more), so validation stays cheap with many points. Default 128.
    nodata : float, optional
        Source value treated as nodata (when every band used equals it), instead of the file's
        own nodata value; the file's internal mask or alpha band still applies.
    score_references : bool
        After training, predict every raster that has a reference label raster and score the
        map against it (the test metrics). Default True; the annotate page turns it off, so
        that a page training ends with its model, not with a whole-raster prediction.
    """

    block_size: int = 1024
    margin: int = 64
    windows_per_epoch: int = 256
    point_fraction: float = 0.75
    val_fraction: float = 0.2
    val_cell: int | None = None
    max_val_windows: int = 128
    nodata: float | None = None
    score_references: bool = True

    def __post_init__(self) -> None:
        checks = (
            ("block_size", self.block_size, 64, "e.g. 1024"),
            ("margin", self.margin, 0, "e.g. 64"),
            ("windows_per_epoch", self.windows_per_epoch, 1, "e.g. 256"),
            ("max_val_windows", self.max_val_windows, 1, "e.g. 128"),
        )
        for name, value, low, hint in checks:
            if not _is_int(value) or value < low:
                raise ValueError(
                    f"rasters option {name} must be an integer >= {low} ({hint}), got {value!r}"
                )
        if not isinstance(self.score_references, bool):
            raise ValueError(
                "rasters option score_references must be true or false, got "
                f"{self.score_references!r}"
            )
        if self.val_cell is not None and (not _is_int(self.val_cell) or self.val_cell < 1):
            raise ValueError(
                f"rasters option val_cell must be a positive integer, got {self.val_cell!r}"
            )
        for name, value, lo_open in (
            ("point_fraction", self.point_fraction, False),
            ("val_fraction", self.val_fraction, True),
        ):
            if not isinstance(value, int | float) or not (
                (0 < value < 1) if lo_open else (0 <= value <= 1)
            ):
                interval = "(0, 1)" if lo_open else "[0, 1]"
                raise ValueError(f"rasters option {name} must be in {interval}, got {value!r}")
        if self.nodata is not None and not isinstance(self.nodata, int | float):
            raise ValueError(f"rasters option nodata must be a number, got {self.nodata!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _list(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES and not p.name.startswith(".")
    )


class RasterDataset(RecordDataset):
    """GeoTIFFs of any size to train on from windows, with optional reference label rasters.

    Parameters
    ----------
    root : path
        A raster file; a folder of rasters; or a folder with ``images/`` (rasters) and
        ``masks/`` (reference label rasters of the same stem and grid, optional, used only to
        score the predicted maps).
    classes : path, optional
        Class file (see :mod:`pointseg.data.classes`); it says how reference rasters encode
        classes and which names point files may use. Default ``root/classes.yaml``.
    split : {"train", "val", "test"} or None
        ``train`` and ``val`` are every raster (validation holds points out, not rasters);
        ``test`` the rasters with a reference label raster.
    bands : list of int, optional
        Bands to use (zero-based).
    remap : path or ClassRemap, optional
        Class mapping applied to reference rasters.
    require_masks : bool
        Ignored (reference rasters are optional).
    **options
        :class:`RasterOptions` fields.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        classes: str | Path | None = None,
        split: str | None = None,
        split_file: str | Path | None = None,
        bands: list[int] | None = None,
        remap: str | Path | ClassRemap | None = None,
        fractions: Sequence[float] | None = None,
        seed: int = 0,
        group_pattern: str | None = None,
        require_masks: bool = False,
        **options: Any,
    ) -> None:
        del fractions, seed, group_pattern, require_masks  # the split is by points, not images
        root = Path(root)
        if split_file is not None:
            raise ValueError(
                "the rasters dataset splits its points by spatial cell, not its images by a split "
                "file; remove split_file (see the val_fraction and val_cell options)"
            )
        self.options = options_from(options)
        if classes is None and root.is_dir() and (root / "classes.yaml").is_file():
            classes = root / "classes.yaml"
        if classes is None:
            raise ValueError(
                f"training from rasters needs a class file: pass classes (--classes FILE or a "
                f"preset) naming the classes of the points in {root}"
            )
        class_map: ClassMap = load_class_file(classes)
        records = self._scan(root)
        with_masks = [r.name for r in records if r.mask is not None]
        all_names = [r.name for r in records]
        super().__init__(
            records,
            class_map=class_map,
            root=root,
            split=split,
            splits={"train": all_names, "val": all_names, "test": with_masks},
            bands=bands,
            remap=remap,
        )

    @staticmethod
    def _scan(root: Path) -> list[Record]:
        if root.is_file():
            if root.suffix.lower() not in RASTER_SUFFIXES:
                raise ValueError(
                    f"{root} is not a raster ({', '.join(RASTER_SUFFIXES)}); pass a GeoTIFF or "
                    "a folder of them"
                )
            return [Record(root.stem, root, None)]
        if not root.is_dir():
            raise FileNotFoundError(f"raster or folder {root} does not exist")
        image_dir = root / "images" if (root / "images").is_dir() else root
        images = _list(image_dir)
        if not images:
            raise ValueError(
                f"{image_dir} holds no rasters ({', '.join(RASTER_SUFFIXES)}); pass a GeoTIFF, a "
                "folder of GeoTIFFs or a folder with images/ (and masks/)"
            )
        masks: dict[str, Path] = {}
        if image_dir != root and (root / "masks").is_dir():
            masks = {p.stem: p for p in _list(root / "masks")}
        records = [Record(p.stem, p, masks.get(p.stem)) for p in images]
        missing = [r.name for r in records if r.mask is None]
        if masks and missing:
            logger.warning(
                "%d raster(s) have no reference label raster in %s, e.g. %s; they are not scored",
                len(missing),
                root / "masks",
                missing[:3],
            )
        return records

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        h, w = self.image_size(index)
        if h * w > 64 * 2**20:
            raise ValueError(
                f"{rec.image} is {w}x{h}: too large to read whole; the rasters dataset is read in "
                "windows (pointseg train --dataset rasters, pointseg predict --tiled)"
            )
        return super().__getitem__(index)


def read_reference_window(
    src: Any, window: Any, class_map: ClassMap, remap: ClassRemap | None, where: str
) -> np.ndarray:
    """Class indices of a window of a reference label raster, shape (h, w), 255 = ignore.

    Single-band rasters hold the class file's values; rasters with 3 or more bands hold
    colours (the first three bands). Pixels outside the file's mask are ignored.
    """
    if src.count >= 3 and class_map.uses_rgb:
        raw = np.moveaxis(src.read([1, 2, 3], window=window), 0, -1)
    else:
        raw = src.read(1, window=window)
    labels = class_map.encode(raw, where=where)
    if remap is not None:
        labels = remap(labels)
    valid = src.read_masks(1, window=window) != 0
    labels = np.where(valid, labels, np.uint8(255)).astype(np.uint8)
    return labels


def options_from(values: Mapping[str, Any]) -> RasterOptions:
    """:class:`RasterOptions` from a mapping (unknown keys are an error)."""
    valid = {f.name for f in fields(RasterOptions)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ValueError(f"unknown rasters option(s) {unknown}; valid options: {sorted(valid)}")
    return RasterOptions(**values)
