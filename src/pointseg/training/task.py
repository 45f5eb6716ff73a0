"""The Lightning module: a registry model, a registry loss, dataset-level validation mIoU."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch

from pointseg.losses import get_loss, get_regulariser
from pointseg.metrics import ConfusionMatrix
from pointseg.models import get_model

__all__ = ["SegmentationTask"]


class SegmentationTask(L.LightningModule):
    """Train a segmentation model on (pseudo-)labels with ignore = 255.

    Parameters
    ----------
    model : str
        A name from :func:`pointseg.models.list_models`.
    model_options : mapping
        Extra options of the model builder (``weights`` included).
    num_classes, in_channels : int
    loss : str
        A name from :func:`pointseg.losses.list_losses`.
    loss_options : mapping
    lr, weight_decay : float
        Adam settings.
    plateau_patience, plateau_factor : int, float
        ReduceLROnPlateau on the validation mIoU.
    class_names : sequence of str
    background : str, optional
        Background class (for "mIoU without background").
    regulariser : str, optional
        A name from :func:`pointseg.losses.list_regularisers`: a loss on every valid pixel
        (labelled or not) that follows the image's affinities, added to the loss.
    regulariser_options : mapping
    regulariser_weight : float, optional
        Its weight (default: the regulariser's ``default_weight``).

    Notes
    -----
    Batches are the sample dicts ``{"image": (B, C, H, W), "mask": (B, H, W), ...}``. The
    validation mIoU comes from one confusion matrix over the whole validation set.
    """

    def __init__(
        self,
        *,
        model: str,
        num_classes: int,
        in_channels: int,
        model_options: Mapping[str, Any] | None = None,
        loss: str = "masked_mse",
        loss_options: Mapping[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        plateau_patience: int = 3,
        plateau_factor: float = 0.5,
        class_names: Sequence[str] | None = None,
        background: str | None = None,
        regulariser: str | None = None,
        regulariser_options: Mapping[str, Any] | None = None,
        regulariser_weight: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = get_model(
            model, num_classes=num_classes, in_channels=in_channels, **dict(model_options or {})
        )
        self.criterion = get_loss(loss, **dict(loss_options or {}))
        self.regulariser = None
        self.regulariser_weight = 0.0
        if regulariser is not None:
            self.regulariser = get_regulariser(regulariser, **dict(regulariser_options or {}))
            weight = regulariser_weight
            if weight is None:
                weight = self.regulariser.default_weight
            self.regulariser_weight = float(weight)
        self.val_confusion = ConfusionMatrix(
            num_classes,
            class_names=list(class_names) if class_names else None,
            background=background,
        )
        self.last_val_metrics: dict[str, Any] = {}
        #: ``(model, image) -> (C, H, W) probabilities`` for whole-image validation batches
        self.whole_image: Any = None

    @property
    def _distributed(self) -> bool:
        return self._trainer is not None and self._trainer.world_size > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.criterion(logits, batch["mask"])
        if self.regulariser is not None and self.regulariser_weight > 0:
            reg = self.regulariser(logits, batch["image"], batch.get("valid"))
            self.log(
                "train_regulariser",
                reg,
                on_step=False,
                on_epoch=True,
                batch_size=len(logits),
                sync_dist=self._distributed,
            )
            loss = loss + self.regulariser_weight * reg
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(logits),
            sync_dist=self._distributed,  # the mean over every rank's batches
        )
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_confusion.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if batch.get("whole"):  # one whole image, predicted in tiles at the training scale
            if self.whole_image is None:
                raise RuntimeError("whole-image validation needs task.whole_image set")
            probs = self.whole_image(self.model, batch["image"])
            target = torch.as_tensor(np.asarray(batch["mask"]), dtype=torch.long)
            self.val_confusion.update(torch.from_numpy(probs.argmax(0)), target)
            return
        logits = self(batch["image"])
        loss = self.criterion(logits, batch["mask"])
        self.log(
            "val_loss",
            loss,
            on_step=False,
            on_epoch=True,
            batch_size=len(logits),
            sync_dist=self._distributed,
        )
        self.val_confusion.update(logits.argmax(dim=1), batch["mask"])

    def on_validation_epoch_end(self) -> None:
        if self._distributed:  # one matrix summed over ranks
            counts = torch.as_tensor(self.val_confusion.matrix, device=self.device)
            total = self.trainer.strategy.reduce(counts, reduce_op="sum")
            self.val_confusion = self.val_confusion.with_counts(total.cpu().numpy())
        metrics = self.val_confusion.compute()
        self.last_val_metrics = metrics
        miou = metrics["miou"]
        # the same value on every rank (one summed matrix): syncing it changes nothing
        sync = self._distributed
        self.log("val_miou", float(miou) if miou == miou else 0.0, prog_bar=True, sync_dist=sync)
        self.log("val_pixel_accuracy", float(metrics["pixel_accuracy"] or 0.0), sync_dist=sync)

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="max",
            factor=self.hparams.plateau_factor,
            patience=self.hparams.plateau_patience,
        )
        # strict=False: with validation every N epochs the metric is missing in between
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "monitor": "val_miou", "strict": False},
        }
