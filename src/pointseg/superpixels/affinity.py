"""Pairwise pixel affinities on the 4-connected grid (inputs to :mod:`.hers`).

An affinity map is a pair ``(horizontal, vertical)`` of float64 arrays:

* ``horizontal[y, x]`` (shape ``(H, W-1)``) links pixel ``(y, x)`` to its right
  neighbour ``(y, x+1)``;
* ``vertical[y, x]`` (shape ``(H-1, W)``) links pixel ``(y, x)`` to its bottom
  neighbour ``(y+1, x)``.

Values lie in ``[0, 1]``: 1 means "certainly the same segment", 0 means "no link"
(used for nodata). Two sources are provided:

* :func:`color_affinity`: a Gaussian of the Euclidean colour difference over all bands,
  optionally lowered across the edges of an edge-strength map;
* :func:`learned_affinity`: runs an :class:`AffinityModel` (e.g. a TorchScript file
  loaded with :func:`load_affinity_model`), the interface for deep affinities such as
  the DAL network of the HERS paper (no trained model ships with pointseg).
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "AFFINITY_FLOOR",
    "SIGMA_FLOOR",
    "AffinityModel",
    "apply_edge_map",
    "color_affinity",
    "learned_affinity",
    "load_affinity_model",
]

logger = logging.getLogger(__name__)

#: Lower bound of the automatic ``sigma`` (keeps one-colour images finite).
SIGMA_FLOOR: float = 1e-6
#: Smallest affinity :func:`color_affinity` gives two valid pixels (keeps them > 0).
AFFINITY_FLOOR: float = float(np.finfo(np.float64).tiny)


def _as_hwc(image: Any) -> np.ndarray:
    """(H, W) or (H, W, C) numeric array -> float64 (H, W, C); NaN allowed, inf not."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise ValueError(
            f"image must have shape (H, W) or (H, W, C) with C >= 1, got {np.shape(image)}."
        )
    if not (
        np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.floating)
        or arr.dtype == np.bool_
    ):
        raise ValueError(f"image dtype must be numeric, got {arr.dtype}.")
    out = np.asarray(arr, dtype=np.float64)
    if np.isinf(out).any():
        raise ValueError("image contains infinite values; use NaN for nodata pixels.")
    return out


def _squared_differences(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared Euclidean band difference to the right / bottom neighbour (NaN stays NaN).

    Accumulated band by band so that no (H, W, C) temporary is needed.
    """
    h, w, c = img.shape
    d2h = np.zeros((h, w - 1), dtype=np.float64)
    d2v = np.zeros((h - 1, w), dtype=np.float64)
    for k in range(c):
        band = img[:, :, k]
        t = band[:, 1:] - band[:, :-1]
        d2h += t * t
        t = band[1:, :] - band[:-1, :]
        d2v += t * t
    return d2h, d2v


#: Above this many edges the automatic sigma uses an evenly strided subsample.
_SIGMA_SAMPLE: int = 1 << 22


def _auto_sigma(d2h: np.ndarray, d2v: np.ndarray) -> float:
    """Median of the non-zero neighbour distances (strided subsample on huge images)."""
    n_edges = d2h.size + d2v.size
    step = max(1, -(-n_edges // _SIGMA_SAMPLE))
    d2 = np.concatenate([d2h.ravel()[::step], d2v.ravel()[::step]])
    d2 = d2[np.isfinite(d2) & (d2 > 0)]
    sigma = float(np.median(np.sqrt(d2))) if d2.size else SIGMA_FLOOR
    return max(sigma, SIGMA_FLOOR)


def apply_edge_map(
    horizontal: np.ndarray, vertical: np.ndarray, edge_map: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Lower affinities across edges: multiply by ``1 - max(edge[p], edge[q])``.

    Parameters
    ----------
    horizontal, vertical : np.ndarray, shapes (H, W-1) and (H-1, W)
        Affinities in [0, 1].
    edge_map : array-like, shape (H, W)
        Edge strength in [0, 1] (1 = certain boundary); NaN counts as 0 (no edge).

    Returns
    -------
    (np.ndarray, np.ndarray)
        New float64 arrays in [0, 1] (a pair across a full-strength edge gets 0).
    """
    h_rows = horizontal.shape[0]
    w_cols = vertical.shape[1]
    edge = np.asarray(edge_map, dtype=np.float64)
    if edge.shape != (h_rows, w_cols):
        raise ValueError(f"edge_map must have shape (H, W) = {(h_rows, w_cols)}, got {edge.shape}.")
    edge = np.nan_to_num(edge, nan=0.0)
    if edge.min(initial=0.0) < 0.0 or edge.max(initial=0.0) > 1.0:
        raise ValueError(
            "edge_map values must lie in [0, 1] (1 = strongest edge); rescale it first."
        )
    keep_h = 1.0 - np.maximum(edge[:, 1:], edge[:, :-1])
    keep_v = 1.0 - np.maximum(edge[1:, :], edge[:-1, :])
    return horizontal * keep_h, vertical * keep_v


def color_affinity(
    image: Any, *, sigma: float | None = None, edge_map: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian colour affinity of 4-neighbours: ``exp(-d^2 / (2 sigma^2))``.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, C)
        Any number of bands; ``d`` is the Euclidean distance over all of them (in the
        image's own units, so pass images scaled alike). NaN in any band marks a nodata
        pixel: all its affinities are 0.
    sigma : float, optional
        Kernel width in image units. ``None`` (default) uses the median of the non-zero
        neighbour distances ``d`` of the image (over an evenly strided subsample of about
        4 million edges on larger images), floored at :data:`SIGMA_FLOOR` (a one-colour
        image gets ``SIGMA_FLOOR`` and all affinities 1).
    edge_map : array-like, shape (H, W), optional
        Edge strength in [0, 1]; affinities are multiplied by ``1 - max(edge[p], edge[q])``
        (see :func:`apply_edge_map`).

    Returns
    -------
    horizontal : np.ndarray, shape (H, W-1), float64
        Affinity of ``(y, x)`` and ``(y, x+1)``.
    vertical : np.ndarray, shape (H-1, W), float64
        Affinity of ``(y, x)`` and ``(y+1, x)``.

        Without ``edge_map`` every pair of valid pixels gets a value in
        ``[AFFINITY_FLOOR, 1]`` (never exactly 0); pairs touching a nodata pixel get 0.
    """
    img = _as_hwc(image)
    d2h, d2v = _squared_differences(img)
    if sigma is None:
        sigma_ = _auto_sigma(d2h, d2v)
        logger.debug("color_affinity: automatic sigma = %.4g", sigma_)
    else:
        sigma_ = float(sigma)
        if not math.isfinite(sigma_) or sigma_ <= 0:
            raise ValueError(f"sigma must be a finite number > 0 or None, got {sigma!r}.")
    scale = -1.0 / (2.0 * sigma_ * sigma_)
    for a in (d2h, d2v):  # in place: squared distance -> affinity
        nodata = np.isnan(a)
        a[nodata] = 0.0
        a *= scale
        np.exp(a, out=a)
        np.maximum(a, AFFINITY_FLOOR, out=a)
        a[nodata] = 0.0
    horizontal, vertical = d2h, d2v
    if edge_map is not None:
        horizontal, vertical = apply_edge_map(horizontal, vertical, edge_map)
    return horizontal, vertical


# ------------------------------------------------------------------ learned affinities


@runtime_checkable
class AffinityModel(Protocol):
    """Contract of a learned affinity model (e.g. a TorchScript module).

    A ``torch.nn.Module`` (or any callable) mapping a float32 image tensor of shape
    ``(1, C, H, W)`` to a tensor of shape ``(1, 2, H, W)`` with values in ``[0, 1]``:
    channel 0 is the affinity of pixel ``(y, x)`` to its right neighbour ``(y, x+1)``,
    channel 1 the affinity to its bottom neighbour ``(y+1, x)``. The last column of
    channel 0 and the last row of channel 1 have no neighbour and are ignored. The model
    must accept a CPU tensor; it gets the image exactly as passed to
    :func:`learned_affinity` (no rescaling), so feed it what it was trained on.
    """

    def __call__(self, x: Any) -> Any:  # x: torch.Tensor (1, C, H, W) -> (1, 2, H, W)
        """Return affinities for one image."""
        ...


def learned_affinity(
    image: Any, model: AffinityModel, *, tolerance: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Affinities from a learned model (see :class:`AffinityModel`), run on the CPU.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, C)
        The model input; NaN (nodata) pixels are fed as 0 and get affinity 0 to
        every neighbour.
    model : AffinityModel
        Called once under ``torch.no_grad()``; a module is switched to eval mode for
        the call and restored afterwards.
    tolerance : float, default 1e-4
        Outputs within ``tolerance`` outside [0, 1] are clipped; larger excursions
        (or NaN) raise.

    Returns
    -------
    (horizontal (H, W-1), vertical (H-1, W)) : float64 arrays in [0, 1]

    Raises
    ------
    ValueError
        If the model output is not a tensor of shape ``(1, 2, H, W)`` or has values
        outside ``[0, 1]``.
    """
    import torch  # lazy: torch is heavy and only needed here

    img = _as_hwc(image)
    h, w, c = img.shape
    nodata = np.isnan(img).any(axis=2)
    x = torch.from_numpy(np.ascontiguousarray(np.nan_to_num(img, nan=0.0).transpose(2, 0, 1)))
    x = x.to(dtype=torch.float32).unsqueeze(0)

    was_training = getattr(model, "training", None)
    if was_training is not None and hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        if was_training and hasattr(model, "train"):
            model.train(True)

    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"affinity model must return a torch.Tensor of shape (1, 2, {h}, {w}), "
            f"got {type(out).__name__}."
        )
    if tuple(out.shape) != (1, 2, h, w):
        raise ValueError(
            f"affinity model returned shape {tuple(out.shape)} for a (1, {c}, {h}, {w}) "
            f"input; expected (1, 2, {h}, {w}) (channel 0 = right, 1 = bottom neighbour)."
        )
    aff = out.detach().to("cpu", dtype=torch.float64).numpy()[0]
    if not np.isfinite(aff).all():
        raise ValueError("affinity model returned NaN or infinite values.")
    lo, hi = float(aff.min()), float(aff.max())
    if lo < -tolerance or hi > 1.0 + tolerance:
        raise ValueError(
            f"affinity model outputs must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]; "
            "end the model with a sigmoid."
        )
    aff = np.clip(aff, 0.0, 1.0)
    horizontal = np.ascontiguousarray(aff[0, :, : w - 1])
    vertical = np.ascontiguousarray(aff[1, : h - 1, :])
    if nodata.any():
        horizontal[nodata[:, 1:] | nodata[:, :-1]] = 0.0
        vertical[nodata[1:, :] | nodata[:-1, :]] = 0.0
    return horizontal, vertical


def load_affinity_model(path: str | Path) -> Any:
    """Load a TorchScript affinity model from a local file (CPU, eval mode).

    Parameters
    ----------
    path : str or Path
        A local ``.pt``/``.ts`` file saved with ``torch.jit.save``; nothing is
        downloaded.

    Returns
    -------
    torch.jit.ScriptModule
        Satisfies :class:`AffinityModel`.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing local file (URLs are not fetched).
    """
    text = str(path)
    if "://" in text:
        raise FileNotFoundError(
            f"load_affinity_model reads local files only, got {text!r}; download the "
            "model yourself and pass its path."
        )
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"affinity model file not found: {p} (expected a TorchScript file)."
        )
    import torch  # lazy

    with warnings.catch_warnings():
        # torch >= 2.9 flags TorchScript as deprecated; it is still the portable format
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning
        )
        model = torch.jit.load(str(p), map_location="cpu")
    model.eval()
    return model
