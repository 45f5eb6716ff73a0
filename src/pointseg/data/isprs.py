"""ISPRS 2D semantic labeling benchmarks: Potsdam and Vaihingen, tiled with the official split.

Both are requested at https://www.isprs.org/education/benchmarks/UrbanSemLab/default.aspx.
Labels are colour-coded RGB rasters with six classes:

=====================  ===============
impervious surfaces    white (255, 255, 255)
building               blue (0, 0, 255)
low vegetation         cyan (0, 255, 255)
tree                   green (0, 255, 0)
car                    yellow (255, 255, 0)
clutter/background     red (255, 0, 0)
=====================  ===============

The "eroded" labels (``*_noBoundary.tif``) paint object boundaries black, which is read as
ignore. ``clutter="ignore"`` turns clutter into ignore too (the common 5-class protocol);
with ``clutter="class"`` clutter is the ``background`` class excluded from "mIoU without
background".

Potsdam (38 tiles of 6000x6000 px at 5 cm, ids ``{a}_{b}`` such as ``2_10``)::

    2_Ortho_RGB/top_potsdam_{a}_{b}_RGB.tif        3 bands R, G, B
    3_Ortho_IRRG/top_potsdam_{a}_{b}_IRRG.tif      3 bands IR, R, G
    4_Ortho_RGBIR/top_potsdam_{a}_{b}_RGBIR.tif    4 bands R, G, B, IR
    5_Labels_all/top_potsdam_{a}_{b}_label.tif                      all 38 tiles
    5_Labels_all_noBoundary/top_potsdam_{a}_{b}_label_noBoundary.tif  eroded
    5_Labels_for_participants[_no_Boundary]/...                     the 24 training tiles

Vaihingen (33 tiles of about 2000x2500 px at 9 cm, false-colour IRRG)::

    top/top_mosaic_09cm_area{N}.tif                 (ISPRS_semantic_labeling_Vaihingen.zip)
    gts_for_participants/top_mosaic_09cm_area{N}.tif    the 16 training tiles
    top_mosaic_09cm_area{N}.tif                     (..._Vaihingen_ground_truth_COMPLETE.zip)
    top_mosaic_09cm_area{N}_noBoundary.tif          (..._ground_truth_eroded_COMPLETE.zip)

Files are found anywhere below ``root`` (the zips' folder layouts differ between copies); a
Vaihingen image is a ``top_mosaic_09cm_area{N}.tif`` inside a folder named ``top``, any other
file of that name is a label. When a label exists twice, the ``*for_participants*`` copy wins
(``top_potsdam_4_12_label.tif`` in ``5_Labels_all.zip`` is known to be the label drawn over
the image; the participants' copy is correct). Known zips found below ``root`` are extracted
next to themselves when files are missing.

Splits: the official benchmark split (Potsdam 24 train / 14 test tiles, Vaihingen 16 / 17,
as in torchgeo and mmsegmentation); a validation part is carved from train by whole source
tiles (:func:`pointseg.data.base.carve_validation`), so the tiles of one area never straddle
train and val.

Tiling: ``tile_size`` squares with ``edge="shift"`` (:mod:`pointseg.data.tiling`): edge tiles
are moved inwards to end at the border, so every tile is full-size (the trainer resizes
samples to a square, which would distort smaller edge tiles) and every pixel is covered; the
last row and column overlap their neighbours (for 6000 px and 512 px tiles: 12 tiles per row,
the last overlapping by 144 px). Padding was not used: it would invent pixels. Tiles are named
``{source}_{k}`` (``top_potsdam_2_10_7``, ``top_mosaic_09cm_area1_3``); the manifests in
``tiles_dir/manifests`` keep each tile's window in its source for stitching predictions back.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointseg.data.archives import extract_archive
from pointseg.data.base import RecordDataset, carve_validation
from pointseg.data.classes import ClassMap, class_map_from_dict
from pointseg.data.remap import ClassRemap
from pointseg.data.tiling import is_tiled, tile_rasters, tile_records

__all__ = [
    "ISPRS_CLASSES",
    "ISPRS_URL",
    "POTSDAM_SPLITS",
    "POTSDAM_VARIANTS",
    "VAIHINGEN_SPLITS",
    "isprs_class_map",
    "potsdam",
    "vaihingen",
]

logger = logging.getLogger(__name__)

#: Where the ISPRS benchmark data are requested.
ISPRS_URL = "https://www.isprs.org/education/benchmarks/UrbanSemLab/default.aspx"

#: Class names and label colours, in class-index order.
ISPRS_CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("impervious_surfaces", (255, 255, 255)),
    ("building", (0, 0, 255)),
    ("low_vegetation", (0, 255, 255)),
    ("tree", (0, 255, 0)),
    ("car", (255, 255, 0)),
    ("clutter", (255, 0, 0)),
)
_BOUNDARY = (0, 0, 0)
_CLUTTER_MODES = ("class", "ignore")

#: Official tile ids of the 2D semantic labeling contest (torchgeo ``Potsdam2D``,
#: mmsegmentation ``tools/dataset_converters/potsdam.py``).
POTSDAM_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "4_10", "4_11", "4_12", "5_10", "5_11",
        "5_12", "6_7", "6_8", "6_9", "6_10", "6_11", "6_12", "7_7", "7_8", "7_9", "7_10", "7_11",
        "7_12",
    ),
    "test": (
        "2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14", "5_15", "6_13",
        "6_14", "6_15", "7_13",
    ),
}  # fmt: skip

#: Official area numbers (torchgeo ``Vaihingen2D``, mmsegmentation ``vaihingen.py``).
VAIHINGEN_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "1", "3", "5", "7", "11", "13", "15", "17", "21", "23", "26", "28", "30", "32", "34", "37",
    ),
    "test": (
        "2", "4", "6", "8", "10", "12", "14", "16", "20", "22", "24", "27", "29", "31", "33", "35",
        "38",
    ),
}  # fmt: skip

#: Potsdam image variants: folder (and zip) name and band order.
POTSDAM_VARIANTS: dict[str, tuple[str, str]] = {
    "RGB": ("2_Ortho_RGB", "R, G, B"),
    "IRRG": ("3_Ortho_IRRG", "IR, R, G"),
    "RGBIR": ("4_Ortho_RGBIR", "R, G, B, IR"),
}

_TILE_GROUP = r"^(.*)_\d+$"
_TIF = r"\.tiff?"


def isprs_class_map(*, clutter: str = "class", eroded: bool = False) -> ClassMap:
    """The ISPRS classes as a colour-coded class map.

    Parameters
    ----------
    clutter : {"class", "ignore"}
        Keep clutter/background (red) as a sixth class (the ``background`` class), or read it
        as ignore (five classes).
    eroded : bool
        Read black (the eroded boundaries of ``*_noBoundary`` labels) as ignore.
    """
    if clutter not in _CLUTTER_MODES:
        raise ValueError(f"clutter must be one of {list(_CLUTTER_MODES)}, got {clutter!r}")
    entries = [
        {"name": name, "rgb": [list(rgb)], "color": list(rgb)}
        for name, rgb in ISPRS_CLASSES
        if clutter == "class" or name != "clutter"
    ]
    ignore_rgb = [] if clutter == "class" else [list(ISPRS_CLASSES[-1][1])]
    if eroded:
        ignore_rgb.append(list(_BOUNDARY))
    data: dict[str, object] = {"classes": entries, "ignore_rgb": ignore_rgb}
    if clutter == "class":
        data["background"] = "clutter"
    label = f"ISPRS classes (clutter={clutter}{', eroded' if eroded else ''})"
    return class_map_from_dict(data, source=label)


@dataclass(frozen=True)
class _Spec:
    title: str
    splits: dict[str, tuple[str, ...]]
    source_stem: Callable[[str], str]
    match_image: Callable[[Path], str | None]
    match_label: Callable[[Path], str | None]
    image_pattern: str
    label_pattern: str
    image_zips: tuple[str, ...]
    label_zips: tuple[str, ...]
    label_hint: str
    tiles_name: str


def _walk(root: Path, skip: Sequence[Path]) -> Iterator[Path]:
    """Files below ``root`` (following folder links, each real folder once), minus ``skip``."""
    seen = {p.resolve() for p in skip}
    seen.add(root.resolve())
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            real = (here / d).resolve()
            if not d.startswith(".") and real not in seen:
                seen.add(real)
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if not name.startswith("."):
                yield here / name


def _prefer(path: Path) -> tuple[int, str]:
    return (0 if "for_participants" in path.parent.name.lower() else 1, str(path))


def _scan(spec: _Spec, root: Path, skip: Sequence[Path]) -> tuple[dict[str, Path], dict[str, Path]]:
    images: dict[str, list[Path]] = {}
    labels: dict[str, list[Path]] = {}
    for path in _walk(root, skip):
        key = spec.match_image(path)
        if key is not None:
            images.setdefault(key, []).append(path)
            continue
        key = spec.match_label(path)
        if key is not None:
            labels.setdefault(key, []).append(path)
    out = []
    for found, kind in ((images, "image"), (labels, "label")):
        chosen = {}
        for key, paths in found.items():
            paths = sorted(paths, key=_prefer)
            if len(paths) > 1:
                logger.info(
                    "%s: %d %s files for tile %s; using %s",
                    spec.title,
                    len(paths),
                    kind,
                    key,
                    paths[0],
                )
            chosen[key] = paths[0]
        out.append(chosen)
    return out[0], out[1]


def _short(ids: Sequence[str], n: int = 6) -> str:
    shown = ", ".join(ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _extract_known_zips(
    spec: _Spec, root: Path, skip: Sequence[Path], names: Sequence[str], progress: bool
) -> bool:
    wanted = {n.lower() for n in names}
    zips = [p for p in _walk(root, skip) if p.name.lower() in wanted]
    for z in zips:
        logger.info("%s: extracting %s", spec.title, z)
        extract_archive(z, z.parent / z.stem, hint=ISPRS_URL)
    return bool(zips)


def _check_fractions(fractions: Sequence[float]) -> float:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split fractions must be three non-negative shares summing to 1, got {fractions}"
        )
    train_val = fractions[0] + fractions[1]
    share = fractions[1] / train_val if train_val > 0 else 0.0
    if share >= 1:
        raise ValueError(
            f"fractions {tuple(fractions)} give no training share; the official training tiles "
            "are split into train and val by fractions[0] : fractions[1]"
        )
    return share


def _mask_checker(spec: _Spec, eroded: bool) -> Callable[[np.ndarray, str], object]:
    strict = isprs_class_map(clutter="class", eroded=eroded)

    def check(mask: np.ndarray, where: str) -> object:
        try:
            return strict.encode(mask, where=where)
        except ValueError as exc:
            raise ValueError(
                f"{exc}. ISPRS labels hold only the six legend colours"
                f"{' and black boundaries' if eroded else ''}; this label is damaged or is not "
                f"an ISPRS {'eroded ' if eroded else ''}label. {spec.label_hint}"
            ) from None

    return check


def _isprs(
    spec: _Spec,
    *,
    root: str | Path,
    split: str | None,
    split_file: str | Path | None,
    bands: list[int] | None,
    remap: str | Path | ClassRemap | None,
    seed: int,
    fractions: Sequence[float],
    group_pattern: str | None,
    classes: object,
    require_masks: bool,
    tiles_dir: str | Path | None,
    prepare: bool,
    progress: bool,
    tile_size: int,
    eroded: bool,
    clutter: str,
    keep_georef: bool,
) -> RecordDataset:
    if classes is not None:
        raise ValueError(
            f"{spec.title} has fixed classes; use remap= to change them and clutter='class' or "
            f"'ignore' for the clutter class (got classes={classes!r})"
        )
    if clutter not in _CLUTTER_MODES:
        raise ValueError(f"clutter must be one of {list(_CLUTTER_MODES)}, got {clutter!r}")
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 16:
        raise ValueError(f"tile_size must be an integer >= 16, got {tile_size!r}")
    val_share = _check_fractions(fractions)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{spec.title} folder {root} does not exist; request the data at {ISPRS_URL} and "
            f"unzip {', '.join(spec.image_zips + spec.label_zips[:1])} into it"
        )
    tiles = Path(tiles_dir) if tiles_dir is not None else root / "tiles" / spec.tiles_name
    skip = [root / "tiles", tiles]
    ids = list(spec.splits["train"]) + list(spec.splits["test"])

    images, labels = _scan(spec, root, skip)

    def lacking() -> tuple[list[str], list[str]]:
        return [i for i in ids if i not in images], [i for i in ids if i not in labels]

    no_image, no_label = lacking()
    if prepare and (no_image or (no_label and require_masks)):
        zips = (spec.image_zips if no_image else ()) + (spec.label_zips if no_label else ())
        if _extract_known_zips(spec, root, skip, zips, progress):
            images, labels = _scan(spec, root, skip)
            no_image, no_label = lacking()
    problems = []
    if no_image:
        problems.append(
            f"no image for {len(no_image)} of {len(ids)} tiles ({_short(no_image)}; expected "
            f"{spec.image_pattern})"
        )
    if no_label and require_masks:
        test_only = set(no_label) <= set(spec.splits["test"])
        problems.append(
            f"no label for {len(no_label)} tiles ({_short(no_label)}; expected "
            f"{spec.label_pattern})"
            + (
                "; pass require_masks=False to use the test tiles without labels"
                if test_only
                else ""
            )
        )
    if problems:
        raise FileNotFoundError(
            f"{spec.title} is incomplete under {root}: {'; '.join(problems)}. Request the data "
            f"at {ISPRS_URL}, then unzip {', '.join(spec.image_zips + spec.label_zips)} anywhere "
            f"under {root} (sub-folders are searched) or leave the zips there (prepare=True "
            "extracts them)"
        )
    if no_label:
        logger.warning(
            "%s: %d tile(s) have no label and get no mask: %s", spec.title, len(no_label), no_label
        )

    sources = [(spec.source_stem(i), images[i], labels.get(i)) for i in ids]
    options: dict[str, object] = {
        "size": tile_size,
        "stride": tile_size,
        "edge": "shift",
        "name_format": "{stem}_{k}",
        "keep_georef": keep_georef,
    }
    pending = [
        stem
        for stem, img, msk in sources
        if not is_tiled(img, tiles, mask=msk, stem=stem, **options)  # type: ignore[arg-type]
    ]
    if pending and not prepare:
        raise FileNotFoundError(
            f"{len(pending)} of {len(sources)} {spec.title} tiles under {root} are not cut into "
            f"{tile_size} px tiles in {tiles} (e.g. {pending[:3]}); pass prepare=True"
        )
    if pending:
        tile_rasters(
            sources,
            tiles,
            check_mask=_mask_checker(spec, eroded),
            progress=progress,
            **options,  # type: ignore[arg-type]
        )
    records = tile_records(tiles, [stem for stem, _, _ in sources])
    source_of = {spec.source_stem(i): part for part in ("train", "test") for i in spec.splits[part]}
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for r in records:
        splits[source_of[re.sub(_TILE_GROUP, r"\1", r.name)]].append(r.name)
    if val_share > 0:
        splits = carve_validation(
            splits, fraction=val_share, seed=seed, group_pattern=group_pattern or _TILE_GROUP
        )
    return RecordDataset(
        records,
        class_map=isprs_class_map(clutter=clutter, eroded=eroded),
        root=root,
        split=split,
        splits=splits,
        split_file=split_file,
        fractions=fractions,
        seed=seed,
        group_pattern=group_pattern or _TILE_GROUP,
        bands=bands,
        remap=remap,
    )


def _potsdam_spec(variant: str, eroded: bool, tile_size: int) -> _Spec:
    if variant not in POTSDAM_VARIANTS:
        raise ValueError(
            f"unknown Potsdam variant {variant!r}; use one of {list(POTSDAM_VARIANTS)} "
            "(RGB: 2_Ortho_RGB, IRRG: 3_Ortho_IRRG, RGBIR: 4_Ortho_RGBIR)"
        )
    folder = POTSDAM_VARIANTS[variant][0]
    image_re = re.compile(rf"top_potsdam_(\d+)_(\d+)_{variant}{_TIF}", re.IGNORECASE)
    suffix = "_label_noBoundary" if eroded else "_label"
    label_re = re.compile(rf"top_potsdam_(\d+)_(\d+){suffix}{_TIF}", re.IGNORECASE)

    def match(rx: re.Pattern[str]) -> Callable[[Path], str | None]:
        def f(path: Path) -> str | None:
            m = rx.fullmatch(path.name)
            return f"{int(m.group(1))}_{int(m.group(2))}" if m else None

        return f

    label_zips = (
        ("5_Labels_for_participants_no_Boundary.zip", "5_Labels_all_noBoundary.zip")
        if eroded
        else ("5_Labels_for_participants.zip", "5_Labels_all.zip")
    )
    return _Spec(
        title="ISPRS Potsdam",
        splits=POTSDAM_SPLITS,
        source_stem=lambda i: f"top_potsdam_{i}",
        match_image=match(image_re),
        match_label=match(label_re),
        image_pattern=f"top_potsdam_{{a}}_{{b}}_{variant}.tif from {folder}.zip",
        label_pattern=(
            f"top_potsdam_{{a}}_{{b}}{suffix}.tif from {label_zips[1]} (all 38 tiles) or "
            f"{label_zips[0]} (the 24 training tiles)"
        ),
        image_zips=(f"{folder}.zip",),
        label_zips=label_zips,
        label_hint=(
            "top_potsdam_4_12_label.tif in 5_Labels_all.zip is known to be the label drawn over "
            "the image (torchgeo issue #1727): use the copy from 5_Labels_for_participants.zip"
        ),
        tiles_name=f"potsdam_{variant.lower()}_{tile_size}{'_eroded' if eroded else ''}",
    )


def _vaihingen_spec(eroded: bool, tile_size: int) -> _Spec:
    area_re = re.compile(rf"top_mosaic_09cm_area(\d+){_TIF}", re.IGNORECASE)
    eroded_re = re.compile(rf"top_mosaic_09cm_area(\d+)_noBoundary{_TIF}", re.IGNORECASE)

    def match_image(path: Path) -> str | None:
        m = area_re.fullmatch(path.name)
        return str(int(m.group(1))) if m and path.parent.name.lower() == "top" else None

    def match_label(path: Path) -> str | None:
        m = (eroded_re if eroded else area_re).fullmatch(path.name)
        if m is None or (not eroded and path.parent.name.lower() == "top"):
            return None
        return str(int(m.group(1)))

    label_zips = (
        ("ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip",)
        if eroded
        else ("ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip",)
    )
    name = "top_mosaic_09cm_area{N}" + ("_noBoundary" if eroded else "")
    return _Spec(
        title="ISPRS Vaihingen",
        splits=VAIHINGEN_SPLITS,
        source_stem=lambda i: f"top_mosaic_09cm_area{i}",
        match_image=match_image,
        match_label=match_label,
        image_pattern=(
            "top/top_mosaic_09cm_area{N}.tif from ISPRS_semantic_labeling_Vaihingen.zip"
        ),
        label_pattern=(
            f"{name}.tif outside top/, from {label_zips[0]} (all 33 tiles)"
            + ("" if eroded else " or gts_for_participants/ (the 16 training tiles)")
        ),
        image_zips=("ISPRS_semantic_labeling_Vaihingen.zip",),
        label_zips=label_zips,
        label_hint="Replace it with the file from the official zip.",
        tiles_name=f"vaihingen_irrg_{tile_size}{'_eroded' if eroded else ''}",
    )


def potsdam(
    *,
    root: str | Path,
    split: str | None = None,
    split_file: str | Path | None = None,
    bands: list[int] | None = None,
    remap: str | Path | ClassRemap | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    group_pattern: str | None = None,
    classes: object = None,
    require_masks: bool = True,
    tiles_dir: str | Path | None = None,
    prepare: bool = True,
    progress: bool = False,
    tile_size: int = 512,
    variant: str = "RGB",
    eroded: bool = False,
    clutter: str = "class",
    keep_georef: bool = False,
) -> RecordDataset:
    """ISPRS Potsdam cut into ``tile_size`` tiles, with the official train/test split.

    Parameters
    ----------
    root : path
        Folder holding the extracted release (or its zips); searched recursively.
    split : {"train", "val", "test"} or None
        Which split to expose (None: every tile).
    split_file : path, optional
        A split list file overriding the official split.
    bands : list of int, optional
        Image bands to read (zero-based), e.g. ``[0, 1, 2]`` of RGBIR.
    remap : path or ClassRemap, optional
        Translate the ISPRS classes into another scheme.
    seed : int
        Seed of the validation carve-out.
    fractions : (train, val, test)
        Only ``fractions[1] / (fractions[0] + fractions[1])`` is used: the share of the
        official training tiles moved to val (whole source tiles; 0 for no val).
    group_pattern : str, optional
        Overrides how tiles are grouped for the carve-out (default: by source tile).
    classes : None
        Must be None: the classes are fixed.
    require_masks : bool
        Whether every tile needs a label (the participants' labels cover only the 24 training
        tiles; with False, test tiles without labels have no ``mask``).
    tiles_dir : path, optional
        Tiles folder (default ``root/tiles/potsdam_{variant}_{tile_size}[_eroded]``).
    prepare : bool
        Extract known zips and cut missing tiles on first use; with False missing tiles are an
        error.
    progress : bool
        Show progress bars while preparing.
    tile_size : int
        Tile side in pixels (edge tiles are shifted inwards, see the module docstring).
    variant : {"RGB", "IRRG", "RGBIR"}
        Which orthophotos: ``2_Ortho_RGB``, ``3_Ortho_IRRG`` or ``4_Ortho_RGBIR`` (4 bands;
        tiles are GeoTIFF).
    eroded : bool
        Use the eroded labels (``*_label_noBoundary.tif``; boundaries are ignored).
    clutter : {"class", "ignore"}
        Keep clutter/background as a class (6 classes) or ignore it (5 classes).
    keep_georef : bool
        Image tiles as GeoTIFF with georeference instead of PNG.

    Returns
    -------
    RecordDataset
        Samples ``{"image": (tile_size, tile_size, C), "mask": (tile_size, tile_size) uint8
        class indices (255 = ignore), "name": "top_potsdam_{a}_{b}_{k}", "georef": ...}``.

    Raises
    ------
    FileNotFoundError
        Naming the missing tiles, the files expected and where to get them.
    ValueError
        On an invalid option or a label with colours outside the legend.
    """
    return _isprs(
        _potsdam_spec(variant, eroded, tile_size),
        root=root,
        split=split,
        split_file=split_file,
        bands=bands,
        remap=remap,
        seed=seed,
        fractions=fractions,
        group_pattern=group_pattern,
        classes=classes,
        require_masks=require_masks,
        tiles_dir=tiles_dir,
        prepare=prepare,
        progress=progress,
        tile_size=tile_size,
        eroded=eroded,
        clutter=clutter,
        keep_georef=keep_georef,
    )


def vaihingen(
    *,
    root: str | Path,
    split: str | None = None,
    split_file: str | Path | None = None,
    bands: list[int] | None = None,
    remap: str | Path | ClassRemap | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    group_pattern: str | None = None,
    classes: object = None,
    require_masks: bool = True,
    tiles_dir: str | Path | None = None,
    prepare: bool = True,
    progress: bool = False,
    tile_size: int = 512,
    eroded: bool = False,
    clutter: str = "class",
    keep_georef: bool = False,
) -> RecordDataset:
    """ISPRS Vaihingen (IRRG) cut into ``tile_size`` tiles, with the official train/test split.

    Parameters are those of :func:`potsdam` without ``variant`` (Vaihingen has only the
    IR, R, G orthophotos); ``eroded`` reads ``top_mosaic_09cm_area{N}_noBoundary.tif`` labels,
    and the default tiles folder is ``root/tiles/vaihingen_irrg_{tile_size}[_eroded]``.

    Returns
    -------
    RecordDataset
        Samples ``{"image": (tile_size, tile_size, 3) uint8 IR-R-G, "mask": (tile_size,
        tile_size) uint8 class indices (255 = ignore), "name": "top_mosaic_09cm_area{N}_{k}",
        "georef": ...}``.

    Raises
    ------
    FileNotFoundError
        Naming the missing tiles, the files expected and where to get them.
    ValueError
        On an invalid option or a label with colours outside the legend.
    """
    return _isprs(
        _vaihingen_spec(eroded, tile_size),
        root=root,
        split=split,
        split_file=split_file,
        bands=bands,
        remap=remap,
        seed=seed,
        fractions=fractions,
        group_pattern=group_pattern,
        classes=classes,
        require_masks=require_masks,
        tiles_dir=tiles_dir,
        prepare=prepare,
        progress=progress,
        tile_size=tile_size,
        eroded=eroded,
        clutter=clutter,
        keep_georef=keep_georef,
    )
