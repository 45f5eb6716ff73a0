"""Class files: names, colours and how mask values or RGB colours map to classes.

A class file is YAML::

    classes:
      - name: building
        rgb: ["#3C1098"]        # colours in RGB (or palette) masks, hex or [r, g, b]
        color: [60, 16, 152]    # display colour (optional)
      - name: land
        values: [1, 2]          # grey levels / palette indices in single-band masks
    ignore_values: [255]        # single-band values that carry no class
    ignore_rgb: ["#9B9B9B", [0, 0, 0]]
    background: land            # optional: excluded from "mIoU without background"

Every mask pixel is encoded to a class index ``0..n_classes-1`` or to the one ignore value
(:data:`pointseg.constants.IGNORE_INDEX`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pointseg.constants import IGNORE_INDEX, LANDCOVER_CLASSES, LANDCOVER_COLORS

__all__ = [
    "ClassMap",
    "class_map_from_dict",
    "landcover_class_map",
    "load_class_file",
    "parse_color",
]

logger = logging.getLogger(__name__)

_DEFAULT_COLORS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def parse_color(value: Any, *, where: str = "class file") -> tuple[int, int, int]:
    """Parse ``"#RRGGBB"``, ``"RRGGBB"`` or ``[r, g, b]`` into an RGB tuple.

    Raises
    ------
    ValueError
        Naming the value and the accepted forms.
    """
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) == 6:
            try:
                return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
            except ValueError:
                pass
    elif isinstance(value, Sequence) and len(value) == 3:
        try:
            rgb = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            rgb = None
        if rgb is not None and all(0 <= v <= 255 for v in rgb):
            return rgb  # type: ignore[return-value]
    raise ValueError(
        f"{where}: cannot read colour {value!r}; write it as '#RRGGBB' or [r, g, b] with 0-255"
    )


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass(frozen=True)
class ClassMap:
    """How masks encode classes.

    Parameters
    ----------
    names : sequence of str
        Class names in index order.
    colors : sequence of (r, g, b)
        Display colours, one per class.
    values : mapping int -> int
        Single-band mask value -> class index.
    rgb : mapping (r, g, b) -> int
        Mask colour -> class index.
    ignore_values, ignore_rgb : sets
        Mask values / colours encoded as ``IGNORE_INDEX``.
    background : str or None
        Name of the background class (excluded from "mIoU without background").
    source : str
        Where the map came from (used in error messages).
    """

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    values: Mapping[int, int] = field(default_factory=dict)
    rgb: Mapping[tuple[int, int, int], int] = field(default_factory=dict)
    ignore_values: frozenset[int] = frozenset({IGNORE_INDEX})
    ignore_rgb: frozenset[tuple[int, int, int]] = frozenset()
    background: str | None = None
    source: str = "<class map>"

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.names)

    @property
    def uses_rgb(self) -> bool:
        """Whether masks are colour-coded (RGB or palette images)."""
        return bool(self.rgb)

    def index(self, name: str) -> int:
        """Index of a class by name (case-insensitive)."""
        lowered = [n.lower() for n in self.names]
        if name.lower() not in lowered:
            raise ValueError(f"unknown class {name!r}; the classes are {list(self.names)}")
        return lowered.index(name.lower())

    def to_dict(self) -> dict[str, Any]:
        """The class file content as a plain dict (round-trips through :func:`load_class_file`)."""
        classes = []
        for i, name in enumerate(self.names):
            entry: dict[str, Any] = {"name": name, "color": list(self.colors[i])}
            vals = sorted(v for v, c in self.values.items() if c == i)
            cols = sorted(v for v, c in self.rgb.items() if c == i)
            if vals:
                entry["values"] = vals
            if cols:
                entry["rgb"] = [f"#{r:02X}{g:02X}{b:02X}" for r, g, b in cols]
            classes.append(entry)
        out: dict[str, Any] = {"classes": classes, "ignore_values": sorted(self.ignore_values)}
        if self.ignore_rgb:
            out["ignore_rgb"] = [f"#{r:02X}{g:02X}{b:02X}" for r, g, b in sorted(self.ignore_rgb)]
        if self.background is not None:
            out["background"] = self.background
        return out

    def encode(self, mask: np.ndarray, *, where: str = "mask") -> np.ndarray:
        """Encode a raw mask into class indices.

        Parameters
        ----------
        mask : ndarray, shape (H, W) or (H, W, 3)
            Single-band values or RGB colours.
        where : str
            Name of the mask (a file path) for error messages.

        Returns
        -------
        labels : ndarray of uint8, shape (H, W)
            Class indices, ``IGNORE_INDEX`` for ignored pixels.

        Raises
        ------
        ValueError
            If the mask holds a value or colour that the class file does not map.
        """
        mask = np.asarray(mask)
        if mask.ndim == 3 and mask.shape[2] == 4:
            mask = mask[..., :3]
        if mask.ndim == 3 and mask.shape[2] == 3:
            if not self.rgb:
                if np.array_equal(mask[..., 0], mask[..., 1]) and np.array_equal(
                    mask[..., 0], mask[..., 2]
                ):
                    return self.encode(mask[..., 0], where=where)
                raise ValueError(
                    f"{where}: is an RGB mask but {self.source} maps only single-band values; "
                    "add 'rgb:' colours to the classes in the class file"
                )
            return self._encode_rgb(mask, where)
        if mask.ndim != 2:
            raise ValueError(
                f"{where}: expected a (H, W) or (H, W, 3) mask, got shape {mask.shape}"
            )
        if not self.values and self.rgb:
            raise ValueError(
                f"{where}: is a single-band mask but {self.source} maps only RGB colours; "
                "add 'values:' to the classes in the class file"
            )
        return self._encode_values(mask, where)

    def _encode_values(self, mask: np.ndarray, where: str) -> np.ndarray:
        if not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(f"{where}: mask must hold integers, got dtype {mask.dtype}")
        keys = np.array(sorted(set(self.values) | set(self.ignore_values)), dtype=np.int64)
        codes = np.array([self.values.get(int(k), IGNORE_INDEX) for k in keys], dtype=np.uint8)
        return self._lookup(mask.astype(np.int64, copy=False), keys, codes, where, rgb=False)

    def _encode_rgb(self, mask: np.ndarray, where: str) -> np.ndarray:
        table = {**{c: IGNORE_INDEX for c in self.ignore_rgb}, **self.rgb}
        keys_rgb = np.array(sorted(table), dtype=np.int32).reshape(-1, 3)
        keys = _pack(keys_rgb)
        codes = np.array([table[tuple(int(v) for v in k)] for k in keys_rgb], dtype=np.uint8)
        order = np.argsort(keys)
        return self._lookup(_pack(mask), keys[order], codes[order], where, rgb=True)

    def _lookup(
        self, flat: np.ndarray, keys: np.ndarray, codes: np.ndarray, where: str, *, rgb: bool
    ) -> np.ndarray:
        pos = np.searchsorted(keys, flat)
        pos = np.clip(pos, 0, len(keys) - 1)
        found = keys[pos] == flat
        if not found.all():
            bad, counts = np.unique(flat[~found], return_counts=True)
            top = np.argsort(-counts)[:5]
            if rgb:
                shown = ", ".join(
                    f"#{int(b) >> 16:02X}{(int(b) >> 8) & 255:02X}{int(b) & 255:02X} ({int(c)} px)"
                    for b, c in zip(bad[top], counts[top], strict=True)
                )
                fix = "add them to a class's 'rgb:' or to 'ignore_rgb:'"
            else:
                shown = ", ".join(
                    f"{int(b)} ({int(c)} px)" for b, c in zip(bad[top], counts[top], strict=True)
                )
                fix = "add them to a class's 'values:' or to 'ignore_values:'"
            raise ValueError(
                f"{where}: {len(bad)} mask value(s) not in {self.source}: {shown}; {fix}"
            )
        return codes[pos].astype(np.uint8, copy=False)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    return list(value)


def load_class_file(path: str | Path) -> ClassMap:
    """Read a YAML class file (see the module docstring for the format).

    Parameters
    ----------
    path : str or Path
        The YAML file.

    Returns
    -------
    ClassMap

    Raises
    ------
    FileNotFoundError, ValueError
        With the file name and what to fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"class file {path} is not valid YAML: {exc}") from exc
    return class_map_from_dict(data, source=str(path))


#: The keys of a class file, and of one of its classes (anything else is a typo).
_CLASS_FILE_KEYS = frozenset({"classes", "ignore_values", "ignore_rgb", "background"})
_CLASS_ENTRY_KEYS = frozenset({"name", "values", "value", "rgb", "color"})


def class_map_from_dict(data: Any, *, source: str = "<class map>") -> ClassMap:
    """Build a :class:`ClassMap` from the parsed content of a class file."""
    if not isinstance(data, Mapping) or not isinstance(data.get("classes"), list):
        raise ValueError(f"{source}: needs a top-level 'classes:' list of {{name: ...}} entries")
    unknown = sorted(set(map(str, data)) - _CLASS_FILE_KEYS)
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {unknown}; a class file has {sorted(_CLASS_FILE_KEYS)}"
        )
    entries = data["classes"]
    if not entries:
        raise ValueError(f"{source}: 'classes:' is empty")
    if len(entries) > 254:
        raise ValueError(f"{source}: at most 254 classes are supported, got {len(entries)}")
    names: list[str] = []
    colors: list[tuple[int, int, int]] = []
    values: dict[int, int] = {}
    rgb: dict[tuple[int, int, int], int] = {}
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ValueError(f"{source}: class #{i} needs a 'name:' (got {entry!r})")
        bad = sorted(set(map(str, entry)) - _CLASS_ENTRY_KEYS)
        if bad:
            raise ValueError(
                f"{source}: class #{i} ({entry.get('name')!r}) has unknown key(s) {bad}; "
                f"use {sorted(_CLASS_ENTRY_KEYS)}"
            )
        name = str(entry["name"])
        if name.lower() in (n.lower() for n in names):
            raise ValueError(f"{source}: class name {name!r} appears twice")
        names.append(name)
        where = f"{source}: class {name!r}"
        vals = _as_list(entry.get("values", entry.get("value")))
        cols = _as_list(entry.get("rgb"))
        if cols and len(cols) == 3 and all(isinstance(c, int) for c in cols):
            cols = [cols]
        if not vals and not cols:
            vals = [i]
        for v in vals:
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{where}: mask value {v!r} must be a non-negative integer")
            if v in values:
                raise ValueError(
                    f"{where}: mask value {v} is already mapped to {names[values[v]]!r}"
                )
            values[v] = i
        for c in cols:
            key = parse_color(c, where=where)
            if key in rgb:
                raise ValueError(f"{where}: colour {c!r} is already mapped to {names[rgb[key]]!r}")
            rgb[key] = i
        if "color" in entry:
            colors.append(parse_color(entry["color"], where=where))
        elif cols:
            colors.append(parse_color(cols[0], where=where))
        else:
            colors.append(_DEFAULT_COLORS[i % len(_DEFAULT_COLORS)])
    ignore_values = {int(v) for v in _as_list(data.get("ignore_values", [IGNORE_INDEX]))}
    clash = ignore_values & set(values)
    if clash:
        raise ValueError(f"{source}: values {sorted(clash)} are both a class and ignored")
    ignore_rgb = {
        parse_color(c, where=f"{source}: ignore_rgb") for c in _as_list(data.get("ignore_rgb"))
    }
    clash_rgb = ignore_rgb & set(rgb)
    if clash_rgb:
        raise ValueError(f"{source}: colours {sorted(clash_rgb)} are both a class and ignored")
    background = data.get("background")
    if background is not None:
        background = str(background)
        if background.lower() not in (n.lower() for n in names):
            raise ValueError(
                f"{source}: background {background!r} is not one of the classes {names}"
            )
    return ClassMap(
        names=tuple(names),
        colors=tuple(colors),
        values=values,
        rgb=rgb,
        ignore_values=frozenset(ignore_values),
        ignore_rgb=frozenset(ignore_rgb),
        background=background,
        source=source,
    )


def landcover_class_map() -> ClassMap:
    """The LandCover.ai classes with mask values 0..4 (the synthetic scenes use these)."""
    return class_map_from_dict(
        {
            "classes": [
                {"name": n, "values": [i], "color": list(c)}
                for i, (n, c) in enumerate(zip(LANDCOVER_CLASSES, LANDCOVER_COLORS, strict=True))
            ],
            "ignore_values": [IGNORE_INDEX],
            "background": "background",
        },
        source="landcover",
    )
