"""LoveDA: 0.3 m Google Earth land-cover tiles (1024x1024) of urban and rural scenes.

Official layout (``Train.zip``, ``Val.zip``, ``Test.zip`` from
https://zenodo.org/records/5706578, see https://github.com/Junjue-Wang/LoveDA, extracted
into one folder)::

    root/
      Train/Urban/images_png/1366.png   Train/Urban/masks_png/1366.png
      Train/Rural/images_png/0.png      Train/Rural/masks_png/0.png
      Val/{Urban,Rural}/images_png/...  Val/{Urban,Rural}/masks_png/...
      Test/{Urban,Rural}/images_png/... (no masks: the test labels are not public)

Mask values: 0 = no-data (ignored), 1 background, 2 building, 3 road, 4 water, 5 barren,
6 forest, 7 agriculture; they become class indices 0..6 (255 = ignore).

Images are numbered across the whole dataset (Train/Rural from 0, Train/Urban from 1366,
Val/Rural from 2522, ...); sample names carry the scene as well (``urban_1366``,
``rural_0``) so they say where a tile comes from and stay unique in any case.

Splits: the official test masks are withheld (scored only on the LoveDA challenge server),
so by default (``test_from="val"``) the official ``Val`` part is our ``test`` split and a
seeded share of ``Train`` is carved out as ``val``. ``test_from="test"`` instead keeps the
official parts as they are: ``Train`` -> ``train``, ``Val`` -> ``val`` and the unlabelled
``Test`` images -> ``test`` (for predictions to submit; needs ``require_masks=False``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pointseg.constants import IGNORE_INDEX
from pointseg.data.archives import extract_archive, locate_archives
from pointseg.data.base import Record, RecordDataset, carve_validation
from pointseg.data.classes import ClassMap, class_map_from_dict
from pointseg.data.remap import ClassRemap

__all__ = [
    "LOVEDA_ARCHIVES",
    "LOVEDA_CLASSES",
    "LOVEDA_COLORS",
    "LOVEDA_URL",
    "LOVEDA_ZENODO_URL",
    "loveda",
    "loveda_class_map",
    "prepare_loveda",
]

logger = logging.getLogger(__name__)

#: Project page of the dataset.
LOVEDA_URL = "https://github.com/Junjue-Wang/LoveDA"
#: Where the archives are downloaded from.
LOVEDA_ZENODO_URL = "https://zenodo.org/records/5706578"

#: The official archives and their MD5 (as published in torchgeo's LoveDA dataset).
LOVEDA_ARCHIVES: dict[str, str] = {
    "Train.zip": "de2b196043ed9b4af1690b3f9a7d558f",
    "Val.zip": "84cae2577468ff0b5386758bb386d31d",
    "Test.zip": "a489be0090465e01fb067795d24e6b47",
}

#: Class names in index order (mask value = index + 1; 0 is no-data).
LOVEDA_CLASSES: tuple[str, ...] = (
    "background",
    "building",
    "road",
    "water",
    "barren",
    "forest",
    "agriculture",
)

#: Display colours: the palette of the official LoveDA code (``COLOR_MAP``).
LOVEDA_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (255, 0, 0),
    (255, 255, 0),
    (0, 0, 255),
    (159, 129, 183),
    (0, 255, 0),
    (255, 195, 128),
)

_NO_DATA = 0
_SCENES = ("urban", "rural")
_DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
_HINT = (
    f"download Train.zip, Val.zip (and Test.zip) from {LOVEDA_ZENODO_URL} (see {LOVEDA_URL}) "
    "and run pointseg.data.loveda.prepare_loveda(ROOT, archives=FOLDER_WITH_THE_ZIPS)"
)


def loveda_class_map() -> ClassMap:
    """The LoveDA classes: mask values 1..7 -> indices 0..6, value 0 (no-data) ignored."""
    return class_map_from_dict(
        {
            "classes": [
                {"name": n, "values": [i + 1], "color": list(c)}
                for i, (n, c) in enumerate(zip(LOVEDA_CLASSES, LOVEDA_COLORS, strict=True))
            ],
            "ignore_values": [_NO_DATA, IGNORE_INDEX],
            "background": "background",
        },
        source="loveda",
    )


def _part_dir(root: Path, part: str) -> Path:
    """``root/Train``, or ``root/Train/Train`` when a zip was extracted into its own folder."""
    top = root / part
    nested = top / part
    if not any((top / s.capitalize()).is_dir() for s in _SCENES) and nested.is_dir():
        return nested
    return top


def _sort_key(path: Path) -> tuple[int, int | str]:
    return (0, int(path.stem)) if path.stem.isdigit() else (1, path.stem)


def _scan_scene(
    folder: Path, scene: str, *, masks: bool, require_masks: bool
) -> tuple[list[Record], list[str]]:
    """Records of one ``Part/Scene`` folder, and the names of images without a mask."""
    images = sorted(
        (
            p
            for p in (folder / "images_png").iterdir()
            if p.is_file() and p.suffix.lower() == ".png" and not p.name.startswith(".")
        ),
        key=_sort_key,
    )
    if not images:
        raise FileNotFoundError(
            f"{folder / 'images_png'} holds no .png images; the archive is incomplete. "
            f"To fix it, {_HINT}"
        )
    records: list[Record] = []
    no_mask: list[str] = []
    for image in images:
        name = f"{scene}_{image.stem}"
        mask: Path | None = None
        if masks:
            mask = folder / "masks_png" / image.name
            if not mask.is_file():
                no_mask.append(str(mask))
                mask = None
        records.append(Record(name, image, mask))
    if no_mask and require_masks:
        raise FileNotFoundError(
            f"{len(no_mask)} image(s) in {folder / 'images_png'} have no mask, e.g. "
            f"{no_mask[:3]} is missing; the archive is incomplete. To fix it, {_HINT} "
            "(or pass require_masks=False)"
        )
    return records, no_mask


def loveda(
    *,
    root: str | Path,
    split: str | None = None,
    split_file: str | Path | None = None,
    bands: list[int] | None = None,
    remap: str | Path | ClassRemap | None = None,
    seed: int = 0,
    fractions: Sequence[float] = _DEFAULT_FRACTIONS,
    group_pattern: str | None = None,
    classes: Any = None,
    require_masks: bool = True,
    scenes: Sequence[str] = _SCENES,
    val_fraction: float = 0.1,
    test_from: str = "val",
) -> RecordDataset:
    """LoveDA with its official parts mapped to train/val/test.

    Parameters
    ----------
    root : path
        Folder holding ``Train/``, ``Val/`` (and ``Test/``).
    split : {"train", "val", "test"} or None
        Which split to expose (None: all images of the chosen parts).
    split_file : path, optional
        Own split list replacing the official one (names like ``urban_1366``).
    bands : list of int, optional
        Image bands to keep (zero-based; the images are RGB).
    remap : path or ClassRemap, optional
        Mapping into another class scheme (:mod:`pointseg.data.remap`).
    seed : int
        Seed of the validation carve (``test_from="val"``).
    fractions : (train, val, test)
        Not used (the official parts are); accepted so every builder takes the same options.
    group_pattern : str, optional
        Regular expression naming groups of tiles kept together when carving validation
        (default: every tile on its own).
    classes : None
        The classes are fixed; must be None (use ``remap`` to translate them).
    require_masks : bool
        Raise when an image of ``Train``/``Val`` has no mask (else it gets none, with a
        warning). Must be False with ``test_from="test"`` (the test images have no masks).
    scenes : sequence of {"urban", "rural"}
        Which scenes to load.
    val_fraction : float
        Share of ``Train`` carved out as ``val`` when ``test_from="val"`` (0: no ``val``).
    test_from : {"val", "test"}
        ``"val"`` (default): official ``Val`` -> ``test`` and ``val`` carved from ``Train``,
        since the official test masks are not public. ``"test"``: ``Train`` -> ``train``,
        ``Val`` -> ``val``, unlabelled ``Test`` -> ``test``.

    Returns
    -------
    RecordDataset
        ``dataset[i]`` = ``{"image": (1024, 1024, 3) uint8, "mask": (1024, 1024) uint8 class
        indices with 255 = ignore (absent for official test images), "name": str,
        "georef": None}``.

    Raises
    ------
    FileNotFoundError
        Missing parts, scenes, images or masks (with the download instructions).
    ValueError
        Bad options.
    """
    if classes is not None:
        raise ValueError(
            f"loveda has fixed classes {list(LOVEDA_CLASSES)}; drop classes= and use remap= "
            "to translate them"
        )
    if test_from not in ("val", "test"):
        raise ValueError(
            f"test_from must be 'val' (official Val as test, val carved from Train) or 'test' "
            f"(the unlabelled official Test images), got {test_from!r}"
        )
    if test_from == "test" and require_masks:
        raise ValueError(
            "test_from='test' exposes the official LoveDA Test images, which have no masks "
            "(their labels are not public); pass require_masks=False, or use test_from='val' "
            "to evaluate on the official Val part"
        )
    if isinstance(scenes, str):
        scenes = [scenes]
    wanted = [str(s).lower() for s in scenes]
    if not wanted or any(s not in _SCENES for s in wanted) or len(set(wanted)) != len(wanted):
        raise ValueError(f"scenes must be a non-empty subset of {list(_SCENES)}, got {scenes!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if tuple(fractions) != _DEFAULT_FRACTIONS:
        logger.warning(
            "loveda uses the official Train/Val(/Test) parts; fractions=%s is ignored "
            "(pass split_file= for your own split)",
            tuple(fractions),
        )
    root = Path(root)
    parts = ("Train", "Val", "Test") if test_from == "test" else ("Train", "Val")
    folders: dict[tuple[str, str], Path] = {}
    missing: list[str] = []
    for part in parts:
        base = _part_dir(root, part)
        for scene in wanted:
            folder = base / scene.capitalize()
            folders[(part, scene)] = folder
            subdirs = ["images_png"] + (["masks_png"] if part != "Test" and require_masks else [])
            missing += [str(folder / d) for d in subdirs if not (folder / d).is_dir()]
    if missing:
        shown = ", ".join(str(Path(m).relative_to(root)) for m in missing[:4])
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise FileNotFoundError(
            f"LoveDA not found under {root}: missing {shown}{more}. To get it, {_HINT}"
        )
    records: list[Record] = []
    by_part: dict[str, list[str]] = {p: [] for p in parts}
    unlabelled: list[str] = []
    for (part, scene), folder in folders.items():
        recs, no_mask = _scan_scene(
            folder,
            scene,
            masks=part != "Test" and (folder / "masks_png").is_dir(),
            require_masks=require_masks and part != "Test",
        )
        if part != "Test":
            unlabelled += no_mask
            if not (folder / "masks_png").is_dir():
                unlabelled.append(str(folder / "masks_png"))
        records += recs
        by_part[part] += [r.name for r in recs]
    if unlabelled:
        logger.warning(
            "%d LoveDA image(s) or folders have no mask, e.g. %s", len(unlabelled), unlabelled[:3]
        )
    if test_from == "val":
        splits: dict[str, list[str]] = {"train": by_part["Train"], "test": by_part["Val"]}
        if val_fraction > 0:
            splits = carve_validation(
                splits, fraction=val_fraction, seed=seed, group_pattern=group_pattern
            )
    else:
        splits = {"train": by_part["Train"], "val": by_part["Val"], "test": by_part["Test"]}
    return RecordDataset(
        records,
        class_map=loveda_class_map(),
        root=root,
        split=split,
        splits=splits,
        split_file=split_file,
        seed=seed,
        group_pattern=group_pattern,
        bands=bands,
        remap=remap,
    )


def prepare_loveda(
    root: str | Path,
    *,
    archives: str | Path | Iterable[str | Path] | None = None,
    verify_checksum: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> Path:
    """Extract the official ``Train.zip``, ``Val.zip`` and (when present) ``Test.zip``.

    Parameters
    ----------
    root : path
        Dataset folder; gets ``Train/``, ``Val/`` (and ``Test/``).
    archives : path or iterable of paths, optional
        Folder holding the zips (default ``root``), or the zip files.
    verify_checksum : bool
        Check each zip's MD5 against :data:`LOVEDA_ARCHIVES` first.
    checksums : mapping, optional
        Archive name -> MD5 overriding the official ones (for mirrors or tests).

    Returns
    -------
    Path
        ``root``, ready for :func:`loveda`.

    Raises
    ------
    FileNotFoundError
        ``Train.zip`` or ``Val.zip`` is missing (with the download address).
    pointseg.data.archives.ChecksumError
        A zip's MD5 differs (incomplete download).
    ValueError
        A zip holds unsafe paths.

    Notes
    -----
    ``Test.zip`` is optional (only ``test_from="test"`` needs it). Extraction is safe and
    resumable: see :func:`pointseg.data.archives.extract_archive`.
    """
    root = Path(root)
    found = locate_archives(
        archives,
        root=root,
        required=["Train.zip", "Val.zip"],
        optional=["Test.zip"],
        hint=LOVEDA_ZENODO_URL,
    )
    if "Test.zip" not in found:
        logger.info("Test.zip not found; extracting Train and Val only")
    known = {**LOVEDA_ARCHIVES, **(checksums or {})}
    for name, path in found.items():
        extract_archive(
            path,
            root,
            md5=known[name] if verify_checksum else None,
            hint=f"{LOVEDA_ZENODO_URL} ({name})",
        )
    return root
