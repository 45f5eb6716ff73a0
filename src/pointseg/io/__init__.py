"""Reading and writing images, masks and label rasters."""

from pointseg.io.atomic import atomic_write, write_text_atomic
from pointseg.io.raster import (
    IMAGE_SUFFIXES,
    Georef,
    read_image,
    read_mask,
    write_label_geotiff,
    write_png,
)
from pointseg.io.windows import RasterWindows, read_errors, reflect_indices

__all__ = [
    "IMAGE_SUFFIXES",
    "Georef",
    "RasterWindows",
    "atomic_write",
    "read_errors",
    "read_image",
    "read_mask",
    "reflect_indices",
    "write_label_geotiff",
    "write_png",
    "write_text_atomic",
]
