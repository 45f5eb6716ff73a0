"""One registry of ``torch.nn.Module`` classes by name, for losses and regularisers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from pointseg.options import check_option_names, keyword_names

__all__ = ["ModuleRegistry"]

_M = TypeVar("_M", bound=type[nn.Module])


class ModuleRegistry:
    """Module classes registered under names; an unknown name or option lists the valid ones.

    Parameters
    ----------
    kind, plural : str
        What the modules are, for messages (``"loss"``/``"losses"``).
    """

    def __init__(self, kind: str, plural: str) -> None:
        self.kind = kind
        self.plural = plural
        self._classes: dict[str, type[nn.Module]] = {}

    def register(self, name: str) -> Callable[[_M], _M]:
        """Class decorator registering a module class under ``name`` (the class is returned).

        Raises
        ------
        ValueError
            If ``name`` is empty, already registered to another class, or the decorated
            object is not a ``torch.nn.Module`` subclass.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}.")

        def decorator(cls: _M) -> _M:
            if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
                raise ValueError(
                    f"register_{self.kind}({name!r}) expects a torch.nn.Module subclass, got "
                    f"{cls!r}."
                )
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(
                    f"a {self.kind} named {name!r} is already registered "
                    f"({self._classes[name].__name__}); choose another name."
                )
            self._classes[name] = cls
            return cls

        return decorator

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._classes)

    def get_class(self, name: object) -> type[nn.Module]:
        """The class registered under ``name``; an unknown name lists the valid ones."""
        if not isinstance(name, str) or name not in self._classes:
            raise ValueError(
                f"unknown {self.kind} {name!r}; available {self.plural}: {', '.join(self.names())}"
            )
        return self._classes[name]

    def create(self, name: str, **options: Any) -> nn.Module:
        """An instance of ``name`` with ``options``.

        Raises
        ------
        ValueError
            For an unknown name or option (listing the valid ones) or an option value the
            constructor rejects.
        """
        cls = self.get_class(name)
        options = check_option_names(self.kind, name, options, keyword_names(cls.__init__))
        try:
            return cls(**options)
        except TypeError as exc:  # e.g. an option of the wrong kind
            raise ValueError(f"{self.kind} {name!r} rejects options {options}: {exc}") from exc
