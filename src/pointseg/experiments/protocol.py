"""A protocol that can tell settings apart: cross-validation by group, paired differences.

With one validation and one test tile, two seeds of one setting differ by up to 0.1 mIoU on
the Dubai set. Cross-validation by group (each group, e.g. a tile, is the test split once and
the validation split once) averages over every tile; comparing two settings on the *same* fold
and seed cancels what the fold and seed do to both, so the paired difference has a far smaller
standard error than the difference of two means.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["group_folds", "mean_se", "paired_difference"]


def group_folds(names: Sequence[str], pattern: str) -> list[dict[str, list[str]]]:
    """Leave-one-group-out folds: fold ``k`` tests group ``k`` and validates on group ``k+1``.

    Parameters
    ----------
    names : sequence of str
        Image stems.
    pattern : str
        Regular expression whose first match in a stem names its group (e.g. ``t\\d+$``).

    Returns
    -------
    list of dict
        One ``{"train": [...], "val": [...], "test": [...]}`` per group, in sorted group
        order: every group is tested exactly once, validated exactly once, and no group is in
        two splits of one fold.

    Raises
    ------
    ValueError
        If a stem has no group or there are fewer than 3 groups.
    """
    regex = re.compile(pattern)
    groups: dict[str, list[str]] = {}
    for name in names:
        match = regex.search(name)
        if match is None:
            raise ValueError(f"image {name!r} has no group: {pattern!r} does not match it")
        groups.setdefault(match.group(0), []).append(name)
    keys = sorted(groups)
    if len(keys) < 3:
        raise ValueError(
            f"cross-validation by group needs at least 3 groups (train, val, test); "
            f"{pattern!r} finds {len(keys)}: {keys}"
        )
    folds = []
    for k, test in enumerate(keys):
        val = keys[(k + 1) % len(keys)]
        folds.append(
            {
                "train": sorted(n for g in keys if g not in (test, val) for n in groups[g]),
                "val": sorted(groups[val]),
                "test": sorted(groups[test]),
                "groups": {"test": test, "val": val},
            }
        )
    return folds


def mean_se(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, standard error of the mean (sample std / sqrt n; nan for n < 2) and n."""
    v = np.asarray([x for x in values if x == x], dtype=float)
    if not len(v):
        return math.nan, math.nan, 0
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(v.mean()), se, len(v)


def paired_difference(
    rows: Sequence[Mapping[str, Any]],
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    *,
    pair_on: Sequence[str],
    value: str = "test_miou",
) -> dict[str, Any]:
    """Mean and standard error of ``value(a) - value(b)`` over runs paired on ``pair_on``.

    Parameters
    ----------
    rows : sequence of mapping
        One per run: its settings (as strings or numbers) and ``value``.
    a, b : mapping
        The two settings compared, e.g. ``{"loss": "masked_mse"}`` and
        ``{"loss": "partial_ce"}``; a row belongs to ``a`` when it has every item of ``a``.
    pair_on : sequence of str
        The columns two paired runs share: the fold, the seed and every other varied setting.

    Returns
    -------
    dict
        ``mean``, ``se``, ``n`` (pairs), ``resolved`` (``|mean| > 2 se``) and ``pairs``.
    """

    def member(row: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
        return all(str(row.get(k)) == str(v) for k, v in spec.items())

    def key(row: Mapping[str, Any]) -> tuple:
        return tuple(str(row.get(k)) for k in pair_on)

    side_b = {key(r): r for r in rows if member(r, b)}
    pairs = []
    for r in rows:
        if member(r, a) and key(r) in side_b:
            va, vb = float(r[value]), float(side_b[key(r)][value])
            if va == va and vb == vb:
                pairs.append((key(r), va - vb))
    mean, se, n = mean_se([d for _, d in pairs])
    return {
        "mean": mean,
        "se": se,
        "n": n,
        "resolved": bool(n > 1 and se == se and abs(mean) > 2 * se),
        "pairs": pairs,
    }
