"""Superpixel methods behind one registry.

Use :func:`compute_superpixels` (or :func:`get_superpixel_method`) with a name from
:func:`list_superpixel_methods`. Built-in methods: ``slic``, ``felzenszwalb``,
``grid``. A new method registers itself with :func:`register_superpixel_method`
when its module is imported; import that module here.
"""

import pointseg.superpixels.hers  # noqa: F401  (registers "hers")
from pointseg.superpixels import skimage_methods  # noqa: F401  (registers built-ins)
from pointseg.superpixels.hers import HersHierarchy, hers_hierarchy
from pointseg.superpixels.registry import (
    SuperpixelMethod,
    compute_superpixels,
    get_superpixel_method,
    list_superpixel_methods,
    normalize_image,
    register_superpixel_method,
    relabel_connected,
)

__all__ = [
    "HersHierarchy",
    "SuperpixelMethod",
    "compute_superpixels",
    "get_superpixel_method",
    "hers_hierarchy",
    "list_superpixel_methods",
    "normalize_image",
    "register_superpixel_method",
    "relabel_connected",
]
