"""Colour maps, overlays and report figures."""

from pointseg.viz.colors import colorize, overlay

__all__ = ["colorize", "overlay"]
