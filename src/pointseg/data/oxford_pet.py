"""Oxford-IIIT Pet with its trimaps: pet vs background segmentation (or the 37 breeds).

Official layout (https://www.robots.ox.ac.uk/~vgg/data/pets/, ``images.tar.gz`` and
``annotations.tar.gz`` extracted into one folder)::

    root/
      images/Abyssinian_100.jpg ...            7390 photos (and a few .mat files)
      annotations/trimaps/Abyssinian_100.png   1 = pet, 2 = background, 3 = border
      annotations/trainval.txt                 "Abyssinian_100 1 1 1": name, class id
      annotations/test.txt                     (1-37), species (1 cat, 2 dog), breed id

The dataset's images are the ones named in ``trainval.txt`` and ``test.txt`` (3680 + 3669);
other files in ``images/`` (``.mat`` files) and the macOS ``._*`` resource files in
``annotations/trimaps/`` are never read. Breed names come from the image names: cat breeds are
capitalised (``Abyssinian_100``), dog breeds are not (``american_bulldog_12``).

Some photos are not plain RGB JPEGs: PNG data under a ``.jpg`` name (``Abyssinian_5``,
``Egyptian_Mau_14``, ...), 8-bit GIFs (``Abyssinian_34``, ``Egyptian_Mau_139``, ...), files
with an alpha channel, grayscale or CMYK JPEGs, and JPEGs with stray bytes (``beagle_116``,
``chihuahua_121``). Every image is decoded by its content (not its suffix) and converted to
RGB, so samples always have 3 bands (the project's ``read_image`` would give grayscale JPEGs
one band, hence :class:`OxfordPetDataset`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile

from pointseg.constants import IGNORE_INDEX
from pointseg.data.archives import extract_archive, locate_archives
from pointseg.data.base import Record, RecordDataset, carve_validation
from pointseg.data.classes import ClassMap, class_map_from_dict
from pointseg.data.remap import ClassRemap
from pointseg.io.raster import read_mask

__all__ = [
    "OXFORD_PET_ARCHIVES",
    "OXFORD_PET_URL",
    "OxfordPetDataset",
    "oxford_pet",
    "oxford_pet_class_map",
    "prepare_oxford_pet",
    "read_pet_list",
]

logger = logging.getLogger(__name__)

#: Where the dataset is downloaded from.
OXFORD_PET_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"

#: The official archives and their MD5 (as published in torchvision's OxfordIIITPet).
OXFORD_PET_ARCHIVES: dict[str, str] = {
    "images.tar.gz": "5c4f3ee8e5d25df40f4fd59a7f44e54c",
    "annotations.tar.gz": "95a8c909bbe2e81eed6a22bccdf3f68f",
}

_TRIMAP_PET, _TRIMAP_BACKGROUND, _TRIMAP_BORDER = 1, 2, 3
_TRUNCATED_LOCK = threading.Lock()
_DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
_PET_COLOR = (230, 159, 0)
_BACKGROUND_COLOR = (40, 40, 40)
_BORDER_COLOR = (255, 255, 255)
_HINT = (
    f"download images.tar.gz and annotations.tar.gz from {OXFORD_PET_URL} and run "
    "pointseg.data.oxford_pet.prepare_oxford_pet(ROOT, archives=FOLDER_WITH_THE_ARCHIVES)"
)


def oxford_pet_class_map(
    *, border: str = "ignore", breeds: Sequence[str] | None = None
) -> ClassMap:
    """The classes of the Oxford-IIIT Pet trimaps.

    Parameters
    ----------
    border : {"ignore", "class"}
        Trimap value 3 (the uncertain band around the pet) becomes the ignore value 255, or a
        class ``border``.
    breeds : sequence of str, optional
        Breed names: the classes are then the breeds, ``background`` (and ``border``) instead
        of ``pet``, ``background`` (and ``border``). Their mask values are the class indices
        (breed masks are made per image, see :class:`OxfordPetDataset`).

    Returns
    -------
    ClassMap
        Binary: ``pet`` (trimap 1), ``background`` (trimap 2)[, ``border`` (trimap 3)].
    """
    if border not in ("ignore", "class"):
        raise ValueError(f"border must be 'ignore' or 'class', got {border!r}")
    if breeds is None:
        classes: list[dict[str, Any]] = [
            {"name": "pet", "values": [_TRIMAP_PET], "color": list(_PET_COLOR)},
            {
                "name": "background",
                "values": [_TRIMAP_BACKGROUND],
                "color": list(_BACKGROUND_COLOR),
            },
        ]
        ignore = [IGNORE_INDEX]
        if border == "class":
            classes.append(
                {"name": "border", "values": [_TRIMAP_BORDER], "color": list(_BORDER_COLOR)}
            )
        else:
            ignore.append(_TRIMAP_BORDER)
        return class_map_from_dict(
            {"classes": classes, "ignore_values": ignore, "background": "background"},
            source="oxford_pet trimaps",
        )
    names = [*breeds, "background"] + (["border"] if border == "class" else [])
    colors = [*_breed_colors(len(breeds)), _BACKGROUND_COLOR, _BORDER_COLOR]
    return class_map_from_dict(
        {
            "classes": [
                {"name": n, "values": [i], "color": list(colors[i])} for i, n in enumerate(names)
            ],
            "ignore_values": [IGNORE_INDEX],
            "background": "background",
        },
        source="oxford_pet breeds",
    )


def _breed_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct, saturated display colours (evenly spaced hues)."""
    import colorsys

    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.75, 0.95 if i % 2 else 0.75)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return out


def read_pet_list(path: str | Path) -> list[tuple[str, int, int, int]]:
    """Read an Oxford-IIIT Pet list file (``trainval.txt``, ``test.txt`` or ``list.txt``).

    Returns
    -------
    list of (name, class_id, species, breed_id)
        One entry per line, in file order; ``#`` comment lines are skipped.

    Raises
    ------
    ValueError
        Naming the file and line that is not ``NAME CLASS_ID SPECIES BREED_ID``.
    """
    path = Path(path)
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 4:
                raise ValueError
            name, class_id, species, breed_id = parts[0], *(int(p) for p in parts[1:])
        except ValueError:
            raise ValueError(
                f"{path} line {lineno}: expected 'NAME CLASS_ID SPECIES BREED_ID' (e.g. "
                f"'Abyssinian_100 1 1 1'), got {line!r}; the file is not an official list file"
            ) from None
        out.append((name, class_id, species, breed_id))
    return out


def _breed_name(image_name: str) -> str:
    """The breed of an image: ``Abyssinian_100`` -> ``Abyssinian``, ``pug_3`` -> ``pug``."""
    return image_name.rsplit("_", 1)[0]


def _resolve_root(root: Path) -> Path:
    """``root``, or ``root/oxford-iiit-pet`` (torchvision's layout) when that holds the data."""
    nested = root / "oxford-iiit-pet"
    if not (root / "annotations").is_dir() and (nested / "annotations").is_dir():
        return nested
    return root


def _read_rgb(path: Path) -> np.ndarray:
    """Decode any image (by content, whatever its suffix) into (H, W, 3) uint8 RGB.

    A truncated JPEG is decoded as far as it goes (the rest grey), with a warning.
    """
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        try:
            with Image.open(path) as im:
                return np.array(im.convert("RGB"))
        except OSError as exc:
            if "truncated" not in str(exc):
                raise
        logger.warning("image %s is truncated; its missing part is filled with grey", path)
        with _TRUNCATED_LOCK:
            before = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = True
            try:
                with Image.open(path) as im:
                    return np.array(im.convert("RGB"))
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = before
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc


class OxfordPetDataset(RecordDataset):
    """Oxford-IIIT Pet images (always RGB) with trimap masks; built by :func:`oxford_pet`.

    Parameters
    ----------
    records : sequence of Record
        Images and trimaps.
    trimap_class_map : ClassMap
        How the trimap files are read (:func:`oxford_pet_class_map` without breeds).
    pet_classes : mapping str -> int, optional
        Per image, the class index its pet pixels get (breed classes); None keeps ``pet``.
    **kwargs
        Passed to :class:`~pointseg.data.base.RecordDataset` (``class_map`` is the breed
        map when ``pet_classes`` is given, else ``trimap_class_map``).

    Notes
    -----
    ``dataset[i]`` is ``{"image": (H, W, 3) uint8 RGB, "mask": (H, W) uint8 class indices
    with 255 = ignore, "name": str, "georef": None}``. ``bands`` selects among the three RGB
    bands after grayscale/CMYK/RGBA photos are converted to RGB.
    """

    def __init__(
        self,
        records: Sequence[Record],
        *,
        trimap_class_map: ClassMap,
        pet_classes: Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(records, **kwargs)
        bad = [b for b in (self.bands or []) if not 0 <= b < 3]
        if bad:
            raise ValueError(
                f"Oxford-IIIT Pet images are RGB (3 bands); band indices {bad} are out of range "
                "(use 0, 1, 2)"
            )
        self.trimap_class_map = trimap_class_map
        self.pet_classes = dict(pet_classes) if pet_classes is not None else None
        self._lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        if self.pet_classes is not None:  # trimap index -> breed-scheme index; [0] set per image
            names = self.source_class_map.names
            n_breeds = len(names) - 1 - ("border" in names)
            for i in range(1, trimap_class_map.n_classes):
                self._lut[i] = n_breeds + i - 1

    def load_image(self, record: Record) -> tuple[np.ndarray, Any, np.ndarray | None]:
        """The photo as (H, W, 3) uint8 RGB whatever its file holds, then ``bands``.

        The conversion is by design (pet photos, not aerial bands): grayscale, CMYK and RGBA
        photos all give RGB, with no band-count check and no validity mask.
        """
        image = _read_rgb(record.image)
        if self.bands is not None:
            image = np.ascontiguousarray(image[..., self.bands])
        return image, None, None

    def check_bands(self) -> int:
        """The samples' band count: the photos are always read as RGB (no header check)."""
        return len(self.bands) if self.bands is not None else 3

    def read_mask(self, record: Record) -> np.ndarray:
        """The trimap as class indices; in the breed scheme pet pixels get the image's breed."""
        if record.mask is None:
            raise ValueError(f"image {record.image} has no trimap")
        mask = read_mask(record.mask, self.trimap_class_map)
        if self.pet_classes is not None:
            lut = self._lut.copy()
            lut[0] = self.pet_classes[record.name]
            mask = lut[mask]
        return mask


def _check_layout(root: Path, *, require_masks: bool) -> None:
    needed = [
        root / "images",
        root / "annotations" / "trainval.txt",
        root / "annotations" / "test.txt",
    ]
    if require_masks:
        needed.append(root / "annotations" / "trimaps")
    missing = [p for p in needed if not p.exists()]
    if missing:
        shown = ", ".join(str(p.relative_to(root)) for p in missing)
        raise FileNotFoundError(
            f"Oxford-IIIT Pet not found under {root}: missing {shown}. To get it, {_HINT}"
        )


def _breed_table(
    entries: Iterable[tuple[str, int, int, int]], where: str
) -> tuple[list[str], dict[str, int]]:
    """Breed names ordered by class id, and each image's index into them."""
    by_id: dict[int, str] = {}
    for name, class_id, _, _ in entries:
        breed = _breed_name(name)
        if by_id.setdefault(class_id, breed) != breed:
            raise ValueError(
                f"{where}: class id {class_id} is given to both {by_id[class_id]!r} and "
                f"{breed!r} images; the list files are inconsistent (re-extract "
                "annotations.tar.gz)"
            )
    ids = sorted(by_id)
    names = [by_id[i] for i in ids]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{where}: breeds {dupes} have more than one class id")
    index = {class_id: k for k, class_id in enumerate(ids)}
    return names, {name: index[class_id] for name, class_id, _, _ in entries}


def oxford_pet(
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
    border: str = "ignore",
    val_fraction: float = 0.1,
    binary: bool = True,
) -> OxfordPetDataset:
    """Oxford-IIIT Pet with trimap masks and the official trainval/test split.

    Parameters
    ----------
    root : path
        Folder holding ``images/`` and ``annotations/`` (or ``oxford-iiit-pet/`` with them).
    split : {"train", "val", "test"} or None
        ``train``/``val`` are the official ``trainval.txt`` list with a seeded
        ``val_fraction`` carved out as ``val``; ``test`` is ``test.txt``; None: all of them.
    split_file : path, optional
        Own split list that replaces the official one (names are image stems).
    bands : list of int, optional
        RGB bands to keep (zero-based).
    remap : path or ClassRemap, optional
        Mapping into another class scheme (:mod:`pointseg.data.remap`).
    seed : int
        Seed of the validation carve.
    fractions : (train, val, test)
        Not used (the official split is); accepted so every builder takes the same options.
    group_pattern : str, optional
        Keeps groups together when carving validation (e.g. ``r"^(.*)_\\d+$"`` per breed).
    classes : None
        The classes are fixed; must be None (use ``remap`` to translate them).
    require_masks : bool
        Raise when a listed image has no trimap (else it gets no mask, with a warning).
    border : {"ignore", "class"}
        Trimap value 3 (uncertain pet outline) -> ignore (255), or a third class ``border``.
    val_fraction : float
        Share of ``trainval`` moved to ``val`` (0 disables the carve).
    binary : bool
        True (the paper's setting): classes ``pet``, ``background``. False: one class per
        breed (37, named like the files, ordered by class id), then ``background``; each
        image's pet pixels get its breed's class.

    Returns
    -------
    OxfordPetDataset
        ``dataset[i]`` = ``{"image": (H, W, 3) uint8, "mask": (H, W) uint8 with 255 = ignore,
        "name": str, "georef": None}``.

    Raises
    ------
    FileNotFoundError
        Missing folders, list files, images or trimaps (with the download instructions).
    ValueError
        Bad options or malformed list files.
    """
    if classes is not None:
        raise ValueError(
            "oxford_pet has fixed classes (pet, background[, border], or the breeds with "
            "binary=False); drop classes= and use remap= to translate them"
        )
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if tuple(fractions) != _DEFAULT_FRACTIONS:
        logger.warning(
            "oxford_pet uses the official trainval/test split; fractions=%s is ignored "
            "(pass split_file= for your own split)",
            tuple(fractions),
        )
    root = _resolve_root(Path(root))
    _check_layout(root, require_masks=require_masks)
    ann = root / "annotations"
    lists = {k: read_pet_list(ann / f"{k}.txt") for k in ("trainval", "test")}
    entries = lists["trainval"] + lists["test"]
    seen: dict[str, str] = {}
    for part, rows in lists.items():
        for name, *_ in rows:
            if name in seen:
                raise ValueError(
                    f"{ann}: {name!r} is listed in {seen[name]}.txt and {part}.txt; "
                    "re-extract annotations.tar.gz"
                )
            seen[name] = part
    images_dir, trimaps_dir = root / "images", ann / "trimaps"
    records: list[Record] = []
    no_image: list[str] = []
    no_mask: list[str] = []
    for name, *_ in entries:
        image = images_dir / f"{name}.jpg"
        if not image.is_file():
            no_image.append(name)
            continue
        mask: Path | None = trimaps_dir / f"{name}.png"
        if not mask.is_file():
            no_mask.append(name)
            mask = None
        records.append(Record(name, image, mask))
    if no_image:
        raise FileNotFoundError(
            f"{len(no_image)} image(s) listed in {ann}/trainval.txt or test.txt are missing "
            f"from {images_dir}, e.g. {[f'{n}.jpg' for n in no_image[:3]]}; the images archive "
            f"is incomplete. To fix it, {_HINT}"
        )
    if no_mask:
        if require_masks:
            raise FileNotFoundError(
                f"{len(no_mask)} image(s) have no trimap in {trimaps_dir}, e.g. "
                f"{[f'{n}.png' for n in no_mask[:3]]}; the annotations archive is incomplete. "
                f"To fix it, {_HINT} (or pass require_masks=False)"
            )
        logger.warning("%d image(s) have no trimap, e.g. %s", len(no_mask), no_mask[:3])
    splits: dict[str, list[str]] = {
        "train": [n for n, *_ in lists["trainval"]],
        "test": [n for n, *_ in lists["test"]],
    }
    if val_fraction > 0:
        splits = carve_validation(
            splits, fraction=val_fraction, seed=seed, group_pattern=group_pattern
        )
    trimap_map = oxford_pet_class_map(border=border)
    pet_classes = None
    class_map = trimap_map
    if not binary:
        breeds, pet_classes = _breed_table(entries, where=str(ann))
        class_map = oxford_pet_class_map(border=border, breeds=breeds)
    return OxfordPetDataset(
        records,
        trimap_class_map=trimap_map,
        pet_classes=pet_classes,
        class_map=class_map,
        root=root,
        split=split,
        splits=splits,
        split_file=split_file,
        seed=seed,
        group_pattern=group_pattern,
        bands=bands,
        remap=remap,
    )


def prepare_oxford_pet(
    root: str | Path,
    *,
    archives: str | Path | Iterable[str | Path] | None = None,
    verify_checksum: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> Path:
    """Extract the official ``images.tar.gz`` and ``annotations.tar.gz`` into ``root``.

    Parameters
    ----------
    root : path
        Dataset folder; gets ``images/`` and ``annotations/``.
    archives : path or iterable of paths, optional
        Folder holding the two archives (default ``root``), or the two files.
    verify_checksum : bool
        Check each archive's MD5 against :data:`OXFORD_PET_ARCHIVES` first.
    checksums : mapping, optional
        Archive name -> MD5 overriding the official ones (for mirrors or tests).

    Returns
    -------
    Path
        ``root``, ready for :func:`oxford_pet`.

    Raises
    ------
    FileNotFoundError
        An archive is missing (with the download address).
    pointseg.data.archives.ChecksumError
        An archive's MD5 differs (incomplete download).
    ValueError
        An archive holds unsafe paths.

    Notes
    -----
    Extraction is safe and resumable: see :func:`pointseg.data.archives.extract_archive`.
    """
    root = Path(root)
    found = locate_archives(
        archives, root=root, required=list(OXFORD_PET_ARCHIVES), hint=OXFORD_PET_URL
    )
    known = {**OXFORD_PET_ARCHIVES, **(checksums or {})}
    for name, path in found.items():
        extract_archive(
            path,
            root,
            md5=known[name] if verify_checksum else None,
            hint=f"{OXFORD_PET_URL} ({name})",
        )
    return root
