"""Datasets: one record-based dataset for every loader, class files and mappings, splits.

The loaders of public datasets are reached by name through :func:`get_dataset`
(``landcoverai``, ``oxford_pet``, ``loveda``, ``potsdam``, ``vaihingen``); their modules
(:mod:`pointseg.data.landcoverai`, ...) hold the builders and the ``prepare_*`` functions.
"""

from pointseg.data.base import Record, RecordDataset, carve_validation
from pointseg.data.classes import (
    ClassMap,
    class_map_from_dict,
    landcover_class_map,
    load_class_file,
)
from pointseg.data.folder import FolderDataset, scan_folder
from pointseg.data.landcoverai import prepare_landcoverai
from pointseg.data.loveda import prepare_loveda
from pointseg.data.oxford_pet import prepare_oxford_pet
from pointseg.data.presets import (
    list_class_presets,
    list_map_presets,
    resolve_class_file,
    resolve_map_file,
)
from pointseg.data.registry import get_dataset, list_datasets, register_dataset
from pointseg.data.remap import ClassRemap, load_remap_file, make_remap
from pointseg.data.splits import read_split_file, split_stems
from pointseg.data.synthetic import generate_scene, make_synthetic_dataset

__all__ = [
    "ClassMap",
    "ClassRemap",
    "FolderDataset",
    "Record",
    "RecordDataset",
    "carve_validation",
    "class_map_from_dict",
    "generate_scene",
    "get_dataset",
    "landcover_class_map",
    "list_class_presets",
    "list_datasets",
    "list_map_presets",
    "load_class_file",
    "load_remap_file",
    "make_remap",
    "make_synthetic_dataset",
    "prepare_landcoverai",
    "prepare_loveda",
    "prepare_oxford_pet",
    "read_split_file",
    "register_dataset",
    "resolve_class_file",
    "resolve_map_file",
    "scan_folder",
    "split_stems",
]
