"""Tests for the superpixel registry and the built-in methods."""

import numpy as np
import pytest
from skimage.measure import label as cc_label

from pointseg.superpixels import (
    compute_superpixels,
    get_superpixel_method,
    list_superpixel_methods,
    normalize_image,
    register_superpixel_method,
    relabel_connected,
)
from pointseg.superpixels import registry as registry_module

BUILTIN = ("slic", "felzenszwalb", "grid")
BOUNDARY_AWARE = ("slic", "felzenszwalb")


def assert_valid_labels(labels: np.ndarray, shape: tuple[int, int]) -> int:
    """Check the shared contract; return the number of superpixels."""
    assert labels.shape == shape
    assert labels.dtype == np.int32
    k = int(labels.max()) + 1
    np.testing.assert_array_equal(np.unique(labels), np.arange(k))
    # Each label one 4-connected region <=> the 4-connected components of the map
    # (components of equal value) are exactly as many as the labels.
    n_components = int(cc_label(labels + 1, background=0, connectivity=1).max())
    assert n_components == k
    return k


# ----------------------------------------------------------------------------- registry


def test_list_contains_builtins_sorted():
    names = list_superpixel_methods()
    assert set(BUILTIN) <= set(names)
    assert names == sorted(names)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown superpixel method 'nope'") as info:
        get_superpixel_method("nope")
    for name in BUILTIN:
        assert repr(name) in str(info.value)
    with pytest.raises(ValueError, match="valid names"):
        compute_superpixels(np.zeros((8, 8)), method="nope")


def test_register_custom_method_gets_the_contract(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    seen = {}

    @register_superpixel_method("stripes_test")
    def stripes(image, *, n_segments, seed=0):
        seen["image"] = image
        out = np.full(image.shape[:2], 7, dtype=np.int64)
        out[:, 2:4] = 3  # splits label 7 into two disconnected pieces
        return out

    assert "stripes_test" in list_superpixel_methods()
    assert get_superpixel_method("stripes_test") is stripes
    labels = compute_superpixels(np.full((4, 6), 255, np.uint8), method="stripes_test")
    expected = np.tile(np.array([0, 0, 1, 1, 2, 2], np.int32), (4, 1))
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.int32
    assert seen["image"].shape == (4, 6, 1)
    assert seen["image"].dtype == np.float64
    assert np.all(seen["image"] == 1.0)
    with pytest.raises(ValueError, match="already registered"):
        register_superpixel_method("stripes_test")


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_bad_n_segments(bad):
    with pytest.raises(ValueError, match="n_segments"):
        compute_superpixels(np.zeros((8, 8)), method="grid", n_segments=bad)


@pytest.mark.parametrize("shape", [(8,), (2, 8, 8, 3), (0, 8), (8, 8, 0)])
def test_bad_image_shape(shape):
    with pytest.raises(ValueError, match="image"):
        compute_superpixels(np.zeros(shape), method="grid", n_segments=4)


def test_non_finite_image():
    img = np.zeros((8, 8, 3))
    img[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compute_superpixels(img, method="grid", n_segments=4)


def test_normalize_image():
    np.testing.assert_allclose(normalize_image(np.array([[0, 255]], np.uint8)), [[[0.0], [1.0]]])
    img = np.stack([np.array([[0.2, 0.5]]), np.array([[100.0, 300.0]])], axis=-1)
    out = normalize_image(img)
    assert out.shape == (1, 2, 2)
    np.testing.assert_allclose(out[..., 0], [[0.2, 0.5]])  # already in [0, 1]: kept
    np.testing.assert_allclose(out[..., 1], [[0.0, 1.0]])  # min-max scaled
    const = normalize_image(np.full((3, 3), -5.0))
    np.testing.assert_array_equal(const, 0.0)


def test_relabel_connected():
    labels = np.array([[5, 5, 9, 5], [9, 9, 9, 5]])
    out = relabel_connected(labels)
    np.testing.assert_array_equal(out, [[0, 0, 1, 2], [1, 1, 1, 2]])
    # diagonal-only contact is not 4-connected
    diag = np.array([[1, 0], [0, 1]])
    np.testing.assert_array_equal(relabel_connected(diag), [[0, 1], [2, 3]])


# ------------------------------------------------------------------- built-in methods


@pytest.mark.parametrize("method", BUILTIN)
def test_methods_contract_and_count(method, textured_image):
    img = textured_image()
    n = 100
    labels = compute_superpixels(img, method=method, n_segments=n)
    k = assert_valid_labels(labels, img.shape[:2])
    assert 0.5 * n <= k <= 1.5 * n, k


@pytest.mark.parametrize("method", BUILTIN)
def test_methods_deterministic(method, textured_image):
    img = textured_image(64, 64, seed=3)
    fn = get_superpixel_method(method)
    a = fn(img, n_segments=40, seed=0)
    b = fn(img.copy(), n_segments=40, seed=0)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", BUILTIN)
@pytest.mark.parametrize("bands", [1, 5])
def test_methods_multiband_float(method, bands, textured_image):
    img = textured_image(64, 64, bands=bands, seed=bands)
    if bands == 5:
        img = img * 3000.0 - 200.0  # e.g. reflectance: forces per-band min-max scaling
    labels = compute_superpixels(img, method=method, n_segments=40)
    k = assert_valid_labels(labels, (64, 64))
    assert 20 <= k <= 60, k


@pytest.mark.parametrize("method", BUILTIN)
def test_methods_accept_2d_and_uint8(method, textured_image):
    img = (textured_image(48, 48, bands=1)[..., 0] * 255).astype(np.uint8)
    labels = compute_superpixels(img, method=method, n_segments=20)
    assert_valid_labels(labels, (48, 48))


@pytest.mark.parametrize("method", BOUNDARY_AWARE)
@pytest.mark.parametrize("bands", [1, 3])
@pytest.mark.parametrize("n_segments", [8, 30, 100])
def test_no_superpixel_straddles_a_step_edge(method, bands, n_segments, two_region_image):
    img = two_region_image(bands=bands)
    labels = compute_superpixels(img, method=method, n_segments=n_segments)
    assert_valid_labels(labels, (64, 64))
    left = set(np.unique(labels[:, :32]).tolist())
    right = set(np.unique(labels[:, 32:]).tolist())
    assert not left & right


@pytest.mark.parametrize("method", BUILTIN)
@pytest.mark.parametrize("shape", [(4, 4), (5, 5, 3), (1, 7)])
def test_tiny_images(method, shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    h, w = shape[:2]
    labels = compute_superpixels(img, method=method, n_segments=1000)  # > pixel count
    k = assert_valid_labels(labels, (h, w))
    assert 1 <= k <= h * w
    if method == "grid":
        assert k == h * w  # every pixel its own superpixel


@pytest.mark.parametrize("method", BUILTIN)
def test_one_colour_image(method):
    img = np.full((32, 32, 3), 120, np.uint8)
    labels = compute_superpixels(img, method=method, n_segments=16)
    k = assert_valid_labels(labels, (32, 32))
    assert 1 <= k <= 32


def test_single_segment(textured_image):
    labels = compute_superpixels(textured_image(32, 32), method="slic", n_segments=1)
    assert_valid_labels(labels, (32, 32))
    np.testing.assert_array_equal(
        compute_superpixels(np.zeros((5, 7)), method="grid", n_segments=1), 0
    )


def test_grid_layout():
    labels = compute_superpixels(np.zeros((4, 6)), method="grid", n_segments=6)
    expected = np.repeat(np.repeat(np.arange(6).reshape(2, 3), 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(labels, expected)


def test_slic_options(textured_image):
    img = textured_image(48, 48, bands=5)
    with pytest.raises(ValueError, match="convert2lab"):
        compute_superpixels(img, method="slic", n_segments=10, convert2lab=True)
    with pytest.raises(ValueError, match="compactness"):
        compute_superpixels(img, method="slic", n_segments=10, compactness=-1)
    with pytest.raises(TypeError):
        compute_superpixels(img, method="slic", n_segments=10, not_an_option=1)


def test_felzenszwalb_fixed_scale_and_search_bounds(textured_image):
    img = textured_image(64, 64)
    fixed = compute_superpixels(img, method="felzenszwalb", n_segments=50, scale=50.0)
    assert_valid_labels(fixed, (64, 64))
    coarse = compute_superpixels(img, method="felzenszwalb", n_segments=50, scale=1e5)
    assert coarse.max() + 1 < fixed.max() + 1
    with pytest.raises(ValueError, match="scale_bounds"):
        compute_superpixels(img, method="felzenszwalb", n_segments=5, scale_bounds=(10, 1))
