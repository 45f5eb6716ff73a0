"""Datasets: folder datasets with class files, splits, synthetic aerial scenes."""

from pointseg.data.classes import (
    ClassMap,
    class_map_from_dict,
    landcover_class_map,
    load_class_file,
)
from pointseg.data.folder import FolderDataset, Record, scan_folder
from pointseg.data.registry import (
    get_dataset,
    list_class_presets,
    list_datasets,
    register_dataset,
    resolve_class_file,
)
from pointseg.data.splits import read_split_file, split_stems
from pointseg.data.synthetic import generate_scene, make_synthetic_dataset

__all__ = [
    "ClassMap",
    "FolderDataset",
    "Record",
    "class_map_from_dict",
    "generate_scene",
    "get_dataset",
    "landcover_class_map",
    "list_class_presets",
    "list_datasets",
    "load_class_file",
    "make_synthetic_dataset",
    "read_split_file",
    "register_dataset",
    "resolve_class_file",
    "scan_folder",
    "split_stems",
]
