"""Reading and writing images, masks and label rasters."""

from pointseg.io.atomic import (
    TEMP_GLOB,
    atomic_open,
    atomic_write,
    pid_alive,
    remove_stale_temp_files,
    scratch_file,
    scratch_path,
    temp_path_for,
    write_bytes_atomic,
    write_text_atomic,
)
from pointseg.io.outputs import check_input_file, check_output_dir, check_output_file
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
    "TEMP_GLOB",
    "Georef",
    "RasterWindows",
    "atomic_open",
    "atomic_write",
    "check_input_file",
    "check_output_dir",
    "check_output_file",
    "pid_alive",
    "read_errors",
    "read_image",
    "read_mask",
    "reflect_indices",
    "remove_stale_temp_files",
    "scratch_file",
    "scratch_path",
    "temp_path_for",
    "write_bytes_atomic",
    "write_label_geotiff",
    "write_png",
    "write_text_atomic",
]
