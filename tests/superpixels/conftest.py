"""Test images shared by the superpixel tests (factories handed out as fixtures)."""

import numpy as np
import pytest


def _textured_image(h: int = 128, w: int = 128, bands: int = 3, seed: int = 0) -> np.ndarray:
    """Blocky piecewise-constant colours + stripes + noise, float in [0, 1]."""
    rng = np.random.default_rng(seed)
    img = np.kron(rng.random((8, 8, bands)), np.ones((-(-h // 8), -(-w // 8), 1)))[:h, :w]
    yy, xx = np.mgrid[:h, :w]
    img = img + 0.08 * np.sin(xx / 2.5 + yy / 4.0)[..., None]
    img = img + rng.normal(0.0, 0.03, img.shape)
    return np.clip(img, 0.0, 1.0)


def _two_region_image(bands: int = 3, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """64x64: left half dark, right half bright, mild noise."""
    rng = np.random.default_rng(seed)
    img = np.full((64, 64, bands), 0.2)
    img[:, 32:] = 0.8
    return np.clip(img + rng.normal(0.0, noise, img.shape), 0.0, 1.0)


@pytest.fixture
def textured_image():
    return _textured_image


@pytest.fixture
def two_region_image():
    return _two_region_image
