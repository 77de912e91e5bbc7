"""A key to a set of values, where a key whose set empties goes away: indexes that must not grow with
what has left them (the informers' owner index, pushed alerts by label, matchers by alertname)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Hashable)


class SetIndex(Generic[K, V]):
    """Not thread-safe: its owner holds the lock, if any."""

    def __init__(self) -> None:
        self._sets: dict[K, set[V]] = {}

    def __len__(self) -> int:
        """Keys with at least one value."""
        return len(self._sets)

    def add(self, key: K, value: V) -> None:
        self._sets.setdefault(key, set()).add(value)

    def discard(self, key: K, value: V) -> None:
        values = self._sets.get(key)
        if values is not None:
            values.discard(value)
            if not values:
                del self._sets[key]

    def get(self, key: K) -> frozenset[V] | set[V]:
        """The values under `key` (the index's own set: copy it before changing the index while iterating)."""
        return self._sets.get(key, _EMPTY)


_EMPTY: frozenset = frozenset()
