"""Pseudo-labels from query points: superpixel majority vote and an on-disk cache."""

from pointseg.labels.cache import PseudoLabelCache
from pointseg.labels.propagation import (
    PSEUDO_LABEL_VERSION,
    propagate_labels,
    propagate_multiscale,
    propagation_stats,
)
from pointseg.labels.raster import pseudo_label_raster, raster_label_key
from pointseg.labels.settings import PseudoLabelSettings, make_pseudo_label

__all__ = [
    "PSEUDO_LABEL_VERSION",
    "PseudoLabelCache",
    "PseudoLabelSettings",
    "make_pseudo_label",
    "propagate_labels",
    "propagate_multiscale",
    "propagation_stats",
    "pseudo_label_raster",
    "raster_label_key",
]
