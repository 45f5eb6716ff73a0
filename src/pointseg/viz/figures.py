"""Report figures: per-image panels and training curves (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.io.atomic import atomic_write
from pointseg.viz.colors import colorize, display_image

__all__ = ["plot_samples", "plot_training_curves"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_samples(
    path: str | Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    colors: Sequence[Sequence[int]],
    class_names: Sequence[str],
) -> Path:
    """One row per image: image | points | pseudo-label | prediction(s) | ground truth.

    Each row is a mapping with ``name``, ``image`` (H, W, C), ``points`` (N, 3), ``pseudo``,
    ``mask`` (H, W) and ``predictions`` (a mapping title -> (H, W) labels).
    """
    plt = _plt()
    n_pred = max(len(r["predictions"]) for r in rows)
    ncols = 4 + n_pred
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(2.3 * ncols, 2.4 * len(rows) + 0.6), squeeze=False
    )
    pal = np.asarray(colors, np.float32) / 255
    for r, row in enumerate(rows):
        img = display_image(row["image"])
        panels: list[tuple[str, np.ndarray]] = [("image", img), ("points", img)]
        panels.append(
            ("pseudo-label", colorize(row["pseudo"], colors, ignore_color=(255, 255, 255)))
        )
        panels += [(title, colorize(pred, colors)) for title, pred in row["predictions"].items()]
        panels.append(("ground truth", colorize(row["mask"], colors, ignore_color=(0, 0, 0))))
        for c, (title, arr) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(arr, interpolation="nearest")
            if title == "points" and len(row["points"]):
                p = np.asarray(row["points"])
                ax.scatter(
                    p[:, 0], p[:, 1], s=9, c=pal[p[:, 2]], edgecolors="white", linewidths=0.6
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
        axes[r, 0].set_ylabel(str(row["name"]), fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=pal[i]) for i in range(len(class_names))]
    fig.legend(
        handles, class_names, loc="lower center", ncol=len(class_names), fontsize=8, frameon=False
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def plot_training_curves(
    path: str | Path, histories: Mapping[str, Sequence[Mapping[str, float]]]
) -> Path:
    """Training loss and validation mIoU per epoch for each named run."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, rows in histories.items():
        if not rows:
            continue
        ep = [r["epoch"] + 1 for r in rows]
        ax1.plot(ep, [r["train_loss"] for r in rows], marker=".", label=name)
        ax2.plot(ep, [r["val_miou"] for r in rows], marker=".", label=name)
    ax1.set(xlabel="epoch", ylabel="training loss", title="training loss (on each run's labels)")
    ax1.set_yscale("log")
    ax2.set(xlabel="epoch", ylabel="validation mIoU", title="validation mIoU (dense masks)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
