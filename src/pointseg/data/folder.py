"""The folder dataset: ``images/`` and ``masks/`` with matching stems, plus a class file."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pointseg.data.base import Record, RecordDataset
from pointseg.data.classes import ClassMap, load_class_file
from pointseg.data.remap import ClassRemap
from pointseg.io.raster import IMAGE_SUFFIXES

__all__ = ["FolderDataset", "Record", "scan_folder"]

logger = logging.getLogger(__name__)


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


class FolderDataset(RecordDataset):
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
    remap : path or ClassRemap, optional
        Mapping file translating the classes into another scheme (see
        :mod:`pointseg.data.remap`).
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
        remap: str | Path | ClassRemap | None = None,
        require_masks: bool = True,
    ) -> None:
        root = Path(root)
        if classes is None:
            classes = root / "classes.yaml"
            if not Path(classes).is_file():
                raise FileNotFoundError(
                    f"no class file given and {classes} does not exist; pass --classes FILE "
                    "(a YAML file naming the classes and their mask values or colours)"
                )
        class_map = classes if isinstance(classes, ClassMap) else load_class_file(classes)
        super().__init__(
            scan_folder(root, require_masks=require_masks),
            class_map=class_map,
            root=root,
            split=split,
            split_file=split_file,
            fractions=fractions,
            seed=seed,
            group_pattern=group_pattern,
            bands=bands,
            remap=remap,
        )
