"""Affinity-aware regularisers on the unlabelled pixels, and their registry.

Point supervision labels a few pixels (spread to superpixels at best); the remaining
pixels carry ``ignore_index`` and get no gradient from the losses of
:mod:`pointseg.losses.losses`. A regulariser adds an unsupervised term over *all*
pixels that asks neighbouring pixels of similar colour to share a label, so the
labels propagate along image structure and stop at colour edges.

Every regulariser is built with :func:`get_regulariser` and called as
``regulariser(logits, image, valid=None)`` where ``logits`` is (B, K, H, W), ``image``
is the (normalised) network input (B, C, H, W) and ``valid`` an optional (B, H, W)
bool mask of real (non-padding) pixels. It returns a scalar tensor to be added,
with a weight chosen by the caller, to the point-supervision loss.

Implementations use only tensor operations (slicing, pooling), so they run unchanged
on CPU and CUDA and follow the device and dtype of the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from pointseg.losses.registry import ModuleRegistry

__all__ = [
    "DenseCRFLoss",
    "check_regulariser_options",
    "get_regulariser",
    "list_regularisers",
    "register_regulariser",
]

_REGULARISERS = ModuleRegistry("regulariser", "regularisers")

_M = TypeVar("_M", bound=type[nn.Module])


# ------------------------------------------------------------------------ registry


def register_regulariser(name: str) -> Callable[[_M], _M]:
    """Class decorator registering a regulariser module under ``name``.

    Parameters
    ----------
    name : str
        Registry key used by :func:`get_regulariser`; must be a new, non-empty string.

    Returns
    -------
    callable
        The decorator, which returns the class unchanged.

    Raises
    ------
    ValueError
        If ``name`` is empty, already registered to another class, or the decorated
        object is not a ``torch.nn.Module`` subclass.
    """
    return _REGULARISERS.register(name)


def list_regularisers() -> list[str]:
    """Return the registered regulariser names, sorted.

    Returns
    -------
    list of str
    """
    return _REGULARISERS.names()


def check_regulariser_options(name: str, options: dict[str, Any]) -> None:
    """Check ``options`` against the regulariser's constructor before any work is done.

    Parameters
    ----------
    name : str
        One of :func:`list_regularisers`.
    options : dict
        Keyword options for the constructor.

    Raises
    ------
    ValueError
        For an unknown name (listing the valid names), an unknown option (listing the
        valid options) or a bad option value (with the constructor's explanation).
    """
    get_regulariser(name, **options)


def get_regulariser(name: str, **options: Any) -> nn.Module:
    """Instantiate a registered regulariser.

    Parameters
    ----------
    name : str
        One of :func:`list_regularisers`, e.g. ``"crf"``.
    **options
        Keyword options of the regulariser's constructor (see its class docstring).

    Returns
    -------
    torch.nn.Module
        Called as ``module(logits, image, valid=None)``, returns a scalar tensor.

    Raises
    ------
    ValueError
        If ``name`` is not registered (the message lists the valid names), an option
        is unknown (the message lists the valid options) or an option value is bad.
    """
    return _REGULARISERS.create(name, **options)


# ------------------------------------------------------------------------- helpers


def _positive_float(name: str, value: object, hint: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}; {hint}.")
    return float(value)


def _positive_int(name: str, value: object, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}; {hint}.")
    return int(value)


def _check_inputs(
    logits: object, image: object, valid: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate the (logits, image, valid) triple of a regulariser's forward."""
    if not isinstance(logits, torch.Tensor) or not isinstance(image, torch.Tensor):
        raise ValueError(
            "logits and image must be torch tensors, got "
            f"{type(logits).__name__} and {type(image).__name__}."
        )
    if logits.ndim != 4 or not logits.is_floating_point():
        raise ValueError(
            f"logits must be a float tensor of shape (B, K, H, W), got shape "
            f"{tuple(logits.shape)} and dtype {logits.dtype}."
        )
    if image.ndim != 4 or not image.is_floating_point():
        raise ValueError(
            f"image must be a float tensor of shape (B, C, H, W), got shape "
            f"{tuple(image.shape)} and dtype {image.dtype}."
        )
    b, _, h, w = logits.shape
    if image.shape[0] != b or tuple(image.shape[2:]) != (h, w):
        raise ValueError(
            f"image shape {tuple(image.shape)} does not match logits shape "
            f"{tuple(logits.shape)}: batch size and (H, W) must be equal; resize the "
            "logits to the image (e.g. F.interpolate) before the regulariser."
        )
    if image.device != logits.device:
        raise ValueError(
            f"logits are on {logits.device} but image is on {image.device}; "
            "move both to the same device."
        )
    if valid is not None:
        if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool:
            raise ValueError(
                "valid must be None or a bool tensor of shape (B, H, W), got "
                f"{type(valid).__name__}"
                + (f" of dtype {valid.dtype}" if isinstance(valid, torch.Tensor) else "")
                + "; use e.g. target != pad_value."
            )
        if tuple(valid.shape) != (b, h, w):
            raise ValueError(
                f"valid shape {tuple(valid.shape)} does not match logits shape "
                f"{tuple(logits.shape)}; expected {(b, h, w)}."
            )
        if valid.device != logits.device:
            raise ValueError(
                f"logits are on {logits.device} but valid is on {valid.device}; "
                "move both to the same device."
            )
    return logits, image, valid


def _half_offsets(radius: int) -> list[tuple[int, int]]:
    """One offset of each symmetric pair ``(dy, dx) / (-dy, -dx)`` in the square window."""
    return [
        (dy, dx)
        for dy in range(0, radius + 1)
        for dx in range(-radius, radius + 1)
        if dy > 0 or dx > 0
    ]


# --------------------------------------------------------------------- regularisers


@register_regulariser("crf")
class DenseCRFLoss(nn.Module):
    r"""Dense-CRF (Potts) loss with a local bilateral kernel, on all pixels.

    The relaxed Potts / dense-CRF regularised loss of Tang et al., "On Regularized
    Losses for Weakly-supervised CNN Segmentation" (ECCV 2018), with the fully
    connected kernel replaced by a local window as in the gated CRF loss of Obukhov et
    al., "Gated CRF Loss for Weakly Supervised Semantic Image Segmentation" (2019).
    With ``p = softmax(logits)`` over the K classes, image ``x`` and pixel positions
    ``pos`` (in pixels of the input):

    .. math::

        L = \frac{1}{N} \sum_{i \in V} \sum_{\substack{j \in V,\; j \ne i \\
            \|pos_j - pos_i\|_\infty \le r}} W_{ij}
            \Bigl(1 - \sum_{k=1}^{K} p_{ik}\, p_{jk}\Bigr),
        \qquad
        W_{ij} = \exp\Bigl(-\frac{\|pos_i - pos_j\|^2}{2\sigma_{xy}^2}
                 - \frac{\|x_i - x_j\|^2}{2\sigma_{rgb}^2}\Bigr).

    Exactly what is summed and divided: the sum runs over **ordered** pairs (each
    unordered pair counts twice, once as (i, j) and once as (j, i)) of distinct pixels
    of the same image in a ``(2r+1) x (2r+1)`` square window (``r = radius``), both of
    which are valid (``V``: inside the image and ``valid`` true; pairs that would
    cross the image border do not exist — no wrap-around, no padding value). The
    colour distance ``||x_i - x_j||^2`` is summed over all C channels. ``N`` is the
    total number of valid pixels in the batch (at the resolution the loss is computed
    at, see ``downsample``), at least 1, so ``L`` is the mean over valid pixels of each
    pixel's kernel-weighted disagreement with its neighbours. ``1 - p_i . p_j`` is the
    probability that ``i`` and ``j`` take different labels when sampled independently,
    so ``L`` is 0 for a constant one-hot prediction and grows with every cut that is
    not along a colour edge. A batch with no valid pixel gives 0, still connected to
    the graph.

    The kernel ``W`` is a constant: no gradient flows into ``image``.

    Parameters
    ----------
    sigma_rgb : float, default 0.35
        Colour bandwidth in units of the ``image`` tensor. The network input is
        standardised per band (z-scores), so 0.35 is about a third of a band's
        standard deviation. This is the gated-CRF default (0.1 on images in
        [0, 1]) converted with the per-band standard deviation of 8-bit RGB
        aerial imagery (about 0.29 of the range on the Dubai aerial set). On
        that set, at a 3-pixel offset, the median colour distance is 0.27 within
        a class and 0.88 across a class boundary, so ``W`` is about 0.75 within a
        class and 0.04 across a boundary: the kernel both smooths and respects
        edges. Smaller values trust colour edges more.
    sigma_xy : float, default 6.0
        Spatial bandwidth in pixels of the *input* resolution (the gated-CRF
        default); with ``downsample = d`` neighbouring computation pixels are ``d``
        input pixels apart, so the spatial weights do not change with ``d``.
    radius : int, default 5
        Half-width ``r`` of the square window, in pixels of the resolution the loss is
        computed at (so the window covers ``r * downsample`` input pixels each side;
        10 with the defaults, where the spatial weight has fallen to 0.25).
        The cost grows as ``(2r+1)^2``.
    downsample : int, default 2
        Factor ``d``: probabilities and image are average-pooled by ``d x d`` blocks
        (valid pixels only; a partial last block averages what it has) before the
        loss, which cuts the cost by about ``d^2``. A pooled pixel is valid when its
        block holds at least one valid pixel. ``1`` computes at full resolution.

    Notes
    -----
    Shapes: logits (B, K, H, W) float; image (B, C, H, W) float with the same B, H,
    W; valid (B, H, W) bool or None; output () with dtype float64 for float64
    logits, float32 otherwise.

    The defaults ``radius=5, downsample=2`` (the gated-CRF window, reaching 10 input
    pixels each side) were chosen by timing forward + backward on logits
    (8, 6, 128, 128) with two CPU threads against a UNet (``base_channels=16``)
    training step on the same batch (about 195 ms): 19-20 ms, 10 % of a step. At
    full resolution the same window costs 55-65 ms (28-33 %), ``radius=3`` 26-30 ms
    (13-16 %).

    ``default_weight`` (0.05) is the weight the trainer gives the loss when none is set:
    with the default kernel, a pixel's weights sum to about 24 in a flat area, so a
    prediction that disagrees everywhere scores about 20 and the weighted term about 1,
    the size of the point losses on an untrained model; a prediction that follows the
    colour edges scores far lower.
    """

    #: The weight of this term in the training loss unless one is given.
    default_weight: float = 0.05

    def __init__(
        self,
        *,
        sigma_rgb: float = 0.35,
        sigma_xy: float = 6.0,
        radius: int = 5,
        downsample: int = 2,
    ) -> None:
        super().__init__()
        self.sigma_rgb = _positive_float(
            "sigma_rgb", sigma_rgb, "it is in units of the standardised image, e.g. 0.35"
        )
        self.sigma_xy = _positive_float("sigma_xy", sigma_xy, "it is in input pixels, e.g. 6.0")
        self.radius = _positive_int("radius", radius, "e.g. radius=5 for an 11x11 window")
        self.downsample = _positive_int(
            "downsample", downsample, "1 computes at full resolution, 2 halves H and W"
        )

    def extra_repr(self) -> str:
        return (
            f"sigma_rgb={self.sigma_rgb}, sigma_xy={self.sigma_xy}, radius={self.radius}, "
            f"downsample={self.downsample}"
        )

    def _pool(
        self, probs: torch.Tensor, image: torch.Tensor, valid: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Masked ``d x d`` average pooling of probabilities and image, and pooled mask."""
        d = self.downsample
        if d == 1:
            return probs, image, valid
        if valid is None:
            mask = probs.new_ones((probs.shape[0], 1, *probs.shape[2:]))
        else:
            mask = valid[:, None].to(probs.dtype)

        def pool(t: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(t, d, stride=d, ceil_mode=True)

        # the pooling divisor cancels in the ratios, so partial border blocks average
        # their own (valid) pixels only
        weight = pool(mask)
        denom = weight.clamp_min(torch.finfo(weight.dtype).tiny)
        probs = pool(probs * mask) / denom
        with torch.no_grad():
            image = pool(image * mask) / denom
        pooled_valid = None if valid is None else weight[:, 0] > 0
        return probs, image, pooled_valid

    def forward(
        self, logits: torch.Tensor, image: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : torch.Tensor, shape (B, K, H, W), float
            Class scores; the loss uses their softmax over K.
        image : torch.Tensor, shape (B, C, H, W), float
            The (standardised) network input, same B, H and W as ``logits``.
        valid : torch.Tensor, shape (B, H, W), bool, optional
            False at padding pixels; every pair touching one is left out, and they
            are not counted in ``N``. None: all pixels valid.

        Returns
        -------
        torch.Tensor, shape ()
            The mean kernel-weighted disagreement over valid pixels (see class doc).

        Raises
        ------
        ValueError
            On non-tensor inputs, wrong ranks or dtypes, mismatched shapes or devices.
        """
        logits, image, valid = _check_inputs(logits, image, valid)
        dtype = torch.promote_types(logits.dtype, torch.float32)
        probs = torch.softmax(logits.to(dtype), dim=1)
        with torch.no_grad():
            image = image.detach().to(dtype)
        probs, image, valid = self._pool(probs, image, valid)

        _, _, h, w = probs.shape
        vmask = None if valid is None else valid.to(dtype)
        n_valid = probs.new_tensor(float(probs.shape[0] * h * w)) if vmask is None else vmask.sum()
        step = float(self.downsample)
        inv_xy = 1.0 / (2.0 * self.sigma_xy**2)
        inv_rgb = 1.0 / (2.0 * self.sigma_rgb**2)

        total = probs.sum() * 0.0  # connected to the graph even when no pair exists
        for dy, dx in _half_offsets(self.radius):
            # pixel i = (y, x) and its neighbour j = (y + dy, x + dx), both inside
            x0, x1 = max(0, -dx), w - max(0, dx)
            if dy >= h or x1 <= x0:
                continue
            rows_i, rows_j = slice(0, h - dy), slice(dy, h)
            cols_i, cols_j = slice(x0, x1), slice(x0 + dx, x1 + dx)
            with torch.no_grad():
                diff = image[:, :, rows_i, cols_i] - image[:, :, rows_j, cols_j]
                colour = diff.pow(2).sum(dim=1)  # (B, h', w')
                spatial = (dy * dy + dx * dx) * step * step * inv_xy
                kernel = torch.exp(-spatial - inv_rgb * colour)
                if vmask is not None:
                    kernel = kernel * vmask[:, rows_i, cols_i] * vmask[:, rows_j, cols_j]
            agree = (probs[:, :, rows_i, cols_i] * probs[:, :, rows_j, cols_j]).sum(dim=1)
            # (i, j) and (j, i) contribute the same term: count it twice
            total = total + 2.0 * (kernel * (1.0 - agree)).sum()
        return total / n_valid.clamp_min(1.0)
