"""Point-supervision losses and their registry.

Every loss takes ``logits`` of shape (B, C, H, W) and a ``target`` of shape
(B, H, W) where unlabelled pixels carry ``ignore_index`` (255 by default, see
:data:`pointseg.constants.IGNORE_INDEX`), and returns a scalar tensor. Only labelled
pixels contribute. A batch without any labelled pixel gives a loss of exactly 0 that
is still connected to the autograd graph (its gradient is zero), never NaN.

The implementations are branch-free (no ``.item()`` on the count of labelled
pixels), so they work unchanged on CPU and CUDA and for any number of classes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from pointseg.constants import IGNORE_INDEX
from pointseg.losses.registry import ModuleRegistry

__all__ = [
    "ClassWeightedMaskedMSE",
    "PartialCrossEntropy",
    "check_loss_options",
    "get_loss",
    "list_losses",
    "register_loss",
]

logger = logging.getLogger(__name__)

_LOSSES = ModuleRegistry("loss", "losses")

_M = TypeVar("_M", bound=type[nn.Module])


# ------------------------------------------------------------------------ registry


def register_loss(name: str) -> Callable[[_M], _M]:
    """Class decorator registering a loss module under ``name`` (a new, non-empty string).

    Raises
    ------
    ValueError
        If ``name`` is empty or already registered, or the class is not an ``nn.Module``.
    """
    return _LOSSES.register(name)


def list_losses() -> list[str]:
    """Return the registered loss names, sorted.

    Returns
    -------
    list of str
    """
    return _LOSSES.names()


def check_loss_options(name: str, options: dict[str, Any]) -> None:
    """Check ``options`` against the loss's constructor before any work is done.

    Raises
    ------
    ValueError
        Naming the loss, the option and the valid options.
    """
    _LOSSES.get_class(name)
    try:
        _LOSSES.create(name, **options)
    except ValueError as exc:
        if "option" in str(exc):
            raise
        raise ValueError(f"loss {name!r} rejects options {options}: {exc}") from exc


def get_loss(name: str, **kwargs: object) -> nn.Module:
    """Instantiate a registered loss.

    Parameters
    ----------
    name : str
        One of :func:`list_losses`, e.g. ``"masked_mse"`` or ``"partial_ce"``.
    **kwargs
        Keyword options forwarded to the loss constructor.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        If ``name`` is not registered or an option is unknown (the message lists the valid
        ones), or the constructor rejects a value.
    """
    return _LOSSES.create(name, **kwargs)


# ------------------------------------------------------------------------- helpers


def _check_ignore_index(ignore_index: object) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise ValueError(
            f"ignore_index must be an int, got {ignore_index!r}; "
            f"use pointseg.constants.IGNORE_INDEX ({IGNORE_INDEX})."
        )
    return ignore_index


def _prepare(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate inputs and compute the labelled mask and class counts.

    Returns
    -------
    labelled : torch.Tensor, shape (B, H, W), bool
    safe_target : torch.Tensor, shape (B, H, W), int64
        ``target`` with unlabelled pixels set to class 0 (always masked out later).
    counts : torch.Tensor, shape (C,), float32
        Number of labelled pixels of each class in the batch (``n_c``).
    n_labelled : torch.Tensor, shape (), float32
        Number of labelled pixels ``N``.
    """
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError(
            "logits and target must be torch tensors, got "
            f"{type(logits).__name__} and {type(target).__name__}."
        )
    if logits.ndim != 4 or not logits.is_floating_point():
        raise ValueError(
            f"logits must be a float tensor of shape (B, C, H, W), got shape "
            f"{tuple(logits.shape)} and dtype {logits.dtype}."
        )
    if target.ndim != 3 or target.is_floating_point() or target.is_complex():
        raise ValueError(
            f"target must be an integer tensor of shape (B, H, W), got shape "
            f"{tuple(target.shape)} and dtype {target.dtype}; use target.long()."
        )
    b, c, h, w = logits.shape
    if tuple(target.shape) != (b, h, w):
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape "
            f"{tuple(logits.shape)}; expected target of shape {(b, h, w)}."
        )
    if target.device != logits.device:
        raise ValueError(
            f"logits are on {logits.device} but target is on {target.device}; "
            "move both to the same device."
        )
    target = target.long()
    labelled = target != ignore_index
    bad = labelled & ((target < 0) | (target >= c))
    if bool(bad.any()):
        values = torch.unique(target[bad]).cpu().tolist()[:5]
        raise ValueError(
            f"target contains value(s) {values} outside [0, {c}) that are not "
            f"ignore_index={ignore_index}; check the number of classes of the model or "
            f"mark unlabelled pixels with {ignore_index}."
        )
    safe_target = torch.where(labelled, target, torch.zeros_like(target))
    counts = torch.zeros(c, dtype=torch.float32, device=logits.device)
    counts.scatter_add_(0, safe_target.reshape(-1), labelled.reshape(-1).to(torch.float32))
    n_labelled = labelled.sum().to(torch.float32)
    return labelled, safe_target, counts, n_labelled


def _balanced_pixel_weights(
    safe_target: torch.Tensor,
    labelled: torch.Tensor,
    counts: torch.Tensor,
    n_labelled: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """Per-pixel weights ``w_{y_i} = N / n_{y_i}`` (0 at unlabelled pixels).

    Classes absent from the batch (``n_c = 0``) get weight 0 without any division
    by zero: they own no pixel, so the weight is never used.
    """
    present = counts > 0
    class_w = torch.where(present, n_labelled / counts.clamp_min(eps), torch.zeros_like(counts))
    return class_w[safe_target] * labelled.to(class_w.dtype)


# -------------------------------------------------------------------------- losses


@register_loss("masked_mse")
class ClassWeightedMaskedMSE(nn.Module):
    r"""Class-weighted MSE on labelled pixels (the loss of Rivier et al., 2023).

    From "Learning Semantic Segmentation with Query Points Supervision on Aerial
    Images": squared error between the per-pixel class scores and the one-hot
    target, restricted to labelled pixels and re-weighted by inverse class
    frequency within the batch:

    .. math::

        L = \frac{1}{N} \sum_{i \,\text{labelled}} w_{y_i}
            \sum_{c=1}^{C} \bigl(p_{ic} - \mathbf{1}[c = y_i]\bigr)^2,
        \qquad w_c = \frac{N}{n_c},

    where ``N`` is the number of labelled pixels in the batch, ``n_c`` the number
    of labelled pixels of class ``c``, ``y_i`` the label of pixel ``i`` and
    ``p_ic`` its score for class ``c`` (softmax of the logits by default).
    ``w_c = 1 / (n_c / N)`` is the inverse of the class's share of the labelled
    pixels. Equivalently ``L = sum_{c present} mean_{i: y_i = c} err_i``: every class
    present in the batch contributes its mean error once, whatever its number of
    points, and the value does not depend on how many pixels are labelled.

    Differences from the published code, which are deliberate fixes: the published
    code divides by class shares that include classes absent from the batch (a
    division by zero) and normalises by all pixels, labelled or not (so the loss
    shrinks as the image grows). Here absent classes get no weight (they own no
    pixel) and the normalisation is by ``N`` only. A batch with ``N = 0`` gives 0.

    Parameters
    ----------
    ignore_index : int, default ``IGNORE_INDEX`` (255)
        Target value of unlabelled pixels.
    activation : {"softmax", "sigmoid", "none"}, default "softmax"
        Map from logits to scores ``p``: softmax over classes, element-wise
        sigmoid, or the raw logits.
    eps : float, default 1e-6
        Lower bound of the class-count and pixel-count denominators (counts are
        integers, so this only guards the empty cases).

    Notes
    -----
    logits : (B, C, H, W) float; target : (B, H, W) integer; output : () float32.
    """

    def __init__(
        self,
        *,
        ignore_index: int = IGNORE_INDEX,
        activation: Literal["softmax", "sigmoid", "none"] = "softmax",
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.ignore_index = _check_ignore_index(ignore_index)
        if activation not in ("softmax", "sigmoid", "none"):
            raise ValueError(
                f"activation must be one of 'softmax', 'sigmoid', 'none', got {activation!r}."
            )
        if not (isinstance(eps, int | float) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive finite float, got {eps!r}; e.g. eps=1e-6.")
        self.activation = activation
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, activation={self.activation!r}, eps={self.eps}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : torch.Tensor, shape (B, C, H, W), float
        target : torch.Tensor, shape (B, H, W), integer
            Class indices, ``ignore_index`` for unlabelled pixels.

        Returns
        -------
        torch.Tensor, shape ()
            Scalar loss (float32), 0 when no pixel is labelled.
        """
        labelled, safe_target, counts, n_labelled = _prepare(logits, target, self.ignore_index)
        x = logits.float()
        if self.activation == "softmax":
            scores = torch.softmax(x, dim=1)
        elif self.activation == "sigmoid":
            scores = torch.sigmoid(x)
        else:
            scores = x
        one_hot = F.one_hot(safe_target, num_classes=logits.shape[1]).permute(0, 3, 1, 2)
        sq_err = (scores - one_hot.to(scores.dtype)).pow(2).sum(dim=1)  # (B, H, W)
        weights = _balanced_pixel_weights(safe_target, labelled, counts, n_labelled, self.eps)
        return (weights * sq_err).sum() / n_labelled.clamp_min(1.0)


@register_loss("partial_ce")
class PartialCrossEntropy(nn.Module):
    r"""Cross-entropy on labelled pixels only (partial / point-supervised CE).

    With ``ℓ_i = -log softmax(logits_i)[y_i]`` for each labelled pixel ``i`` and
    ``N`` labelled pixels:

    * ``class_weights=None``: ``L = (1/N) Σ_i ℓ_i``, identical to
      ``F.cross_entropy(logits, target, ignore_index=ignore_index)`` except that a
      batch with no labelled pixel gives 0 instead of NaN.
    * a sequence of ``C`` fixed weights ``w``: ``L = Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i}``,
      identical to ``F.cross_entropy(..., weight=w, ignore_index=...)`` (0 when the
      denominator is 0).
    * ``"balanced"``: per-batch inverse-frequency weights ``w_c = N / n_c`` over the
      classes present (absent classes get none), with the same normalisation as
      :class:`ClassWeightedMaskedMSE`: ``L = (1/N) Σ_i w_{y_i} ℓ_i``, i.e. the sum
      over present classes of each class's mean cross-entropy.

    Parameters
    ----------
    ignore_index : int, default ``IGNORE_INDEX`` (255)
        Target value of unlabelled pixels.
    class_weights : None, sequence of float, or "balanced", default None
        See above. A sequence must be non-negative and finite; its length is
        checked against the number of classes ``C`` of the logits at forward time.

    Notes
    -----
    logits : (B, C, H, W) float; target : (B, H, W) integer; output : () float32.
    """

    class_weight_tensor: torch.Tensor | None

    def __init__(
        self,
        *,
        ignore_index: int = IGNORE_INDEX,
        class_weights: Sequence[float] | torch.Tensor | Literal["balanced"] | None = None,
    ) -> None:
        super().__init__()
        self.ignore_index = _check_ignore_index(ignore_index)
        self.balanced = False
        weight_tensor: torch.Tensor | None = None
        if isinstance(class_weights, str):
            if class_weights != "balanced":
                raise ValueError(
                    f"class_weights must be None, a sequence of floats or 'balanced', "
                    f"got the string {class_weights!r}."
                )
            self.balanced = True
        elif class_weights is not None:
            try:
                weight_tensor = torch.as_tensor(class_weights, dtype=torch.float32).detach()
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"class_weights must be a sequence of numbers, got {class_weights!r}."
                ) from exc
            if weight_tensor.ndim != 1 or weight_tensor.numel() == 0:
                raise ValueError(
                    "class_weights must be a 1-D sequence with one weight per class, got "
                    f"shape {tuple(weight_tensor.shape)}."
                )
            if not bool(torch.isfinite(weight_tensor).all()) or bool((weight_tensor < 0).any()):
                raise ValueError(
                    f"class_weights must be finite and non-negative, got {weight_tensor.tolist()}."
                )
        self.register_buffer("class_weight_tensor", weight_tensor, persistent=False)

    def extra_repr(self) -> str:
        if self.balanced:
            cw = "'balanced'"
        elif self.class_weight_tensor is None:
            cw = "None"
        else:
            cw = str(self.class_weight_tensor.tolist())
        return f"ignore_index={self.ignore_index}, class_weights={cw}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : torch.Tensor, shape (B, C, H, W), float
        target : torch.Tensor, shape (B, H, W), integer
            Class indices, ``ignore_index`` for unlabelled pixels.

        Returns
        -------
        torch.Tensor, shape ()
            Scalar loss (float32), 0 when no pixel is labelled.

        Raises
        ------
        ValueError
            On malformed inputs, out-of-range labels, or fixed ``class_weights``
            whose length differs from ``C``.
        """
        n_classes = logits.shape[1] if logits.ndim == 4 else None
        if self.class_weight_tensor is not None and n_classes is not None:
            if self.class_weight_tensor.numel() != n_classes:
                raise ValueError(
                    f"class_weights has {self.class_weight_tensor.numel()} entries but the "
                    f"logits have C={n_classes} classes; pass one weight per class."
                )
        labelled, safe_target, counts, n_labelled = _prepare(logits, target, self.ignore_index)
        nll = F.cross_entropy(
            logits.float(), target.long(), ignore_index=self.ignore_index, reduction="none"
        )  # (B, H, W), 0 at ignored pixels
        mask = labelled.to(nll.dtype)
        if self.balanced:
            weights = _balanced_pixel_weights(safe_target, labelled, counts, n_labelled, 1e-6)
            return (weights * nll).sum() / n_labelled.clamp_min(1.0)
        if self.class_weight_tensor is not None:
            class_w = self.class_weight_tensor.to(device=nll.device, dtype=nll.dtype)
            weights = class_w[safe_target] * mask
            denom = weights.sum()
            safe_denom = torch.where(denom > 0, denom, torch.ones_like(denom))
            return (weights * nll).sum() / safe_denom
        return (mask * nll).sum() / n_labelled.clamp_min(1.0)
