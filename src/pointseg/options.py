"""Checking keyword options against a constructor's signature (models, losses, datasets), and
reading a setting as a number."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["as_number", "check_option_names", "keyword_names"]


def as_number(value: Any) -> float:
    """``value`` as a float, or NaN when it is not a number (so every range check refuses it)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def keyword_names(fn: Callable[..., Any], *, skip: Iterable[str] = ()) -> list[str] | None:
    """The keyword parameters of ``fn`` (minus ``skip``), or None when it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    dropped = {"self", *skip}
    return sorted(
        n
        for n, p in params.items()
        if n not in dropped and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def check_option_names(
    kind: str, name: str, options: Any, valid: Iterable[str] | None
) -> dict[str, Any]:
    """``options`` as a dict, after checking that it is a mapping of names in ``valid``.

    Raises
    ------
    ValueError
        ``"unknown option(s) ['x'] for model 'unet'; valid options: a, b"``.
    """
    if not isinstance(options, Mapping):
        raise ValueError(f'{kind} options must be a mapping such as {{"k": 1}}, got {options!r}')
    if valid is None:
        return dict(options)
    valid = sorted(valid)
    unknown = sorted(set(map(str, options)) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for {kind} {name!r}; valid options: "
            f"{', '.join(valid) or 'none'}"
        )
    return dict(options)
