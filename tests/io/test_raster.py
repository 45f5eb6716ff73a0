import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from pointseg.io import Georef, atomic_write, read_image, write_label_geotiff, write_png


def test_geotiff_round_trip_keeps_georef(tmp_path):
    src = tmp_path / "img.tif"
    transform = from_origin(500000.0, 300000.0, 0.25, 0.25)
    data = np.random.default_rng(0).integers(0, 5000, (4, 20, 30)).astype(np.uint16)
    with rasterio.open(
        src,
        "w",
        driver="GTiff",
        height=20,
        width=30,
        count=4,
        dtype="uint16",
        crs="EPSG:2180",
        transform=transform,
    ) as dst:
        dst.write(data)
    image, georef = read_image(src)
    assert image.shape == (20, 30, 4) and image.dtype == np.uint16
    np.testing.assert_array_equal(image[..., 2], data[2])
    assert georef is not None
    assert rasterio.crs.CRS.from_wkt(georef.crs_wkt).to_epsg() == 2180
    sub, _ = read_image(src, bands=[3, 0])
    np.testing.assert_array_equal(sub[..., 0], data[3])
    with pytest.raises(ValueError, match="4 band"):
        read_image(src, bands=[4])
    labels = (image[..., 0] % 5).astype(np.uint8)
    out = write_label_geotiff(tmp_path / "pred.tif", labels, georef, colors=[(1, 2, 3)] * 5)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 2180
        assert ds.transform == transform
        np.testing.assert_array_equal(ds.read(1), labels)


def test_png_palette_and_corrupt_file(tmp_path):
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    path = write_png(tmp_path / "l.png", labels, palette=[(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    from PIL import Image

    with Image.open(path) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), labels)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        read_image(bad)
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    assert isinstance(Georef(None, (1, 0, 0, 0, -1, 0)).to_dict(), dict)


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
