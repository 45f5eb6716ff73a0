"""Predict class maps for a folder (or list) of images."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from pointseg.io.atomic import remove_stale_temp_files
from pointseg.io.raster import (
    IMAGE_SUFFIXES,
    band_layout,
    read_image,
    write_label_geotiff,
    write_png,
)
from pointseg.predict.inference import open_model, predict_labels, resolve_bands, resolve_device
from pointseg.viz.colors import overlay

__all__ = ["NODATA_LABEL", "predict_folder"]

logger = logging.getLogger(__name__)

#: Class-map value of nodata pixels (alpha 0, GDAL mask), as in tiled prediction.
NODATA_LABEL = 255


def _inputs(source: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(source, (str, Path)):
        source = Path(source)
        if source.is_dir():
            files = sorted(
                p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not files:
                raise ValueError(f"{source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            return files
        if not source.is_file():
            raise FileNotFoundError(f"input {source} does not exist")
        return [source]
    return [Path(p) for p in source]


def predict_folder(
    model_path: str | Path,
    source: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    device: str | None = "auto",
    overlays: bool = True,
    bands: Sequence[int] | None = None,
    scale: float | None = None,
    progress: Callable[[Iterable[Path]], Iterable[Path]] | None = None,
) -> list[Path]:
    """Write a class map for every image.

    For each input ``stem``: ``out_dir/stem.png`` (palette PNG whose pixel values are class
    indices), ``out_dir/stem.tif`` when the input is georeferenced (same CRS and transform),
    and ``out_dir/overlays/stem.png`` (colours over the image) when ``overlays``. Nodata
    pixels (alpha 0, a GDAL mask or nodata value) are :data:`NODATA_LABEL` (255).

    Parameters
    ----------
    bands : list of int, optional
        Zero-based bands of the inputs to feed the model (``--bands``), numbered as in the
        files (alpha bands included). Default: the bands the model was trained on
        (``spec.bands``), else every band but alpha bands.
    scale : float, optional
        Model pixels per image pixel for a model trained on windows (default: its training
        ``spec.scale``); such a model runs in overlapping tiles over each whole image, of any
        size and format. Models trained on whole resized images ignore it.

    Raises
    ------
    ValueError
        Before predicting an image whose bands do not fit the model (naming the file, the
        model and ``--bands``), or on a band index out of range.

    Returns
    -------
    list of Path
        The class-map files written.
    """
    dev = resolve_device(device)
    model, spec = open_model(model_path, device=dev)
    if scale is not None:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        spec = replace(spec, scale=float(scale))
    out_dir = Path(out_dir)
    files = _inputs(source)
    colors = [tuple(c) for c in spec.class_colors]
    # every input is checked from its header before the first output is written
    keeps = {
        path: resolve_bands(spec, band_layout(path), bands, image=path, model=model_path)
        for path in files
    }
    for folder in (out_dir, out_dir / "overlays"):
        remove_stale_temp_files(folder)  # left by a killed run
    written = []
    iterator: Iterable[Path] = progress(files) if progress else files
    for path in iterator:
        keep = keeps[path]
        image, georef, valid = read_image(path, bands=keep, with_mask=True)
        labels = predict_labels(model, spec, image, device=dev, where=path)
        if valid is not None:
            labels[~valid] = NODATA_LABEL
        written.append(write_png(out_dir / f"{path.stem}.png", labels, palette=colors))
        if georef is not None:
            nodata = NODATA_LABEL if valid is not None else None
            written.append(
                write_label_geotiff(
                    out_dir / f"{path.stem}.tif", labels, georef, nodata=nodata, colors=colors
                )
            )
        if overlays:
            write_png(out_dir / "overlays" / f"{path.stem}.png", overlay(image, labels, colors))
    logger.info("wrote %d class maps to %s", len(files), out_dir)
    return written
