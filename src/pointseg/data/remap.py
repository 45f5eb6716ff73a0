"""Class remapping: translate one class scheme into another by a mapping file.

A mapping file is YAML::

    source: dubai            # class file or preset of the masks being read (optional)
    target: landcoverai      # class file or preset of the scheme to produce
    map:                     # source class name -> target class name, or "ignore"
      building: building
      land: background
      road: road
      vegetation: woodland
      water: water

Every source class must appear in ``map`` (a forgotten class is an error, not silently
ignored). Several source classes may map to the same target class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pointseg.constants import IGNORE_INDEX
from pointseg.data.classes import ClassMap, load_class_file
from pointseg.data.presets import resolve_class_file, resolve_map_file

__all__ = ["ClassRemap", "load_remap_file", "make_remap"]

_IGNORE_WORDS = ("ignore", "none", "unlabeled", "unlabelled")


@dataclass(frozen=True)
class ClassRemap:
    """A lookup from source class indices to target class indices.

    Parameters
    ----------
    source, target : ClassMap
        The class schemes.
    table : ndarray, shape (256,), uint8
        ``table[source_index]`` is the target index or ``IGNORE_INDEX``; ``table[255] = 255``.
    """

    source: ClassMap
    target: ClassMap
    table: np.ndarray

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        """Remap an encoded mask, shape (H, W) uint8 -> (H, W) uint8."""
        return self.table[mask]

    def describe(self) -> dict[str, str]:
        """``{source name: target name or 'ignore'}``."""
        out = {}
        for i, name in enumerate(self.source.names):
            t = int(self.table[i])
            out[name] = "ignore" if t == IGNORE_INDEX else self.target.names[t]
        return out


def make_remap(
    source: ClassMap, target: ClassMap, mapping: Mapping[str, str | None], *, where: str = "map"
) -> ClassRemap:
    """Build a :class:`ClassRemap` from a ``{source name: target name | "ignore"}`` mapping.

    Raises
    ------
    ValueError
        Unknown source or target names, or source classes missing from the mapping.
    """
    src_lower = {n.lower(): i for i, n in enumerate(source.names)}
    tgt_lower = {n.lower(): i for i, n in enumerate(target.names)}
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    seen: set[int] = set()
    for key, value in mapping.items():
        s = src_lower.get(str(key).lower())
        if s is None:
            raise ValueError(
                f"{where}: {key!r} is not a source class; the source classes are "
                f"{list(source.names)}"
            )
        seen.add(s)
        if value is None or str(value).lower() in _IGNORE_WORDS:
            continue
        t = tgt_lower.get(str(value).lower())
        if t is None:
            raise ValueError(
                f"{where}: {key!r} maps to {value!r}, which is not a target class; the target "
                f"classes are {list(target.names)} (or 'ignore')"
            )
        table[s] = t
    missing = [source.names[i] for i in range(source.n_classes) if i not in seen]
    if missing:
        raise ValueError(
            f"{where}: source classes {missing} are not mapped; map each to a target class "
            "or to 'ignore'"
        )
    return ClassRemap(source=source, target=target, table=table)


def _class_map(value: Any, *, where: str) -> ClassMap:
    if isinstance(value, ClassMap):
        return value
    try:
        path = resolve_class_file(value)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{where}: {exc}") from None
    if path is None:
        raise ValueError(f"{where}: no class file given")
    return load_class_file(path)


def load_remap_file(path: str | Path, *, source: ClassMap | None = None) -> ClassRemap:
    """Read a mapping file (see the module docstring).

    Parameters
    ----------
    path : path or str
        The YAML mapping file, or the name of a shipped mapping (``dubai-to-landcoverai``).
        Its ``source:``/``target:`` are class-file paths (relative to the mapping file) or
        preset names.
    source : ClassMap, optional
        The masks' class scheme; overrides (and may replace) the file's ``source:``.
    """
    path = resolve_map_file(path)
    if path is None:
        raise ValueError("no class mapping file given")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"class mapping file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("map"), Mapping):
        raise ValueError(
            f"class mapping file {path}: needs 'target:' (class file or preset) and a 'map:' of "
            "source class -> target class"
        )
    if "target" not in data:
        raise ValueError(f"class mapping file {path}: 'target:' (class file or preset) is missing")
    unknown = sorted(set(map(str, data)) - {"source", "target", "map"})
    if unknown:
        raise ValueError(
            f"class mapping file {path}: unknown key(s) {unknown}; use source, target and map"
        )

    def resolve(value: Any, key: str) -> ClassMap:
        candidate = path.parent / str(value)
        return _class_map(
            candidate if candidate.is_file() else value, where=f"class mapping file {path} {key}"
        )

    if source is None:
        if "source" not in data:
            raise ValueError(
                f"class mapping file {path}: 'source:' is missing and the dataset gave no class "
                "scheme; add 'source: CLASS_FILE_OR_PRESET'"
            )
        source = resolve(data["source"], "source")
    target = resolve(data["target"], "target")
    return make_remap(source, target, data["map"], where=f"class mapping file {path}")
