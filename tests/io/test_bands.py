"""Images are read with all their bands; alpha is a validity mask, never a band."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import rasterio
from PIL import Image

from pointseg.io.raster import BandLayout, band_layout, read_image


def rgba(h: int = 6, w: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    image[..., 3] = np.where(rng.random((h, w)) < 0.3, 0, 255)
    return image


def write_tif(path, data, **extra):
    """(bands, H, W) → GeoTIFF; GDAL marks band 4 of a 4-band uint8 file as alpha by default."""
    count, h, w = data.shape
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(
            path,
            "w",
            driver="GTiff",
            height=h,
            width=w,
            count=count,
            dtype=data.dtype.name,
            **extra,
        ) as dst,
    ):
        dst.write(data)
    return path


pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_rgba_png_is_three_bands_and_a_mask(tmp_path):
    data = rgba()
    Image.fromarray(data, mode="RGBA").save(tmp_path / "a.png")
    assert band_layout(tmp_path / "a.png") == BandLayout(4, (3,))
    image, georef = read_image(tmp_path / "a.png")
    assert image.shape == (6, 5, 3) and georef is None
    np.testing.assert_array_equal(image, data[..., :3])
    image, _, valid = read_image(tmp_path / "a.png", with_mask=True)
    np.testing.assert_array_equal(valid, data[..., 3] != 0)
    # chosen explicitly, the alpha band is a band (and no mask)
    image, _, valid = read_image(tmp_path / "a.png", bands=[3, 0], with_mask=True)
    np.testing.assert_array_equal(image, data[..., [3, 0]])
    assert valid is None
    # chosen without it, it is still the mask
    _, _, valid = read_image(tmp_path / "a.png", bands=[1], with_mask=True)
    np.testing.assert_array_equal(valid, data[..., 3] != 0)


def test_la_palette_and_opaque_images(tmp_path):
    data = rgba()
    Image.fromarray(data[..., [0, 3]], mode="LA").save(tmp_path / "la.png")
    image, _, valid = read_image(tmp_path / "la.png", with_mask=True)
    assert image.shape == (6, 5, 1)
    np.testing.assert_array_equal(valid, data[..., 3] != 0)

    index = np.arange(30, dtype=np.uint8).reshape(6, 5) % 4
    pal = Image.fromarray(index, mode="P")
    pal.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120] + [0] * 756)
    pal.save(tmp_path / "p.png", transparency=2)
    image, _, valid = read_image(tmp_path / "p.png", with_mask=True)
    assert image.shape == (6, 5, 3)
    np.testing.assert_array_equal(image[..., 0], np.array([10, 40, 70, 100])[index])
    np.testing.assert_array_equal(valid, index != 2)
    pal.save(tmp_path / "opaque.png")
    image, _, valid = read_image(tmp_path / "opaque.png", with_mask=True)
    assert image.shape == (6, 5, 3) and valid is None

    Image.fromarray(data[..., :3]).save(tmp_path / "rgb.png")
    _, _, valid = read_image(tmp_path / "rgb.png", with_mask=True)
    assert valid is None


def test_geotiff_alpha_band_and_internal_mask(tmp_path):
    data = np.moveaxis(rgba(), -1, 0)
    path = write_tif(tmp_path / "rgba.tif", data)  # band 4 is alpha
    assert band_layout(path) == BandLayout(4, (3,))
    image, _, valid = read_image(path, with_mask=True)
    np.testing.assert_array_equal(image, np.moveaxis(data[:3], 0, -1))
    np.testing.assert_array_equal(valid, data[3] != 0)
    image, _, valid = read_image(path, bands=[0, 1, 2, 3], with_mask=True)
    assert image.shape[-1] == 4 and valid is None

    plain = write_tif(tmp_path / "four.tif", data, photometric="MINISBLACK")
    assert band_layout(plain) == BandLayout(4)
    image, _, valid = read_image(plain, with_mask=True)
    assert image.shape == (6, 5, 4) and valid is None

    masked = tmp_path / "masked.tif"
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(
            masked, "w", driver="GTiff", height=6, width=5, count=3, dtype="uint8"
        ) as dst,
    ):
        dst.write(data[:3])
        dst.write_mask((data[3] != 0).astype(np.uint8) * 255)
    image, _, valid = read_image(masked, with_mask=True)
    assert image.shape == (6, 5, 3)
    np.testing.assert_array_equal(valid, data[3] != 0)


def test_band_index_out_of_range_names_file_index_and_count(tmp_path):
    Image.fromarray(rgba()[..., :3]).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"a\.png has 3 band\(s\).*band index 5 is out of range"):
        read_image(tmp_path / "a.png", bands=[0, 5])
    path = write_tif(tmp_path / "b.tif", np.zeros((2, 4, 4), np.uint16))
    with pytest.raises(ValueError, match=r"b\.tif has 2 band\(s\) \(indices 0\.\.1\).*index -1"):
        read_image(path, bands=[-1])


def test_alpha_that_looks_like_a_band_is_reported(tmp_path, caplog):
    data = np.random.default_rng(1).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    path = write_tif(tmp_path / "nir.tif", data)  # the NIR band is marked alpha by GDAL
    with caplog.at_level(logging.WARNING, logger="pointseg.io.raster"):
        image, _ = read_image(path)
    assert image.shape[-1] == 3
    assert "band 3 is marked as alpha" in caplog.text and "--bands 0,1,2,3" in caplog.text
