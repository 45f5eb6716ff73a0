"""Project-wide constants."""

__all__ = ["IGNORE_INDEX", "LANDCOVER_CLASSES", "LANDCOVER_COLORS"]

#: The one value that marks an unlabelled pixel in pseudo-labels, masks, losses and metrics.
IGNORE_INDEX: int = 255

#: LandCover.ai v1 classes, used by the synthetic scenes.
LANDCOVER_CLASSES: tuple[str, ...] = ("background", "building", "woodland", "water", "road")

#: Display colours (RGB) for the LandCover.ai classes.
LANDCOVER_COLORS: tuple[tuple[int, int, int], ...] = (
    (214, 196, 150),  # background: beige fields
    (220, 40, 40),  # building: red
    (30, 120, 40),  # woodland: green
    (40, 90, 220),  # water: blue
    (90, 90, 90),  # road: grey
)
