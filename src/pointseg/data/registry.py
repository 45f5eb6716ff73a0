"""Dataset registry (``list_datasets``/``get_dataset``) and class-file presets."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from pointseg.data.base import RecordDataset
from pointseg.data.folder import FolderDataset
from pointseg.data.isprs import potsdam, vaihingen
from pointseg.data.landcoverai import landcoverai
from pointseg.data.loveda import loveda
from pointseg.data.oxford_pet import oxford_pet
from pointseg.data.rasters import RasterDataset
from pointseg.data.synthetic import make_synthetic_dataset

__all__ = [
    "get_dataset",
    "list_class_presets",
    "list_datasets",
    "list_map_presets",
    "register_dataset",
    "resolve_class_file",
    "resolve_map_file",
]

_REGISTRY: dict[str, Callable[..., RecordDataset]] = {}


def register_dataset(
    name: str,
) -> Callable[[Callable[..., RecordDataset]], Callable[..., RecordDataset]]:
    """Register a dataset builder returning a :class:`RecordDataset`.

    Every builder takes the keyword arguments ``root`` and ``split`` plus those of
    :class:`RecordDataset` that make sense for it (``split_file``, ``bands``, ``remap``,
    ``seed``, ...), and its own options.
    """

    def deco(fn: Callable[..., RecordDataset]) -> Callable[..., RecordDataset]:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset`."""
    return sorted(_REGISTRY)


def get_dataset(name: str, **kwargs: Any) -> RecordDataset:
    """Build a dataset by name; every dataset yields the same sample dicts.

    ``folder``: ``get_dataset("folder", root=..., classes=..., split=...)``;
    ``landcoverai``, ``oxford_pet``, ``loveda``, ``potsdam``, ``vaihingen``: the official
    layouts under ``root`` with their own classes and splits (see each builder's docstring).
    ``rasters``: GeoTIFFs of any size trained on from windows and a point file
    (:class:`pointseg.data.rasters.RasterDataset`).
    ``synthetic``: ``get_dataset("synthetic", root=..., n_images=..., size=..., seed=...,
    split=...)`` generates the scenes under ``root`` first (once).
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown dataset {name!r}; available datasets: {', '.join(list_datasets())}"
        )
    return _REGISTRY[name](**kwargs)


@register_dataset("folder")
def _folder(*, root: str | Path, **kwargs: Any) -> FolderDataset:
    return FolderDataset(root, **kwargs)


@register_dataset("synthetic")
def _synthetic(
    *, root: str | Path, n_images: int = 120, size: int = 128, seed: int = 0, **kwargs: Any
) -> FolderDataset:
    make_synthetic_dataset(root, n_images=n_images, size=size, seed=seed)
    return FolderDataset(root, **kwargs)


@register_dataset("rasters")
def _rasters(*, root: str | Path, **kwargs: Any) -> RasterDataset:
    return RasterDataset(root, **kwargs)


register_dataset("landcoverai")(landcoverai)
register_dataset("oxford_pet")(oxford_pet)
register_dataset("loveda")(loveda)
register_dataset("potsdam")(potsdam)
register_dataset("vaihingen")(vaihingen)


def list_class_presets() -> list[str]:
    """Names of the class files shipped with pointseg (usable as ``--classes NAME``)."""
    files = resources.files("pointseg") / "presets"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def resolve_class_file(value: str | Path | None) -> Path | None:
    """A class file path, or the path of a shipped preset when ``value`` names one."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return path
    if str(value) in list_class_presets():
        return Path(str(resources.files("pointseg") / "presets" / f"{value}.yaml"))
    raise FileNotFoundError(
        f"class file {value} does not exist and is not a preset ({', '.join(list_class_presets())})"
    )


def list_map_presets() -> list[str]:
    """Names of the class mapping files shipped with pointseg (usable as ``--remap NAME``)."""
    files = resources.files("pointseg") / "presets" / "maps"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def resolve_map_file(value: str | Path | None) -> Path | None:
    """A class mapping file path, or the path of a shipped mapping preset."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return path
    if str(value) in list_map_presets():
        return Path(str(resources.files("pointseg") / "presets" / "maps" / f"{value}.yaml"))
    raise FileNotFoundError(
        f"class mapping file {value} does not exist and is not a preset "
        f"({', '.join(list_map_presets())})"
    )
