"""Callbacks: one CSV row of losses and metrics per epoch; atomic checkpoint files."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from pointseg.io.atomic import atomic_write, write_text_atomic

__all__ = ["AtomicCheckpointIO", "EpochCSVLogger", "read_history"]

_COLUMNS = ("epoch", "train_loss", "val_loss", "val_miou", "val_pixel_accuracy", "lr", "seconds")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file and renamed: a kill during the write
    never leaves a half checkpoint under its final name."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        with atomic_write(path) as tmp:
            torch.save(checkpoint, tmp)


class EpochCSVLogger(L.Callback):
    """Append ``epoch, train_loss, val_loss, val_miou, val_pixel_accuracy, lr, seconds`` rows
    (and ``train_regulariser`` when the run has a regulariser).

    The file is rewritten atomically after each epoch; on resume earlier rows are kept and rows
    of epochs that are trained again are replaced.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        if trainer.sanity_checking or not trainer.is_global_zero:
            return  # one writer in a distributed run
        m = trainer.callback_metrics

        def val(key: str) -> float:
            v = m.get(key)
            return float(v) if v is not None else math.nan

        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        row = {
            "epoch": trainer.current_epoch,
            "train_loss": val("train_loss"),
            "val_loss": val("val_loss"),
            "val_miou": val("val_miou"),
            "val_pixel_accuracy": val("val_pixel_accuracy"),
            "lr": lr,
            "seconds": round(time.perf_counter() - self._start, 3),
        }
        columns = _COLUMNS
        if "train_regulariser" in m:  # the regulariser's own value, before its weight
            row["train_regulariser"] = val("train_regulariser")
            columns = (*_COLUMNS, "train_regulariser")
        rows = [r for r in read_history(self.path) if int(r["epoch"]) < row["epoch"]]
        rows.append(row)
        buf = io.StringIO()
        writer = csv.DictWriter(
            buf, fieldnames=columns, lineterminator="\n", restval=math.nan, extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.path, buf.getvalue())


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Rows of an epoch CSV as dicts of floats (``epoch`` as int); [] when absent."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    with path.open() as f:
        for r in csv.DictReader(f):
            out.append({k: (int(v) if k == "epoch" else float(v)) for k, v in r.items()})
    return out
