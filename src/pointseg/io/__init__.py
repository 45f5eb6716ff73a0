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

__all__ = [
    "IMAGE_SUFFIXES",
    "Georef",
    "atomic_write",
    "read_image",
    "read_mask",
    "write_label_geotiff",
    "write_png",
    "write_text_atomic",
]
