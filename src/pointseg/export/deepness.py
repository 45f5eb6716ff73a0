"""Export trained pointseg models as ONNX files that the Deepness QGIS plugin runs as they are.

`Deepness <https://github.com/PUTvision/qgis-plugin-deepness>`_ (PUTvision) runs ONNX models
over QGIS raster layers tile by tile. What it feeds a segmentation model, and what it expects back
(its documentation, "Model classes and requirements" and "Adding metadata to ONNX model", and its
``ModelBase.preprocessing``):

* one input ``[BATCH, CHANNELS, SIZE_PX, SIZE_PX]`` float32: square tiles of the layer resampled to
  the model's ``resolution`` (cm/px), 8-bit pixel values divided by 255 (no other data type is
  supported), border tiles padded with 0;
* one output ``[BATCH, NUM_CLASSES, SIZE_PX, SIZE_PX]`` of softmax probabilities (summing to 1);
  the plugin zeroes probabilities below ``seg_thresh`` and takes the argmax over classes;
* defaults read from ``metadata_props``, every value JSON-encoded (``json.dumps``):
  ``model_type`` (``"Segmentor"``), ``class_names`` (``{"0": "name", ...}``), ``resolution``
  (cm/px), ``tiles_size`` (px), ``tiles_overlap`` (percent), ``seg_thresh``,
  ``seg_small_segment``.

Graph
-----
input ``input``
    float32 ``(batch, in_channels, tiles_size, tiles_size)``, 8-bit pixels / 255, exactly what
    Deepness feeds. The graph computes ``(x * 255 - spec.mean) / spec.std`` itself: pointseg
    normalises raw pixel values with the per-band statistics of the training set (see
    :func:`pointseg.predict.predict_logits` and ``training/data.py``), so the exported model gives
    the probabilities of the PyTorch model on the same 8-bit tile.
output ``probabilities``
    float32 ``(batch, num_classes, tiles_size, tiles_size)``, softmax over classes.

Batch is dynamic (Deepness accepts 1 or dynamic); the tile size is fixed (Deepness takes it from
the input shape). The normalisation is baked into the graph rather than written as Deepness's
``standardization_mean``/``standardization_std`` metadata, because only recent plugin versions
read those keys; they are written as the identity (mean 0, std 1) so that a version that reads
them does not normalise twice.

Deepness's documentation names the tile-size key ``tiles_size`` while its code
(``ModelBase.get_metadata_tile_size``) reads ``tile_size``: both are written, with the same value.

The file also carries ``pointseg.format`` (``"pointseg-deepness-1"``) and the source
:class:`~pointseg.models.ModelSpec` under ``pointseg.source_spec`` (both JSON), but not the
``pointseg.spec`` key of :func:`~pointseg.export.export_onnx`: the graph takes 8-bit/255 tiles and
returns probabilities, so ``pointseg predict`` must not mistake it for a normalised-logits export.

Differences from ``pointseg predict --tiled``: Deepness pads border tiles with zeros (pointseg
reflects the raster), crops overlapping tiles instead of blending them, and resamples the layer
to ``resolution`` bilinearly. Interior tiles at the training resolution give the same
probabilities.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pointseg.export.onnx import (
    DEFAULT_OPSET,
    OnnxExportError,
    _check_opset,
    _export_ready,
    _import_onnx,
    _import_ort,
    _resolve_model_file,
    _set_metadata,
    _spec_to_json,
    _torch_export,
    onnx_metadata,
)
from pointseg.io.atomic import atomic_write
from pointseg.models.registry import ModelSpec, load_model
from pointseg.predict.inference import predict_logits
from pointseg.predict.tiled import default_overlap

__all__ = [
    "DEEPNESS_FORMAT",
    "DEEPNESS_INPUT_NAME",
    "DEEPNESS_OUTPUT_NAME",
    "DEFAULT_TILES_SIZE",
    "MIN_TILES_SIZE",
    "export_deepness",
    "raster_resolution_cm",
    "read_deepness_metadata",
]

logger = logging.getLogger(__name__)

DEEPNESS_INPUT_NAME = "input"
DEEPNESS_OUTPUT_NAME = "probabilities"
DEEPNESS_FORMAT = "pointseg-deepness-1"
DEFAULT_TILES_SIZE = 512
"""Tile size when the spec records no training ``image_size``."""
MIN_TILES_SIZE = 32
"""Smallest tile accepted: smp encoders downsample by 32, and in smaller tiles most pixels are
near a border, where zero padding inside the network degrades predictions."""

_SPEC_KEY = "pointseg.source_spec"
_FORMAT_KEY = "pointseg.format"
_UINT8_MAX = 255.0
_UINT8_MAX_STD = 127.5  # the largest standard deviation of values in [0, 255]


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class _DeepnessGraph(nn.Module):
    """8-bit/255 tiles → pointseg normalisation → network → softmax over classes."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * _UINT8_MAX - self.mean) / self.std
        return torch.softmax(self.net(x), dim=1)


# --------------------------------------------------------------------------------------------
# checks


def _check_bands(spec: ModelSpec, src: Path, *, allow_non_rgb: bool) -> None:
    n = spec.in_channels
    bands = list(spec.bands) if spec.bands is not None else list(range(n))
    one_based = [int(b) + 1 for b in bands]
    if n != 3 and not allow_non_rgb:
        raise ValueError(
            f"{src} takes {n} band(s), but Deepness feeds the RGB(A) bands of a layer by "
            f"default, so a {n}-band model would silently get the wrong bands (e.g. alpha as a "
            "4th band). Export a model trained on the 3 RGB bands of 8-bit imagery, or pass "
            f"allow_non_rgb=True and set Deepness's 'Input channels mapping' to the layer's "
            f"bands {one_based} (1-based) by hand"
        )
    if bands != [0, 1, 2]:
        logger.warning(
            "%s was trained on bands %s (1-based) of its images: set Deepness's 'Input channels "
            "mapping' to those bands of the layer",
            src,
            one_based,
        )


def _check_statistics(spec: ModelSpec, src: Path, *, check_uint8: bool) -> None:
    """Refuse a spec whose normalisation cannot have come from 8-bit pixels.

    :class:`ModelSpec` records no pixel dtype, so the per-band mean/std (computed on raw pixel
    values by ``pointseg train``) are the evidence.
    """
    mean, std, n = list(spec.mean), list(spec.std), spec.in_channels
    if (
        len(mean) != n
        or len(std) != n
        or not all(_is_real(v) for v in (*mean, *std))
        or any(s <= 0 for s in std)
    ):
        raise ValueError(
            f"{src} has mean {mean} and std {std} for {n} band(s); the exported graph needs "
            "one finite mean and one positive std per band (as written by 'pointseg train'): "
            "fix the spec or retrain"
        )
    if not check_uint8:
        return
    stats = f"band means {[round(m, 4) for m in mean]} and stds {[round(s, 4) for s in std]}"
    fix = (
        "Deepness feeds only 8-bit pixels (0..255): retrain on 8-bit imagery (e.g. "
        "'gdal_translate -ot Byte -scale' the rasters), or pass check_uint8=False if the "
        "training pixels really were 8-bit values"
    )
    if any(not 0.0 <= m <= _UINT8_MAX for m in mean) or any(s > _UINT8_MAX_STD for s in std):
        raise ValueError(
            f"{src} was not trained on 8-bit pixels: its {stats} cannot come from values in "
            f"0..255 (means within 0..255, stds at most {_UINT8_MAX_STD}), e.g. 16-bit or "
            f"standardised data. {fix}"
        )
    if max(mean) <= 1.0 and max(std) <= 1.0:
        raise ValueError(
            f"{src} looks trained on floating-point data in 0..1 (e.g. reflectance), not on "
            f"8-bit pixels: its {stats} are all at most 1. {fix}"
        )


def _check_options(
    tiles_size: Any,
    tiles_overlap: Any,
    seg_thresh: Any,
    seg_small_segment: Any,
    resolution_cm: Any,
    *,
    training_size: int | None,
) -> None:
    if not _is_int(tiles_size) or tiles_size < MIN_TILES_SIZE:
        hint = f"the training image size {training_size}" if training_size else "512"
        raise ValueError(
            f"tiles_size must be an integer >= {MIN_TILES_SIZE} (the side of the square tiles "
            f"Deepness feeds the model, in pixels; e.g. {hint}), got {tiles_size!r}"
        )
    if not _is_int(tiles_overlap) or not 0 <= tiles_overlap < 100:
        raise ValueError(
            "tiles_overlap must be an integer percentage of the tile size in [0, 100) (e.g. "
            f"{_default_overlap_percent(tiles_size)}, the default), got {tiles_overlap!r}"
        )
    if not _is_real(seg_thresh) or not 0.0 <= seg_thresh <= 1.0:
        raise ValueError(
            "seg_thresh must be a probability in [0, 1] (0: plain argmax, like pointseg "
            f"predict), got {seg_thresh!r}"
        )
    if not _is_int(seg_small_segment) or seg_small_segment < 0:
        raise ValueError(
            "seg_small_segment must be a non-negative integer (0: no smoothing, like pointseg "
            f"predict), got {seg_small_segment!r}"
        )
    if resolution_cm is not None and (not _is_real(resolution_cm) or resolution_cm <= 0):
        raise ValueError(
            "resolution_cm must be a positive number of centimetres per pixel (the ground "
            f"resolution of the training images, e.g. 25), got {resolution_cm!r}"
        )


def _default_overlap_percent(tiles_size: int) -> int:
    """pointseg's default tiled-prediction overlap, as a whole percentage (rounded up)."""
    return math.ceil(100 * default_overlap(tiles_size) / tiles_size)


# --------------------------------------------------------------------------------------------
# resolution


def raster_resolution_cm(raster: str | Path) -> float:
    """Ground resolution of a GeoTIFF in centimetres per pixel, from its georeference.

    Parameters
    ----------
    raster : str or Path
        A raster readable by rasterio whose CRS is projected in metres (as Deepness requires of
        the layers it processes).

    Returns
    -------
    float
        The mean of the x and y pixel sizes, in cm (rounded to 1e-6 cm); a warning is logged when
        they differ by more than 1 %.

    Raises
    ------
    FileNotFoundError
        ``raster`` does not exist.
    ValueError
        Not a readable raster, no CRS, a geographic CRS (degrees) or linear units other than
        metres: pass ``resolution_cm`` instead, or reproject the raster.
    """
    import rasterio
    from rasterio.errors import CRSError, RasterioIOError

    path = Path(raster)
    if not path.is_file():
        raise FileNotFoundError(f"raster {path} does not exist")
    try:
        with rasterio.open(path) as src:
            crs, (xres, yres) = src.crs, src.res
    except RasterioIOError as exc:
        raise ValueError(f"{path} is not a readable raster ({exc})") from exc
    fix = (
        "pass resolution_cm (the ground resolution of the training images in cm/px), or "
        "reproject the raster to a CRS in metres (e.g. 'gdalwarp -t_srs EPSG:<UTM zone>'); "
        "Deepness also needs the layer it processes to be in metres"
    )
    if crs is None:
        raise ValueError(f"{path} has no CRS, so its pixel size has no known unit: {fix}")
    if crs.is_geographic:
        raise ValueError(
            f"{path} is in a geographic CRS ({crs.to_string()}): its pixel size is in degrees, "
            f"not a ground distance: {fix}"
        )
    try:
        unit, factor = crs.linear_units_factor
    except CRSError:
        unit, factor = "unknown", float("nan")
    if not math.isclose(factor, 1.0, rel_tol=1e-9):
        raise ValueError(f"{path} has linear units {unit!r} ({crs.to_string()}), not metres: {fix}")
    if not math.isclose(xres, yres, rel_tol=0.01):
        logger.warning("%s has non-square pixels (%g x %g m): using their mean", path, xres, yres)
    return round((xres + yres) / 2 * 100.0, 6)


# --------------------------------------------------------------------------------------------
# export


def _deepness_metadata(
    spec: ModelSpec,
    *,
    tiles_size: int,
    tiles_overlap: int,
    resolution_cm: float | None,
    seg_thresh: float,
    seg_small_segment: int,
) -> dict[str, str]:
    """``metadata_props`` entries, every value JSON-encoded as Deepness documents."""
    names = list(spec.class_names)
    class_names = {
        i: str(names[i]) if i < len(names) else f"class_{i}" for i in range(spec.num_classes)
    }
    meta: dict[str, Any] = {"model_type": "Segmentor", "class_names": class_names}
    if resolution_cm is not None:
        meta["resolution"] = float(resolution_cm)
    meta.update(
        tiles_size=tiles_size,
        tile_size=tiles_size,  # the key Deepness's code reads (its docs say tiles_size)
        tiles_overlap=tiles_overlap,
        seg_thresh=float(seg_thresh),
        seg_small_segment=seg_small_segment,
        standardization_mean=[0.0] * spec.in_channels,  # normalisation is in the graph
        standardization_std=[1.0] * spec.in_channels,
    )
    out = {key: json.dumps(value) for key, value in meta.items()}
    out[_FORMAT_KEY] = json.dumps(DEEPNESS_FORMAT)
    out[_SPEC_KEY] = _spec_to_json(spec)
    return out


def _deepness_feed(tiles: np.ndarray) -> np.ndarray:
    """(B, H, W, C) uint8 tiles → the (B, C, H, W) float32 input Deepness builds from them."""
    return np.transpose(np.float32(tiles * (1.0 / _UINT8_MAX)), (0, 3, 1, 2))


def _verify(
    model: nn.Module, spec: ModelSpec, data: bytes, *, tiles_size: int, atol: float, out: Path
) -> float:
    """Max |onnx - pointseg| probability over two random 8-bit tiles; raise beyond ``atol``."""
    ort = _import_ort()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (2, tiles_size, tiles_size, spec.in_channels), dtype=np.uint8)
    try:
        (got,) = session.run([DEEPNESS_OUTPUT_NAME], {DEEPNESS_INPUT_NAME: _deepness_feed(tiles)})
    except Exception as exc:
        raise OnnxExportError(f"the exported model {out} fails in onnxruntime: {exc}") from exc
    # pointseg's own path on the same tiles, at the tile's own size (like predict --tiled)
    plain = dataclasses.replace(spec, image_size=None)
    cpu = torch.device("cpu")
    ref = np.stack(
        [torch.softmax(predict_logits(model, plain, t, device=cpu), 0).numpy() for t in tiles]
    )
    if got.shape != ref.shape:
        raise OnnxExportError(
            f"the exported model {out} gives probabilities of shape {got.shape}, pointseg gives "
            f"{ref.shape}"
        )
    worst = float(np.abs(got - ref).max())
    if not worst <= atol:
        raise OnnxExportError(
            f"the exported model {out} differs from pointseg's prediction on random 8-bit tiles: "
            f"max |probability difference| {worst:.3g} > atol {atol:g}; raise atol if this is "
            "float rounding, or export with verify=False to keep the file anyway"
        )
    return worst


def export_deepness(
    model: str | Path,
    out: str | Path,
    *,
    tiles_size: int | None = None,
    tiles_overlap: int | None = None,
    resolution_cm: float | None = None,
    raster: str | Path | None = None,
    seg_thresh: float = 0.0,
    seg_small_segment: int = 0,
    allow_non_rgb: bool = False,
    check_uint8: bool = True,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    atol: float = 1e-4,
) -> Path:
    """Export a saved pointseg model to an ONNX file that the Deepness QGIS plugin runs as is.

    The graph takes what Deepness feeds (8-bit pixels / 255, float32 NCHW, square tiles of
    ``tiles_size``), applies the model's own normalisation and returns softmax probabilities;
    the metadata Deepness reads (model type, class names, resolution, tile size and overlap,
    segmentation threshold) is set. See the module docstring for the exact contract.

    Parameters
    ----------
    model : str or Path
        The ``model.pt`` written by ``pointseg train`` (or its run folder).
    out : str or Path
        The ``.onnx`` file to write (atomically: nothing is written when a check fails).
    tiles_size : int, optional
        Side of the square tiles, in pixels: fixed in the graph's input shape and written as
        ``tiles_size`` (and ``tile_size``). Default: the training ``spec.image_size``, else
        512. At least :data:`MIN_TILES_SIZE`. The model runs on the tile as it is (like
        ``pointseg predict --tiled``), not resized to the training size.
    tiles_overlap : int, optional
        Overlap of neighbouring tiles in percent of the tile size, ``[0, 100)``. Default:
        pointseg's tiled-prediction overlap (``tiles_size // 8``) rounded up to a whole percent
        (13).
    resolution_cm : float, optional
        Ground resolution of the training images in cm/px, written as ``resolution``: Deepness
        resamples the layer to it. Takes precedence over ``raster``.
    raster : str or Path, optional
        A GeoTIFF at the training resolution (e.g. a training raster) whose pixel size gives
        ``resolution`` when ``resolution_cm`` is not given; see :func:`raster_resolution_cm`.
        With neither, ``resolution`` is left out (a warning is logged) and the user sets it in
        Deepness.
    seg_thresh : float
        ``seg_thresh``: Deepness zeroes class probabilities below it before the argmax. 0
        (default) gives the plain argmax of ``pointseg predict``.
    seg_small_segment : int
        ``seg_small_segment``: size of Deepness's smoothing of the class map (median filter or
        opening/closing, depending on the plugin version). 0 (default): none, like pointseg.
    allow_non_rgb : bool
        Export a model whose band count is not 3. Deepness can feed other 8-bit bands, but only
        when the user sets its "Input channels mapping" by hand; by default such a model is
        refused.
    check_uint8 : bool
        Refuse models whose per-band mean/std show they were not trained on 8-bit pixels.
        :class:`~pointseg.models.ModelSpec` records no pixel dtype, so the statistics are the
        evidence: a mean outside 0..255 or a std above 127.5 (impossible for 8-bit values), or
        all means and stds at most 1 (floating-point data in 0..1). False skips this check.
    opset : int
        ONNX opset, 9-20; 18 by default (runs in ONNX Runtime >= 1.14).
    verify : bool
        Run the exported file with onnxruntime on two random 8-bit tiles fed the way Deepness
        feeds them, and compare with the PyTorch model given the same tiles through pointseg's
        own normalisation (:func:`pointseg.predict.predict_logits`) then a softmax.
    atol : float
        Largest probability difference accepted by ``verify``.

    Returns
    -------
    Path
        ``out``. Input ``input`` float32 ``(batch, in_channels, tiles_size, tiles_size)``;
        output ``probabilities`` float32 ``(batch, num_classes, tiles_size, tiles_size)``.

    Raises
    ------
    FileNotFoundError
        ``model`` or ``raster`` does not exist.
    ImportError
        onnx (or, with ``verify``, onnxruntime) is not installed.
    ValueError
        A model Deepness cannot feed (band count other than 3 without ``allow_non_rgb``,
        statistics of non-8-bit data, missing mean/std), a bad option (``tiles_size`` not an
        integer >= :data:`MIN_TILES_SIZE`, ``tiles_overlap`` outside [0, 100), ...), or a
        ``raster`` whose CRS is not projected in metres while ``resolution_cm`` is not given.
        The message names the fix.
    OnnxExportError
        With ``verify``: the ONNX probabilities differ from pointseg's beyond ``atol``.
    """
    onnx = _import_onnx()
    if verify:
        _import_ort()
    _check_opset(opset)
    src = _resolve_model_file(model)
    out = Path(out)
    net, spec = load_model(src, map_location="cpu")
    net.eval()

    if tiles_size is None:
        tiles_size = spec.image_size or spec.window or DEFAULT_TILES_SIZE
    if tiles_overlap is None and _is_int(tiles_size) and tiles_size > 0:
        tiles_overlap = _default_overlap_percent(tiles_size)
    _check_options(
        tiles_size,
        tiles_overlap,
        seg_thresh,
        seg_small_segment,
        resolution_cm,
        training_size=spec.image_size,
    )
    _check_bands(spec, src, allow_non_rgb=allow_non_rgb)
    _check_statistics(spec, src, check_uint8=check_uint8)
    if resolution_cm is None and raster is not None:
        resolution_cm = raster_resolution_cm(raster)
        if float(spec.scale or 1.0) != 1.0:  # trained at scale s: pixels s times coarser
            resolution_cm = resolution_cm / float(spec.scale)
            logger.info(
                "%s was trained at scale %g: processing resolution %.1f cm/px",
                src,
                spec.scale,
                resolution_cm,
            )
    if resolution_cm is None:
        logger.warning(
            "no resolution_cm or raster given: the model carries no 'resolution', so set the "
            "processing resolution in Deepness to that of the training images"
        )
    if spec.image_size and spec.image_size != tiles_size:
        logger.info(
            "%s was trained on %d px images; Deepness will feed it %d px tiles at the given "
            "resolution (like 'pointseg predict --tiled --tile-size %d')",
            src,
            spec.image_size,
            tiles_size,
            tiles_size,
        )

    graph = _DeepnessGraph(_export_ready(net), spec.mean, spec.std).eval()
    example = torch.zeros(2, spec.in_channels, tiles_size, tiles_size)
    proto = onnx.load_from_string(
        _torch_export(
            graph,
            example,
            opset=opset,
            dynamic_size=False,
            input_name=DEEPNESS_INPUT_NAME,
            output_name=DEEPNESS_OUTPUT_NAME,
        )
    )
    _set_metadata(
        proto,
        _deepness_metadata(
            spec,
            tiles_size=tiles_size,
            tiles_overlap=tiles_overlap,
            resolution_cm=resolution_cm,
            seg_thresh=seg_thresh,
            seg_small_segment=seg_small_segment,
        ),
    )
    proto.doc_string = (
        f"pointseg {spec.name} for the Deepness QGIS plugin: {DEEPNESS_INPUT_NAME} float32 "
        f"(batch, {spec.in_channels}, {tiles_size}, {tiles_size}) = 8-bit pixels / 255 -> "
        f"{DEEPNESS_OUTPUT_NAME} (batch, {spec.num_classes}, {tiles_size}, {tiles_size}), "
        "softmax over classes"
    )
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    if verify:
        net.eval()  # the exporter restores each module's mode; the reference runs in eval
        worst = _verify(net, spec, data, tiles_size=tiles_size, atol=atol, out=out)
        logger.info("verified %s against pointseg: max |difference| %.3g", out, worst)

    with atomic_write(out) as tmp:
        tmp.write_bytes(data)
    logger.info(
        "exported %s (%s) for Deepness to %s: %d px tiles, %d %% overlap, resolution %s cm/px "
        "(%.1f MB)",
        src,
        spec.name,
        out,
        tiles_size,
        tiles_overlap,
        "unset" if resolution_cm is None else f"{resolution_cm:g}",
        len(data) / 1e6,
    )
    return out


def read_deepness_metadata(path: str | Path) -> dict[str, Any]:
    """The ``metadata_props`` of an ONNX file, JSON-decoded as Deepness decodes them.

    Parameters
    ----------
    path : str or Path
        An ``.onnx`` file (needs ``onnx``, not onnxruntime).

    Returns
    -------
    dict
        Key → decoded value (a value that is not JSON is returned as its string), e.g.
        ``{"model_type": "Segmentor", "class_names": {"0": ..., ...}, "tiles_size": 512, ...}``.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not an ONNX model.
    """
    meta: dict[str, Any] = {}
    for key, value in onnx_metadata(path).items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return meta
