"""Click proposals for active learning: where should the annotator click next?

A model trained on the current clicks predicts softmax ``probabilities`` for every image;
a *strategy* turns them (with the superpixels, the clicks and optionally the propagated
pseudo-labels) into one score per superpixel, and :func:`propose_clicks` turns the scores
into a spread-out list of :class:`Proposal` (one pixel per chosen superpixel).

Built-in strategies (:func:`list_proposal_strategies`):

``random``
    Seeded uniform scores in [0, 1) (a baseline). The generator of an image is seeded by
    ``(seed, crc32(image name))``, so the result does not depend on the mapping order.
``entropy``
    Mean over the superpixel of the per-pixel entropy of the probabilities, divided by
    ``log(C)`` (so in [0, 1]; 1 = uniform): the least certain superpixels first.
``uncertain_area``
    Sum over the superpixel of the normalised entropy, divided by the mean superpixel area of
    the image: the uncertain area a click's propagated label would cover. Entropy prefers
    small, thin superpixels on class borders; this weighs the doubt by what one click labels.
``margin``
    Mean over the superpixel of ``1 - (p_top1 - p_top2)`` (in [0, 1]; 1 = a tie between
    the two best classes).
``disagreement``
    Superpixels whose label (the majority of ``pseudo_labels`` inside it, ignoring
    ``IGNORE_INDEX``; ties to the lowest class) differs from the model's majority argmax
    there: likely click or propagation errors. Score = share of its labelled pixels where
    the argmax differs from the pseudo-label, times the mean top-1 probability over the
    superpixel. Superpixels with a click are *not* skipped (the proposal asks the user to
    confirm the label); the proposal goes to the pixel of the superpixel where the model is
    most confident in its (disagreeing) majority class, never onto an existing click.
    Unlabelled and agreeing superpixels score nothing; when fewer than the requested
    proposals disagree, the remaining slots are filled by the ``margin`` ranking (clicked
    superpixels skipped), listed after all disagreeing ones and reported with ``score = 0.0``.

Rules shared by all strategies (applied by :func:`propose_clicks`):

* only the ``valid`` pixels of a superpixel count (in the means and for the location);
  a superpixel without a valid pixel is never proposed;
* superpixels that hold a click are skipped unless the strategy says otherwise
  (:attr:`SegmentScores.skip_clicked`);
* location: the most interior valid pixel of the superpixel (maximum of the Euclidean
  distance transform to the nearest superpixel edge, image border or invalid pixel; ties to
  the pixel nearest the superpixel centroid, then to the lowest raster index), unless the
  strategy gives its own placement map; never the pixel of an existing click;
* spread: candidates are ranked by ``rank * w(image)`` with
  ``w = 1 / sqrt(1 + n_clicks(image) / mean_clicks_per_image)`` (``w = 1`` for every image
  when there are no clicks at all; a negative rank is divided by ``w`` instead), and taken
  greedily, skipping a superpixel whose location is closer than ``min_distance`` to a
  proposal already taken in the same image.

New strategies register with :func:`register_proposal_strategy`; they receive one
:class:`ImageInputs` and a seeded ``numpy.random.Generator`` and return
:class:`SegmentScores`.
"""

from __future__ import annotations

import logging
import math
import numbers
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

from pointseg.constants import IGNORE_INDEX

__all__ = [
    "ImageInputs",
    "Proposal",
    "ProposalStrategy",
    "SegmentScores",
    "get_proposal_strategy",
    "list_proposal_strategies",
    "propose_clicks",
    "register_proposal_strategy",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Proposal:
    """One proposed click.

    Attributes
    ----------
    image : str
        Image name (a key of the input mappings).
    x : int
        Column of the pixel to click.
    y : int
        Row of the pixel to click.
    score : float
        The strategy's score of the superpixel (higher = more useful), before the
        click-count weighting used for the spread.
    segment : int
        Superpixel id the proposal represents (-1 when none; the built-in strategies always
        propose a superpixel).
    """

    image: str
    x: int
    y: int
    score: float
    segment: int


@dataclass(frozen=True)
class ImageInputs:
    """The validated inputs of one image, as handed to a strategy.

    Attributes
    ----------
    name : str
        Image name.
    probabilities : np.ndarray, shape (C, H, W), float
        Softmax of the model, C >= 2.
    segments : np.ndarray, shape (H, W), int64
        Superpixel ids 0..K-1 (ids without pixels are allowed).
    points : np.ndarray, shape (N, 3), int64
        Existing clicks: x, y, class (N may be 0).
    valid : np.ndarray, shape (H, W), bool
        Where clicks may go (all True when not given).
    pseudo_labels : np.ndarray, shape (H, W), integer, or None
        Labels propagated from the clicks, ``IGNORE_INDEX`` = unlabelled.
    n_segments : int
        K = ``segments.max() + 1``.
    clicked : np.ndarray, shape (K,), bool
        Superpixels that hold at least one click.
    """

    name: str
    probabilities: np.ndarray
    segments: np.ndarray
    points: np.ndarray
    valid: np.ndarray
    pseudo_labels: np.ndarray | None
    n_segments: int
    clicked: np.ndarray

    def segment_mean(self, values: np.ndarray) -> np.ndarray:
        """Mean of a per-pixel map over the valid pixels of each superpixel.

        Parameters
        ----------
        values : np.ndarray, shape (H, W)

        Returns
        -------
        np.ndarray, shape (K,), float64
            NaN for superpixels without a valid pixel.
        """
        seg = self.segments[self.valid]
        counts = np.bincount(seg, minlength=self.n_segments)
        sums = np.bincount(seg, weights=values[self.valid], minlength=self.n_segments)
        return np.divide(sums, counts, out=np.full(self.n_segments, np.nan), where=counts > 0)


@dataclass(frozen=True)
class SegmentScores:
    """What a strategy returns for one image.

    Attributes
    ----------
    scores : np.ndarray, shape (K,), float
        Score of each superpixel, reported as :attr:`Proposal.score`. NaN or -inf: never
        propose this superpixel.
    rank_by : np.ndarray, shape (K,), float, optional
        Rank the superpixels by this instead of ``scores`` (same NaN/-inf rule).
    placement : np.ndarray, shape (H, W), float, optional
        Where to click inside a superpixel: its valid pixel with the highest value (ties by
        interiority, see the module docstring); NaN/-inf pixels are never used. None: the
        most interior valid pixel.
    skip_clicked : bool, default True
        Never propose superpixels that already hold a click.
    fallback : SegmentScores, optional
        A second tier: its candidates are taken only after every candidate of this tier
        (over all images) has been considered, to fill the remaining slots.
    """

    scores: np.ndarray
    rank_by: np.ndarray | None = None
    placement: np.ndarray | None = None
    skip_clicked: bool = True
    fallback: SegmentScores | None = None


class ProposalStrategy(Protocol):
    """Signature shared by every registered proposal strategy."""

    def __call__(self, inputs: ImageInputs, *, rng: np.random.Generator) -> SegmentScores:
        """Score the superpixels of one image (see :class:`SegmentScores`)."""
        ...


# -------------------------------------------------------------------------- registry

_STRATEGIES: dict[str, ProposalStrategy] = {}


def register_proposal_strategy(name: str) -> Callable[[ProposalStrategy], ProposalStrategy]:
    """Register a proposal strategy under ``name`` (decorator).

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"entropy"``; a new, non-empty string.

    Returns
    -------
    Callable
        Decorator that stores the strategy and returns it unchanged.

    Raises
    ------
    ValueError
        If ``name`` is empty or already registered.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"proposal strategy name must be a non-empty string, got {name!r}.")
    if name in _STRATEGIES:
        raise ValueError(f"proposal strategy {name!r} is already registered; choose another name.")

    def decorator(fn: ProposalStrategy) -> ProposalStrategy:
        _STRATEGIES[name] = fn
        return fn

    return decorator


def list_proposal_strategies() -> list[str]:
    """Return the names of all registered proposal strategies, sorted.

    Returns
    -------
    list of str
    """
    return sorted(_STRATEGIES)


def get_proposal_strategy(name: str) -> ProposalStrategy:
    """Look up a registered proposal strategy.

    Parameters
    ----------
    name : str
        A name from :func:`list_proposal_strategies`.

    Returns
    -------
    ProposalStrategy
        ``fn(inputs: ImageInputs, *, rng) -> SegmentScores``.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the valid names.
    """
    try:
        return _STRATEGIES[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(n) for n in list_proposal_strategies())
        raise ValueError(f"unknown proposal strategy {name!r}; valid names are: {valid}.") from None


# ------------------------------------------------------------------------ strategies


def _top2(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) largest and second-largest probability of a (C, H, W) array, C >= 2."""
    c = p.shape[0]
    part = np.partition(p, c - 2, axis=0)
    return part[c - 1], part[c - 2]


def _margin_means(inputs: ImageInputs) -> np.ndarray:
    p1, p2 = _top2(inputs.probabilities)
    return inputs.segment_mean(1.0 - (p1 - p2))


@register_proposal_strategy("random")
def random_strategy(inputs: ImageInputs, *, rng: np.random.Generator) -> SegmentScores:
    """Uniform scores in [0, 1) from the seeded generator of the image."""
    scores = rng.random(inputs.n_segments)
    # a superpixel without a valid pixel cannot be proposed
    has_valid = np.bincount(inputs.segments[inputs.valid], minlength=inputs.n_segments) > 0
    return SegmentScores(scores=np.where(has_valid, scores, np.nan))


@register_proposal_strategy("entropy")
def entropy_strategy(inputs: ImageInputs, *, rng: np.random.Generator) -> SegmentScores:
    """Mean normalised entropy ``-sum_c p log p / log C`` of the superpixel's pixels."""
    p = inputs.probabilities
    plogp = p * np.log(np.clip(p, 1e-12, None))
    entropy = -plogp.sum(axis=0) / math.log(p.shape[0])
    return SegmentScores(scores=inputs.segment_mean(entropy))


@register_proposal_strategy("uncertain_area")
def uncertain_area_strategy(inputs: ImageInputs, *, rng: np.random.Generator) -> SegmentScores:
    """Summed normalised entropy of the superpixel over the image's mean superpixel area."""
    p = inputs.probabilities
    plogp = p * np.log(np.clip(p, 1e-12, None))
    entropy = -plogp.sum(axis=0) / math.log(p.shape[0])
    seg = inputs.segments[inputs.valid]
    area = np.bincount(seg, minlength=inputs.n_segments)
    sums = np.bincount(seg, weights=entropy[inputs.valid], minlength=inputs.n_segments)
    mean_area = area[area > 0].mean() if (area > 0).any() else 1.0
    return SegmentScores(scores=np.where(area > 0, sums / mean_area, np.nan))


@register_proposal_strategy("margin")
def margin_strategy(inputs: ImageInputs, *, rng: np.random.Generator) -> SegmentScores:
    """Mean of ``1 - (p_top1 - p_top2)`` over the superpixel's pixels."""
    return SegmentScores(scores=_margin_means(inputs))


@register_proposal_strategy("disagreement")
def disagreement_strategy(inputs: ImageInputs, *, rng: np.random.Generator) -> SegmentScores:
    """Superpixels whose pseudo-label majority differs from the model's majority argmax.

    See the module docstring for the score, the placement and the margin fallback.
    """
    if inputs.pseudo_labels is None:
        raise ValueError(
            f"strategy 'disagreement' needs pseudo_labels for image {inputs.name!r}; pass "
            "pseudo_labels={image: (H, W) uint8 labels propagated from the clicks}."
        )
    p = inputs.probabilities
    c, k = p.shape[0], inputs.n_segments
    valid = inputs.valid
    seg = inputs.segments
    argmax = p.argmax(axis=0)
    top1 = p.max(axis=0)
    labels = inputs.pseudo_labels
    labelled = valid & (labels != IGNORE_INDEX)

    # majority label and majority model class per superpixel (ties -> lowest class)
    lab_counts = np.bincount(
        seg[labelled] * c + labels[labelled].astype(np.int64), minlength=k * c
    ).reshape(k, c)
    n_labelled = lab_counts.sum(axis=1)
    label_major = lab_counts.argmax(axis=1)
    model_major = (
        np.bincount(seg[valid] * c + argmax[valid], minlength=k * c).reshape(k, c).argmax(axis=1)
    )
    wrong = np.bincount(seg[labelled], weights=(argmax[labelled] != labels[labelled]), minlength=k)
    share = np.divide(wrong, n_labelled, out=np.zeros(k), where=n_labelled > 0)
    confidence = inputs.segment_mean(top1)
    disagrees = (n_labelled > 0) & (label_major != model_major)
    scores = np.where(disagrees, share * confidence, np.nan)
    scores[~(scores > 0)] = np.nan

    # click where the model is most confident in its (disagreeing) majority class
    major_map = model_major[seg]
    placement = np.where(argmax == major_map, top1, np.nan)

    margin = _margin_means(inputs)
    fallback = SegmentScores(scores=np.zeros(k), rank_by=margin, skip_clicked=True)
    return SegmentScores(scores=scores, placement=placement, skip_clicked=False, fallback=fallback)


# ------------------------------------------------------------------------ validation


def _check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__}).")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_keys(what: str, mapping: Any, names: list[str], *, required: bool) -> Mapping:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise ValueError(
            f"{what} must be a mapping image name -> array, got {type(mapping).__name__}."
        )
    extra = sorted(set(mapping) - set(names), key=str)
    if extra:
        raise ValueError(
            f"{what} has image(s) {extra} that are not in probabilities; "
            "every mapping must use the image names of probabilities."
        )
    if required:
        missing = sorted(set(names) - set(mapping))
        if missing:
            raise ValueError(f"{what} has no entry for image(s) {missing}.")
    return mapping


def _prepare_image(
    name: str,
    probabilities: Any,
    segments: Any,
    points: Any,
    pseudo_labels: Any,
    valid: Any,
) -> ImageInputs:
    p = np.asarray(probabilities)
    if p.ndim != 3:
        raise ValueError(f"probabilities[{name!r}] must have shape (C, H, W), got shape {p.shape}.")
    c, h, w = p.shape
    if c < 2 or h < 1 or w < 1:
        raise ValueError(
            f"probabilities[{name!r}] must have C >= 2 classes and a non-empty image, "
            f"got shape {p.shape} (C, H, W)."
        )
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(
            f"probabilities[{name!r}] must be a float array (softmax output), got dtype {p.dtype}."
        )
    if not np.isfinite(p).all():
        raise ValueError(f"probabilities[{name!r}] contains NaN or infinite values.")
    if p.min() < -1e-6 or p.max() > 1.0 + 1e-6:
        raise ValueError(
            f"probabilities[{name!r}] must lie in [0, 1] (a softmax), got values in "
            f"[{float(p.min()):.4g}, {float(p.max()):.4g}]; apply softmax over the class axis."
        )

    seg = np.asarray(segments)
    if seg.shape != (h, w):
        raise ValueError(
            f"segments[{name!r}] has shape {seg.shape} but probabilities[{name!r}] has shape "
            f"{p.shape} (C, H, W); segments must be ({h}, {w})."
        )
    if not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(f"segments[{name!r}] must be an integer array, got dtype {seg.dtype}.")
    if seg.min() < 0:
        raise ValueError(
            f"segments[{name!r}] must be non-negative, got minimum {int(seg.min())}; "
            "relabel to 0..K-1."
        )
    seg = seg.astype(np.int64, copy=False)
    n_segments = int(seg.max()) + 1

    pts = np.zeros((0, 3), dtype=np.int64) if points is None else np.asarray(points)
    if pts.size == 0:
        pts = np.zeros((0, 3), dtype=np.int64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(
            f"points[{name!r}] must have shape (N, 3) with columns x, y, class, "
            f"got shape {pts.shape}."
        )
    if not np.issubdtype(pts.dtype, np.integer):
        raise ValueError(f"points[{name!r}] must be an integer array, got dtype {pts.dtype}.")
    pts = pts.astype(np.int64, copy=False)
    outside = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"points[{name!r}] row {i} (x={pts[i, 0]}, y={pts[i, 1]}) lies outside the "
            f"{h}x{w} (HxW) image."
        )
    clicked = np.zeros(n_segments, dtype=bool)
    clicked[seg[pts[:, 1], pts[:, 0]]] = True

    if valid is None:
        ok = np.ones((h, w), dtype=bool)
    else:
        ok = np.asarray(valid)
        if ok.shape != (h, w):
            raise ValueError(
                f"valid[{name!r}] has shape {ok.shape} but probabilities[{name!r}] has shape "
                f"{p.shape} (C, H, W); valid must be ({h}, {w})."
            )
        if ok.dtype != np.bool_:
            raise ValueError(f"valid[{name!r}] must be a bool array, got dtype {ok.dtype}.")

    labels = None
    if pseudo_labels is not None:
        labels = np.asarray(pseudo_labels)
        if labels.shape != (h, w):
            raise ValueError(
                f"pseudo_labels[{name!r}] has shape {labels.shape} but probabilities[{name!r}] "
                f"has shape {p.shape} (C, H, W); pseudo_labels must be ({h}, {w})."
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"pseudo_labels[{name!r}] must be an integer array, got dtype {labels.dtype}."
            )
        bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= c))
        if bad.any():
            raise ValueError(
                f"pseudo_labels[{name!r}] holds values {np.unique(labels[bad])[:5].tolist()} "
                f"outside 0..{c - 1} (the classes of probabilities) and {IGNORE_INDEX} "
                "(unlabelled)."
            )

    return ImageInputs(
        name=name,
        probabilities=p,
        segments=seg,
        points=pts,
        valid=ok,
        pseudo_labels=labels,
        n_segments=n_segments,
        clicked=clicked,
    )


# ------------------------------------------------------------------------- placement


def _interior_distance(segments: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) distance of each pixel to the nearest superpixel edge, border or invalid pixel."""
    edge = ~valid
    edge[0, :] = edge[-1, :] = True
    edge[:, 0] = edge[:, -1] = True
    vertical = segments[1:, :] != segments[:-1, :]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    horizontal = segments[:, 1:] != segments[:, :-1]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return ndimage.distance_transform_edt(~edge)


def _centroid_distance(segments: np.ndarray, n_segments: int) -> np.ndarray:
    """(H, W) distance of each pixel to the centroid of its superpixel."""
    h, w = segments.shape
    rows, cols = np.indices((h, w))
    flat = segments.ravel()
    counts = np.maximum(np.bincount(flat, minlength=n_segments), 1)
    cy = np.bincount(flat, weights=rows.ravel(), minlength=n_segments) / counts
    cx = np.bincount(flat, weights=cols.ravel(), minlength=n_segments) / counts
    return np.hypot(rows - cy[segments], cols - cx[segments])


class _Placer:
    """Best pixel per superpixel for one image (shared geometry computed once)."""

    def __init__(self, inputs: ImageInputs) -> None:
        self.inputs = inputs
        self.interior = _interior_distance(inputs.segments, inputs.valid)
        self.centroid = _centroid_distance(inputs.segments, inputs.n_segments)
        allowed = inputs.valid.copy()
        pts = inputs.points
        allowed[pts[:, 1], pts[:, 0]] = False  # never propose an existing click
        self.allowed = allowed
        self._default: np.ndarray | None = None

    def best(self, placement: np.ndarray | None) -> np.ndarray:
        """(K,) flat index of the chosen pixel of each superpixel, -1 where none."""
        if placement is None and self._default is not None:
            return self._default
        allowed = self.allowed
        if placement is not None:
            placement = np.asarray(placement, dtype=np.float64)
            if placement.shape != allowed.shape:
                raise ValueError(
                    f"strategy placement for image {self.inputs.name!r} has shape "
                    f"{placement.shape}, expected {allowed.shape}."
                )
            allowed = allowed & np.isfinite(placement)
        idx = np.flatnonzero(allowed.ravel())
        seg = self.inputs.segments.ravel()[idx]
        # np.lexsort: last key is the primary one
        keys: list[np.ndarray] = [idx, self.centroid.ravel()[idx], -self.interior.ravel()[idx]]
        if placement is not None:
            keys.append(-placement.ravel()[idx])
        keys.append(seg)
        order = np.lexsort(keys)
        seg_sorted = seg[order]
        first = np.ones(seg_sorted.size, dtype=bool)
        first[1:] = seg_sorted[1:] != seg_sorted[:-1]
        best = np.full(self.inputs.n_segments, -1, dtype=np.int64)
        best[seg_sorted[first]] = idx[order[first]]
        if placement is None:
            self._default = best
        return best


# ------------------------------------------------------------------------- selection


def _image_seed(seed: int, name: str) -> np.random.SeedSequence:
    return np.random.SeedSequence(
        [seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, zlib.crc32(name.encode())]
    )


def _as_scores(values: Any, name: str, n_segments: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n_segments,):
        raise ValueError(
            f"strategy {what} for image {name!r} has shape {arr.shape}, expected "
            f"({n_segments},) (one per superpixel)."
        )
    return arr


def propose_clicks(
    strategy: str,
    *,
    probabilities: Mapping[str, np.ndarray],
    segments: Mapping[str, np.ndarray],
    points: Mapping[str, np.ndarray],
    pseudo_labels: Mapping[str, np.ndarray] | None = None,
    k: int = 10,
    per_image: int | None = None,
    min_distance: float = 16.0,
    seed: int = 0,
    valid: Mapping[str, np.ndarray] | None = None,
) -> list[Proposal]:
    """Propose the next clicks with a registered strategy.

    Parameters
    ----------
    strategy : str
        A name from :func:`list_proposal_strategies`.
    probabilities : Mapping[str, np.ndarray]
        Image name -> (C, H, W) float softmax of the model (C >= 2). Its keys are the images.
    segments : Mapping[str, np.ndarray]
        Image name -> (H, W) int superpixels 0..K-1; one entry per image.
    points : Mapping[str, np.ndarray]
        Image name -> (N, 3) int existing clicks (x, y, class); a missing image has none.
    pseudo_labels : Mapping[str, np.ndarray], optional
        Image name -> (H, W) integer labels propagated from the clicks
        (``IGNORE_INDEX`` = unlabelled). Needed by ``disagreement`` for every image.
    k : int, default 10
        Total number of proposals (fewer only when candidates run out).
    per_image : int, optional
        Exactly this many proposals per image instead (fewer only when an image runs out
        of candidates); overrides ``k``.
    min_distance : float, default 16.0
        No two proposals of one image closer than this (Euclidean, pixels); a superpixel
        whose location is too close to a taken proposal is skipped, not moved.
    seed : int, default 0
        Seed of the per-image generators handed to the strategy.
    valid : Mapping[str, np.ndarray], optional
        Image name -> (H, W) bool, where clicks may go; a missing image is all valid.

    Returns
    -------
    list of Proposal
        In the order taken: tier (see :class:`SegmentScores`), then weighted rank
        (descending), then image name, then superpixel id. Deterministic for a seed.

    Raises
    ------
    ValueError
        Unknown strategy, invalid options, or arrays whose shapes or types do not fit
        (the message names the image).
    """
    fn = get_proposal_strategy(strategy)
    k = _check_int("k", k, minimum=0)
    if per_image is not None:
        per_image = _check_int("per_image", per_image, minimum=0)
    seed = _check_int("seed", seed)
    if (
        isinstance(min_distance, bool)
        or not isinstance(min_distance, numbers.Real)
        or not math.isfinite(min_distance)
        or min_distance < 0
    ):
        raise ValueError(f"min_distance must be a finite number >= 0, got {min_distance!r}.")
    if not isinstance(probabilities, Mapping):
        raise ValueError(
            "probabilities must be a mapping image name -> (C, H, W) array, "
            f"got {type(probabilities).__name__}."
        )
    names = sorted(probabilities, key=str)
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"image names must be strings, got {name!r}.")
    segments = _check_keys("segments", segments, names, required=True)
    points = _check_keys("points", points, names, required=False)
    pseudo_labels = _check_keys("pseudo_labels", pseudo_labels, names, required=False)
    valid = _check_keys("valid", valid, names, required=False)
    if not names or (k == 0 if per_image is None else per_image == 0):
        return []

    images = [
        _prepare_image(
            name,
            probabilities[name],
            segments[name],
            points.get(name),
            pseudo_labels.get(name),
            valid.get(name),
        )
        for name in names
    ]

    # click-count weighting: w = 1 / sqrt(1 + n_clicks / mean_clicks_per_image)
    n_clicks = np.array([img.points.shape[0] for img in images], dtype=np.float64)
    mean_clicks = n_clicks.mean()
    weights = (
        1.0 / np.sqrt(1.0 + n_clicks / mean_clicks) if mean_clicks > 0 else np.ones(len(images))
    )

    columns: dict[str, list[np.ndarray]] = {
        key: [] for key in ("tier", "rank", "image", "segment", "score", "x", "y")
    }
    for i, img in enumerate(images):
        result = fn(img, rng=np.random.default_rng(_image_seed(seed, img.name)))
        placer = _Placer(img)
        h, w = img.segments.shape
        tier, level = 0, result
        while level is not None:
            scores = _as_scores(level.scores, img.name, img.n_segments, "scores")
            rank = (
                scores
                if level.rank_by is None
                else _as_scores(level.rank_by, img.name, img.n_segments, "rank_by")
            )
            best = placer.best(level.placement)
            keep = np.isfinite(scores) & np.isfinite(rank) & (best >= 0)
            if level.skip_clicked:
                keep &= ~img.clicked
            seg_ids = np.flatnonzero(keep)
            r = rank[seg_ids]
            columns["rank"].append(np.where(r >= 0, r * weights[i], r / weights[i]))
            columns["tier"].append(np.full(seg_ids.size, tier))
            columns["image"].append(np.full(seg_ids.size, i))
            columns["segment"].append(seg_ids)
            columns["score"].append(scores[seg_ids])
            columns["y"].append(best[seg_ids] // w)
            columns["x"].append(best[seg_ids] % w)
            tier, level = tier + 1, level.fallback
        logger.debug(
            "%s: %s on %dx%d, %d superpixels, %d clicks, weight %.3f",
            strategy,
            img.name,
            h,
            w,
            img.n_segments,
            img.points.shape[0],
            weights[i],
        )

    cand = {key: np.concatenate(parts) for key, parts in columns.items()}
    order = np.lexsort((cand["segment"], cand["image"], -cand["rank"], cand["tier"]))

    quota = np.full(len(images), per_image if per_image is not None else k)
    total = k if per_image is None else per_image * len(images)
    taken_xy: list[list[tuple[int, int]]] = [[] for _ in images]
    taken_seg: set[tuple[int, int]] = set()
    min_d2 = float(min_distance) ** 2
    proposals: list[Proposal] = []
    for j in order.tolist():
        i, s = int(cand["image"][j]), int(cand["segment"][j])
        if quota[i] == 0 or (i, s) in taken_seg:
            continue
        x, y = int(cand["x"][j]), int(cand["y"][j])
        if taken_xy[i] and min_d2 > 0:
            xy = np.asarray(taken_xy[i])
            if (((xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2) < min_d2).any():
                continue
        taken_xy[i].append((x, y))
        taken_seg.add((i, s))
        quota[i] -= 1
        proposals.append(
            Proposal(image=images[i].name, x=x, y=y, score=float(cand["score"][j]), segment=s)
        )
        if len(proposals) == total:
            break
    logger.debug("%s: %d proposals over %d image(s)", strategy, len(proposals), len(images))
    return proposals
