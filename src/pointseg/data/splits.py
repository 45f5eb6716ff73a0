"""Train/val/test splits: from a list file, or by a seeded rule that keeps groups together."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import yaml

__all__ = ["SPLITS", "group_key", "read_split_file", "split_stems"]

SPLITS: tuple[str, str, str] = ("train", "val", "test")


def group_key(stem: str, pattern: str | None) -> str:
    """The group of ``stem``: the first capture group of ``pattern`` (or the whole match).

    Without a pattern every stem is its own group.
    """
    if pattern is None:
        return stem
    match = re.search(pattern, stem)
    if match is None:
        raise ValueError(
            f"group pattern {pattern!r} does not match file {stem!r}; "
            "fix the pattern (e.g. 't\\d+$' for tile names ending in t1, t2, ...)"
        )
    return match.group(1) if match.groups() else match.group(0)


def split_stems(
    stems: Iterable[str],
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    group_pattern: str | None = None,
) -> dict[str, list[str]]:
    """Split stems into train/val/test with a seeded rule that never splits a group.

    Parameters
    ----------
    stems : iterable of str
        File stems.
    fractions : (train, val, test)
        Target shares of the stems; must sum to 1.
    seed : int
        Shuffles the groups.
    group_pattern : str, optional
        Regular expression whose first group (or whole match) names a stem's group, e.g.
        ``"t\\d+$"`` puts all parts of a tile in the same split.

    Returns
    -------
    dict
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.

    Notes
    -----
    Groups are shuffled, then each goes to the split furthest below its target count, so every
    split with a positive fraction gets at least one group when there are enough groups.
    """
    stems = sorted(set(stems))
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split fractions must be three non-negative shares summing to 1, got {fractions}"
        )
    groups: dict[str, list[str]] = {}
    for s in stems:
        groups.setdefault(group_key(s, group_pattern), []).append(s)
    keys = sorted(groups)
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]
    targets = np.asarray(fractions, dtype=float) * len(stems)
    counts = np.zeros(3)
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    # after the first group, splits with a positive share but no group yet come first
    for key in order:
        empty = [i for i in range(3) if fractions[i] > 0 and counts[i] == 0]
        if empty and counts.sum() > 0:
            idx = max(empty, key=lambda i: targets[i] - counts[i])
        else:
            idx = int(np.argmax(targets - counts))
        out[SPLITS[idx]].extend(groups[key])
        counts[idx] += len(groups[key])
    return {k: sorted(v) for k, v in out.items()}


def read_split_file(
    path: str | Path, *, stems: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """Read a split list file.

    Two formats: YAML (``.yaml``/``.yml``) mapping ``train``/``val``/``test`` to lists of stems,
    or text/CSV with one ``stem,split`` (or ``stem split``) per line.

    Raises
    ------
    ValueError
        Unknown split names, stems in two splits, or (when ``stems`` is given) stems that are not
        in the dataset.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist")
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    if path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(
                f"split file {path}: expected a mapping of split name -> list of stems"
            )
        for split, names in data.items():
            if split not in out:
                raise ValueError(f"split file {path}: unknown split {split!r}; use {list(SPLITS)}")
            out[split].extend(Path(str(n)).stem for n in names or [])
    else:
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in re.split(r"[,\s]+", line) if p.strip()]
            if len(parts) != 2:
                raise ValueError(
                    f"split file {path} line {lineno}: expected 'stem,split', got {line!r}"
                )
            stem, split = Path(parts[0]).stem, parts[1]
            if lineno == 1 and split not in out and parts[0].lower() in ("stem", "image", "name"):
                continue  # header
            if split not in out:
                raise ValueError(
                    f"split file {path} line {lineno}: unknown split {split!r}; use {list(SPLITS)}"
                )
            out[split].append(stem)
    seen: dict[str, str] = {}
    for split, names in out.items():
        for n in names:
            if n in seen and seen[n] != split:
                raise ValueError(f"split file {path}: {n!r} is in both {seen[n]!r} and {split!r}")
            seen[n] = split
    if stems is not None:
        unknown = sorted(set(seen) - set(stems))
        if unknown:
            raise ValueError(
                f"split file {path}: {len(unknown)} name(s) not in the dataset, e.g. {unknown[:3]}"
            )
    return {k: sorted(set(v)) for k, v in out.items()}
