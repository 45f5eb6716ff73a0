"""The training configuration: one dataclass, saved as YAML beside every run's outputs."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from pointseg.data.base import RecordDataset
from pointseg.io.atomic import write_text_atomic
from pointseg.labels.settings import DEFAULT_REGION_FACTOR, PseudoLabelSettings
from pointseg.options import as_number

__all__ = [
    "AERIAL_SCALE",
    "AERIAL_SUPERPIXEL_AREA",
    "AERIAL_WINDOW",
    "DEFAULT_RESIZE",
    "DEFAULT_WINDOW",
    "RESIZE_MODES",
    "SETTING_HELP",
    "TrainConfig",
]

logger = logging.getLogger(__name__)

#: Square side of ``resize`` mode when ``resize`` is given as None with no window (legacy).
DEFAULT_RESIZE = 256
#: Window side of the ``rasters`` dataset when ``window`` is not set.
DEFAULT_WINDOW = 256
#: The geometry of tile datasets when neither ``window`` nor ``resize`` is set: the best
#: setting of the cross-validated Dubai study (``pointseg experiment dubai-native``, README
#: "Native resolution"): 128-px windows at a quarter of the native resolution (512 native px),
#: superpixels of 1000 native px². ``scale`` and ``superpixel_area``, when given, win.
AERIAL_WINDOW, AERIAL_SCALE, AERIAL_SUPERPIXEL_AREA = 128, 0.25, 1000.0
#: How ``resize`` fits an image into its square.
RESIZE_MODES = ("squash", "letterbox")


#: One line of help per setting: the command line derives ``pointseg train``'s flags from
#: :class:`TrainConfig`'s fields and these texts (a field without help gets no flag).
SETTING_HELP: dict[str, str] = {
    "data": "dataset root (a folder with images/ and masks/, or rasters)",
    "out": "run directory (default runs/train)",
    "dataset": "dataset loader: folder (default), landcoverai, oxford_pet, loveda, potsdam, "
    "vaihingen, rasters (GeoTIFFs of any size trained on in windows; 'pointseg list datasets')",
    "dataset_options": "a loader option KEY=VALUE, e.g. border=class for oxford_pet, "
    "block_size=2048 for rasters (repeatable)",
    "classes": "class file (YAML) or a preset name (e.g. dubai); default DATA/classes.yaml",
    "remap": "class mapping file or preset (e.g. dubai-to-landcoverai) translating the classes",
    "split_file": "YAML or 'stem,split' list of train/val/test",
    "fractions": "train/val/test fractions of the seeded split (0.7 0.15 0.15)",
    "split_seed": "seed of the seeded split (0)",
    "group_pattern": r"regex naming each file's group, kept in one split (e.g. 't\d+$')",
    "image_size": "deprecated: use --resize (tile datasets) or --window (rasters)",
    "resize": "train on whole images resized to this square side, e.g. 256 (object-centric "
    "photos); 0 keeps the native size (every image the same size). Default: windows",
    "resize_mode": "how --resize fits an image: squash (default; aspect changes) or letterbox "
    "(aspect kept, padded with ignore)",
    "window": "train on random windows of this side (model pixels) cut at native resolution "
    "(times --scale) from images of any size. Default without --window or --resize: 128 at "
    "--scale 0.25 with --superpixel-area 1000 (the best of the Dubai study); rasters: 256",
    "scale": "resample every image by this factor before windowing, e.g. 0.5 = half the "
    "resolution (default 1: native, or 0.25 with the default window); prediction runs at the "
    "same scale",
    "superpixel_area": "mean superpixel area in native pixels^2 (windows: default "
    "(window/scale)^2 / n_segments; whole images: overrides n_segments per image)",
    "windows_per_epoch": "training windows drawn per epoch (default: the training images' "
    "area at --scale in windows)",
    "val_every": "validate every N epochs (1); whole-image validation can be costly",
    "max_val_images": "validate on at most this many images of the validation split (seeded "
    "subset; default all)",
    "window_cache_mb": "memory for decoded images while reading windows (default 256 MiB)",
    "bands": "zero-based band indices to use, e.g. 0,1,2,3 (default: every band)",
    "supervision": "points (default) or full",
    "points_file": "point labels: CSV/GeoJSON in pixel coordinates, or map coordinates with "
    "--points-crs (GeoPackage/Shapefile: always map coordinates)",
    "points_crs": "the points are in map coordinates: 'file' (the file's CRS; GeoJSON default "
    "WGS84) or a CRS such as EPSG:4326 for a CSV with x,y,class columns",
    "n_points": "simulated points per image (default 50)",
    "point_scheme": "per_class (default), uniform or grid",
    "superpixels": "superpixel method (default hers); see 'pointseg list superpixels'",
    "n_segments": "superpixels per image (default 300)",
    "fill_counts": "coarser superpixel counts that fill unlabelled pixels, e.g. 150,75 "
    "(multi-scale)",
    "superpixel_options": "JSON options of the superpixel method",
    "propagation": "how clicks spread: majority (default; the paper's vote per superpixel) or "
    "point_aware (each click takes the largest region of the HERS hierarchy holding no click "
    "of another class, up to --max-region-area; replaces --fill-counts)",
    "max_region_area": "point_aware: largest region a click takes, in the unit of "
    "--superpixel-area (native pixels^2; default 2 superpixel areas)",
    "regulariser": "a loss on the unlabelled pixels following image affinities, e.g. crf "
    "(see 'pointseg list regularisers'); default none",
    "regulariser_weight": "weight of --regulariser added to the loss (default: its own)",
    "regulariser_options": "JSON options of the regulariser",
    "self_train_rounds": "self-training rounds after the first training (0): superpixels "
    "without clicks take the model's confident predictions, then training goes on",
    "self_train_threshold": "self-training: a superpixel's mean predicted probability needed "
    "to take its class (0.8)",
    "model": "model name (default unet); see 'pointseg list models'",
    "model_options": "JSON, e.g. '{\"base_channels\": 16}'",
    "weights": "'imagenet' (must be cached locally) or a local weights file",
    "loss": "masked_mse (default) or partial_ce; see 'pointseg list losses'",
    "loss_options": "JSON options of the loss",
    "lr": "Adam learning rate (0.001)",
    "weight_decay": "Adam weight decay (0)",
    "batch_size": "batch size (8)",
    "max_epochs": "maximum epochs (50)",
    "early_stop_patience": "epochs without validation gain before stopping (10)",
    "plateau_patience": "epochs without gain before the learning rate is reduced (4)",
    "seed": "seed of points, superpixels and training (0)",
    "accelerator": "auto (default), cpu or cuda",
    "precision": "32-true (default), 16-mixed, bf16-mixed",
    "num_workers": "data loader worker processes (0)",
    "devices": "processes (devices) per node for distributed training (1); more than one "
    "trains with DDP: gloo on CPU, nccl on CUDA (README: Scaling out)",
    "num_nodes": "nodes of a distributed run (1), started by torchrun or srun",
    "strategy": "auto (default; ddp on several processes), ddp or ddp_find_unused_parameters_true",
    "cache_dir": "pseudo-label cache (default ~/.cache/pointseg)",
    "resume": "continue from OUT/checkpoints/last.ckpt (model, bands and classes must not change)",
    "overwrite": "replace the run in OUT, once the new run has finished (the old one stays "
    "whole if it fails)",
}


@dataclass
class TrainConfig:
    """Everything a training run depends on.

    Data: ``data`` (dataset root), ``dataset`` (a registered loader: ``folder``,
    ``landcoverai``, ``oxford_pet``, ...; see :func:`pointseg.data.list_datasets`) with its
    ``dataset_options``, ``classes`` (folder datasets: class file or preset; default
    ``data/classes.yaml``), ``remap`` (class mapping file or preset), ``split_file`` or the
    dataset's own split or (``fractions``, ``split_seed``, ``group_pattern``), ``bands``.

    Geometry (:attr:`mode`): ``window`` trains on random ``window``-pixel windows cut from
    every image at its native resolution times ``scale`` (the same factor for every image,
    whatever its size or aspect), read from disk per window (``windows_per_epoch`` per epoch,
    ``window_cache_mb`` of decoded images kept), validated on whole validation images in
    tiles (``val_every`` epochs, ``max_val_images``); ``resize`` trains on whole images
    resized to one square (``resize_mode`` ``squash`` or ``letterbox``; ``0`` keeps equal
    native sizes), as for object-centric photos; without either, ``resize=256``. With
    ``dataset="rasters"``, ``data`` is a GeoTIFF (or a folder of them) of any size, always
    trained on in windows (default 256) from ``points_file`` (see
    :mod:`pointseg.training.windows`). ``superpixel_area`` sets the superpixel density in
    native pixels² (default in windows: ``n_segments`` per window). The deprecated
    ``image_size`` maps to ``resize`` (tile datasets) or ``window`` (rasters).

    Supervision: ``supervision`` = ``points`` (superpixel pseudo-labels from query points) or
    ``full`` (dense masks, the upper bound); ``points_file`` or simulated points ``n_points``
    per image with ``point_scheme``. A points file is in pixel coordinates (CSV/GeoJSON with
    an ``image`` column) unless ``points_crs`` is set (``"file"``: the file's own CRS; or a
    CRS such as ``"EPSG:4326"``) or it is a GeoPackage/Shapefile: then its points are in map
    coordinates, reprojected onto the dataset's georeferenced images;
    ``superpixels`` method with ``n_segments``; ``fill_counts`` (coarser counts, e.g.
    ``[150, 75]``) fill what finer superpixels leave unlabelled (multi-scale propagation);
    ``propagation="point_aware"`` instead gives each click the largest region of the HERS
    hierarchy around it without a click of another class, up to ``max_region_area``.

    Beyond the labelled pixels: ``regulariser`` (+ ``regulariser_weight``,
    ``regulariser_options``) adds an affinity-aware loss on every pixel
    (:func:`pointseg.losses.list_regularisers`); ``self_train_rounds`` retrains after
    superpixels without clicks take the model's predictions where their mean probability
    reaches ``self_train_threshold``.

    Model and optimisation: ``model`` + ``model_options`` (+ ``weights``), ``loss`` +
    ``loss_options``, Adam ``lr``/``weight_decay``, ``batch_size``, ``max_epochs``,
    ``early_stop_patience`` and ``plateau_patience`` (both on validation mIoU), ``seed``,
    ``accelerator`` (``auto``, ``cpu``, ``cuda``/``gpu``), ``precision``.

    Distributed training (:mod:`pointseg.training.distributed`): ``devices`` processes on
    each of ``num_nodes`` nodes with Lightning ``strategy`` (DDP), started by ``torchrun`` or
    ``srun``.
    """

    data: str = ""
    out: str = "runs/train"
    dataset: str = "folder"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    classes: str | None = None
    remap: str | None = None
    split_file: str | None = None
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0
    group_pattern: str | None = None
    image_size: int | None = None
    resize: int | None = None
    resize_mode: str = "squash"
    window: int | None = None
    scale: float | None = None
    superpixel_area: float | None = None
    windows_per_epoch: int | None = None
    val_every: int = 1
    max_val_images: int | None = None
    window_cache_mb: float = 256.0
    bands: list[int] | None = None
    supervision: str = "points"
    points_file: str | None = None
    points_crs: str | None = None
    n_points: int = 50
    point_scheme: str = "per_class"
    superpixels: str = "hers"
    n_segments: int = 300
    fill_counts: list[int] = field(default_factory=list)
    superpixel_options: dict[str, Any] = field(default_factory=dict)
    propagation: str = "majority"
    max_region_area: float | None = None
    regulariser: str | None = None
    regulariser_weight: float | None = None
    regulariser_options: dict[str, Any] = field(default_factory=dict)
    self_train_rounds: int = 0
    self_train_threshold: float = 0.8
    model: str = "unet"
    model_options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    loss: str = "masked_mse"
    loss_options: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 8
    max_epochs: int = 50
    early_stop_patience: int = 10
    plateau_patience: int = 4
    seed: int = 0
    accelerator: str = "auto"
    precision: str = "32-true"
    num_workers: int = 0
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    cache_dir: str | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = False

    def validate(self) -> None:
        """Check values that would otherwise fail deep inside training."""
        if not self.data:
            raise ValueError("no dataset: set data (a folder with images/ and masks/)")
        from pointseg.data.registry import list_datasets

        if self.dataset not in list_datasets():
            raise ValueError(
                f"unknown dataset {self.dataset!r}; available datasets: "
                f"{', '.join(list_datasets())}"
            )
        from pointseg.losses import list_losses
        from pointseg.models import list_models
        from pointseg.points import list_point_schemes
        from pointseg.superpixels import list_superpixel_methods

        for what, plural, value, valid in (
            ("model", "models", self.model, list_models()),
            ("loss", "losses", self.loss, list_losses()),
            ("superpixels", "superpixel methods", self.superpixels, list_superpixel_methods()),
            ("point_scheme", "point schemes", self.point_scheme, list_point_schemes()),
        ):
            if value not in valid:
                raise ValueError(
                    f"unknown {what} {value!r}; available {plural}: {', '.join(valid)}"
                )
        if self.supervision not in ("points", "full"):
            raise ValueError(f"supervision must be 'points' or 'full', got {self.supervision!r}")
        for name in ("batch_size", "max_epochs", "n_segments"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_points < 1 and self.points_file is None and self.supervision == "points":
            raise ValueError(f"n_points must be >= 1, got {self.n_points}")
        self.resolve_legacy()
        self._validate_geometry()
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        self._validate_more()

    def resolve_legacy(self) -> None:
        """Resolve the geometry defaults; map a deprecated ``image_size``.

        ``image_size`` reads as ``resize`` (tile datasets) or ``window`` (rasters). Without
        ``window`` or ``resize``, tile datasets train on windows: :data:`AERIAL_WINDOW` px at
        :data:`AERIAL_SCALE` with superpixels of :data:`AERIAL_SUPERPIXEL_AREA` (unless given);
        ``scale`` is otherwise 1.
        """
        self._map_image_size()
        if self.dataset != "rasters" and self.window is None and self.resize is None:
            self.window = AERIAL_WINDOW
            self.scale = AERIAL_SCALE if self.scale is None else self.scale
            if self.superpixel_area is None:
                self.superpixel_area = AERIAL_SUPERPIXEL_AREA
            logger.info(
                "no window or resize given: windows of %d px at scale %g (%d native px), "
                "superpixels of %g native px²; --resize 256 trains on squashed whole images",
                self.window,
                self.scale,
                round(self.window / self.scale),
                self.superpixel_area,
            )
        if self.scale is None:
            self.scale = 1.0

    def _map_image_size(self) -> None:
        if self.image_size is None:
            return
        size = int(self.image_size)
        if self.dataset == "rasters":
            self.window = self.window if self.window is not None else size
            target = f"window: {self.window}"
        elif self.window is None and self.resize is None:
            self.resize = size
            target = f"resize: {size}" + (" (native size)" if size == 0 else "")
        else:
            target = "nothing (resize or window is set)"
        logger.warning("the setting image_size: %d is deprecated; read as %s", size, target)
        self.image_size = None

    @property
    def mode(self) -> str:
        """``window`` (windows at native resolution x ``scale``), ``resize`` or ``native``.

        ``native``: whole images at their own size (``resize: 0``; all the same size).
        """
        self.resolve_legacy()
        if self.dataset == "rasters" or self.window is not None:
            return "window"
        if self.resize == 0:
            return "native"
        return "resize"

    @property
    def resize_size(self) -> int | None:
        """The square side whole images are resized to (None in window and native modes)."""
        if self.mode != "resize":
            return None
        return int(self.resize) if self.resize else DEFAULT_RESIZE

    @property
    def window_size(self) -> int | None:
        """The training window side (None unless :attr:`mode` is ``window``)."""
        if self.mode != "window":
            return None
        return int(self.window) if self.window else DEFAULT_WINDOW

    def _validate_geometry(self) -> None:
        if self.window is not None and self.resize is not None:
            raise ValueError(
                f"window ({self.window}) and resize ({self.resize}) exclude each other: train "
                "on windows at native resolution, or on whole resized images"
            )
        if self.dataset == "rasters" and self.resize is not None:
            raise ValueError("the rasters dataset trains on windows: use window, not resize")
        if self.window is not None and int(self.window) < 16:
            raise ValueError(f"window must be >= 16 pixels, got {self.window}")
        if self.resize is not None and int(self.resize) != 0 and int(self.resize) < 16:
            raise ValueError(f"resize must be >= 16 pixels (or 0: native), got {self.resize}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(
                f"resize_mode must be one of {', '.join(RESIZE_MODES)}, got {self.resize_mode!r}"
            )
        try:
            scale = float(self.scale if self.scale is not None else 1.0)
        except (TypeError, ValueError):
            raise ValueError(f"scale must be a number such as 0.5, got {self.scale!r}") from None
        if not (0 < scale <= 8) or scale != scale:
            raise ValueError(f"scale must be in (0, 8], e.g. 0.5 for half resolution, got {scale}")
        if scale != 1 and self.mode != "window":
            raise ValueError(
                f"scale {scale} applies to windows: set window (e.g. --window 512), or resize "
                "whole images with resize"
            )
        if self.superpixel_area is not None and not float(self.superpixel_area) > 0:
            raise ValueError(f"superpixel_area must be > 0 pixels², got {self.superpixel_area}")
        for name in ("windows_per_epoch", "val_every", "max_val_images"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not float(self.window_cache_mb) > 0:
            raise ValueError(f"window_cache_mb must be > 0, got {self.window_cache_mb}")

    def _validate_more(self) -> None:
        from pointseg.io.outputs import check_input_file, check_output_dir
        from pointseg.losses import check_loss_options
        from pointseg.models import check_model_options

        for name in ("weight_decay", "num_workers", "early_stop_patience", "plateau_patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if (
            len(self.fractions) != 3
            or any(f < 0 for f in self.fractions)
            or not (0.999 <= sum(self.fractions) <= 1.001)
        ):
            raise ValueError(
                f"fractions must be three non-negative shares (train val test) summing to 1, "
                f"got {list(self.fractions)}"
            )
        if self.accelerator not in ("auto", "cpu", "cuda", "gpu"):
            raise ValueError(f"accelerator must be auto, cpu or cuda, got {self.accelerator!r}")
        if self.accelerator in ("cuda", "gpu"):
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError(
                    f"accelerator {self.accelerator!r} asked for but CUDA is not available here; "
                    "use --accelerator auto or cpu"
                )
        for name in ("devices", "num_nodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.devices > 1 and self.accelerator in ("cuda", "gpu"):
            import torch

            if self.devices > torch.cuda.device_count():
                raise ValueError(
                    f"devices {self.devices} asks for one GPU per process but this machine "
                    f"has {torch.cuda.device_count()}; use --devices "
                    f"{max(torch.cuda.device_count(), 1)} or fewer"
                )
        from pointseg.training.distributed import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"unknown strategy {self.strategy!r}; available strategies: {', '.join(STRATEGIES)}"
            )
        precisions = ("32-true", "32", "16-mixed", "bf16-mixed", "64-true", "bf16-true")
        if str(self.precision) not in precisions:
            raise ValueError(
                f"precision {self.precision!r} is unknown; use one of {', '.join(precisions)}"
            )
        if self.bands is not None and (
            not self.bands
            or any(int(b) < 0 for b in self.bands)
            or len(set(self.bands)) != len(self.bands)
        ):
            raise ValueError(
                f"bands must be distinct zero-based indices such as 0,1,2, got {self.bands}"
            )
        if self.dataset in ("folder", "rasters") and not Path(self.data).exists():
            raise FileNotFoundError(f"dataset {self.data} does not exist")
        if self.points_file is not None:
            check_input_file(self.points_file, what="point file")
        elif self.points_crs is not None:
            raise ValueError("points_crs (--points-crs) is set but no point file (--points)")
        if self.classes is not None:
            from pointseg.data.presets import resolve_class_file

            resolve_class_file(self.classes)
        if self.weights is not None and str(self.weights).lower() != "imagenet":
            check_input_file(self.weights, what="weights file")
        if self.overwrite and self.resume:
            raise ValueError("overwrite and resume exclude each other: choose one")
        check_model_options(self.model, dict(self.model_options or {}))
        check_loss_options(self.loss, dict(self.loss_options or {}))
        self._validate_beyond_labels()
        self.pseudo_label_settings()  # superpixel method, counts, propagation
        check_output_dir(self.out, what="run folder")

    def pixels_per_segment(self) -> float | None:
        """The mean superpixel area in native pixels² (None: a count per whole image).

        Windows: ``superpixel_area``, else ``(window / scale)² / n_segments``; whole images:
        ``superpixel_area`` when set (after the geometry defaults are resolved).
        """
        mode = self.mode  # resolves the defaults first: they may set superpixel_area
        if self.superpixel_area:
            return float(self.superpixel_area)
        if mode == "window":
            side = int(self.window_size or 0) / float(self.scale or 1.0)
            return side * side / int(self.n_segments)
        return None

    def _validate_beyond_labels(self) -> None:
        """The regulariser and the self-training rounds."""
        from pointseg.losses import check_regulariser_options

        if self.regulariser is not None:
            check_regulariser_options(self.regulariser, dict(self.regulariser_options or {}))
        elif self.regulariser_weight is not None or self.regulariser_options:
            raise ValueError(
                "regulariser_weight/regulariser_options are set but no regulariser: set "
                "regulariser (e.g. --regulariser crf) or drop them"
            )
        if self.regulariser_weight is not None:
            weight = as_number(self.regulariser_weight)
            if not (weight >= 0 and weight < float("inf")):
                raise ValueError(
                    f"regulariser_weight must be a finite number >= 0, got "
                    f"{self.regulariser_weight!r}"
                )
        rounds = self.self_train_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
            raise ValueError(f"self_train_rounds must be an integer >= 0, got {rounds!r}")
        threshold = as_number(self.self_train_threshold)
        if not 0 < threshold <= 1:
            raise ValueError(
                f"self_train_threshold must be a probability in (0, 1], got "
                f"{self.self_train_threshold!r}"
            )
        if rounds and (self.mode != "window" or self.dataset == "rasters"):
            raise ValueError(
                "self-training rounds run on windows of tile datasets (the default geometry); "
                "drop --resize, or set self_train_rounds 0"
            )
        if rounds and self.supervision == "full":
            raise ValueError("self-training needs point supervision: drop self_train_rounds")

    def pseudo_label_settings(self) -> PseudoLabelSettings:
        """The superpixel and propagation settings of this run (one frozen object)."""
        factor = DEFAULT_REGION_FACTOR
        if self.max_region_area is not None:
            cap = as_number(self.max_region_area)
            if not cap > 0:
                raise ValueError(
                    f"max_region_area must be > 0 pixels², got {self.max_region_area!r}"
                )
            if self.propagation != "point_aware":
                raise ValueError(
                    "max_region_area caps point-aware regions: set propagation point_aware "
                    "(--propagation point_aware) or drop it"
                )
            base = self.pixels_per_segment()
            if base is None:
                raise ValueError(
                    "max_region_area is an area: on whole resized images set superpixel_area "
                    "too (the superpixel area it is measured against)"
                )
            factor = cap / base
        return PseudoLabelSettings(
            method=self.superpixels,
            n_segments=self.n_segments,
            fill_counts=self.fill_counts or (),
            seed=self.seed,
            options=self.superpixel_options or {},
            propagation=self.propagation,
            max_region_factor=factor,
        )

    def open_dataset(self, split: str | None, *, require_masks: bool = True) -> RecordDataset:
        """The dataset of this run (one split, or all images with ``split=None``)."""
        from pointseg.data.presets import resolve_class_file
        from pointseg.data.registry import get_dataset

        kwargs: dict[str, Any] = {
            "split_file": self.split_file,
            "fractions": self.fractions,
            "seed": self.split_seed,
            "group_pattern": self.group_pattern,
            "bands": self.bands,
            "remap": self.remap,
            "require_masks": require_masks,
        }
        if self.classes is not None:
            kwargs["classes"] = resolve_class_file(self.classes)
        clash = sorted(set(kwargs) & set(self.dataset_options))
        if clash:
            raise ValueError(
                f"dataset_options {clash} are settings of their own; set them at the top level"
            )
        return get_dataset(
            self.dataset, root=self.data, split=split, **kwargs, **self.dataset_options
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fractions"] = list(self.fractions)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; valid ones: {sorted(known)}")
        data = dict(data)
        if (
            "image_size" in data
            and data["image_size"] is None
            and "resize" not in data
            and "window" not in data
        ):
            data["image_size"] = 0  # an old file's explicit null kept the native size
        cfg = cls(**data)
        cfg.resolve_legacy()
        cfg.fractions = tuple(cfg.fractions)  # type: ignore[assignment]
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ValueError(f"config {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"config {path}: expected a mapping of settings")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"config {path}: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
