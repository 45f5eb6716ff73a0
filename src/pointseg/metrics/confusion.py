"""Dataset-level confusion matrix and the segmentation metrics derived from it.

Every metric in this module is computed from **one confusion matrix accumulated over
the whole dataset**, never by averaging per-image scores: a per-image average
over-weights small or nearly empty images and gives a different (and, for the
comparisons in the paper, wrong) number.

Conventions
-----------
* Rows are the true class, columns the predicted class: ``matrix[t, p]`` counts the
  pixels of true class ``t`` predicted as ``p``.
* Pixels whose target equals ``ignore_index`` (255 by default, see
  :data:`pointseg.constants.IGNORE_INDEX`) are skipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pointseg.constants import IGNORE_INDEX
from pointseg.io.atomic import write_text_atomic

__all__ = [
    "ConfusionMatrix",
    "compute_metrics",
    "confusion_matrix",
    "format_metrics_table",
    "save_metrics_json",
]

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor


# --------------------------------------------------------------------------- helpers


def _check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise ValueError(
            f"n_classes must be a positive int, got {n_classes!r} "
            f"({type(n_classes).__name__}); pass the number of classes, e.g. n_classes=5."
        )
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}; pass the number of classes.")
    return int(n_classes)


def _check_ignore_index(ignore_index: Any) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int | np.integer):
        raise ValueError(
            f"ignore_index must be an int, got {ignore_index!r}; "
            f"use the project-wide value pointseg.constants.IGNORE_INDEX ({IGNORE_INDEX})."
        )
    return int(ignore_index)


def _is_integer_dtype(x: ArrayLike) -> bool:
    if isinstance(x, torch.Tensor):
        return not (x.is_floating_point() or x.is_complex())
    return np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.bool_)


def _as_array(x: Any, name: str) -> ArrayLike:
    if isinstance(x, torch.Tensor | np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - defensive
        raise ValueError(
            f"{name} must be a numpy array or torch tensor, got {type(x).__name__}."
        ) from exc


def _values_preview(values: ArrayLike, limit: int = 5) -> list[int]:
    if isinstance(values, torch.Tensor):
        return [int(v) for v in torch.unique(values).cpu().tolist()[:limit]]
    return [int(v) for v in np.unique(values)[:limit]]


# ------------------------------------------------------------------ confusion matrix


def confusion_matrix(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    n_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> ArrayLike:
    """Count (true class, predicted class) pairs over all labelled pixels.

    Parameters
    ----------
    pred : numpy.ndarray or torch.Tensor, shape (...)
        Predicted class indices (integer dtype), any shape.
    target : numpy.ndarray or torch.Tensor, shape (...)
        True class indices, same shape as ``pred``; ``ignore_index`` marks
        unlabelled pixels, which are skipped.
    n_classes : int
        Number of classes ``C``; valid class indices are ``0 .. C-1``.
    ignore_index : int, default ``IGNORE_INDEX`` (255)
        Target value of unlabelled pixels.

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (C, C), int64
        ``matrix[t, p]`` = number of labelled pixels of true class ``t`` predicted
        as ``p``. A torch tensor (on the inputs' device) if either input is a
        tensor, a numpy array otherwise.

    Raises
    ------
    ValueError
        If the shapes differ, the dtypes are not integer, a labelled target value
        lies outside ``[0, n_classes)``, or a prediction at a labelled pixel lies
        outside ``[0, n_classes)``. Predictions at ignored pixels are not checked.
    """
    n_classes = _check_n_classes(n_classes)
    ignore_index = _check_ignore_index(ignore_index)
    pred = _as_array(pred, "pred")
    target = _as_array(target, "target")

    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"pred and target must have the same shape, got pred shape {tuple(pred.shape)} "
            f"and target shape {tuple(target.shape)}; for logits of shape (B, C, H, W) use "
            "ConfusionMatrix.update, which takes the argmax over the class dimension."
        )
    for name, arr in (("pred", pred), ("target", target)):
        if not _is_integer_dtype(arr):
            raise ValueError(
                f"{name} must hold integer class indices, got dtype {arr.dtype}; "
                "take the argmax of scores first (or use ConfusionMatrix.update with logits)."
            )

    use_torch = isinstance(pred, torch.Tensor) or isinstance(target, torch.Tensor)
    if use_torch:
        device = pred.device if isinstance(pred, torch.Tensor) else target.device
        p = torch.as_tensor(pred, device=device).reshape(-1).to(torch.int64)
        t = torch.as_tensor(target, device=device).reshape(-1).to(torch.int64)
    else:
        p = np.asarray(pred).reshape(-1).astype(np.int64, copy=False)
        t = np.asarray(target).reshape(-1).astype(np.int64, copy=False)

    valid = t != ignore_index
    t = t[valid]
    p = p[valid]

    bad_t = (t < 0) | (t >= n_classes)
    if bool(bad_t.any()):
        raise ValueError(
            f"target contains value(s) {_values_preview(t[bad_t])} outside [0, {n_classes}) "
            f"that are not ignore_index={ignore_index}; check n_classes or remap those "
            f"pixels to {ignore_index}."
        )
    bad_p = (p < 0) | (p >= n_classes)
    if bool(bad_p.any()):
        raise ValueError(
            f"pred contains value(s) {_values_preview(p[bad_p])} outside [0, {n_classes}) "
            "at labelled pixels; predictions must be class indices (argmax of the logits)."
        )

    flat = t * n_classes + p
    if use_torch:
        counts = torch.bincount(flat, minlength=n_classes * n_classes)
        return counts.reshape(n_classes, n_classes).to(torch.int64)
    counts = np.bincount(flat, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64, copy=False)


# ------------------------------------------------------------------------- metrics


def _default_class_names(n_classes: int) -> list[str]:
    return [f"class_{i}" for i in range(n_classes)]


def _resolve_class_names(class_names: Sequence[str] | None, n_classes: int) -> list[str]:
    if class_names is None:
        return _default_class_names(n_classes)
    if isinstance(class_names, str):
        raise ValueError(
            f"class_names must be a sequence of names, got the string {class_names!r}; "
            "pass a list such as ['background', 'building', ...]."
        )
    names = [str(n) for n in class_names]
    if len(names) != n_classes:
        raise ValueError(
            f"class_names has {len(names)} names but there are {n_classes} classes; "
            f"pass exactly one name per class (got {names})."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}.")
    return names


def _resolve_background(background: str | int | None, names: list[str]) -> int | None:
    if background is None:
        return None
    if isinstance(background, bool):
        raise ValueError(f"background must be a class name or index, got {background!r}.")
    if isinstance(background, int | np.integer):
        if not 0 <= int(background) < len(names):
            raise ValueError(
                f"background index {int(background)} is outside [0, {len(names)}); "
                f"pass a valid index or one of the class names {names}."
            )
        return int(background)
    if isinstance(background, str):
        if background not in names:
            raise ValueError(
                f"background {background!r} is not a class name; valid names are {names}."
            )
        return names.index(background)
    raise ValueError(
        f"background must be a class name (str) or index (int), got {type(background).__name__}."
    )


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _check_matrix(matrix: Any) -> np.ndarray:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(
            f"matrix must be a square (C, C) confusion matrix with C >= 1, got shape {m.shape}."
        )
    if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
        raise ValueError(f"matrix must be numeric, got dtype {m.dtype}.")
    if np.issubdtype(m.dtype, np.floating):
        if not np.all(np.isfinite(m)) or np.any(m != np.round(m)):
            raise ValueError("matrix must contain non-negative integer counts.")
    if np.any(m < 0):
        raise ValueError("matrix must contain non-negative counts, found negative entries.")
    return m.astype(np.int64, copy=False)


def compute_metrics(
    matrix: ArrayLike,
    *,
    class_names: Sequence[str] | None = None,
    background: str | int | None = None,
) -> dict[str, Any]:
    """Compute segmentation metrics from a dataset-level confusion matrix.

    Parameters
    ----------
    matrix : numpy.ndarray or torch.Tensor, shape (C, C)
        Confusion matrix, rows = true class, columns = predicted class (as built by
        :func:`confusion_matrix` / :class:`ConfusionMatrix`).
    class_names : sequence of str, optional
        One name per class; defaults to ``["class_0", ..., "class_{C-1}"]``.
    background : str or int, optional
        Background class, by name (must be in ``class_names``) or index. When given,
        ``miou_no_background`` is the mean IoU over the other classes.

    Returns
    -------
    dict
        ``per_class_iou`` : dict name -> float
            ``TP / (TP + FP + FN)``; NaN when the class is absent from both target
            and prediction (``TP + FP + FN == 0``).
        ``miou`` : float
            Mean of the per-class IoUs, ignoring NaN (absent classes).
        ``miou_no_background`` : float or None
            Same mean without the background class; None when ``background`` is None.
        ``pixel_accuracy`` : float
            ``trace / sum``: fraction of labelled pixels predicted correctly.
        ``micro_iou`` : float
            ``sum_c TP_c / sum_c (TP_c + FP_c + FN_c)``, IoU pooled over all classes.
            This is the number the paper's published code reports as "IoU". It is
            **not** mIoU: it weights every class by its pixel count, so large classes
            dominate, and since ``sum FP = sum FN = N - trace`` it is a monotone
            function of pixel accuracy ``a``: ``micro_iou = a / (2 - a)``.
        ``per_class_precision`` : dict name -> float
            ``TP / (TP + FP)``; NaN when the class is never predicted.
        ``per_class_recall`` : dict name -> float
            ``TP / (TP + FN)``; NaN when the class is absent from the target.
        ``n_pixels`` : int
            Number of labelled pixels counted in the matrix.
        ``confusion_matrix`` : list of list of int, shape (C, C)
            The matrix itself.
        ``class_names`` : list of str
            The class names used as keys.
        ``background`` : str or None
            Name of the background class, if any.

    Raises
    ------
    ValueError
        If ``matrix`` is not a square non-negative count matrix, ``class_names`` has
        the wrong length, or ``background`` is not a valid name/index.

    Notes
    -----
    An empty matrix (no labelled pixel) gives NaN for every metric and logs a warning.
    """
    m = _check_matrix(matrix)
    n_classes = m.shape[0]
    names = _resolve_class_names(class_names, n_classes)
    bg = _resolve_background(background, names)

    total = int(m.sum())
    if total == 0:
        logger.warning("Confusion matrix is empty (no labelled pixel): all metrics are NaN.")

    tp = np.diag(m).astype(np.float64)
    fp = m.sum(axis=0) - tp
    fn = m.sum(axis=1) - tp

    iou = _safe_divide(tp, tp + fp + fn)
    precision = _safe_divide(tp, tp + fp)
    recall = _safe_divide(tp, tp + fn)

    miou = _nanmean(iou)
    if bg is None:
        miou_no_bg: float | None = None
    else:
        keep = np.ones(n_classes, dtype=bool)
        keep[bg] = False
        miou_no_bg = _nanmean(iou[keep])

    pixel_accuracy = float(_safe_divide(tp.sum(), np.float64(total)))
    micro_iou = float(_safe_divide(tp.sum(), (tp + fp + fn).sum()))

    return {
        "per_class_iou": {n: float(v) for n, v in zip(names, iou, strict=True)},
        "miou": miou,
        "miou_no_background": miou_no_bg,
        "pixel_accuracy": pixel_accuracy,
        "micro_iou": micro_iou,
        "per_class_precision": {n: float(v) for n, v in zip(names, precision, strict=True)},
        "per_class_recall": {n: float(v) for n, v in zip(names, recall, strict=True)},
        "n_pixels": total,
        "confusion_matrix": m.tolist(),
        "class_names": names,
        "background": None if bg is None else names[bg],
    }


# --------------------------------------------------------------------- accumulator


class ConfusionMatrix:
    """Accumulate a dataset-level confusion matrix over batches.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C``.
    ignore_index : int, default ``IGNORE_INDEX`` (255)
        Target value of unlabelled pixels, which are skipped.
    class_names : sequence of str, optional
        One name per class, used as keys by :meth:`compute`.
    background : str or int, optional
        Background class (name or index) for ``miou_no_background``.

    Examples
    --------
    >>> cm = ConfusionMatrix(3, class_names=["bg", "a", "b"], background="bg")
    >>> cm.update(logits, target)  # logits (B, 3, H, W), target (B, H, W)
    >>> metrics = cm.compute()
    """

    def __init__(
        self,
        n_classes: int,
        *,
        ignore_index: int = IGNORE_INDEX,
        class_names: Sequence[str] | None = None,
        background: str | int | None = None,
    ) -> None:
        self.n_classes = _check_n_classes(n_classes)
        self.ignore_index = _check_ignore_index(ignore_index)
        self.class_names = _resolve_class_names(class_names, self.n_classes)
        # Validate early so a bad name fails at construction, not after an epoch.
        _resolve_background(background, self.class_names)
        self.background = background
        self._matrix = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_classes={self.n_classes}, "
            f"ignore_index={self.ignore_index}, n_pixels={int(self._matrix.sum())})"
        )

    @property
    def matrix(self) -> np.ndarray:
        """numpy.ndarray, shape (C, C), int64: a copy of the accumulated counts."""
        return self._matrix.copy()

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Add one batch to the matrix.

        Parameters
        ----------
        pred : numpy.ndarray or torch.Tensor
            Either class indices with the shape of ``target``, or scores/logits of
            shape (B, C, H, W) for a target of shape (B, H, W) (any
            ``pred.ndim == target.ndim + 1`` with classes on dim 1), in which case
            the argmax over dim 1 is taken.
        target : numpy.ndarray or torch.Tensor, shape (B, H, W) or any
            True class indices, ``ignore_index`` for unlabelled pixels.

        Raises
        ------
        ValueError
            On shape mismatch, a class dimension different from ``n_classes``, or
            out-of-range values (see :func:`confusion_matrix`).
        """
        pred = _as_array(pred, "pred")
        target = _as_array(target, "target")
        if pred.ndim == target.ndim + 1:
            expected = (target.shape[0], self.n_classes, *target.shape[1:])
            if pred.ndim < 2 or tuple(pred.shape) != tuple(expected):
                raise ValueError(
                    f"scores/logits of shape {tuple(pred.shape)} do not match target shape "
                    f"{tuple(target.shape)} with n_classes={self.n_classes}; expected "
                    f"{tuple(expected)} (classes on dim 1)."
                )
            if isinstance(pred, torch.Tensor):
                pred = pred.detach().argmax(dim=1)
            else:
                pred = np.argmax(pred, axis=1)
        elif isinstance(pred, torch.Tensor):
            pred = pred.detach()
        if isinstance(target, torch.Tensor):
            target = target.detach()

        batch = confusion_matrix(
            pred, target, n_classes=self.n_classes, ignore_index=self.ignore_index
        )
        if isinstance(batch, torch.Tensor):
            batch = batch.cpu().numpy()
        self._matrix += batch

    def reset(self) -> None:
        """Zero the accumulated counts."""
        self._matrix[...] = 0

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of another accumulator (e.g. from another worker) in place.

        Parameters
        ----------
        other : ConfusionMatrix
            Must have the same ``n_classes`` and ``ignore_index``.

        Returns
        -------
        ConfusionMatrix
            ``self``, for chaining.
        """
        if not isinstance(other, ConfusionMatrix):
            raise ValueError(f"can only merge another ConfusionMatrix, got {type(other).__name__}.")
        if other.n_classes != self.n_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                "cannot merge confusion matrices with different settings: "
                f"n_classes {self.n_classes} vs {other.n_classes}, "
                f"ignore_index {self.ignore_index} vs {other.ignore_index}."
            )
        self._matrix += other._matrix
        return self

    def with_counts(self, matrix: ArrayLike) -> ConfusionMatrix:
        """A new accumulator with these settings holding ``matrix`` (e.g. summed over ranks).

        Parameters
        ----------
        matrix : array, shape (C, C)
            Non-negative integer counts, rows = true class.
        """
        counts = np.asarray(matrix)
        if counts.shape != self._matrix.shape or not _is_integer_dtype(counts):
            raise ValueError(
                f"counts must be integers of shape {self._matrix.shape}, got "
                f"{counts.dtype} {counts.shape}"
            )
        other = ConfusionMatrix(
            self.n_classes,
            ignore_index=self.ignore_index,
            class_names=self.class_names,
            background=self.background,
        )
        other._matrix[...] = counts
        return other

    def compute(self) -> dict[str, Any]:
        """Metrics of the accumulated matrix; see :func:`compute_metrics`."""
        return compute_metrics(
            self._matrix, class_names=self.class_names, background=self.background
        )


# --------------------------------------------------------------------------- output


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    return "-" if math.isnan(value) else f"{value:.4f}"


def format_metrics_table(metrics: Mapping[str, Any]) -> str:
    """Render metrics as a plain-text table.

    Parameters
    ----------
    metrics : mapping
        Output of :func:`compute_metrics` (or the same dict read back from JSON, where
        NaN is ``None``).

    Returns
    -------
    str
        One row per class (class | IoU | precision | recall), then summary rows
        (mIoU, mIoU without background when available, pixel accuracy, micro IoU,
        number of pixels). Undefined values are shown as ``-``.
    """
    ious: Mapping[str, Any] = metrics.get("per_class_iou", {})
    precs: Mapping[str, Any] = metrics.get("per_class_precision", {})
    recs: Mapping[str, Any] = metrics.get("per_class_recall", {})
    background = metrics.get("background")

    names = list(ious)
    labels = [f"{n} (bg)" if n == background else n for n in names]
    summary: list[tuple[str, str]] = [("mIoU", _fmt(metrics.get("miou")))]
    if metrics.get("miou_no_background") is not None or background is not None:
        summary.append(("mIoU (no background)", _fmt(metrics.get("miou_no_background"))))
    summary.append(("pixel accuracy", _fmt(metrics.get("pixel_accuracy"))))
    summary.append(("micro IoU (pooled)", _fmt(metrics.get("micro_iou"))))
    if metrics.get("n_pixels") is not None:
        summary.append(("labelled pixels", str(int(metrics["n_pixels"]))))

    width = max([len("class"), *(len(s) for s in labels), *(len(s) for s, _ in summary)])
    col = 9
    header = f"{'class':<{width}} | {'IoU':>{col}} | {'precision':>{col}} | {'recall':>{col}}"
    rule = "-" * len(header)
    lines = [header, rule]
    for name, label in zip(names, labels, strict=True):
        lines.append(
            f"{label:<{width}} | {_fmt(ious.get(name)):>{col}} | "
            f"{_fmt(precs.get(name)):>{col}} | {_fmt(recs.get(name)):>{col}}"
        )
    lines.append(rule)
    for label, value in summary:
        lines.append(f"{label:<{width}} | {value:>{col}}")
    return "\n".join(lines)


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, list | tuple):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return None if not math.isfinite(value) else value
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_metrics_json(metrics: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write metrics to a JSON file atomically.

    The JSON is written to a temporary file in the destination directory, flushed to disk
    and moved into place (:func:`pointseg.io.atomic.write_text_atomic`), so readers never
    see a half-written file.
    NaN and infinite values are written as ``null``.

    Parameters
    ----------
    metrics : mapping
        Typically the output of :func:`compute_metrics`.
    path : str or os.PathLike
        Destination file; missing parent directories are created.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics must be a mapping, got {type(metrics).__name__}.")
    path = Path(path)
    text = json.dumps(_to_jsonable(metrics), indent=2, allow_nan=False)
    write_text_atomic(path, text + "\n", fsync=True)
    logger.debug("Wrote metrics to %s", path)
    return path
