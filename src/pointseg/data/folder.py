"""The folder dataset: ``images/`` and ``masks/`` with matching stems, plus a class file."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pointseg.data.classes import ClassMap, load_class_file
from pointseg.data.splits import SPLITS, read_split_file, split_stems
from pointseg.io.raster import IMAGE_SUFFIXES, read_image, read_mask

__all__ = ["FolderDataset", "Record", "scan_folder"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One image of a folder dataset and its mask (None when it has none)."""

    name: str
    image: Path
    mask: Path | None


def _index(folder: Path, kind: str) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
            if p.stem in files:
                raise ValueError(
                    f"{folder}: two {kind} files share the stem {p.stem!r} "
                    f"({files[p.stem].name}, {p.name}); keep one"
                )
            files[p.stem] = p
    return files


def scan_folder(
    root: str | Path,
    *,
    images: str = "images",
    masks: str | None = "masks",
    require_masks: bool = True,
) -> list[Record]:
    """List the image/mask pairs of a folder dataset.

    Parameters
    ----------
    root : path
        Dataset folder holding ``images/`` (and ``masks/``).
    images, masks : str
        Sub-folder names. ``masks=None`` reads images only.
    require_masks : bool
        Raise if an image has no mask (else such images get ``mask=None`` and a warning).

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the folder and what is missing.
    """
    root = Path(root)
    img_dir = root / images
    if not img_dir.is_dir():
        raise FileNotFoundError(
            f"dataset folder {root} has no '{images}/' sub-folder; expected {img_dir} "
            f"with images ({', '.join(IMAGE_SUFFIXES)}) and '{masks}/' with masks of the same stem"
        )
    image_files = _index(img_dir, "image")
    if not image_files:
        raise ValueError(f"{img_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    mask_files: dict[str, Path] = {}
    if masks is not None:
        mask_dir = root / masks
        if mask_dir.is_dir():
            mask_files = _index(mask_dir, "mask")
        elif require_masks:
            raise FileNotFoundError(f"dataset folder {root} has no '{masks}/' sub-folder")
    missing = sorted(set(image_files) - set(mask_files))
    if masks is not None and missing:
        if require_masks:
            raise ValueError(
                f"{len(missing)} image(s) in {img_dir} have no mask in {root / masks}, "
                f"e.g. {missing[:3]}; masks must have the same file stem as their image"
            )
        logger.warning("%d image(s) have no mask, e.g. %s", len(missing), missing[:3])
    orphans = sorted(set(mask_files) - set(image_files))
    if orphans:
        logger.warning(
            "%d mask(s) have no image and are skipped, e.g. %s", len(orphans), orphans[:3]
        )
    return [Record(stem, path, mask_files.get(stem)) for stem, path in image_files.items()]


class FolderDataset:
    """A folder of images and masks with a class file, split into train/val/test.

    Parameters
    ----------
    root : path
        Folder with ``images/`` and ``masks/`` (matching stems).
    classes : path or ClassMap, optional
        Class file (default ``root/classes.yaml``).
    split : {"train", "val", "test"} or None
        Which split to expose (None: all images).
    split_file : path, optional
        YAML or ``stem,split`` list; else a seeded split (``fractions``, ``seed``,
        ``group_pattern``).
    fractions, seed, group_pattern
        See :func:`pointseg.data.splits.split_stems`.
    bands : list of int, optional
        Image bands to read (zero-based).
    require_masks : bool
        Whether every image needs a mask.

    Notes
    -----
    ``dataset[i]`` is the sample dict ``{"image": (H, W, C) array, "mask": (H, W) uint8 class
    indices with 255 = ignore (absent when the image has no mask), "name": stem, "georef":
    Georef or None}``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        classes: str | Path | ClassMap | None = None,
        split: str | None = None,
        split_file: str | Path | None = None,
        fractions: Sequence[float] = (0.7, 0.15, 0.15),
        seed: int = 0,
        group_pattern: str | None = None,
        bands: list[int] | None = None,
        require_masks: bool = True,
    ) -> None:
        self.root = Path(root)
        if classes is None:
            classes = self.root / "classes.yaml"
            if not Path(classes).is_file():
                raise FileNotFoundError(
                    f"no class file given and {classes} does not exist; pass --classes FILE "
                    "(a YAML file naming the classes and their mask values or colours)"
                )
        self.class_map = classes if isinstance(classes, ClassMap) else load_class_file(classes)
        records = scan_folder(self.root, require_masks=require_masks)
        stems = [r.name for r in records]
        if split_file is not None:
            self.splits = read_split_file(split_file, stems=stems)
        else:
            self.splits = split_stems(
                stems, fractions=fractions, seed=seed, group_pattern=group_pattern
            )
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {list(SPLITS)} or None")
        self.split = split
        keep = set(self.splits[split]) if split is not None else set(stems)
        self.records = [r for r in records if r.name in keep]
        self.bands = bands

    def __len__(self) -> int:
        return len(self.records)

    @property
    def names(self) -> list[str]:
        """Stems of the images in this dataset, in order."""
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

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        image, georef = read_image(rec.image, bands=self.bands)
        sample: dict[str, Any] = {"image": image, "name": rec.name, "georef": georef}
        if rec.mask is not None:
            mask = read_mask(rec.mask, self.class_map)
            if mask.shape != image.shape[:2]:
                raise ValueError(
                    f"mask {rec.mask} is {mask.shape[1]}x{mask.shape[0]} but image {rec.image} "
                    f"is {image.shape[1]}x{image.shape[0]}; they must have the same size"
                )
            sample["mask"] = mask
        return sample

    def __repr__(self) -> str:
        return (
            f"FolderDataset(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"classes={list(self.class_map.names)})"
        )
