"""Tiled prediction of a large raster as independent blocks, one Dask task each.

:func:`predict_raster_dask` writes what :func:`pointseg.predict.tiled.predict_raster` writes
(the same pixels, CRS, transform, nodata, dtype, colour table and probability bands) by
splitting the output into square blocks that workers compute independently:

* A worker reads its block **with the halo** the blending needs (every tile of the global
  tile grid that intersects the block, reflected at the raster border) straight from the
  source file, evaluates those tiles and adds their weighted probabilities in row-major tile
  order, as the serial path does, so each pixel's sum is the same float32 sum. With
  ``batch_size=1`` the class map is bit-identical to the serial one; with larger batches a
  tile shares its batch with other tiles than in the serial run, which can change CPU
  convolutions in the last bit (as the serial path's ``block_size`` can, see
  :mod:`pointseg.predict.tiled`). Tiles in a block's halo are evaluated by both blocks they
  touch: about ``((block + tile) / block)²`` tile evaluations per pixel instead of one, so
  blocks are larger than the serial path's (default :data:`DEFAULT_BLOCK`).
* The worker saves its finished block (labels, probabilities, mask) to
  ``.OUT.blocks/r{row}-c{col}.npz`` beside the output, atomically; the client writes each
  block into the output window by window as blocks arrive, so neither the client nor a worker
  ever holds the whole raster.
* The output is renamed into place when complete and the work folder removed. A killed or
  failed run leaves the finished blocks there: a rerun with the same model, source and
  settings (``manifest.json``) reuses them and computes only the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pointseg.io.atomic import atomic_write, remove_stale_temp_files, write_text_atomic
from pointseg.io.windows import RasterWindows
from pointseg.predict.inference import open_model, worker_model
from pointseg.predict.tiled import (
    NODATA_LABEL,
    OUTPUT_BLOCK,
    _Axis,
    _band_indexes,
    _block_arrays,
    _check_options,
    _finish_cog,
    _gdal_env,
    _open_outputs,
    _open_source,
    _output_files,
    _Runner,
    _source_tile,
    _store_block,
    default_overlap,
)

__all__ = ["DEFAULT_BLOCK", "block_grid", "predict_block", "predict_raster_dask", "work_folder"]

logger = logging.getLogger(__name__)

#: Output block side of one Dask task (source pixels): with 512-px tiles a block evaluates
#: about 1.6x the tiles of its own area (1.3x at 4096), and holds
#: ``num_classes * block² * 4`` bytes of accumulator (100 MB for 6 classes).
DEFAULT_BLOCK = 2048

Window = tuple[tuple[int, int], tuple[int, int]]


def work_folder(out: str | Path) -> Path:
    """The folder of finished blocks of ``out``: ``.NAME.blocks`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.blocks"


def block_grid(height: int, width: int, block: int) -> list[Window]:
    """The output blocks ``((r0, r1), (c0, c1))`` of a ``height`` x ``width`` raster, row-major."""
    return [
        ((r0, min(r0 + block, height)), (c0, min(c0 + block, width)))
        for r0 in range(0, height, block)
        for c0 in range(0, width, block)
    ]


def _block_file(work: Path, rows: tuple[int, int], cols: tuple[int, int]) -> Path:
    return work / f"r{rows[0]}-c{cols[0]}.npz"


def _block_name(source: Path, rows: tuple[int, int], cols: tuple[int, int]) -> str:
    return f"{source.name} block rows {rows[0]}:{rows[1]} cols {cols[0]}:{cols[1]}"


@torch.inference_mode()
def predict_block(
    model_path: str | Path,
    source: str | Path,
    block_file: str | Path,
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    tile_size: int,
    overlap: int,
    batch_size: int = 4,
    scale: float = 1.0,
    bands: list[int] | None = None,
    nodata: float | None = None,
    device: str | None = "cpu",
    probabilities: bool = False,
) -> dict[str, int]:
    """Predict one output block of ``source`` and save it to ``block_file`` (a Dask task).

    Reads only the block and the halo of tiles reaching into it; see the module docstring.

    Parameters
    ----------
    model_path : str or Path
        ``model.pt`` or ``.onnx``; loaded once per worker process.
    source : str or Path
        The raster.
    block_file : str or Path
        ``.npz`` written atomically: ``labels`` (H, W) uint8, ``nodata_pixels`` and, with
        ``probabilities``, ``probs`` (C, H, W) uint8 and (masked sources) ``mask``.
    rows, cols : (start, stop)
        The block, in source pixels.
    tile_size, overlap, batch_size, scale, bands, nodata
        As for :func:`pointseg.predict.tiled.predict_raster`.
    device : str, optional
        Where the worker runs the model (``auto``: CUDA when the worker has it).
    probabilities : bool
        Also compute the probabilities.

    Returns
    -------
    dict
        ``tiles``: tile evaluations of the block (halo included).
    """
    model, spec, dev = worker_model(str(model_path), device)
    source = Path(source)
    (r0, r1), (c0, c1) = rows, cols
    tile, ovl = _source_tile(int(tile_size), int(overlap), float(scale))
    with _gdal_env(), _open_source(source) as src:
        reader = RasterWindows(src, source, _band_indexes(src, spec, source, bands), nodata)
        ay, ax = _Axis.make(reader.height, tile, ovl), _Axis.make(reader.width, tile, ovl)
        runner, window = _Runner.for_tiles(
            model,
            spec,
            dev,
            tile_size=tile_size,
            overlap=overlap,
            scale=scale,
            floating=reader.floating,
            where=source,
        )
        acc = torch.zeros((spec.num_classes, r1 - r0, c1 - c0), device=dev)
        # row-major tile order, as the serial path adds them: the same float32 sums
        keys = [(ky, kx) for ky in ay.tiles_for(r0, r1) for kx in ax.tiles_for(c0, c1)]
        for start in range(0, len(keys), int(batch_size)):
            chunk = keys[start : start + int(batch_size)]
            tiles = np.stack(
                [
                    reader.region(
                        (ay.origin(ky), ay.origin(ky) + tile),
                        (ax.origin(kx), ax.origin(kx) + tile),
                    )
                    for ky, kx in chunk
                ]
            )
            probs = runner(tiles)
            for (ky, kx), p in zip(chunk, probs, strict=True):
                ty, tx = ay.origin(ky), ax.origin(kx)
                y0, y1 = max(ty, r0), min(ty + tile, r1)
                x0, x1 = max(tx, c0), min(tx + tile, c1)
                acc[:, y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] += p[
                    :, y0 - ty : y1 - ty, x0 - tx : x1 - tx
                ]
            del tiles, probs
        wy = ay.weight_sum(r0, r1, window) if probabilities else None
        arrays = _block_arrays(reader, acc, rows, cols, wy, ax, window)
    with atomic_write(block_file) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return {"tiles": len(keys)}


def _file_id(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _prepare_work(work: Path, manifest: dict[str, Any]) -> None:
    """Keep ``work``'s finished blocks when they were made with ``manifest``; else clear it."""
    path = work / "manifest.json"
    text = json.dumps(manifest, sort_keys=True, indent=1)
    if work.is_dir():
        try:
            same = path.read_text(encoding="utf-8") == text
        except OSError:
            same = False
        if not same:
            logger.warning(
                "%s holds blocks of another model, source or setting: starting over", work
            )
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(work)
    if not path.is_file():
        write_text_atomic(path, text)


def predict_raster_dask(
    model_path: str | Path,
    source: str | Path,
    out: str | Path,
    *,
    client: Any,
    tile_size: int = 512,
    overlap: int | None = None,
    batch_size: int = 4,
    block_size: int = DEFAULT_BLOCK,
    probabilities: str | Path | None = None,
    cog: bool = False,
    nodata: float | None = None,
    scale: float = 1.0,
    bands: list[int] | None = None,
    device: str | None = "cpu",
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Tiled prediction of ``source`` into ``out`` on a Dask cluster, one task per block.

    Parameters
    ----------
    model_path : str or Path
        ``model.pt`` or ``.onnx``; read by the client (checks) and by every worker.
    source, out, tile_size, overlap, batch_size, probabilities, cog, nodata, scale, bands
        As for :func:`pointseg.predict.tiled.predict_raster`.
    client : distributed.Client
    block_size : int
        Side of the blocks (one task each), rounded up to a multiple of 256.
    device : str, optional
        Where workers run the model.
    overwrite : bool
        Recompute when the outputs exist (default: return at once, ``skipped`` True).
    progress : bool
        Show a progress bar of blocks.

    Returns
    -------
    dict
        ``source``, ``out``, ``probabilities``, ``shape``, ``tiles`` (tile evaluations of the
        computed blocks), ``blocks``, ``blocks_reused`` (finished by an earlier run),
        ``block_size``, ``seconds``, ``megapixels_per_s``, ``nodata_pixels``, ``skipped``.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`~pointseg.predict.tiled.predict_raster`, before any task runs.
    pointseg.distributed.TasksFailed
        Naming the blocks (source and window) that failed twice; the finished blocks stay in
        :func:`work_folder` for a rerun, and no output is written.
    """
    from pointseg.distributed import Task, run_tasks

    t_start = time.perf_counter()
    source, out = Path(source), Path(out)
    prob_path = Path(probabilities) if probabilities is not None else None
    if overlap is None:
        overlap = default_overlap(tile_size) if isinstance(tile_size, int) else 0
    _check_options(tile_size, overlap, batch_size, block_size, scale)
    block = max(OUTPUT_BLOCK, -(-int(block_size) // OUTPUT_BLOCK) * OUTPUT_BLOCK)
    if not source.is_file():
        raise FileNotFoundError(f"raster {source} does not exist")
    if cog:
        from pointseg.predict.tiled import _cog_supported

        if not _cog_supported():
            raise RuntimeError("cog=True needs GDAL's COG driver; install a newer rasterio")
    _, spec = open_model(model_path, device="cpu")
    if not 1 <= spec.num_classes <= NODATA_LABEL:
        raise ValueError(
            f"the class map is uint8 with nodata {NODATA_LABEL}, so at most {NODATA_LABEL} "
            f"classes; the model has {spec.num_classes}"
        )
    summary: dict[str, Any] = {
        "source": str(source),
        "out": str(out),
        "probabilities": str(prob_path) if prob_path else None,
        "block_size": block,
        "tiles": 0,
        "nodata_pixels": 0,
        "blocks_reused": 0,
        "skipped": False,
    }
    with _gdal_env(), _open_source(source) as src:
        _band_indexes(src, spec, source, bands)  # fail before any task on a band mismatch
        shape = (src.height, src.width)
        summary["shape"] = shape
        if not overwrite and out.is_file() and (prob_path is None or prob_path.is_file()):
            logger.info("%s exists: skipped (overwrite recomputes it)", out)
            return {**summary, "skipped": True, "blocks": 0, "seconds": 0.0}
        work = work_folder(out)
        options = {
            "tile_size": int(tile_size),
            "overlap": int(overlap),
            "batch_size": int(batch_size),
            "scale": float(scale),
            "bands": list(bands) if bands is not None else None,
            "nodata": nodata,
            "device": device,
            "probabilities": prob_path is not None,
        }
        _prepare_work(
            work,
            {
                "model": _file_id(Path(model_path)),
                "source": _file_id(source),
                "block": block,
                **options,
            },
        )
        grid = block_grid(shape[0], shape[1], block)
        tasks = []
        with contextlib.ExitStack() as files:
            paths = _output_files(files, out, prob_path, cog=cog)
            with contextlib.ExitStack() as rasters:
                dst, pdst = _open_outputs(rasters, src, spec, paths[2], paths[3])

                def store(rows: tuple[int, int], cols: tuple[int, int]) -> None:
                    with np.load(_block_file(work, rows, cols)) as data:
                        arrays = {k: data[k] for k in data.files}
                    summary["nodata_pixels"] += _store_block(dst, pdst, arrays, rows, cols)

                for rows, cols in grid:
                    path = _block_file(work, rows, cols)
                    if path.is_file():
                        store(rows, cols)
                        summary["blocks_reused"] += 1
                        continue
                    args = (str(model_path), source, path, rows, cols)
                    tasks.append(
                        Task(_block_name(source, rows, cols), predict_block, args, options)
                    )
                if summary["blocks_reused"]:
                    logger.info(
                        "%s: %d of %d blocks finished by an earlier run, %d to compute",
                        source.name,
                        summary["blocks_reused"],
                        len(grid),
                        len(tasks),
                    )

                def on_result(task: Task, result: dict[str, int]) -> None:
                    summary["tiles"] += result["tiles"]
                    store(task.args[3], task.args[4])

                run_tasks(client, tasks, on_result=on_result, progress=progress, what="blocks")
            _finish_cog(paths, cog=cog)
    shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - t_start
    mpx = shape[0] * shape[1] / 1e6
    summary.update(
        blocks=len(grid),
        seconds=round(seconds, 3),
        megapixels_per_s=round(mpx / seconds, 4) if seconds > 0 else float("inf"),
    )
    logger.info(
        "wrote %s: %d x %d, %d blocks (%d reused), %d tiles in %.1f s (%.3f Mpx/s)",
        out,
        shape[0],
        shape[1],
        len(grid),
        summary["blocks_reused"],
        summary["tiles"],
        seconds,
        summary["megapixels_per_s"],
    )
    return summary
