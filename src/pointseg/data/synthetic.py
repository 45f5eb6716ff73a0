"""Seeded synthetic aerial scenes with the LandCover.ai classes.

Every scene is painted in a fixed order, later layers overwriting the mask of earlier ones:

1. **background** – agricultural field patches (stretched Voronoi cells) in beige, brown and
   pale-green tones, each with its own directional stripe texture and darker field borders;
2. **woodland** – irregular blobs of thresholded multi-octave value noise, dark green with a
   strong high-frequency canopy texture, casting short shadows on the fields;
3. **water** – a lake with a wavy shore or a meandering river strip, blue, smooth, with a slight
   brightness gradient;
4. **road** – one to three sinusoid-perturbed strips crossing the scene, of varying width,
   grey asphalt with a little noise and darker shoulders;
5. **building** – rotated rectangles (many lined up along roads) with red, brown, grey or white
   roofs, gable or flat shading, and a dark shadow cast in one direction per scene (the shadow
   darkens the image only; the mask keeps the class underneath).

Finally the whole image gets a colour/brightness jitter, a mild blur and Gaussian sensor noise.
Everything is drawn from ``np.random.default_rng(seed)``, so a seed always gives the same scene.

Mask values are the class indices of :data:`pointseg.constants.LANDCOVER_CLASSES`:
0 background, 1 building, 2 woodland, 3 water, 4 road.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from pointseg.constants import IGNORE_INDEX, LANDCOVER_CLASSES, LANDCOVER_COLORS
from pointseg.io.atomic import atomic_open, remove_stale_temp_files, write_bytes_atomic

__all__ = [
    "GENERATOR_VERSION",
    "generate_mosaic",
    "generate_scene",
    "make_mosaic_dataset",
    "make_synthetic_dataset",
]

#: Bumped whenever the scenes a seed produces change; stored in ``synthetic.yaml``.
GENERATOR_VERSION: int = 1

_MIN_SIZE = 32
_BACKGROUND, _BUILDING, _WOODLAND, _WATER, _ROAD = 0, 1, 2, 3, 4

_MANIFEST = "synthetic.yaml"
_CLASSES_FILE = "classes.yaml"

# Base colours (RGB); each scene jitters them.
_FIELD_PALETTE = np.array(
    [
        (205, 188, 145),  # ripe grain / beige
        (182, 160, 118),  # light brown stubble
        (160, 132, 98),  # ploughed soil
        (172, 172, 112),  # yellow-green crop
        (138, 150, 92),  # meadow
        (218, 206, 170),  # pale dry grass
    ],
    dtype=np.float32,
)
_WOODLAND_COLOR = np.array((44, 74, 40), dtype=np.float32)
_WATER_COLOR = np.array((46, 82, 118), dtype=np.float32)
_ROAD_COLORS = np.array([(98, 98, 100), (118, 116, 114), (84, 86, 90)], dtype=np.float32)
_ROOF_COLORS = np.array(
    [
        (172, 78, 60),  # red tiles
        (140, 66, 52),  # dark red / brown tiles
        (150, 150, 156),  # grey sheet
        (212, 210, 204),  # white / light flat roof
        (186, 112, 80),  # terracotta
    ],
    dtype=np.float32,
)
_ROOF_PROBS = np.array([0.3, 0.2, 0.2, 0.15, 0.15])


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_size(size: Any) -> int:
    if not _is_int(size) or size < _MIN_SIZE:
        raise ValueError(f"size must be an integer >= {_MIN_SIZE}, got {size!r}")
    return int(size)


def _check_seed(seed: Any, name: str = "seed") -> int:
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


# --------------------------------------------------------------------------------------------
# noise helpers (all float32, vectorised)
# --------------------------------------------------------------------------------------------


def _value_noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Smoothstep-interpolated lattice noise with feature size ``cell`` pixels, (size, size).

    Values have roughly unit variance at lattice points and a bit less in between.
    """
    cell = max(float(cell), 1.0)
    n = int(np.ceil(size / cell)) + 3
    grid = rng.standard_normal((n, n), dtype=np.float32)
    offsets = rng.uniform(0.0, 1.0, size=2)
    coords = np.arange(size, dtype=np.float32) / np.float32(cell)
    ty = coords + np.float32(offsets[0])
    tx = coords + np.float32(offsets[1])
    iy = ty.astype(np.intp)
    ix = tx.astype(np.intp)
    fy = ty - iy
    fx = tx - ix
    fy = fy * fy * (3.0 - 2.0 * fy)
    fx = fx * fx * (3.0 - 2.0 * fx)
    rows = grid[iy] * (1.0 - fy)[:, None] + grid[iy + 1] * fy[:, None]  # (size, n)
    out = rows[:, ix]
    out *= 1.0 - fx
    out += rows[:, ix + 1] * fx
    return out


def _fbm(rng: np.random.Generator, size: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value noise (octaves halve the cell and the amplitude), (size, size)."""
    total = _value_noise(rng, size, cell)
    amp = 1.0
    for o in range(1, octaves):
        amp *= 0.5
        total += np.float32(amp) * _value_noise(rng, size, cell / 2.0**o)
    return total


def _blur3(a: np.ndarray, w: float) -> np.ndarray:
    """Separable 3-tap blur ``[w, 1 - 2w, w]`` over the first two axes (edges replicated)."""
    w = np.float32(w)
    for axis in (0, 1):
        out = a * (np.float32(1.0) - 2 * w)
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[axis] = slice(None, -1)
        hi[axis] = slice(1, None)
        out[tuple(hi)] += w * a[tuple(lo)]
        out[tuple(lo)] += w * a[tuple(hi)]
        first = [slice(None)] * a.ndim
        last = [slice(None)] * a.ndim
        first[axis] = slice(0, 1)
        last[axis] = slice(-1, None)
        out[tuple(first)] += w * a[tuple(first)]
        out[tuple(last)] += w * a[tuple(last)]
        a = out
    return a


# std of uniform(-0.5, 0.5) noise after one [1/4, 1/2, 1/4] blur along both axes
_GRAIN_STD = float(np.sqrt(1.0 / 12.0 * 0.375 * 0.375))


def _grain(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fine pixel-scale texture (white noise blurred once), unit std, (size, size)."""
    white = rng.random((size, size), dtype=np.float32)
    white -= np.float32(0.5)
    out = _blur3(white, 0.25)
    out *= np.float32(1.0 / _GRAIN_STD)
    return out


def _jitter_color(rng: np.random.Generator, base: np.ndarray, amount: float) -> np.ndarray:
    """Per-channel uniform jitter plus a brightness factor, clipped to 0..255, (3,)."""
    color = base + rng.uniform(-amount, amount, size=3).astype(np.float32)
    color *= np.float32(rng.uniform(0.9, 1.1))
    return np.clip(color, 0.0, 255.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# canvas: a colour-table index and a brightness factor per pixel
# --------------------------------------------------------------------------------------------


class _Canvas:
    """Scene under construction.

    Each pixel holds an index into a growing colour table and a brightness factor (texture,
    shading, shadows); the RGB image is only formed at the end, which keeps every layer to a
    few single-plane operations.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.colors: list[np.ndarray] = []
        self.index = np.zeros((size, size), dtype=np.intp)
        self.shade = np.ones((size, size), dtype=np.float32)
        self.mask = np.zeros((size, size), dtype=np.uint8)
        y = np.arange(size, dtype=np.float32) + np.float32(0.5)
        self.y = y[:, None]
        self.x = y[None, :]

    def add_color(self, color: np.ndarray) -> int:
        self.colors.append(np.asarray(color, dtype=np.float32))
        return len(self.colors) - 1

    def paint(self, where: np.ndarray, cls: int, color_index: int, shade: np.ndarray) -> None:
        """Paint a full-size boolean region with one colour and a full-size shade plane."""
        np.copyto(self.index, color_index, where=where)
        np.copyto(self.shade, shade, where=where)
        np.copyto(self.mask, np.uint8(cls), where=where)

    def render(self) -> np.ndarray:
        table = np.stack(self.colors)  # (n, 3)
        img = np.empty((self.size, self.size, 3), dtype=np.float32)
        for c in range(3):
            np.multiply(table[:, c][self.index], self.shade, out=img[..., c])
        return img


# --------------------------------------------------------------------------------------------
# strips (roads and rivers)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Strip:
    """A sinusoid-perturbed line of varying width through ``origin`` at ``angle``.

    In the strip's frame (``u`` along ``angle``, ``v`` across it) the centre line is
    ``v = f(u) = a1 sin(k1 u + p1) + a2 sin(k2 u + p2)`` and the width is
    ``w(u) = width (1 + wvar sin(kw u + pw))``.
    """

    origin: tuple[float, float]  # (x, y)
    angle: float
    a1: float
    k1: float
    p1: float
    a2: float
    k2: float
    p2: float
    width: float
    wvar: float
    kw: float
    pw: float

    def center(self, u: Any) -> Any:
        return self.a1 * np.sin(self.k1 * u + self.p1) + self.a2 * np.sin(self.k2 * u + self.p2)

    def slope(self, u: Any) -> Any:
        return self.a1 * self.k1 * np.cos(self.k1 * u + self.p1) + self.a2 * self.k2 * np.cos(
            self.k2 * u + self.p2
        )

    def width_at(self, u: Any) -> Any:
        return self.width * (1.0 + self.wvar * np.sin(self.kw * u + self.pw))

    def rel_distance(self, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
        """Distance to the centre line over the half width (<= 1 inside the strip), (H, W).

        ``f(u)`` and the half width (corrected for the local slope) are tabulated every
        quarter pixel along ``u`` and looked up, which avoids per-pixel trigonometry.
        """
        c, s = np.float32(np.cos(self.angle)), np.float32(np.sin(self.angle))
        dx = x - np.float32(self.origin[0])
        dy = y - np.float32(self.origin[1])
        reach = 1.5 * size
        steps = 4.0
        u_tab = np.arange(-reach, reach + 1.0, 1.0 / steps)
        f_tab = self.center(u_tab).astype(np.float32)
        g_tab = self.slope(u_tab)
        h_tab = (0.5 * self.width_at(u_tab) * np.sqrt(1.0 + g_tab * g_tab)).astype(np.float32)
        inv_h = np.float32(1.0) / np.maximum(h_tab, np.float32(0.5))
        pos = dx * (c * np.float32(steps)) + dy * (s * np.float32(steps))
        pos += np.float32(reach * steps + 0.5)
        k = pos.astype(np.intp)
        v = dy * c - dx * s
        v -= f_tab[k]
        np.abs(v, out=v)
        v *= inv_h[k]
        return v

    def to_xy(self, u: float, v: float) -> tuple[float, float]:
        c, s = np.cos(self.angle), np.sin(self.angle)
        return self.origin[0] + u * c - v * s, self.origin[1] + u * s + v * c


def _random_strip(
    rng: np.random.Generator, size: int, width: float, *, wiggle: float, wvar: float
) -> _Strip:
    origin = (float(rng.uniform(0.2, 0.8) * size), float(rng.uniform(0.2, 0.8) * size))
    lam1 = rng.uniform(0.9, 2.2) * size
    lam2 = rng.uniform(0.3, 0.6) * size
    return _Strip(
        origin=origin,
        angle=float(rng.uniform(0.0, np.pi)),
        a1=float(rng.uniform(0.0, wiggle) * size),
        k1=float(2 * np.pi / lam1),
        p1=float(rng.uniform(0.0, 2 * np.pi)),
        a2=float(rng.uniform(0.0, wiggle * 0.2) * size),
        k2=float(2 * np.pi / lam2),
        p2=float(rng.uniform(0.0, 2 * np.pi)),
        width=float(width),
        wvar=float(rng.uniform(0.0, wvar)),
        kw=float(2 * np.pi / (rng.uniform(0.4, 1.2) * size)),
        pw=float(rng.uniform(0.0, 2 * np.pi)),
    )


# --------------------------------------------------------------------------------------------
# rotated rectangles (buildings and their shadows)
# --------------------------------------------------------------------------------------------


def _rect_pixels(
    cx: float,
    cy: float,
    half_len: float,
    half_dep: float,
    angle: float,
    size: int,
    sweep: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels whose centre lies in a rotated rectangle, optionally swept along a vector.

    Returns ``rows``, ``cols`` and the pixels' coordinate across the long axis (for roof
    shading). With a non-zero ``sweep`` (x, y) the region is the union of the rectangle
    translated by ``t * sweep`` for ``t`` in [0, 1] (a building's cast shadow).
    """
    c, s = np.cos(angle), np.sin(angle)
    ex = abs(half_len * c) + abs(half_dep * s)
    ey = abs(half_len * s) + abs(half_dep * c)
    sx, sy = sweep
    x0 = max(int(np.floor(cx - ex + min(sx, 0.0))), 0)
    x1 = min(int(np.ceil(cx + ex + max(sx, 0.0))) + 1, size)
    y0 = max(int(np.floor(cy - ey + min(sy, 0.0))), 0)
    y1 = min(int(np.ceil(cy + ey + max(sy, 0.0))) + 1, size)
    if x0 >= x1 or y0 >= y1:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0)
    dx = np.arange(x0, x1) + 0.5 - cx
    dy = (np.arange(y0, y1) + 0.5 - cy)[:, None]
    along = dx * c + dy * s
    across = dy * c - dx * s
    if sx == 0.0 and sy == 0.0:
        inside = (np.abs(along) <= half_len) & (np.abs(across) <= half_dep)
    else:
        lo = np.zeros_like(along)
        hi = np.ones_like(along)
        for coord, half, d in (
            (along, half_len, sx * c + sy * s),
            (across, half_dep, sy * c - sx * s),
        ):
            d = d if abs(d) > 1e-6 else 1e-6
            t1 = (coord - half) / d
            t2 = (coord + half) / d
            lo = np.maximum(lo, np.minimum(t1, t2))
            hi = np.minimum(hi, np.maximum(t1, t2))
        inside = lo <= hi
    rr, cc = np.nonzero(inside)
    return rr + y0, cc + x0, across[rr, cc]


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------


def _paint_fields(rng: np.random.Generator, cv: _Canvas, grain: np.ndarray) -> float:
    """Background field patches with stripe texture; returns the dominant field angle."""
    size, x, y = cv.size, cv.x, cv.y
    n_fields = int(rng.integers(4, 10))
    angle = float(rng.uniform(0.0, np.pi))
    stretch = np.float32(rng.uniform(1.5, 3.5))
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = x * c + y * s
    v = (y * c - x * s) * stretch
    pts = rng.uniform(-0.15, 1.15, size=(n_fields, 2)) * size
    best = np.full((size, size), np.inf, dtype=np.float32)
    label = np.zeros((size, size), dtype=np.intp)
    closer = np.empty((size, size), dtype=bool)
    for i, (px, py) in enumerate(pts):
        d = u - np.float32(px * c + py * s)
        d *= d
        e = v - np.float32((py * c - px * s) * stretch)
        e *= e
        d += e
        np.less(d, best, out=closer)
        np.minimum(best, d, out=best)
        np.copyto(label, i, where=closer)

    palette = rng.integers(0, len(_FIELD_PALETTE), size=n_fields)
    first = len(cv.colors)
    for k in palette:
        cv.add_color(_jitter_color(rng, _FIELD_PALETTE[k], 12.0))
    # Stripes run along or across the field's long axis, a few pixels apart.
    theta = angle + rng.choice([0.0, np.pi / 2], size=n_fields) + rng.normal(0, 0.05, n_fields)
    period = rng.uniform(3.0, 8.0, size=n_fields)
    amp = rng.uniform(0.025, 0.09, size=n_fields) * (rng.random(n_fields) < 0.85)
    phase = rng.uniform(0.0, 2 * np.pi, size=n_fields).astype(np.float32)
    kx = (2 * np.pi * np.cos(theta) / period).astype(np.float32)
    ky = (2 * np.pi * np.sin(theta) / period).astype(np.float32)
    arg = x * kx[label]
    arg += y * ky[label]
    arg += phase[label]
    shade = np.sin(arg)
    shade *= amp.astype(np.float32)[label]
    shade += np.float32(1.0)
    shade += np.float32(0.035) * _fbm(rng, size, size / 5.0, octaves=2)
    shade += np.float32(0.025) * grain
    # Darker borders between fields (tracks, field edges).
    border = np.zeros((size, size), dtype=bool)
    border[1:, :] = label[1:, :] != label[:-1, :]
    border[:, 1:] |= label[:, 1:] != label[:, :-1]
    shade[border] *= np.float32(0.85)
    cv.index = label + first
    cv.shade = shade
    return angle


def _paint_woodland(rng: np.random.Generator, cv: _Canvas, grain: np.ndarray) -> np.ndarray:
    size = cv.size
    present = rng.random() < 0.9
    share = rng.uniform(0.16, 0.4) if present else 0.0
    field = _fbm(rng, size, size / rng.uniform(2.0, 3.5), octaves=3)
    field += np.float32(0.12) * _value_noise(rng, size, 4.0)  # ragged edges
    crowns = _value_noise(rng, size, rng.uniform(2.2, 3.2))
    color = cv.add_color(_jitter_color(rng, _WOODLAND_COLOR, 8.0))
    if share <= 0.0:
        return np.zeros((size, size), dtype=bool)
    step = max(size // 64, 1)
    threshold = np.quantile(field[::step, ::step], 1.0 - share)
    wood = field > threshold
    # Strong canopy texture: tree crowns of a few pixels, fine grain, dark gaps.
    canopy = crowns * np.float32(0.22)
    canopy += np.float32(0.12) * grain
    canopy += np.float32(1.0)
    canopy[crowns < -1.0] *= np.float32(0.65)
    cv.paint(wood, _WOODLAND, color, canopy)
    return wood


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` translated by (dy, dx) pixels, zero-filled."""
    out = np.zeros_like(a)
    h, w = a.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def _cast_tree_shadows(
    rng: np.random.Generator, cv: _Canvas, wood: np.ndarray, direction: np.ndarray
) -> None:
    length = rng.uniform(2.0, 5.0) * max(cv.size / 256.0, 0.5)
    dx, dy = (round(float(v)) for v in direction * length)
    if (dx == 0 and dy == 0) or not wood.any():
        return
    shadow = _shift(wood, dy, dx)
    shadow &= ~wood
    cv.shade[shadow] *= np.float32(rng.uniform(0.6, 0.75))


def _paint_water(rng: np.random.Generator, cv: _Canvas) -> None:
    size = cv.size
    kind = rng.choice(3, p=[0.1, 0.5, 0.4])  # none, lake, river
    share = rng.uniform(0.07, 0.2)
    color = cv.add_color(_jitter_color(rng, _WATER_COLOR, 10.0))
    g_angle = rng.uniform(0.0, 2 * np.pi)
    g_amp = rng.uniform(0.05, 0.15) / size
    if kind == 1:
        cx, cy = rng.uniform(0.2, 0.8, size=2) * size
        r0 = np.sqrt(share * size * size / np.pi)
        ks = np.arange(2, 6)
        amps = rng.uniform(0.0, 0.16, size=ks.size) / np.sqrt(ks - 1)
        phases = rng.uniform(0.0, 2 * np.pi, size=ks.size)
        reach = r0 * (1.0 + amps.sum()) + 0.1 * r0 + 2
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, size)
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, size)
        dx = cv.x[:, x0:x1] - np.float32(cx)
        dy = cv.y[y0:y1] - np.float32(cy)
        theta = np.arctan2(dy, dx)
        radius = np.ones_like(theta)
        for k, a, p in zip(ks, amps, phases, strict=True):
            radius += np.float32(a) * np.cos(np.float32(k) * theta + np.float32(p))
        radius *= np.float32(r0)
        dist = np.sqrt(dx * dx + dy * dy)
        shore = _value_noise(rng, max(y1 - y0, x1 - x0), max(size / 20.0, 3.0))
        dist += np.float32(0.05 * r0) * shore[: y1 - y0, : x1 - x0]
        water = np.zeros((size, size), dtype=bool)
        water[y0:y1, x0:x1] = dist < radius
    elif kind == 2:
        strip = _random_strip(rng, size, share * size, wiggle=0.12, wvar=0.3)
        water = strip.rel_distance(cv.x, cv.y, size) <= 1.0
    else:
        return
    # Smooth surface: a slight linear brightness gradient, no texture.
    rr, cc = np.nonzero(water)
    ramp = (cc - size / 2) * np.cos(g_angle) + (rr - size / 2) * np.sin(g_angle)
    cv.index[rr, cc] = color
    cv.shade[rr, cc] = (1.0 + g_amp * ramp).astype(np.float32)
    cv.mask[rr, cc] = _WATER


def _paint_roads(rng: np.random.Generator, cv: _Canvas, grain: np.ndarray) -> list[_Strip]:
    size = cv.size
    n_roads = int(rng.choice(4, p=[0.04, 0.3, 0.44, 0.22]))
    roads: list[_Strip] = []
    for _ in range(n_roads):
        width = max(3.0, rng.uniform(0.028, 0.05) * size)
        strip = _random_strip(rng, size, width, wiggle=0.1, wvar=0.3)
        color = cv.add_color(_jitter_color(rng, _ROAD_COLORS[rng.integers(len(_ROAD_COLORS))], 6.0))
        rel = strip.rel_distance(cv.x, cv.y, size)
        road = rel <= 1.0
        if not road.any():
            continue
        rr, cc = np.nonzero(road)
        shade = 1.0 + np.float32(0.035) * grain[rr, cc]
        shade[rel[rr, cc] > 0.75] *= np.float32(0.88)  # darker shoulders
        cv.index[rr, cc] = color
        cv.shade[rr, cc] = shade
        cv.mask[rr, cc] = _ROAD
        roads.append(strip)
    return roads


def _paint_buildings(
    rng: np.random.Generator,
    cv: _Canvas,
    roads: list[_Strip],
    shadow_dir: np.ndarray,
    field_angle: float,
) -> None:
    size = cv.size
    present = rng.random() < 0.93
    target = rng.uniform(0.03, 0.085) * size * size if present else 0.0
    scale = rng.uniform(0.045, 0.085) * size  # typical long side in this scene
    shadow_factor = np.float32(rng.uniform(0.45, 0.6))
    blocked = (cv.mask == _WATER) | (cv.mask == _ROAD)
    free = np.flatnonzero(cv.mask == _BACKGROUND)
    shadow_r: list[np.ndarray] = []
    shadow_c: list[np.ndarray] = []
    roofs: list[tuple[np.ndarray, np.ndarray, int, np.ndarray, float, bool]] = []
    area = 0.0
    attempts = 0
    max_attempts = 30 + int(6 * target / max(scale * scale * 0.6, 1.0))
    while area < target and attempts < max_attempts:
        attempts += 1
        length = max(4.0, scale * rng.uniform(0.7, 1.3))
        depth = max(4.0, length * rng.uniform(0.5, 0.85))
        if roads and rng.random() < 0.65:
            strip = roads[int(rng.integers(len(roads)))]
            u0 = rng.uniform(-0.75, 0.75) * size
            g = float(strip.slope(u0))
            norm = np.hypot(1.0, g)
            side = 1.0 if rng.random() < 0.5 else -1.0
            off = strip.width_at(u0) / 2.0 + rng.uniform(2.0, 0.05 * size + 2.0) + depth / 2.0
            v0 = float(strip.center(u0)) + side * off / norm
            cx, cy = strip.to_xy(u0 - side * off * g / norm, v0)
            angle = strip.angle + np.arctan(g) + rng.normal(0.0, 0.03)
        else:
            if free.size == 0:
                break
            cy, cx = divmod(int(free[int(rng.integers(free.size))]), size)
            cx += 0.5
            cy += 0.5
            angle = field_angle + rng.choice([0.0, np.pi / 2]) + rng.normal(0.0, 0.08)
        if not (0 <= cx < size and 0 <= cy < size):
            continue
        # Keep a gap of ~2 px to roads, water and other buildings.
        rr, cc, _ = _rect_pixels(cx, cy, length / 2 + 2, depth / 2 + 2, angle, size)
        if rr.size == 0 or blocked[rr, cc].any():
            continue
        rr, cc, across = _rect_pixels(cx, cy, length / 2, depth / 2, angle, size)
        if rr.size < 6:
            continue
        blocked[rr, cc] = True
        area += rr.size
        height = rng.uniform(0.3, 0.7) * depth + 1.0
        sweep = (float(height * shadow_dir[0]), float(height * shadow_dir[1]))
        sr, sc, _ = _rect_pixels(cx, cy, length / 2, depth / 2, angle, size, sweep)
        shadow_r.append(sr)
        shadow_c.append(sc)
        color = cv.add_color(
            _jitter_color(rng, _ROOF_COLORS[rng.choice(len(_ROOF_COLORS), p=_ROOF_PROBS)], 10)
        )
        flat = bool(rng.random() < 0.35)
        # Which half of a gable roof faces the light (opposite to the shadows).
        lit = np.sin(angle) * shadow_dir[0] - np.cos(angle) * shadow_dir[1]
        lit_sign = 1.0 if lit > 0 else -1.0
        roofs.append((rr, cc, color, across, lit_sign * depth / 2, flat))

    if shadow_r:
        cv.shade[np.concatenate(shadow_r), np.concatenate(shadow_c)] *= shadow_factor
    for rr, cc, color, across, signed_half, flat in roofs:
        if flat:
            shade = np.where(np.abs(across) > abs(signed_half) - 1.0, 0.8, 1.0)
        else:
            shade = np.where(across * signed_half > 0, 1.1, 0.8)
            shade[np.abs(across) < 0.6] = 1.2  # ridge
        shade = shade * (1.0 + 0.03 * rng.standard_normal(rr.size))
        cv.index[rr, cc] = color
        cv.shade[rr, cc] = shade
        cv.mask[rr, cc] = _BUILDING


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Global colour/brightness jitter, a mild blur and sensor noise; returns uint8."""
    gain = (rng.uniform(0.94, 1.06, size=3) * rng.uniform(0.9, 1.1)).astype(np.float32)
    img *= gain
    img = _blur3(img, rng.uniform(0.05, 0.15))
    noise = rng.random(img.shape, dtype=np.float32)
    noise -= np.float32(0.5)
    img += np.float32(rng.uniform(2.0, 4.0) * np.sqrt(12.0)) * noise
    np.clip(img, 0.0, 255.0, out=img)
    return np.rint(img, out=img).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def generate_scene(*, seed: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic aerial scene and its land-cover mask.

    Parameters
    ----------
    seed : int
        Non-negative seed; the same seed and size always give the same scene.
    size : int, default 256
        Side length in pixels (>= 32). Shapes scale with the size, textures are in pixels.

    Returns
    -------
    image : ndarray of uint8, shape (size, size, 3)
        RGB image.
    mask : ndarray of uint8, shape (size, size)
        Class indices 0 background, 1 building, 2 woodland, 3 water, 4 road.

    Raises
    ------
    ValueError
        If ``size`` is not an integer >= 32 or ``seed`` is not a non-negative integer.
    """
    size = _check_size(size)
    seed = _check_seed(seed)
    rng = np.random.default_rng(seed)
    cv = _Canvas(size)
    sun = rng.uniform(0.0, 2 * np.pi)
    shadow_dir = np.array([np.cos(sun), np.sin(sun)])  # (x, y), one direction per scene
    grain = _grain(rng, size)

    field_angle = _paint_fields(rng, cv, grain)
    wood = _paint_woodland(rng, cv, grain)
    _cast_tree_shadows(rng, cv, wood, shadow_dir)
    _paint_water(rng, cv)
    roads = _paint_roads(rng, cv, grain)
    _paint_buildings(rng, cv, roads, shadow_dir, field_angle)
    return _finish(rng, cv.render()), cv.mask


def _scene_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0])


class _IndentDumper(yaml.SafeDumper):
    """Safe dumper that indents list items under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _classes_yaml() -> str:
    data = {
        "classes": [
            {"name": name, "values": [i], "color": [int(v) for v in color]}
            for i, (name, color) in enumerate(zip(LANDCOVER_CLASSES, LANDCOVER_COLORS, strict=True))
        ],
        "ignore_values": [IGNORE_INDEX],
        "background": LANDCOVER_CLASSES[_BACKGROUND],
    }
    return yaml.dump(data, Dumper=_IndentDumper, sort_keys=False, default_flow_style=None)


def _atomic_save_png(path: Path, array: np.ndarray, mode: str) -> None:
    with atomic_open(path, "wb") as fh:
        Image.fromarray(array, mode=mode).save(fh, format="PNG")


def _scene_name(index: int) -> str:
    return f"scene_{index:04d}.png"


def make_synthetic_dataset(
    root: str | os.PathLike[str],
    *,
    n_images: int,
    size: int = 256,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a folder dataset of synthetic scenes.

    Layout::

        root/images/scene_0000.png   RGB, (size, size, 3)
        root/masks/scene_0000.png    8-bit grey, (size, size), values 0..4
        root/classes.yaml            the LandCover.ai class file
        root/synthetic.yaml          manifest: n_images, size, seed, generator version

    Scene ``i`` uses a seed derived from ``(seed, i)`` with :class:`numpy.random.SeedSequence`,
    so a dataset is reproducible and its scenes do not depend on ``n_images``. Every file is
    written atomically (temporary file in the same folder, then :func:`os.replace`); the
    manifest is written last. Temporary files left by a killed earlier run are removed.

    Parameters
    ----------
    root : str or path-like
        Output folder (created if needed).
    n_images : int
        Number of scenes (>= 1).
    size : int, default 256
        Side length of every scene (>= 32).
    seed : int, default 0
        Non-negative dataset seed.
    overwrite : bool, default False
        Regenerate into a folder that already holds images.

    Returns
    -------
    pathlib.Path
        ``root``.

    Raises
    ------
    ValueError
        For an invalid ``n_images``, ``size`` or ``seed``.
    FileExistsError
        If ``root/images`` already holds files that are not this exact dataset and
        ``overwrite`` is False.
    """
    if not _is_int(n_images) or n_images < 1:
        raise ValueError(f"n_images must be an integer >= 1, got {n_images!r}")
    size = _check_size(size)
    seed = _check_seed(seed)
    n_images = int(n_images)
    root = Path(root)
    images_dir = root / "images"
    masks_dir = root / "masks"
    manifest_path = root / _MANIFEST
    manifest = {
        "generator": "pointseg.data.synthetic",
        "version": GENERATOR_VERSION,
        "n_images": n_images,
        "size": size,
        "seed": seed,
    }
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder; choose another folder")

    has_images = images_dir.is_dir() and any(images_dir.iterdir())
    if has_images and not overwrite:
        if _matches(root, manifest):
            return root
        raise FileExistsError(
            f"{root} already holds images that are not the synthetic dataset asked for "
            f"({manifest_path.name}: n_images={n_images}, size={size}, seed={seed}, "
            f"version={GENERATOR_VERSION}); pass overwrite=True or choose another folder"
        )

    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    for folder in (root, images_dir, masks_dir):
        remove_stale_temp_files(folder)
    if overwrite:  # drop scenes of an earlier, larger dataset
        wanted = {_scene_name(i) for i in range(n_images)}
        for folder in (images_dir, masks_dir):
            for old in folder.glob("scene_*.png"):
                if old.name not in wanted:
                    old.unlink()

    write_bytes_atomic(root / _CLASSES_FILE, _classes_yaml().encode())
    for i in range(n_images):
        image, mask = generate_scene(seed=_scene_seed(seed, i), size=size)
        _atomic_save_png(images_dir / _scene_name(i), image, "RGB")
        _atomic_save_png(masks_dir / _scene_name(i), mask, "L")
    write_bytes_atomic(manifest_path, yaml.safe_dump(manifest, sort_keys=False).encode())
    return root


def _matches(root: Path, manifest: dict[str, Any]) -> bool:
    """Whether ``root`` holds the complete dataset described by ``manifest``."""
    path = root / _MANIFEST
    if not path.is_file():
        return False
    try:
        found = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    if found != manifest or not (root / _CLASSES_FILE).is_file():
        return False
    return all(
        (root / sub / _scene_name(i)).is_file()
        for sub in ("images", "masks")
        for i in range(manifest["n_images"])
    )


def generate_mosaic(
    *, seed: int, shape: tuple[int, int], tile: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """A scene of any size and aspect at one ground resolution: a mosaic of ``tile`` scenes.

    :func:`generate_scene` scales its shapes with its size; a mosaic of fixed-size scenes
    keeps buildings, roads and fields the same size in pixels whatever the image's shape, as
    aerial images of one sensor are.

    Parameters
    ----------
    seed : int
    shape : (height, width)
        Any size >= 1 pixel on each side.
    tile : int
        Side of the scenes the mosaic is cut from (>= 32).

    Returns
    -------
    image : ndarray of uint8, shape (height, width, 3)
    mask : ndarray of uint8, shape (height, width)
    """
    seed = _check_seed(seed)
    tile = _check_size(tile)
    h, w = (int(v) for v in shape)
    if h < 1 or w < 1:
        raise ValueError(f"shape must be positive (height, width), got {shape}")
    rows, cols = -(-h // tile), -(-w // tile)
    image = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    mask = np.zeros((rows * tile, cols * tile), np.uint8)
    for r in range(rows):
        for c in range(cols):
            img, m = generate_scene(seed=_scene_seed(seed, r * cols + c), size=tile)
            image[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = img
            mask[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = m
    return np.ascontiguousarray(image[:h, :w]), np.ascontiguousarray(mask[:h, :w])


def make_mosaic_dataset(
    root: str | os.PathLike[str],
    *,
    shapes: list[tuple[int, int]],
    tile: int = 256,
    seed: int = 0,
) -> Path:
    """Write a folder dataset of mosaics of the given (height, width) shapes.

    Images ``root/images/mosaic_NNNN.png`` (RGB), masks ``root/masks/mosaic_NNNN.png`` and
    the class file, as :func:`make_synthetic_dataset`; image ``i`` is
    :func:`generate_mosaic` with a seed derived from ``(seed, i)``. Files are written
    atomically; existing mosaics of the same names are replaced.
    """
    if not shapes:
        raise ValueError("shapes is empty: give at least one (height, width)")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(root / _CLASSES_FILE, _classes_yaml().encode())
    for i, shape in enumerate(shapes):
        image, mask = generate_mosaic(seed=_scene_seed(seed, i), shape=shape, tile=tile)
        name = f"mosaic_{i:04d}.png"
        _atomic_save_png(root / "images" / name, image, "RGB")
        _atomic_save_png(root / "masks" / name, mask, "L")
    return root
