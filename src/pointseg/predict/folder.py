"""Predict class maps for a folder (or list) of images."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from pointseg.io.atomic import remove_stale_temp_files
from pointseg.io.raster import (
    _RASTERIO_SUFFIXES,
    IMAGE_SUFFIXES,
    band_layout,
    read_image,
    write_label_geotiff,
    write_png,
)
from pointseg.models.registry import ModelSpec
from pointseg.predict.inference import (
    open_model,
    predict_labels,
    resolve_bands,
    resolve_device,
    worker_model,
)
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


def _keep_bands(
    spec: ModelSpec,
    path: Path,
    bands: Sequence[int] | None,
    model_path: str | Path,
    *,
    unreadable_ok: bool = False,
) -> list[int] | None:
    """The bands of ``path`` to feed the model (None: unreadable and ``unreadable_ok``)."""
    try:
        layout = band_layout(path)
    except ValueError:
        if not unreadable_ok:
            raise
        return None
    return resolve_bands(spec, layout, bands, image=path, model=model_path)


def _outputs(path: Path, out_dir: Path, *, georef: bool, overlays: bool) -> list[Path]:
    """The files an image's prediction writes, in the order they are written."""
    files = [out_dir / f"{path.stem}.png"]
    if georef:
        files.append(out_dir / f"{path.stem}.tif")
    if overlays:
        files.append(out_dir / "overlays" / f"{path.stem}.png")
    return files


def _predict_file(
    model: Any,
    spec: ModelSpec,
    dev: torch.device,
    path: Path,
    keep: Sequence[int] | None,
    out_dir: Path,
    *,
    colors: list[tuple[int, int, int]],
    overlays: bool,
) -> list[Path]:
    """Predict one image and write its class maps (and overlay); returns the class maps."""
    image, georef, valid = read_image(path, bands=keep, with_mask=True)
    labels = predict_labels(model, spec, image, device=dev, where=path)
    if valid is not None:
        labels[~valid] = NODATA_LABEL
    png, *rest = _outputs(path, out_dir, georef=georef is not None, overlays=overlays)
    written = [write_png(png, labels, palette=colors)]
    if georef is not None:
        nodata = NODATA_LABEL if valid is not None else None
        written.append(write_label_geotiff(rest[0], labels, georef, nodata=nodata, colors=colors))
    if overlays:
        write_png(rest[-1], overlay(image, labels, colors))
    return written


def _is_georeferenced(path: Path) -> bool:
    """Whether :func:`read_image` finds a georeference in ``path`` (reads the header only)."""
    if path.suffix.lower() not in _RASTERIO_SUFFIXES:
        return False
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.crs is not None or not src.transform.is_identity


def _predict_task(
    model_path: str,
    path: Path,
    out_dir: Path,
    *,
    device: str | None,
    overlays: bool,
    bands: Sequence[int] | None,
    scale: float | None,
    overwrite: bool,
) -> tuple[list[Path], bool]:
    """A Dask task: one image; returns its class maps and whether they existed (skipped)."""
    if not overwrite:
        expected = _outputs(path, out_dir, georef=_is_georeferenced(path), overlays=overlays)
        if all(p.is_file() for p in expected):  # written atomically: an existing file is whole
            return (expected[:-1] if overlays else expected), True
    model, spec, dev = worker_model(model_path, device)
    if scale is not None:
        spec = replace(spec, scale=float(scale))
    keep = _keep_bands(spec, path, bands, model_path)
    colors = [tuple(c) for c in spec.class_colors]
    files = _predict_file(model, spec, dev, path, keep, out_dir, colors=colors, overlays=overlays)
    return files, False


def _predict_on_dask(
    client: Any,
    model_path: str | Path,
    files: Sequence[Path],
    out_dir: Path,
    *,
    device: str | None,
    overlays: bool,
    bands: Sequence[int] | None,
    scale: float | None,
    overwrite: bool,
    progress: bool,
) -> list[Path]:
    from pointseg.distributed import Task, run_tasks

    options = {
        "device": device,
        "overlays": overlays,
        "bands": list(bands) if bands is not None else None,
        "scale": scale,
        "overwrite": overwrite,
    }
    tasks = [
        Task(path.name, _predict_task, (str(model_path), path, out_dir), options) for path in files
    ]
    results = run_tasks(client, tasks, progress=progress, what="images")
    skipped = sum(1 for _, existed in results.values() if existed)
    if skipped:
        logger.info("%d image(s) skipped: their outputs exist (overwrite recomputes)", skipped)
    return [p for task in tasks for p in results[task.name][0]]


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
    client: Any = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a class map for every image, serially or on a Dask cluster.

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
    progress : callable, optional
        Wraps the loop over images (e.g. ``tqdm``); with ``client``, any value shows a bar.
    client : distributed.Client, optional
        Predict one image per Dask task (:func:`pointseg.distributed.run_tasks`): workers
        load the model from ``model_path`` once each and run on one torch thread; a failed
        image is retried once, then named in :class:`~pointseg.distributed.TasksFailed` after
        the others are written. The outputs are those of the serial loop, byte for byte.
    overwrite : bool
        With ``client``: recompute images whose outputs all exist (default: skip them, so a
        rerun of an interrupted run only does what is missing). Serial runs always rewrite.

    Raises
    ------
    ValueError
        Before predicting an image whose bands do not fit the model (naming the file, the
        model and ``--bands``), or on a band index out of range.
    pointseg.distributed.TasksFailed
        With ``client``, naming the images that failed twice.

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
    # every input is checked from its header before the first output is written (on Dask,
    # an unreadable file is left to its task: retried, then reported by name)
    keeps = {
        path: _keep_bands(spec, path, bands, model_path, unreadable_ok=client is not None)
        for path in files
    }
    for folder in (out_dir, out_dir / "overlays"):
        remove_stale_temp_files(folder)  # left by a killed run
    if client is not None:
        written = _predict_on_dask(
            client,
            model_path,
            files,
            out_dir,
            device=device,
            overlays=overlays,
            bands=bands,
            scale=scale,
            overwrite=overwrite,
            progress=progress is not None,
        )
        logger.info("wrote %d class maps to %s", len(files), out_dir)
        return written
    written = []
    iterator: Iterable[Path] = progress(files) if progress else files
    for path in iterator:
        written += _predict_file(
            model, spec, dev, path, keeps[path], out_dir, colors=colors, overlays=overlays
        )
    logger.info("wrote %d class maps to %s", len(files), out_dir)
    return written
