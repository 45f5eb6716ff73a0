"""Resizing that keeps labels exact: images bilinear (antialiased), labels nearest only."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["letterbox_shape", "resize_image", "resize_labels", "scale_points"]


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a (H, W) label map to ``size`` = (h, w) by nearest neighbour (pixel centres)."""
    labels = np.asarray(labels)
    h, w = size
    if labels.shape[:2] == (h, w):
        return labels
    rows = _nearest_index(labels.shape[0], h)
    cols = _nearest_index(labels.shape[1], w)
    return labels[rows[:, None], cols[None, :]]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a (H, W, C) image to ``size`` = (h, w), bilinear with antialiasing.

    Any number of bands and any dtype; integer images are rounded back to their dtype.
    """
    image = np.asarray(image)
    if image.shape[:2] == tuple(size):
        return image
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    out = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
    out = out[0].permute(1, 2, 0).numpy()
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype)


def scale_points(
    points: np.ndarray, *, from_shape: tuple[int, int], to_shape: tuple[int, int]
) -> np.ndarray:
    """Map (N, 3) points ``x, y, class`` from one image size to another (pixel centres)."""
    points = np.asarray(points, dtype=np.int64).reshape(-1, 3)
    if tuple(from_shape) == tuple(to_shape):
        return points.copy()
    (h0, w0), (h1, w1) = from_shape, to_shape
    out = points.copy()
    out[:, 0] = np.minimum(((points[:, 0] + 0.5) * w1 / w0).astype(np.int64), w1 - 1)
    out[:, 1] = np.minimum(((points[:, 1] + 0.5) * h1 / h0).astype(np.int64), h1 - 1)
    return out


def letterbox_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """(h, w) of an image of ``shape`` scaled to fit a ``size`` square, aspect kept.

    The letterboxed image sits at the top-left corner of the square; the rest is padding.
    """
    h, w = int(shape[0]), int(shape[1])
    f = size / max(h, w)
    return max(1, min(size, round(h * f))), max(1, min(size, round(w * f)))
