"""Metric providers: adapters that turn a query into a number, behind one small interface.

Rules:
- `query(text)` returns a float (a scalar or one series) or a tuple of floats (several series).
- `query_histogram(text)` returns a histogram's buckets as (le, value) pairs, one per series of the
  result; each series must carry an `le` label, and no two the same (aggregate with `sum by (le)`).
- No data (an empty vector) raises `NoDataError`: the analysis decides what that means (inconclusive
  by default), so a provider can never turn missing data into a pass.
- Anything else that goes wrong raises `ProviderError` with a message a person can act on.
"""

from __future__ import annotations

from typing import Protocol


class ProviderError(Exception):
    """The provider could not answer (unreachable, timeout, bad query, unauthorized)."""


class NoDataError(ProviderError):
    """The query ran and matched no series."""


class MetricProvider(Protocol):
    name: str

    def query(self, text: str) -> float | tuple[float, ...]: ...

    def query_histogram(self, text: str) -> tuple[tuple[float, float], ...]: ...
