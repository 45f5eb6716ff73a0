"""Class-file and class-mapping presets shipped with pointseg.

A low-level module: it imports no other :mod:`pointseg.data` module, so that any of them
(:mod:`~pointseg.data.classes`, :mod:`~pointseg.data.remap`, :mod:`~pointseg.data.base`, ...)
can resolve preset names without importing the dataset registry.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = [
    "list_class_presets",
    "list_map_presets",
    "resolve_class_file",
    "resolve_map_file",
]


def _presets_dir() -> Path:
    return Path(str(resources.files("pointseg") / "presets"))


def _yaml_stems(folder: Path) -> list[str]:
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def list_class_presets() -> list[str]:
    """Names of the class files shipped with pointseg (usable as ``--classes NAME``)."""
    return _yaml_stems(_presets_dir())


def resolve_class_file(value: str | Path | None) -> Path | None:
    """A class file path, or the path of a shipped preset when ``value`` names one."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return path
    if str(value) in list_class_presets():
        return _presets_dir() / f"{value}.yaml"
    raise FileNotFoundError(
        f"class file {value} does not exist and is not a preset ({', '.join(list_class_presets())})"
    )


def list_map_presets() -> list[str]:
    """Names of the class mapping files shipped with pointseg (usable as ``--remap NAME``)."""
    return _yaml_stems(_presets_dir() / "maps")


def resolve_map_file(value: str | Path | None) -> Path | None:
    """A class mapping file path, or the path of a shipped mapping preset."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return path
    if str(value) in list_map_presets():
        return _presets_dir() / "maps" / f"{value}.yaml"
    raise FileNotFoundError(
        f"class mapping file {value} does not exist and is not a preset "
        f"({', '.join(list_map_presets())})"
    )
