"""The background training process started by the annotate page (``python -m`` this module).

``python -m pointseg.annotate.worker CONFIG PROGRESS [MAX_SECONDS]`` trains one model with
:func:`pointseg.training.run_training` on the configuration file ``CONFIG`` and keeps the JSON
file ``PROGRESS`` up to date (written atomically): ``phase`` (``preparing labels``,
``training``, ``finished`` or ``failed``), ``epoch``, ``max_epochs``, ``val_miou``,
``model`` (the ``model.pt`` path once finished) and ``message``. Training stops after the
epoch that passes ``MAX_SECONDS`` of training (the best model so far is kept). A separate
process, not a thread, so that the page stays responsive, the GIL is not shared, and
stopping is a signal.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "read_progress"]

logger = logging.getLogger(__name__)


def read_progress(path: str | Path) -> dict[str, Any]:
    """The last progress written to ``path`` (empty when none yet)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _write(path: Path, **values: Any) -> None:
    from pointseg.io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps({**read_progress(path), **values}))


def _progress_callback(path: Path, max_epochs: int, max_seconds: float | None) -> Any:
    import lightning as L

    class Progress(L.Callback):
        """Writes the epoch and validation mIoU; stops once the time budget is spent."""

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.t0 = time.monotonic()
            _write(path, phase="training", epoch=0, max_epochs=max_epochs)

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            miou = trainer.callback_metrics.get("val_miou")
            value = float(miou) if miou is not None else None
            _write(
                path,
                epoch=trainer.current_epoch + 1,
                val_miou=value if value == value else None,
            )
            if max_seconds is not None and time.monotonic() - self.t0 > max_seconds:
                logger.info("time budget of %.0f s spent: training stops", max_seconds)
                trainer.should_stop = True

    return Progress()


def main(argv: list[str] | None = None) -> int:
    """Train as the page asked; returns the exit status (0 when a model was written)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        print("usage: python -m pointseg.annotate.worker CONFIG PROGRESS [MAX_SECONDS]")
        return 2
    config, progress = Path(argv[0]), Path(argv[1])
    max_seconds = float(argv[2]) if len(argv) == 3 else None
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _write(progress, phase="preparing labels", epoch=0)
    try:
        import yaml

        from pointseg.training import run_training
        from pointseg.training.config import TrainConfig

        cfg = TrainConfig.from_dict(yaml.safe_load(config.read_text()))
        result = run_training(
            cfg, callbacks=[_progress_callback(progress, cfg.max_epochs, max_seconds)]
        )
    except Exception as exc:  # reported to the page, which shows the message
        logger.exception("training failed")
        _write(progress, phase="failed", message=str(exc) or type(exc).__name__)
        return 1
    _write(
        progress,
        phase="finished",
        model=str(result.model_path),
        val_miou=None if result.best_val_miou != result.best_val_miou else result.best_val_miou,
        epoch=int(result.epochs),
        message=f"trained in {result.seconds:.0f} s",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
