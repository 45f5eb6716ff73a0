"""Pseudo-label PNGs of a dataset's images, one image at a time: serially or as Dask tasks.

What ``pointseg pseudolabels`` writes: for each image, the superpixel pseudo-labels of its
points (a point file's, or points simulated on its mask) as ``NAME.png`` (a palette PNG whose
values are class indices). With a cache folder the labels go through
:class:`pointseg.labels.PseudoLabelCache`, under the keys training computes for the same
image view and settings, so a distributed labelling run fills the cache a later training run
reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pointseg.labels.cache import PseudoLabelCache
from pointseg.labels.propagation import propagation_stats
from pointseg.labels.settings import PseudoLabelSettings

__all__ = ["PseudoLabelWriter", "write_pseudo_labels"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PseudoLabelWriter:
    """How to pseudo-label one image and where its PNG goes (picklable: sent to workers).

    Parameters
    ----------
    settings : PseudoLabelSettings
        Superpixels and propagation.
    n_classes : int
    out_dir : Path
        ``NAME.png`` is written here (atomically).
    colors : tuple of (r, g, b)
        Palette of the PNGs.
    size : int, optional
        Resize images (and points) to this square first; None keeps the size.
    n_points, point_scheme, seed
        Points simulated on the masks of images without points in a point file (seeded per
        image by ``seed`` and the image name).
    cache_root : Path, optional
        A :class:`PseudoLabelCache` folder looked up and filled.
    skip_existing : bool
        Keep an existing ``NAME.png`` (written whole, atomically) instead of recomputing it;
        with a cache, its entry is still looked up (and computed when missing).
    """

    settings: PseudoLabelSettings
    n_classes: int
    out_dir: Path
    colors: tuple[tuple[int, int, int], ...]
    size: int | None = None
    n_points: int = 50
    point_scheme: str = "per_class"
    seed: int = 0
    cache_root: Path | None = None
    skip_existing: bool = False

    def write(
        self,
        dataset: Any,
        index: int,
        points: np.ndarray | None = None,
        *,
        cache: PseudoLabelCache | None = None,
    ) -> np.ndarray:
        """Pseudo-label image ``index`` of ``dataset`` and write its PNG.

        Parameters
        ----------
        dataset : RecordDataset
        index : int
        points : np.ndarray, shape (N, 3), optional
            x, y, class in source pixels; None simulates them on the image's mask.
        cache : PseudoLabelCache, optional
            The cache object of :attr:`cache_root` (default: a new one).

        Returns
        -------
        np.ndarray of int64, shape (3,)
            Mask pixels labelled in the mask, pseudo-labelled among them, and correct among
            those (zeros without a mask, or when the image was resized).
        """
        from pointseg.data.transforms import resize_image, scale_points
        from pointseg.io import write_png
        from pointseg.points import image_seed, sample_points

        s = dataset[index]
        image, name = s["image"], s["name"]
        shape = (self.size, self.size) if self.size else image.shape[:2]
        if points is None:
            if s.get("mask") is None:
                raise ValueError(f"image {name!r} has neither a mask nor points in a point file")
            points = sample_points(
                s["mask"],
                n_points=self.n_points,
                scheme=self.point_scheme,
                seed=image_seed(self.seed, name),
            )
        pts = scale_points(points, from_shape=image.shape[:2], to_shape=shape)
        png = Path(self.out_dir) / f"{name}.png"
        keep = self.skip_existing and png.is_file()
        if cache is None and self.cache_root is not None:
            cache = PseudoLabelCache(self.cache_root)
        if keep and cache is None:
            with Image.open(png) as im:
                pseudo = np.array(im, dtype=np.uint8)
        else:
            view = resize_image(image, shape)
            pseudo = self.settings.label(view, pts, n_classes=self.n_classes, cache=cache)
        if not keep:
            write_png(png, pseudo, palette=list(self.colors))
        totals = np.zeros(3, np.int64)
        if s.get("mask") is not None and not self.size:
            st = propagation_stats(pseudo, s["mask"])
            totals[:] = [int(st["n_valid"]), int(st["n_evaluated"]), int(st["n_correct"])]
        return totals


def _write_one(
    dataset: Any, index: int, writer: PseudoLabelWriter, points: np.ndarray | None
) -> np.ndarray:
    """Label one image on a worker, with the cache object of that worker process."""
    from pointseg.distributed import worker_cached

    cache = None
    if writer.cache_root is not None:
        root = writer.cache_root
        cache = worker_cached(("pseudo-label-cache", str(root)), lambda: PseudoLabelCache(root))
    return writer.write(dataset, index, points, cache=cache)


def write_pseudo_labels(
    dataset: Any,
    writer: PseudoLabelWriter,
    *,
    points: Mapping[str, np.ndarray] | None = None,
    client: Any = None,
    opener: Callable[[], Any] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Write the pseudo-label PNG of every image of ``dataset``.

    Parameters
    ----------
    dataset : RecordDataset
    writer : PseudoLabelWriter
    points : mapping name -> (N, 3) array, optional
        Points of a point file (source pixels); images it lacks get no points. None:
        simulated on the masks.
    client : distributed.Client, optional
        Run one task per image on this cluster (see :func:`pointseg.distributed.run_tasks`:
        one retry, failures reported by image name after the others finish).
    opener : callable, optional
        With ``client``: opens the same dataset on a worker (picklable, e.g.
        ``functools.partial(cfg.open_dataset, "train")``); called once per worker process.
    progress : bool
        Show a progress bar.

    Returns
    -------
    np.ndarray of int64, shape (3,)
        The summed statistics of :meth:`PseudoLabelWriter.write`.

    Raises
    ------
    pointseg.distributed.TasksFailed
        With ``client``, naming the images that failed twice (the others are written).
    """
    totals = np.zeros(3, np.int64)
    names = list(dataset.names)

    def pts(name: str) -> np.ndarray | None:
        if points is None:
            return None
        return np.asarray(points.get(name, np.zeros((0, 3), np.int64)), np.int64).reshape(-1, 3)

    if client is None:
        from tqdm.auto import tqdm

        cache = PseudoLabelCache(writer.cache_root) if writer.cache_root is not None else None
        for i in tqdm(range(len(names)), desc="pseudo-labels", disable=not progress):
            totals += writer.write(dataset, i, pts(names[i]), cache=cache)
        return totals
    from pointseg.distributed import map_images

    results = map_images(
        client,
        names,
        _write_one,
        args=lambda i, name: (writer, pts(name)),
        opener=opener,
        progress=progress,
    )
    return totals + sum(results, np.zeros(3, np.int64))
