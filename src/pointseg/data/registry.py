"""Dataset registry: ``list_datasets``/``get_dataset``/``register_dataset``.

Class-file and mapping presets live in :mod:`pointseg.data.presets`.
"""

from __future__ import annotations

from collections.abc import Callable
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

__all__ = ["get_dataset", "list_datasets", "register_dataset"]

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
    fn = _REGISTRY[name]
    try:
        return fn(**kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        option = str(exc).rsplit("argument", 1)[-1].strip(" '")
        valid = ", ".join(_option_names(fn)) or "none"
        raise ValueError(
            f"dataset {name!r} has no option {option!r} (--dataset-option); its options: {valid}"
        ) from exc


def _option_names(fn: Callable[..., RecordDataset]) -> list[str]:
    """The keyword options a dataset builder takes (with FolderDataset's for pass-through)."""
    import inspect

    shared = {"root", "split", "split_file", "fractions", "seed", "group_pattern", "bands"}
    shared |= {"remap", "require_masks", "classes"}
    names = set()
    for f in (fn, FolderDataset.__init__):
        params = inspect.signature(f).parameters
        names |= {
            p
            for p, v in params.items()
            if v.kind is v.KEYWORD_ONLY or v.kind is v.POSITIONAL_OR_KEYWORD
        }
        if not any(v.kind is v.VAR_KEYWORD for v in params.values()):
            break
    return sorted(names - shared - {"self"})


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
