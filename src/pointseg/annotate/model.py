"""The model in the annotation loop: train from the page, show its map, propose the next clicks.

:class:`PageModel` starts training on a snapshot of the session's clicks in a background
process (:mod:`pointseg.annotate.worker`, a preset sized for the machine: see
:func:`page_train_config`), reports its progress, can stop it, and loads each finished model.
With a model it draws the prediction as a second overlay (per image on the preview's training
grid, or per display tile from native-resolution blocks for large rasters) and proposes the
next clicks with a registered proposal strategy (:func:`pointseg.proposals.propose_clicks`).

Tile datasets (folders, ...) train on the clicked images; a seeded fifth of them (at least one)
validates, so training needs clicks on two images or more. Large rasters hold out spatial cells
of clicks for validation, as ``pointseg train --dataset rasters`` does.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.annotate.preview import LRU, labels_png
from pointseg.annotate.raster_preview import tile_sample
from pointseg.annotate.worker import read_progress
from pointseg.constants import IGNORE_INDEX

__all__ = ["PageModel", "TrainingConflict", "page_train_config"]

logger = logging.getLogger(__name__)

#: Prediction tiles of large rasters are drawn down to this zoom-out (display px per native px).
MAX_PREDICTION_STRIDE = 8
#: A page training on a CPU stops after this many seconds unless told otherwise (the first map
#: of 20 images of 512 x 512 px must appear within 3 minutes of pressing Train).
CPU_TRAIN_SECONDS = 120.0
#: Context read around each block so its border sees its neighbours.
PREDICTION_MARGIN = 32
#: At most this many raster blocks per proposal request (the view is clipped around its centre).
MAX_PROPOSAL_BLOCKS = 16
#: At most this many images per proposal request (those with the fewest clicks), so that a
#: dataset of thousands of images does not predict and segment them all for one request.
MAX_PROPOSAL_IMAGES = 64


class TrainingConflict(RuntimeError):
    """A training is already running (start) or none is (stop)."""


def page_device(accelerator: str) -> str:
    """``cuda`` for ``accelerator="cuda"``, or ``"auto"`` when CUDA is present; else ``cpu``."""
    return "cuda" if accelerator == "cuda" or (accelerator == "auto" and _cuda()) else "cpu"


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - a broken torch install
        return False


def page_train_config(
    cfg: Any,
    *,
    out: Path,
    points_file: Path,
    split_file: Path | None,
    epochs: int | None = None,
    device: str = "cpu",
) -> Any:
    """The training settings of a page training: ``cfg``'s data and labels, a machine preset.

    On a CPU: a UNet of width 16, 40 epochs at most, early stop after 10 without
    improvement, batch 8, lr 0.002 (the settings of the ``dubai-*`` studies; about a minute for
    20 images on the 256-px grid on 2 cores). With CUDA: width 32, 80 epochs. Large rasters
    are not predicted whole at the end (``score_references`` off): the page predicts per view.
    ``device`` is ``cpu`` or ``cuda`` (:func:`page_device`).
    """
    width, max_epochs = (32, 80) if device == "cuda" else (16, 40)
    return replace(
        cfg,
        out=str(out),
        points_file=str(points_file),
        points_crs=None,
        split_file=str(split_file) if split_file else cfg.split_file,
        dataset_options=(
            {**cfg.dataset_options, "score_references": False}
            if cfg.dataset == "rasters"
            else cfg.dataset_options
        ),
        supervision="points",
        model="unet",
        model_options={"base_channels": width},
        weights=None,
        lr=2e-3,
        batch_size=8,
        max_epochs=int(epochs or max_epochs),
        early_stop_patience=10,
        plateau_patience=4,
        accelerator=device,
        resume=False,
        overwrite=True,
        progress=False,
    )


class PageModel:
    """Training, prediction overlay and click proposals of an annotation session.

    Parameters
    ----------
    session : AnnotationSession
    preview : PreviewEngine or RasterPreviewEngine
        Its superpixels, pseudo-labels and training grid are reused.
    cfg : TrainConfig
        The annotate settings (data, dataset, classes, bands, superpixels, image size).
    runs_dir : path
        Page trainings are written to ``runs_dir/job-N/`` (points, split, run folder, log).
    model_path : path, optional
        A ``model.pt`` to start with (``pointseg annotate --model``).
    strategy : str
        Proposal strategy (:func:`pointseg.proposals.list_proposal_strategies`).
    k : int
        Proposals per request.
    min_distance : float
        No two proposals of one image closer than this, in training-grid pixels.
    epochs, max_seconds : optional
        Override the preset's epoch count; stop training after this many seconds (default
        :data:`CPU_TRAIN_SECONDS` on a CPU, no limit with CUDA).
    accelerator : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    def __init__(
        self,
        session: Any,
        preview: Any,
        cfg: Any,
        *,
        runs_dir: str | Path,
        model_path: str | Path | None = None,
        strategy: str = "entropy",
        k: int = 10,
        min_distance: float = 8.0,
        epochs: int | None = None,
        max_seconds: float | None = None,
        accelerator: str = "auto",
    ) -> None:
        from pointseg.proposals import get_proposal_strategy

        get_proposal_strategy(strategy)  # an unknown name lists the valid ones
        if k < 1:
            raise ValueError(f"--proposals must be at least 1, got {k}")
        if epochs is not None and epochs < 1:
            raise ValueError(f"--train-epochs must be at least 1, got {epochs}")
        from pointseg.io.outputs import check_output_dir

        self.session = session
        self.preview = preview
        self.cfg = cfg
        # a file or a read-only place is refused at start, not when Train is pressed
        self.runs_dir = check_output_dir(runs_dir, what="--runs folder")
        self.strategy = strategy
        self.k = int(k)
        self.min_distance = float(min_distance)
        self.epochs = epochs
        self.device = page_device(accelerator)
        if max_seconds is None and self.device == "cpu":
            max_seconds = CPU_TRAIN_SECONDS
        self.max_seconds = max_seconds
        self._lock = threading.RLock()
        self._infer = threading.Lock()  # one forward pass at a time: bounded memory
        self._proc: subprocess.Popen | None = None
        self._job = 0
        self._job_dir: Path | None = None
        self._t0 = 0.0
        self._elapsed = 0.0
        self._state = "idle"
        self._message = ""
        self._points_trained = 0  # clicks of the latest training started
        self._model_points: int | None = None  # clicks the model in use was trained on
        self._model: Any = None
        self._spec: Any = None
        self._model_file: Path | None = None
        self.model_version = 0
        self._probs = LRU(64)  # (version, name) -> float16 (C, h, w) on the training grid
        self._blocks = LRU(24)  # (version, name, r0, c0) -> uint8 probabilities of a block
        self._skipped: dict[str, set[tuple[int, int]]] = {}
        if model_path is not None:
            self.load(model_path)
            self._message = f"model {model_path}"
            self._state = "done"

    # ----------------------------------------------------------------------------- model

    def load(self, path: str | Path) -> None:
        """Use the model in ``path`` (checked against the session's classes and bands)."""
        from pointseg.models import load_model

        path = Path(path)
        model, spec = load_model(path)
        names = list(self.session.class_names)
        if list(spec.class_names) != names:
            raise ValueError(
                f"model {path} predicts the classes {list(spec.class_names)}, but this session "
                f"labels {names}; give a model trained with the same classes (--classes)"
            )
        bands = self._bands()
        if bands is not None and bands != spec.in_channels:
            raise ValueError(
                f"model {path} takes {spec.in_channels} band(s), but the images give {bands}; "
                "choose the bands with --bands"
            )
        if self.device == "cuda":
            model = model.cuda()
        with self._lock:
            self._model, self._spec, self._model_file = model.eval(), spec, path
            self.model_version += 1
            logger.info("model %s loaded (version %d)", path, self.model_version)

    def _bands(self) -> int | None:
        if self.preview.mode == "tiled":
            return len(self.preview.indexes[self.session.images[0].name])
        return int(self.preview.image(self.session.images[0].name).shape[2])

    # ----------------------------------------------------------------------------- training

    def status(self) -> dict[str, Any]:
        """The state of the latest training and of the model (see the module docstring)."""
        with self._lock:
            self._poll()
            progress = read_progress(self._job_dir / "progress.json") if self._job_dir else {}
            running = self._state == "running"
            return {
                "state": self._state,
                "job": self._job,
                "phase": progress.get("phase", "starting") if running or progress else "",
                "epoch": int(progress.get("epoch", 0) or 0),
                "max_epochs": int(progress.get("max_epochs", 0) or 0),
                "elapsed": round(time.monotonic() - self._t0 if running else self._elapsed, 1),
                "val_miou": progress.get("val_miou"),
                "message": self._message,
                "model_version": self.model_version,
                "model": str(self._model_file) if self._model_file else None,
                "points_trained": self._model_points,
                "device": self.device,
            }

    def start(self) -> dict[str, Any]:
        """Start training on the current clicks in a background process."""
        with self._lock:
            self._poll()
            if self._state == "running":
                raise TrainingConflict(
                    f"training {self._job} is still running; stop it first or wait for it"
                )
            points = {e.name: self.session.point_array(e.name) for e in self.session.images}
            clicked = {n: p for n, p in points.items() if len(p)}
            split = self._split(clicked)  # raises ValueError when there is too little
            self._job += 1
            job = self.runs_dir / f"job-{self._job}"
            job.mkdir(parents=True, exist_ok=True)
            from pointseg.io.atomic import write_text_atomic
            from pointseg.points import write_points_csv

            points_file = write_points_csv(
                job / "points.csv", clicked, class_names=self.session.class_names
            )
            split_file = None
            if split is not None:
                import yaml

                split_file = write_text_atomic(job / "split.yaml", yaml.safe_dump(split))
            cfg = page_train_config(
                self.cfg,
                out=job / "run",
                points_file=points_file,
                split_file=split_file,
                epochs=self.epochs,
                device=self.device,
            )
            cfg.save(job / "config.yaml")
            (job / "progress.json").unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "pointseg.annotate.worker", str(job / "config.yaml")]
            cmd.append(str(job / "progress.json"))
            if self.max_seconds:
                cmd.append(str(self.max_seconds))
            with open(job / "train.log", "ab") as log:
                self._proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            self._job_dir = job
            self._t0 = time.monotonic()
            self._state = "running"
            n = sum(len(p) for p in clicked.values())
            self._points_trained = n
            self._message = f"training on {n} clicks of {len(clicked)} image(s)"
            logger.info("training %d started in %s (%s)", self._job, job, self._message)
            return self.status()

    def _split(self, clicked: dict[str, np.ndarray]) -> dict[str, list[str]] | None:
        """Train/val images of a tile dataset; None for rasters (cells are held out)."""
        n = sum(len(p) for p in clicked.values())
        if n == 0:
            raise ValueError("no clicks yet: click a few points of each class, then train")
        if self.preview.mode == "tiled":
            return None
        names = sorted(clicked)
        if len(names) < 2:
            raise ValueError(
                f"training needs clicks on at least 2 images (one is held out to validate); "
                f"{len(names)} image has clicks"
            )
        n_val = max(1, round(0.2 * len(names)))
        order = sorted(names, key=lambda s: zlib.crc32(s.encode()))  # stable as clicks grow
        val = sorted(order[:n_val])
        return {"train": [s for s in names if s not in val], "val": val, "test": []}

    def stop(self) -> dict[str, Any]:
        """Stop the running training (its process group gets SIGTERM, then SIGKILL)."""
        with self._lock:
            self._poll()
            if self._state != "running" or self._proc is None:
                raise TrainingConflict("no training is running")
            self._terminate()
            self._state = "stopped"
            self._elapsed = time.monotonic() - self._t0
            self._message = f"training {self._job} stopped"
            return self.status()

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        """Stop a running training (the server is shutting down)."""
        with self._lock:
            self._terminate()

    def _poll(self) -> None:
        """Pick up a finished training: load its model or report its failure."""
        proc = self._proc
        if self._state != "running" or proc is None or proc.poll() is None:
            return
        self._elapsed = time.monotonic() - self._t0
        progress = read_progress(self._job_dir / "progress.json") if self._job_dir else {}
        model = progress.get("model")
        if proc.returncode == 0 and model and Path(model).is_file():
            try:
                self.load(model)
            except Exception as exc:  # a model that cannot be used is a failed training
                self._state, self._message = "failed", f"the trained model cannot be used: {exc}"
                return
            miou = progress.get("val_miou")
            self._model_points = self._points_trained
            self._state = "done"
            self._message = f"trained on {self._points_trained} clicks in {self._elapsed:.0f} s" + (
                f", validation mIoU {miou:.3f}" if isinstance(miou, float) else ""
            )
            return
        self._state = "failed"
        reason = progress.get("message") or f"the training process exited with {proc.returncode}"
        self._message = f"{reason} (log: {self._job_dir / 'train.log'})"

    # ----------------------------------------------------------------------------- prediction

    def _model_now(self) -> tuple[Any, Any, int]:
        with self._lock:
            self._poll()
            if self._model is None:
                raise LookupError("no model yet: train one (Train button) or start with --model")
            return self._model, self._spec, self.model_version

    def probabilities(self, name: str) -> np.ndarray:
        """Softmax (C, h, w) float16 on the preview's training grid (tile datasets)."""
        model, spec, version = self._model_now()

        def load() -> np.ndarray:
            import torch

            from pointseg.predict.inference import predict_logits

            view, _ = self.preview._view(name)
            with self._infer, torch.no_grad():
                logits = predict_logits(model, spec, view, where=name)
                return torch.softmax(logits.float(), dim=0).cpu().numpy().astype(np.float16)

        return self._probs.get((version, name), load)

    def prediction_png(self, name: str) -> bytes:
        """RGBA PNG of the predicted classes on the training grid."""
        labels = self.probabilities(name).argmax(axis=0).astype(np.uint8)
        return labels_png(labels, self.session.class_colors)

    def _block(self, name: str, r0: int, c0: int) -> np.ndarray:
        """uint8 probabilities (C, h, w) x 255 of a native block of a large raster (nodata 0)."""
        model, spec, version = self._model_now()

        def load() -> np.ndarray:
            import torch

            from pointseg.predict.inference import predict_logits

            entry = self.session.by_name[name]
            r1 = min(r0 + self.preview.block, entry.height)
            c1 = min(c0 + self.preview.block, entry.width)
            m = PREDICTION_MARGIN
            _, reader = self.preview._reader(name)
            rows, cols = (r0 - m, r1 + m), (c0 - m, c1 + m)
            with self.preview._lock:
                data = reader.region(rows, cols)
                invalid = reader.invalid((r0, r1), (c0, c1))
            image = np.moveaxis(data, 0, -1)
            native = replace(spec, image_size=None, window=None)
            with self._infer, torch.no_grad():
                logits = predict_logits(model, native, image, where=name)
                p = torch.softmax(logits.float(), dim=0)[:, m:-m, m:-m].cpu().numpy()
            out = np.round(p * 255).astype(np.uint8)
            if invalid is not None:
                out[:, invalid] = 0
            return out

        return self._blocks.get((version, name, r0, c0), load)

    def prediction_tile(self, name: str, level: int, tx: int, ty: int) -> tuple[bytes, str | None]:
        """RGBA PNG of a display tile of a large raster's prediction, and a note.

        Computed from native-resolution blocks (the preview's label blocks, cached); beyond
        a zoom-out of :data:`MAX_PREDICTION_STRIDE` the tile is transparent and the note says
        to zoom in.
        """
        rect = r0, r1, c0, c1, s = self.preview._rect(name, level, tx, ty)
        shape = (-(-(r1 - r0) // s), -(-(c1 - c0) // s))
        out = np.full(shape, IGNORE_INDEX, np.uint8)
        self._model_now()
        if s > MAX_PREDICTION_STRIDE:
            note = "zoom in to see the prediction"
            return labels_png(out, self.session.class_colors), note
        b = self.preview.block
        for br0 in range(r0 // b * b, r1, b):
            for bc0 in range(c0 // b * b, c1, b):
                probs = self._block(name, br0, bc0)
                where = tile_sample(rect, br0, bc0, probs.shape)
                if where is None:
                    continue
                src, dst = where
                part = probs[(slice(None), *src)]  # only the pixels the tile shows
                labels = part.argmax(axis=0).astype(np.uint8)
                labels[part.max(axis=0) == 0] = IGNORE_INDEX  # nodata
                out[dst] = labels
        return labels_png(out, self.session.class_colors), None

    # ----------------------------------------------------------------------------- proposals

    def skip(self, name: str, x: int, y: int) -> int:
        """Never propose pixel ``(x, y)`` of ``name`` (or its superpixel) again."""
        entry = self.session.by_name[name]
        if not (0 <= x < entry.width and 0 <= y < entry.height):
            raise ValueError(
                f"({x}, {y}) is outside image {entry.id} ({entry.width}x{entry.height})"
            )
        with self._lock:
            self._skipped.setdefault(name, set()).add((int(x), int(y)))
            return sum(len(v) for v in self._skipped.values())

    def _with_skipped(self, name: str, points: np.ndarray) -> np.ndarray:
        skipped = self._skipped.get(name)
        if not skipped:
            return points
        extra = np.array([(x, y, 0) for x, y in sorted(skipped)], np.int64).reshape(-1, 3)
        return np.concatenate([points, extra])

    def proposals(
        self, *, k: int | None = None, name: str | None = None, rect: tuple | None = None
    ) -> dict[str, Any]:
        """The next ``k`` clicks the strategy proposes, in source pixels.

        Tile datasets: over all images (at most :data:`MAX_PROPOSAL_IMAGES`, those with the
        fewest clicks, ties in a seeded order). Large rasters: inside the view ``rect``
        (``x0, y0, x1, y1`` in pixels of image ``name``; clipped around its centre to the
        area of :data:`MAX_PROPOSAL_BLOCKS` blocks), no two closer than half the side of
        ``area / k``.
        """
        k = self.k if k is None else int(k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        _, _, version = self._model_now()
        if self.preview.mode == "tiled":
            if name is None or rect is None:
                raise ValueError("large rasters need the view: image, x0, y0, x1, y1")
            found = self._raster_proposals(name, rect, k)
        else:
            found = self._tile_proposals(k)
        by_name = self.session.by_name
        return {
            "model_version": version,
            "strategy": self.strategy,
            "proposals": [
                {
                    "image": by_name[p["image"]].id,
                    "x": p["x"],
                    "y": p["y"],
                    "score": p["score"],
                    "predicted": p["predicted"],
                }
                for p in found
            ],
        }

    def _tile_proposals(self, k: int) -> list[dict[str, Any]]:
        from pointseg.proposals import propose_clicks
        from pointseg.training.data import source_pixel, training_view

        probs, segs, pts, pseudo, grid = {}, {}, {}, {}, {}
        images = sorted(
            self.session.images,
            key=lambda e: (
                sum(self.session.counts(e.name)),
                zlib.crc32(f"{self.model_version}:{e.name}".encode()),
            ),
        )[:MAX_PROPOSAL_IMAGES]
        for e in images:
            name = e.name
            probs[name] = self.probabilities(name).astype(np.float32)
            view, levels = self.preview._view(name)
            segs[name] = levels[0]
            points = self._with_skipped(name, self.session.point_array(name))
            _, pts[name] = training_view(
                self.preview.image(name), points, image_size=self.preview.image_size
            )
            pseudo[name] = self.preview.labels(name)
            grid[name] = view.shape[:2]
        found = propose_clicks(
            self.strategy,
            probabilities=probs,
            segments=segs,
            points=pts,
            pseudo_labels=pseudo,
            k=k,
            min_distance=self.min_distance,
            seed=self.model_version,
        )
        out = []
        for p in found:
            e = self.session.by_name[p.image]
            shape = (e.height, e.width)
            x, y = source_pixel(p.x, p.y, grid_shape=grid[p.image], source_shape=shape)
            out.append(
                {
                    "image": p.image,
                    "x": x,
                    "y": y,
                    "score": round(float(p.score), 4),
                    "predicted": int(probs[p.image][:, p.y, p.x].argmax()),
                }
            )
        return out

    def _raster_proposals(self, name: str, rect: tuple, k: int) -> list[dict[str, Any]]:
        """Proposals inside the view: one mosaic of the blocks it covers, spread over it."""
        from pointseg.proposals import propose_clicks

        entry = self.session.by_name[name]
        x0, y0, x1, y1 = (float(v) for v in rect)
        if not all(np.isfinite([x0, y0, x1, y1])) or x1 <= x0 or y1 <= y0:
            raise ValueError(f"the view x0, y0, x1, y1 = {rect} is not a rectangle")
        x0, x1 = max(0, int(x0)), min(entry.width, int(np.ceil(x1)))
        y0, y1 = max(0, int(y0)), min(entry.height, int(np.ceil(y1)))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"the view {rect} lies outside image {entry.id}")
        # a large view is clipped around its centre to the blocks the budget allows
        b = self.preview.block
        side = b * int(np.sqrt(MAX_PROPOSAL_BLOCKS))
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        x0, x1 = max(x0, cx - side // 2), min(x1, cx + side // 2)
        y0, y1 = max(y0, cy - side // 2), min(y1, cy + side // 2)
        h, w = y1 - y0, x1 - x0
        n_classes = len(self.session.class_names)
        probs = np.zeros((n_classes, h, w), np.float32)
        segs = np.zeros((h, w), np.int64)
        pseudo = np.full((h, w), IGNORE_INDEX, np.uint8)
        offset = 0
        for r0 in range(y0 // b * b, y1, b):
            for c0 in range(x0 // b * b, x1, b):
                p8 = self._block(name, r0, c0)
                labels, segments = self.preview.block_labels(name, r0, c0, segment=True)
                bh, bw = p8.shape[1:]
                # the part of the block inside the view, in block and in view coordinates
                br = slice(max(y0, r0) - r0, min(y1, r0 + bh) - r0)
                bc = slice(max(x0, c0) - c0, min(x1, c0 + bw) - c0)
                vr = slice(br.start + r0 - y0, br.stop + r0 - y0)
                vc = slice(bc.start + c0 - x0, bc.stop + c0 - x0)
                probs[:, vr, vc] = p8[:, br, bc] / 255.0
                pseudo[vr, vc] = np.asarray(labels)[br, bc]
                part = np.asarray(segments, np.int64)[br, bc]
                segs[vr, vc] = part + offset  # superpixel ids unique over the mosaic
                offset += int(part.max()) + 1 if part.size else 0
        valid = probs.max(axis=0) > 0  # nodata has no prediction
        probs += 1e-6
        points = self._with_skipped(name, self.session.point_array(name))
        inside = (
            (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)
        )
        local = points[inside] - np.array([x0, y0, 0])
        # proposals a view apart, not a few pixels: spread over the view
        spacing = max(self.min_distance, 0.5 * float(np.sqrt(h * w / k)))
        found = propose_clicks(
            self.strategy,
            probabilities={name: probs},
            segments={name: segs},
            points={name: local},
            pseudo_labels={name: pseudo},
            valid={name: valid},
            k=k,
            min_distance=spacing,
            seed=self.model_version,
        )
        return [
            {
                "image": name,
                "x": x0 + p.x,
                "y": y0 + p.y,
                "score": round(float(p.score), 4),
                "predicted": int(probs[:, p.y, p.x].argmax()),
            }
            for p in found
        ]
