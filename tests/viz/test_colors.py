import numpy as np

from pointseg.constants import IGNORE_INDEX
from pointseg.viz import colorize, overlay
from pointseg.viz.colors import display_image


def test_colorize_and_ignore():
    labels = np.array([[0, 1], [IGNORE_INDEX, 1]], np.uint8)
    rgb = colorize(labels, [(10, 20, 30), (40, 50, 60)], ignore_color=(255, 255, 255))
    np.testing.assert_array_equal(rgb[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(rgb[1, 1], [40, 50, 60])
    np.testing.assert_array_equal(rgb[1, 0], [255, 255, 255])


def test_overlay_leaves_ignored_pixels_untouched():
    image = np.full((2, 2, 3), 100, np.uint8)
    labels = np.array([[0, IGNORE_INDEX], [0, 0]], np.uint8)
    out = overlay(image, labels, [(200, 100, 0)], alpha=0.5)
    np.testing.assert_array_equal(out[0, 1], [100, 100, 100])
    np.testing.assert_array_equal(out[0, 0], [150, 100, 50])


def test_display_image_stretches_non_uint8():
    img = np.linspace(0, 4000, 5 * 5 * 4).reshape(5, 5, 4).astype(np.uint16)
    out = display_image(img)
    assert out.shape == (5, 5, 3) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255
    grey = display_image(np.zeros((3, 3, 1), np.uint8))
    assert grey.shape == (3, 3, 3)
