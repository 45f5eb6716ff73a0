"""Registry of superpixel methods and the contract every method obeys.

A superpixel method is registered with :func:`register_superpixel_method`::

    @register_superpixel_method("mymethod")
    def mymethod(image, *, n_segments, seed=0, **options):
        ...  # image: (H, W, C) float64 in [0, 1]; return any (H, W) integer map

The decorator wraps the *raw* function so that every registered method, whatever
it does inside, has the same public behaviour:

* input: ``image`` (H, W) or (H, W, C) with any number of bands C >= 1, uint8 or
  float (other integer types are treated like floats); it is validated and
  converted by :func:`normalize_image` before the raw function sees it, so raw
  functions always receive a C-contiguous (H, W, C) float64 array in [0, 1];
* ``n_segments`` is validated (an int >= 1) and clipped to the pixel count;
* output: the raw label map is passed through :func:`relabel_connected`, so the
  result is an (H, W) int32 map with values 0..K-1, consecutive, in raster-scan order
  of first appearance, and every label is one 4-connected region.

The raw function is still reachable as ``get_superpixel_method(name).__wrapped__``.
A hierarchical method (e.g. a future ``hers``: build a merge hierarchy once, cut it
at any count) slots in the same way; it may register a callable object instead of
a function and keep its hierarchy-building API as extra attributes/methods on it,
which the wrapper exposes via ``__wrapped__``.

New methods become visible once their module is imported, so add the import to
``pointseg/superpixels/__init__.py``.
"""

from __future__ import annotations

import functools
import logging
import numbers
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from skimage.measure import label as _cc_label

__all__ = [
    "SuperpixelMethod",
    "compute_superpixels",
    "get_superpixel_method",
    "list_superpixel_methods",
    "normalize_image",
    "register_superpixel_method",
    "relabel_connected",
]

logger = logging.getLogger(__name__)


class SuperpixelMethod(Protocol):
    """Signature shared by every registered superpixel method."""

    def __call__(
        self, image: np.ndarray, *, n_segments: int, seed: int = 0, **options: Any
    ) -> np.ndarray:
        """Return an (H, W) int32 label map with values 0..K-1 (see module docstring)."""
        ...


_REGISTRY: dict[str, SuperpixelMethod] = {}


# --------------------------------------------------------------------------- helpers


def normalize_image(image: np.ndarray) -> np.ndarray:
    """Validate an image and convert it to float64 in [0, 1] with an explicit band axis.

    Parameters
    ----------
    image : np.ndarray, shape (H, W) or (H, W, C)
        Any number of bands C >= 1. ``uint8`` is divided by 255; ``bool`` maps to
        {0, 1}; floats (and integer types other than uint8) are kept as they are
        when every value of a band lies in [0, 1], otherwise that band is
        min-max scaled to [0, 1] (a constant band becomes all zeros).

    Returns
    -------
    np.ndarray, shape (H, W, C), float64
        A new C-contiguous array in [0, 1].

    Raises
    ------
    ValueError
        If the image is not a numeric 2-D/3-D array, is empty, has zero bands or
        holds NaN/inf values.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.ndim != 3:
        raise ValueError(
            f"image must have shape (H, W) or (H, W, C), got shape {image.shape}; "
            "pass one image at a time with the band axis last."
        )
    h, w, c = image.shape
    if h < 1 or w < 1 or c < 1:
        raise ValueError(
            f"image must be non-empty with at least one band, got shape {image.shape}."
        )
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image, dtype=np.float64) / 255.0
    if image.dtype == np.bool_:
        return np.ascontiguousarray(image, dtype=np.float64)
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(
            f"image dtype must be uint8, another integer type or float, got {image.dtype}; "
            "convert it with image.astype(np.float32)."
        )
    out = np.array(image, dtype=np.float64, order="C", copy=True)
    if not np.isfinite(out).all():
        raise ValueError(
            "image contains NaN or infinite values; fill them (e.g. np.nan_to_num) first."
        )
    lo = out.min(axis=(0, 1))
    hi = out.max(axis=(0, 1))
    outside = (lo < 0.0) | (hi > 1.0)
    if outside.any():
        span = np.where(hi > lo, hi - lo, 1.0)
        scaled = (out - lo) / span
        out[:, :, outside] = scaled[:, :, outside]
        logger.debug("min-max scaled bands %s to [0, 1]", np.flatnonzero(outside).tolist())
    return out


def relabel_connected(labels: np.ndarray) -> np.ndarray:
    """Split every label into its 4-connected pieces and relabel to 0..K-1.

    Parameters
    ----------
    labels : np.ndarray, shape (H, W), integer
        Any integer label map (values need not be consecutive or non-negative).

    Returns
    -------
    np.ndarray, shape (H, W), int32
        Consecutive labels 0..K-1 numbered in raster-scan order of first
        appearance; each label is exactly one 4-connected region.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D (H, W) map, got shape {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}.")
    # Shift to >= 1 so that no value collides with skimage's background (0).
    dense = labels.astype(np.int64) - int(labels.min()) + 1
    # skimage.measure.label numbers connected components of equal value in
    # raster-scan order, 1..K; connectivity=1 is the 4-neighbourhood.
    components = _cc_label(dense, background=0, connectivity=1)
    return (components - 1).astype(np.int32, copy=False)


def _validate_n_segments(n_segments: Any) -> int:
    if isinstance(n_segments, bool) or not isinstance(n_segments, numbers.Integral):
        raise ValueError(
            f"n_segments must be an int >= 1, got {n_segments!r} "
            f"({type(n_segments).__name__}); pass e.g. n_segments=300."
        )
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}; pass e.g. n_segments=300.")
    return int(n_segments)


def _validate_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an int, got {seed!r} ({type(seed).__name__}).")
    return int(seed)


# -------------------------------------------------------------------------- registry


def register_superpixel_method(name: str) -> Callable[[Callable[..., Any]], SuperpixelMethod]:
    """Register a superpixel method under ``name`` (decorator).

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"slic"``. Must be a non-empty string not yet registered.

    Returns
    -------
    Callable
        Decorator that wraps the raw method (see module docstring for the
        contract the wrapper enforces), stores it in the registry and returns
        the wrapped method.

    Raises
    ------
    ValueError
        If ``name`` is empty or already registered.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"superpixel method name must be a non-empty string, got {name!r}.")
    if name in _REGISTRY:
        raise ValueError(f"superpixel method {name!r} is already registered; choose another name.")

    def decorator(raw: Callable[..., Any]) -> SuperpixelMethod:
        @functools.wraps(raw)
        def method(
            image: np.ndarray, *, n_segments: int, seed: int = 0, **options: Any
        ) -> np.ndarray:
            n = _validate_n_segments(n_segments)
            seed_ = _validate_seed(seed)
            img = normalize_image(image)
            h, w = img.shape[:2]
            if n > h * w:
                logger.debug(
                    "%s: n_segments=%d exceeds the %d pixels of a %dx%d image; clipped",
                    name,
                    n,
                    h * w,
                    h,
                    w,
                )
                n = h * w
            raw_labels = np.asarray(raw(img, n_segments=n, seed=seed_, **options))
            if raw_labels.shape != (h, w):
                raise RuntimeError(
                    f"superpixel method {name!r} returned shape {raw_labels.shape}, "
                    f"expected {(h, w)}."
                )
            labels = relabel_connected(raw_labels)
            logger.debug(
                "%s: %d superpixels on a %dx%d image (target %d)",
                name,
                int(labels.max()) + 1,
                h,
                w,
                n,
            )
            return labels

        method.method_name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = method
        return method

    return decorator


def list_superpixel_methods() -> list[str]:
    """Return the names of all registered superpixel methods, sorted.

    Returns
    -------
    list of str
    """
    return sorted(_REGISTRY)


def get_superpixel_method(name: str) -> SuperpixelMethod:
    """Look up a registered superpixel method.

    Parameters
    ----------
    name : str
        A name from :func:`list_superpixel_methods`.

    Returns
    -------
    SuperpixelMethod
        ``fn(image, *, n_segments, seed=0, **options) -> (H, W) int32``.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the valid names.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(n) for n in list_superpixel_methods())
        raise ValueError(f"unknown superpixel method {name!r}; valid names are: {valid}.") from None


def compute_superpixels(
    image: np.ndarray,
    *,
    method: str = "slic",
    n_segments: int = 300,
    seed: int = 0,
    **options: Any,
) -> np.ndarray:
    """Compute superpixels with a registered method.

    Parameters
    ----------
    image : np.ndarray, shape (H, W) or (H, W, C)
        uint8 or float image with any number of bands.
    method : str, default "slic"
        A name from :func:`list_superpixel_methods`.
    n_segments : int, default 300
        Target number of superpixels (approximate for most methods).
    seed : int, default 0
        Seed for methods with randomness (the built-in ones are deterministic).
    **options
        Method-specific keyword options (e.g. ``compactness`` for slic).

    Returns
    -------
    np.ndarray, shape (H, W), int32
        Labels 0..K-1, consecutive, each one 4-connected region.
    """
    fn = get_superpixel_method(method)
    return fn(image, n_segments=n_segments, seed=seed, **options)
