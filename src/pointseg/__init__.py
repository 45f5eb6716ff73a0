"""pointseg: semantic segmentation of aerial imagery from a few clicked query points.

The method of Rivier et al. (2023): query points -> superpixels -> each point's label spread to
its superpixel by majority vote -> a segmentation model trained with a masked loss on the
labelled pixels only.
"""

from pointseg.constants import IGNORE_INDEX, LANDCOVER_CLASSES

__version__ = "0.1.0"

__all__ = ["IGNORE_INDEX", "LANDCOVER_CLASSES", "__version__"]
