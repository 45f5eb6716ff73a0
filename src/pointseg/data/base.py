"""The dataset every loader returns: records of image/mask files, a class map and splits.

Loaders (folder, LandCover.ai, Oxford-IIIT Pet, LoveDA, ISPRS, ...) only differ in how they
find their files, how their masks encode classes and what their official split is; they all
build a :class:`RecordDataset`, so the trainer sees the same sample dicts from each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.constants import IGNORE_INDEX
from pointseg.data.classes import ClassMap
from pointseg.data.remap import ClassRemap, load_remap_file
from pointseg.data.splits import SPLITS, group_key, read_split_file, split_stems
from pointseg.io.raster import band_layout, read_image, read_mask

__all__ = ["Record", "RecordDataset", "carve_validation"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One image of a dataset and its mask (None when it has none)."""

    name: str
    image: Path
    mask: Path | None


def carve_validation(
    splits: Mapping[str, Sequence[str]],
    *,
    fraction: float = 0.1,
    seed: int = 0,
    group_pattern: str | None = None,
) -> dict[str, list[str]]:
    """Move a seeded share of ``train`` into ``val`` when an official split has no val part.

    Groups (see :func:`pointseg.data.splits.group_key`) are never divided. At least one group
    moves when ``train`` has two or more groups.

    Returns
    -------
    dict
        ``{"train", "val", "test"}`` lists; ``test`` and a non-empty ``val`` are kept as given.
    """
    out = {k: sorted(splits.get(k, [])) for k in SPLITS}
    if out["val"] or not out["train"]:
        return out
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    groups: dict[str, list[str]] = {}
    for stem in out["train"]:
        groups.setdefault(group_key(stem, group_pattern), []).append(stem)
    keys = sorted(groups)
    if len(keys) < 2:
        return out
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]
    target = fraction * len(out["train"])
    val: list[str] = []
    for key in order:
        if val and len(val) + len(groups[key]) > target:
            break
        val.extend(groups[key])
        if len(val) >= target:
            break
    moved = set(val)
    out["val"] = sorted(val)
    out["train"] = [s for s in out["train"] if s not in moved]
    return out


class RecordDataset:
    """Images and masks listed as records, with a class map and a train/val/test split.

    Parameters
    ----------
    records : sequence of Record
        All images of the dataset (every split).
    class_map : ClassMap
        How the masks encode classes.
    root : path, optional
        Dataset folder (for messages).
    split : {"train", "val", "test"} or None
        Which split to expose (None: all records).
    splits : mapping, optional
        The dataset's own split (``{"train": [...], "val": [...], "test": [...]}``); used when
        no ``split_file`` is given. Records in no list belong to no split.
    split_file : path, optional
        A split list file that overrides ``splits``.
    fractions, seed, group_pattern
        The seeded split used when neither ``split_file`` nor ``splits`` is given
        (:func:`pointseg.data.splits.split_stems`).
    bands : list of int, optional
        Image bands to read (zero-based, numbered as in the files, alpha bands included).
        Without it every band but alpha bands is read, and every image must have as many bands
        as the first image of the dataset (an error naming ``--bands`` otherwise).
    remap : path or ClassRemap, optional
        Translate the classes into another scheme (:mod:`pointseg.data.remap`);
        ``class_map`` is then the target scheme.

    Notes
    -----
    ``dataset[i]`` is the sample dict ``{"image": (H, W, C) array, "mask": (H, W) uint8 class
    indices with 255 = ignore (absent when the record has no mask), "name": str, "georef":
    Georef or None}``, plus ``"valid"``: (H, W) bool, False at nodata pixels (an alpha band,
    a GDAL mask or nodata value), only when the image has any; the mask is 255 there.
    """

    def __init__(
        self,
        records: Sequence[Record],
        *,
        class_map: ClassMap,
        root: str | Path | None = None,
        split: str | None = None,
        splits: Mapping[str, Sequence[str]] | None = None,
        split_file: str | Path | None = None,
        fractions: Sequence[float] = (0.7, 0.15, 0.15),
        seed: int = 0,
        group_pattern: str | None = None,
        bands: list[int] | None = None,
        remap: str | Path | ClassRemap | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else None
        names = [r.name for r in records]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"{self._where()}: image names {dupes[:3]} occur twice")
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {list(SPLITS)} or None")
        if split_file is not None:
            self.splits = read_split_file(split_file, stems=names)
        elif splits is not None:
            self.splits = self._check_splits(splits, names)
        else:
            self.splits = split_stems(
                names, fractions=fractions, seed=seed, group_pattern=group_pattern
            )
        self.split = split
        keep = set(self.splits[split]) if split is not None else set(names)
        self.records = [r for r in records if r.name in keep]
        self.bands = bands
        # band counts are compared with the first image of the whole dataset, every split
        self._band_reference: Path | None = records[0].image if records else None
        self._reference_count: int | None = None
        self.source_class_map = class_map
        if remap is not None and not isinstance(remap, ClassRemap):
            remap = load_remap_file(remap, source=class_map)
        if remap is not None and remap.source.names != class_map.names:
            raise ValueError(
                f"class mapping expects source classes {list(remap.source.names)} but "
                f"{self._where()} has {list(class_map.names)}"
            )
        self.remap = remap

    def _where(self) -> str:
        return f"dataset {self.root}" if self.root is not None else "dataset"

    def _check_splits(
        self, splits: Mapping[str, Sequence[str]], names: Sequence[str]
    ) -> dict[str, list[str]]:
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown:
            raise ValueError(f"{self._where()}: unknown split names {unknown}")
        out = {k: sorted(splits.get(k, [])) for k in SPLITS}
        present = set(names)
        for k, stems in out.items():
            missing = [s for s in stems if s not in present]
            if missing:
                raise ValueError(
                    f"{self._where()}: {len(missing)} image(s) of the {k!r} split are missing, "
                    f"e.g. {missing[:3]}; the download or the preparation is incomplete"
                )
        return out

    @property
    def class_map(self) -> ClassMap:
        """The classes of the samples (the target scheme when remapped)."""
        return self.remap.target if self.remap is not None else self.source_class_map

    def __len__(self) -> int:
        return len(self.records)

    @property
    def names(self) -> list[str]:
        """Names of the images in this dataset, in order."""
        return [r.name for r in self.records]

    def image_size(self, index: int) -> tuple[int, int]:
        """(height, width) of image ``index`` without decoding its pixels."""
        rec = self.records[index]
        if rec.image.suffix.lower() in (".tif", ".tiff", ".jp2"):
            import rasterio

            with rasterio.open(rec.image) as src:
                return (src.height, src.width)
        from PIL import Image

        with Image.open(rec.image) as im:
            return (im.height, im.width)

    def load_image(self, record: Record) -> tuple[np.ndarray, Any, np.ndarray | None]:
        """Decode a record's image (a hook for loaders with unusual files).

        Returns
        -------
        image : ndarray, shape (H, W, C)
            With ``bands`` applied (default: every band but alpha bands).
        georef : Georef or None
        valid : ndarray of bool, shape (H, W), or None
            False at nodata pixels (alpha 0, GDAL mask); None when every pixel is valid.

        Raises
        ------
        ValueError
            When a band index is out of range, or, without ``bands``, when the image does not
            have as many bands as the first image of the dataset (naming both and ``--bands``).
        """
        image, georef, valid = read_image(record.image, bands=self.bands, with_mask=True)
        if self.bands is None:
            self._check_band_count(record.image, image.shape[-1])
        return image, georef, valid

    def read_image(self, record: Record) -> tuple[np.ndarray, Any]:
        """A record's (H, W, C) image with ``bands`` applied, and its Georef or None."""
        image, georef, _ = self.load_image(record)
        return image, georef

    def _reference_band_count(self) -> int | None:
        if self._reference_count is None and self._band_reference is not None:
            self._reference_count = len(band_layout(self._band_reference).default)
        return self._reference_count

    def _check_band_count(self, path: Path, n: int) -> None:
        ref = self._reference_band_count()
        if ref is None or n == ref or self._band_reference is None:
            return
        common = ",".join(str(i) for i in range(min(n, ref)))
        raise ValueError(
            f"image {path.name} has {n} band(s), {self._band_reference.name} has {ref}: "
            f"select common bands with --bands {common} (in {path.parent})"
        )

    def check_bands(self) -> int:
        """Check every image's bands from the file headers; returns the samples' band count.

        Cheap (no pixels are decoded); reading the samples makes the same checks one image
        at a time, so calling this is optional: it reports a mismatch before any work.

        Raises
        ------
        ValueError
            On a band index out of range (naming the file, the index and the band count), or,
            without ``bands``, on an image whose band count differs from the first image's.
        """
        count = len(self.bands) if self.bands is not None else self._reference_band_count()
        for rec in self.records:
            layout = band_layout(rec.image)
            picked = layout.select(self.bands, rec.image)
            if self.bands is None:
                self._check_band_count(rec.image, len(picked))
        return count or 0

    def read_mask(self, record: Record) -> np.ndarray:
        """Decode a record's mask into (H, W) uint8 source-class indices (255 = ignore)."""
        if record.mask is None:
            raise ValueError(f"image {record.image} has no mask")
        return read_mask(record.mask, self.source_class_map)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        image, georef, valid = self.load_image(rec)
        sample: dict[str, Any] = {"image": image, "name": rec.name, "georef": georef}
        if valid is not None:
            sample["valid"] = valid
        if rec.mask is not None:
            mask = self.read_mask(rec)
            if mask.shape != image.shape[:2]:
                raise ValueError(
                    f"mask {rec.mask} is {mask.shape[1]}x{mask.shape[0]} but image {rec.image} "
                    f"is {image.shape[1]}x{image.shape[0]}; they must have the same size"
                )
            if self.remap is not None:
                mask = self.remap(mask)
            if valid is not None:
                mask = np.where(valid, mask, np.uint8(IGNORE_INDEX)).astype(np.uint8)
            sample["mask"] = mask
        return sample

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
            f"n={len(self)}, classes={list(self.class_map.names)})"
        )
