import numpy as np

from pointseg.data.transforms import resize_image, resize_labels, scale_points


def test_resize_labels_is_nearest_and_keeps_values():
    labels = np.array([[0, 1], [2, 255]], np.uint8)
    out = resize_labels(labels, (4, 4))
    np.testing.assert_array_equal(
        out, [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]]
    )
    big = np.random.default_rng(0).integers(0, 5, (37, 53)).astype(np.uint8)
    assert set(np.unique(resize_labels(big, (20, 11)))) <= set(np.unique(big))


def test_resize_image_any_bands_and_dtype():
    img = np.random.default_rng(0).integers(0, 4000, (40, 30, 5)).astype(np.uint16)
    out = resize_image(img, (20, 15))
    assert out.shape == (20, 15, 5) and out.dtype == np.uint16
    const = np.full((10, 10, 3), 77, np.uint8)
    assert (resize_image(const, (7, 13)) == 77).all()


def test_scale_points_maps_pixel_centres():
    pts = np.array([[0, 0, 1], [99, 49, 2]])
    out = scale_points(pts, from_shape=(50, 100), to_shape=(25, 50))
    np.testing.assert_array_equal(out, [[0, 0, 1], [49, 24, 2]])
