"""Class colours: label maps to RGB, and translucent overlays on images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pointseg.constants import IGNORE_INDEX

__all__ = ["colorize", "display_image", "overlay"]


def colorize(
    labels: np.ndarray,
    colors: Sequence[Sequence[int]],
    *,
    ignore_color: Sequence[int] = (0, 0, 0),
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """(H, W) class indices → (H, W, 3) uint8 RGB; ignore pixels get ``ignore_color``."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = ignore_color
    lut[: len(colors)] = np.asarray(colors, np.uint8)
    lut[ignore_index] = ignore_color
    return lut[np.asarray(labels, np.uint8)]


def display_image(image: np.ndarray) -> np.ndarray:
    """(H, W, C) image, any dtype → (H, W, 3) uint8 for display (first 3 bands, 2-98 % stretch)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    img = img[..., :3] if img.shape[2] >= 3 else np.repeat(img[..., :1], 3, axis=2)
    if img.dtype == np.uint8:
        return img
    f = img.astype(np.float32)
    lo, hi = np.percentile(f, 2), np.percentile(f, 98)
    return (np.clip((f - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    colors: Sequence[Sequence[int]],
    *,
    alpha: float = 0.45,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Blend class colours over an image; ignore pixels stay as the image. Returns uint8 RGB."""
    base = display_image(image).astype(np.float32)
    col = colorize(labels, colors, ignore_index=ignore_index).astype(np.float32)
    labelled = (np.asarray(labels) != ignore_index)[..., None]
    out = np.where(labelled, (1 - alpha) * base + alpha * col, base)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
