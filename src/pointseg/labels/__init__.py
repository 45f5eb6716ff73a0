"""Pseudo-labels from query points: superpixel majority vote, point-aware extension through
the HERS hierarchy, and an on-disk cache."""

from pointseg.labels.cache import PseudoLabelCache
from pointseg.labels.point_aware import point_aware_labels, propagate_point_aware
from pointseg.labels.propagation import (
    PSEUDO_LABEL_VERSION,
    propagate_labels,
    propagate_multiscale,
    propagation_stats,
)
from pointseg.labels.raster import pseudo_label_raster, raster_label_key
from pointseg.labels.settings import PROPAGATIONS, PseudoLabelSettings, make_pseudo_label

__all__ = [
    "PROPAGATIONS",
    "PSEUDO_LABEL_VERSION",
    "PseudoLabelCache",
    "PseudoLabelSettings",
    "make_pseudo_label",
    "point_aware_labels",
    "propagate_labels",
    "propagate_multiscale",
    "propagate_point_aware",
    "propagation_stats",
    "pseudo_label_raster",
    "raster_label_key",
]
