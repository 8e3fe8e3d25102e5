"""Name → implementation registries, one per kind of extension (source format, matcher, check, action)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import PipelineError

T = TypeVar("T")


class Registry(Generic[T]):
    """A table of named implementations; an unknown name's error lists the valid ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = item
            return item

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise PipelineError(
                f"unknown {self.kind} {name!r}",
                hint=f"valid {self.kind}s: {', '.join(sorted(self._items))}",
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def in_order(self) -> list[str]:
        """Names in registration order (for messages whose order is part of the contract)."""
        return list(self._items)

    def pop(self, name: str) -> T:
        """Remove and return an entry (an extension loaded for a test, or replaced)."""
        self.get(name)   # the same error as get for a name never registered
        return self._items.pop(name)
