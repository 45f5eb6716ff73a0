"""Benchmark drivers that combine several pointseg packages over a dataset.

:func:`benchmark_superpixels` scores superpixel methods (:mod:`pointseg.superpixels`) and the
pseudo-labels of sampled points (:mod:`pointseg.points`, :mod:`pointseg.labels`); it lives
here so that :mod:`pointseg.superpixels` depends on neither.
"""

from pointseg.benchmarking.superpixels import (
    NO_CLASS_BOUNDARY_NOTE,
    SuperpixelScore,
    benchmark_superpixels,
    format_superpixel_table,
    write_superpixel_csv,
)

__all__ = [
    "NO_CLASS_BOUNDARY_NOTE",
    "SuperpixelScore",
    "benchmark_superpixels",
    "format_superpixel_table",
    "write_superpixel_csv",
]
