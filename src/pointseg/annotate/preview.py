"""What the page draws: image tiles, the pseudo-label preview and superpixel boundaries.

The preview is built by the code training uses: the image is read as the dataset reads it,
put on the training grid by :func:`pointseg.training.training_view`, cut into superpixels by
:meth:`PseudoLabelSettings.segments` (once per image, cached) and labelled by
:meth:`PseudoLabelSettings.propagate` after every click, so it equals, pixel for pixel, the
pseudo-label that ``pointseg train`` builds from the saved points file.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from pointseg.constants import IGNORE_INDEX
from pointseg.labels import PseudoLabelSettings
from pointseg.superpixels.evaluation import boundary_map
from pointseg.training.data import area_settings, training_view
from pointseg.viz.colors import display_image

__all__ = ["LRU", "PreviewEngine", "boundaries_png", "encode_png", "labels_png"]

#: Side of the square tiles the page requests.
TILE = 256


class LRU:
    """A small thread-safe least-recently-used cache with a loader."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = load()
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value

    def drop(self, predicate: Callable[[Any], bool]) -> None:
        with self._lock:
            for key in [k for k in self._data if predicate(k)]:
                del self._data[key]


def encode_png(array: np.ndarray, *, mode: str | None = None) -> bytes:
    """PNG bytes of an (H, W), (H, W, 3) or (H, W, 4) uint8 array (fast zlib level)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array), mode=mode).save(
        buf, format="PNG", compress_level=1
    )
    return buf.getvalue()


def labels_png(labels: np.ndarray, colors: list[tuple[int, ...]]) -> bytes:
    """RGBA PNG of a label map: class colours opaque, unlabelled (255) fully transparent."""
    palette = np.zeros((256, 4), np.uint8)
    palette[: len(colors), :3] = np.asarray(colors, np.uint8).reshape(-1, 3)
    palette[: len(colors), 3] = 255
    return encode_png(palette[labels], mode="RGBA")


def boundaries_png(flags: np.ndarray) -> bytes:
    """RGBA PNG of boundary pixels (``flags`` True) in opaque yellow, elsewhere transparent."""
    out = np.zeros((*flags.shape, 4), np.uint8)
    out[flags] = (255, 255, 0, 255)
    return encode_png(out, mode="RGBA")


def levels_for(width: int, height: int, tile: int = TILE) -> int:
    """Pyramid levels: level ``k`` is downsampled by ``2**k``; the last fits one tile."""
    levels, side = 1, max(width, height)
    while side > tile:
        side = -(-side // 2)
        levels += 1
    return levels


class PreviewEngine:
    """Tiles and previews of a session's images (whole images on the training grid).

    Parameters
    ----------
    session : AnnotationSession
    settings : PseudoLabelSettings
        The superpixel and propagation settings of training.
    image_size : int or None
        The training grid (square side, or None for native size).
    superpixel_area : float, optional
        Superpixel area in native pixels² (training's ``--superpixel-area``, or the window
        default): each image gets its own count, as training gives it.
    """

    #: How the page draws previews: one image ("single") or tiles ("tiled").
    mode = "single"

    def __init__(
        self,
        session: Any,
        settings: PseudoLabelSettings,
        image_size: int | None,
        superpixel_area: float | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.image_size = image_size
        self.superpixel_area = superpixel_area
        self._images = LRU(4)  # name -> image as training reads it
        self._display = LRU(16)  # (name, level) -> display RGB array
        self._segments = LRU(16)  # name -> (training view, superpixel levels)
        self._labels = LRU(64)  # (name, version) -> labels on the training grid

    # ----------------------------------------------------------------------------- reads

    def image(self, name: str) -> np.ndarray:
        """The image as the dataset (and so training) reads it."""
        entry = self.session.by_name[name]
        return self._images.get(name, lambda: self.session.dataset[entry.index]["image"])

    def display(self, name: str, level: int) -> np.ndarray:
        def load() -> np.ndarray:
            if level == 0:
                return display_image(self.image(name))
            above = self.display(name, level - 1)
            h, w = above.shape[:2]
            small = Image.fromarray(above).resize(
                (max(1, -(-w // 2)), max(1, -(-h // 2))), Image.Resampling.BOX
            )
            return np.asarray(small)

        return self._display.get((name, level), load)

    def tile(self, name: str, level: int, tx: int, ty: int) -> bytes:
        """PNG of one image tile (raises IndexError outside the pyramid)."""
        entry = self.session.by_name[name]
        if not 0 <= level < levels_for(entry.width, entry.height):
            raise IndexError(
                f"level {level} is outside 0..{levels_for(entry.width, entry.height) - 1}"
            )
        img = self.display(name, level)
        h, w = img.shape[:2]
        if not (0 <= tx * TILE < w and 0 <= ty * TILE < h):
            raise IndexError(f"tile ({tx}, {ty}) is outside level {level} ({w}x{h})")
        return encode_png(img[ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE])

    # ----------------------------------------------------------------------------- labels

    def _settings_for(self, image: np.ndarray) -> PseudoLabelSettings:
        """The settings of one image (per-area superpixel counts when an area is set)."""
        if self.superpixel_area:
            return area_settings(self.settings, image.shape[:2], self.superpixel_area)
        return self.settings

    def _view(self, name: str) -> tuple[np.ndarray, list[np.ndarray]]:
        def load() -> tuple[np.ndarray, list[np.ndarray]]:
            image = self.image(name)
            view, _ = training_view(image, np.zeros((0, 3), np.int64), image_size=self.image_size)
            return view, self._settings_for(image).segments(view)

        return self._segments.get(name, load)

    def held_out(self, name: str) -> set[tuple[int, int]]:
        """Points held out for validation: none (tile datasets validate on images)."""
        return set()

    def warm(self, name: str) -> None:
        """Compute an image's superpixels ahead of its first view."""
        self._view(name)

    def labels(self, name: str) -> np.ndarray:
        """The pseudo-label on the training grid for the session's current points."""
        version, points = self.session.snapshot(name)

        def load() -> np.ndarray:
            image = self.image(name)
            _, segments = self._view(name)
            _, pts = training_view(image, points, image_size=self.image_size)
            return self._settings_for(image).propagate(
                segments, pts, n_classes=len(self.session.class_names), ignore_index=IGNORE_INDEX
            )

        return self._labels.get((name, version), load)

    def overlay_png(self, name: str) -> bytes:
        """RGBA PNG of the preview: class colours, unlabelled transparent."""
        return labels_png(self.labels(name), self.session.class_colors)

    def boundaries_png(self, name: str) -> bytes:
        """RGBA PNG of the superpixel boundaries (yellow) on the training grid."""
        _, segments = self._view(name)
        return boundaries_png(boundary_map(segments[0]))
