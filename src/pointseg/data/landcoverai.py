"""LandCover.ai v1: 41 Polish orthophotos tiled into the official 512x512 tiles, losslessly.

The release (``landcover.ai.v1.zip``, https://landcover.ai.linuxpolska.com/) holds::

    images/*.tif      33 orthophotos at 25 cm (~9000x9500 px) and 8 at 50 cm (~4200x4700 px),
                      3-band uint8 GeoTIFF, EPSG:2180
    masks/*.tif       same stems, single band: 0 background, 1 building, 2 woodland,
                      3 water, 4 road
    train.txt, val.txt, test.txt   tile stems such as ``M-33-20-D-c-4-2_0``, one per line
    split.py          the official tiling script

The official ``split.py`` walks each orthophoto row-major in 512 px steps
(``for y in range(0, H, 512): for x in range(0, W, 512)``), writes only full 512x512 tiles
as ``{stem}_{k}`` and increments ``k`` at *every* position, also where the partial edge tile
is skipped; the tile numbers therefore have gaps. It writes JPEG image tiles; here the same
tiles are written as PNG (lossless, bit-identical to the orthophoto pixels) by
:func:`pointseg.data.tiling.tile_raster` with ``edge="drop"``, so the official split lists
apply unchanged::

    tiles/images/{stem}_{k}.png   tiles/masks/{stem}_{k}.png   tiles/manifests/{stem}.json
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pointseg.data.archives import extract_archive
from pointseg.data.base import RecordDataset
from pointseg.data.classes import ClassMap, load_class_file
from pointseg.data.presets import resolve_class_file
from pointseg.data.remap import ClassRemap
from pointseg.data.splits import SPLITS
from pointseg.data.tiling import (
    is_tiled,
    read_manifest,
    tile_rasters,
    tile_records,
)

__all__ = [
    "LANDCOVERAI_FILENAME",
    "LANDCOVERAI_MD5",
    "LANDCOVERAI_URL",
    "landcoverai",
    "landcoverai_class_map",
    "prepare_landcoverai",
]

logger = logging.getLogger(__name__)

#: Download page of the dataset.
LANDCOVERAI_URL = "https://landcover.ai.linuxpolska.com/"
#: File name of the v1 release.
LANDCOVERAI_FILENAME = "landcover.ai.v1.zip"
#: MD5 of ``landcover.ai.v1.zip`` (as checked by torchgeo's ``LandCoverAI`` dataset).
LANDCOVERAI_MD5 = "3268c89070e8734b4e91d531c0617e03"

TILE_SIZE = 512
_NAME_FORMAT = "{stem}_{k}"
#: Groups tiles by their orthophoto (``M-33-20-D-c-4-2_17`` -> ``M-33-20-D-c-4-2``).
ORTHOPHOTO_GROUP = r"^(.*)_\d+$"


def landcoverai_class_map() -> ClassMap:
    """The LandCover.ai classes (the shipped ``landcoverai`` preset: mask values 0..4)."""
    path = resolve_class_file("landcoverai")
    assert path is not None
    return load_class_file(path)


def _where_to_get(root: Path) -> str:
    return (
        f"download {LANDCOVERAI_FILENAME} from {LANDCOVERAI_URL} and run "
        f"prepare_landcoverai({str(root)!r}, zip_path='.../{LANDCOVERAI_FILENAME}') (or put the "
        f"zip at {root / LANDCOVERAI_FILENAME}), which checks, extracts and tiles it"
    )


def _tif_index(folder: Path) -> dict[str, Path]:
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in (".tif", ".tiff") and not p.name.startswith(".")
    }


def _find_sources(root: Path, *, require_masks: bool) -> list[tuple[str, Path, Path | None]]:
    """(stem, image, mask) of the orthophotos under ``root``; raises naming what is missing."""
    img_dir, mask_dir = root / "images", root / "masks"
    missing: list[str] = []
    images = _tif_index(img_dir) if img_dir.is_dir() else {}
    masks = _tif_index(mask_dir) if mask_dir.is_dir() else {}
    if not images:
        missing.append(f"{img_dir}/*.tif (the 41 orthophotos)")
    if require_masks:
        if not masks:
            missing.append(f"{mask_dir}/*.tif (their masks)")
        elif images:
            lacking = sorted(set(images) - set(masks))
            if lacking:
                missing.append(
                    f"masks {', '.join(str(mask_dir / (s + '.tif')) for s in lacking[:5])}"
                    + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
                )
    if missing:
        raise FileNotFoundError(
            f"LandCover.ai is missing under {root}: {'; '.join(missing)}. To get it, "
            f"{_where_to_get(root)}"
        )
    if not require_masks:
        lacking = sorted(set(images) - set(masks))
        if lacking:
            logger.warning(
                "%d LandCover.ai image(s) have no mask, e.g. %s", len(lacking), lacking[:3]
            )
    return [(stem, path, masks.get(stem)) for stem, path in images.items()]


def _tile_options(keep_georef: bool) -> dict[str, object]:
    return {
        "size": TILE_SIZE,
        "stride": TILE_SIZE,
        "edge": "drop",
        "name_format": _NAME_FORMAT,
        "keep_georef": keep_georef,
    }


def prepare_landcoverai(
    root: str | Path,
    *,
    zip_path: str | Path | None = None,
    verify_checksum: bool = True,
    tiles_dir: str | Path | None = None,
    keep_georef: bool = False,
    progress: bool = False,
) -> Path:
    """Check and extract ``landcover.ai.v1.zip`` (optional), then cut the official tiles.

    Parameters
    ----------
    root : path
        Dataset folder; the zip is extracted here (``images/``, ``masks/``, ``*.txt``).
    zip_path : path, optional
        The downloaded ``landcover.ai.v1.zip``. Without it, ``root`` must already hold the
        extracted files.
    verify_checksum : bool
        Compare the zip's MD5 with :data:`LANDCOVERAI_MD5` before extracting.
    tiles_dir : path, optional
        Where the tiles go (default ``root/tiles``).
    keep_georef : bool
        Write image tiles as GeoTIFF with their georeference instead of PNG.
    progress : bool
        Show progress bars.

    Returns
    -------
    Path
        The tiles folder: ``images/{stem}_{k}.png``, ``masks/{stem}_{k}.png``,
        ``manifests/{stem}.json``.

    Raises
    ------
    FileNotFoundError
        When the zip or the extracted files are missing (naming them and the download).
    ValueError
        On a checksum mismatch (naming the file, expected and actual MD5) or an unsafe archive.

    Notes
    -----
    Resumable: extraction keeps files already extracted in full, and tiling skips orthophotos
    whose tiles are complete.
    """
    root = Path(root)
    tiles = Path(tiles_dir) if tiles_dir is not None else root / "tiles"
    if zip_path is not None:
        zip_path = Path(zip_path)
        if not zip_path.is_file():
            raise FileNotFoundError(f"{zip_path} does not exist; {_where_to_get(root)}")
        extract_archive(
            zip_path,
            root,
            md5=LANDCOVERAI_MD5 if verify_checksum else None,
            hint=f"{LANDCOVERAI_FILENAME} from {LANDCOVERAI_URL}",
        )
    sources = _find_sources(root, require_masks=True)
    tile_rasters(sources, tiles, progress=progress, **_tile_options(keep_georef))  # type: ignore[arg-type]
    return tiles


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _official_splits(root: Path) -> dict[str, list[str]] | None:
    files = {name: root / f"{name}.txt" for name in SPLITS}
    present = {name: p for name, p in files.items() if p.is_file()}
    if not present:
        return None
    if len(present) != len(files):
        lacking = [str(p) for name, p in files.items() if name not in present]
        raise FileNotFoundError(
            f"LandCover.ai split files {', '.join(lacking)} are missing under {root} (the others "
            f"are there); extract them again from {LANDCOVERAI_FILENAME} ({LANDCOVERAI_URL}) or "
            "pass split_file="
        )
    return {name: _read_list(p) for name, p in files.items()}


def landcoverai(
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
    keep_georef: bool = False,
    progress: bool = False,
) -> RecordDataset:
    """LandCover.ai v1 as 512x512 tiles with the official train/val/test split.

    Parameters
    ----------
    root : path
        Folder with the extracted release (``images/``, ``masks/``, ``train.txt``,
        ``val.txt``, ``test.txt``), or holding ``landcover.ai.v1.zip`` (extracted on first
        use when ``prepare``).
    split : {"train", "val", "test"} or None
        Which split to expose (None: every tile).
    split_file : path, optional
        A split list file overriding the official split.
    bands : list of int, optional
        Image bands to read (zero-based).
    remap : path or ClassRemap, optional
        Translate the LandCover.ai classes into another scheme.
    seed, fractions, group_pattern
        Only used when the official ``*.txt`` split files are all absent: a seeded split
        (:func:`pointseg.data.splits.split_stems`) that by default keeps the tiles of one
        orthophoto together.
    classes : None
        Must be None: the classes are fixed (use ``remap`` to change them).
    require_masks : bool
        Whether every orthophoto needs a mask.
    tiles_dir : path, optional
        Tiles folder (default ``root/tiles``).
    prepare : bool
        Cut missing tiles (or extract ``root/landcover.ai.v1.zip``) on first use; with False a
        missing tile set is an error.
    keep_georef : bool
        Image tiles as GeoTIFF with georeference (``sample["georef"]`` set) instead of PNG.
    progress : bool
        Show progress bars while preparing.

    Returns
    -------
    RecordDataset
        Samples ``{"image": (512, 512, 3) uint8, "mask": (512, 512) uint8 class indices,
        "name": "{orthophoto}_{k}", "georef": Georef or None}``.

    Raises
    ------
    FileNotFoundError
        Naming what is missing under which root, and how to get it.
    ValueError
        On ``classes`` or an invalid option.
    """
    if classes is not None:
        raise ValueError(
            f"LandCover.ai has fixed classes; use remap= to change them (got classes={classes!r})"
        )
    root = Path(root)
    tiles = Path(tiles_dir) if tiles_dir is not None else root / "tiles"
    options = _tile_options(keep_georef)
    archive = root / LANDCOVERAI_FILENAME
    fresh = not (root / "images").is_dir() and not (tiles / "manifests").is_dir()
    if prepare and fresh and archive.is_file():
        logger.info("extracting %s", archive)
        prepare_landcoverai(
            root, zip_path=archive, tiles_dir=tiles, keep_georef=keep_georef, progress=progress
        )
    if (root / "images").is_dir() or not (tiles / "manifests").is_dir():
        sources = _find_sources(root, require_masks=require_masks)
        pending = [
            stem
            for stem, img, msk in sources
            if not is_tiled(img, tiles, mask=msk, stem=stem, **options)  # type: ignore[arg-type]
        ]
        if pending and not prepare:
            raise FileNotFoundError(
                f"{len(pending)} of {len(sources)} LandCover.ai orthophotos under {root} are not "
                f"tiled in {tiles} (e.g. {pending[:3]}); call prepare_landcoverai({str(root)!r}) "
                "or pass prepare=True"
            )
        if pending:
            tile_rasters(sources, tiles, progress=progress, **options)  # type: ignore[arg-type]
        stems = [stem for stem, _, _ in sources]
    else:  # the orthophotos were removed after tiling: use the manifests
        stems = sorted(p.stem for p in (tiles / "manifests").glob("*.json"))
        logger.info(
            "LandCover.ai: no images/ under %s; using the %d tiled orthophotos", root, len(stems)
        )
        for stem in stems:
            manifest = read_manifest(tiles, stem)
            if manifest is None or manifest.get("params") != options:
                raise FileNotFoundError(
                    f"{tiles}: the tiles of {stem} were made with other options and "
                    f"{root / 'images'} is gone; restore the orthophotos ({_where_to_get(root)})"
                )
    records = tile_records(tiles, stems)
    splits = None
    if split_file is None:
        splits = _official_splits(root)
        if splits is None:
            logger.warning(
                "LandCover.ai: no train.txt/val.txt/test.txt under %s; using a seeded split "
                "(seed %d) that keeps each orthophoto's tiles together, not the official one",
                root,
                seed,
            )
            group_pattern = group_pattern or ORTHOPHOTO_GROUP
    return RecordDataset(
        records,
        class_map=landcoverai_class_map(),
        root=root,
        split=split,
        splits=splits,
        split_file=split_file,
        fractions=fractions,
        seed=seed,
        group_pattern=group_pattern,
        bands=bands,
        remap=remap,
    )
