"""Datadog as a metric provider, through its v2 scalar query API (`POST /api/v2/query/scalar`).

Rules:
- One request per measurement over the last `window` (e.g. `5m`), reduced by `aggregator` (last, avg,
  sum, min, max); with `formula`, the formula's column is the value (queries are `query1`, ...).
- A number column with one value is a float, with several (a query `by {tag}`) a tuple of floats;
  no column, no values, or only nulls is no data (`NoDataError`), never a pass.
- Not 2xx (403 bad keys, 429 rate limited, 400 a query Datadog refuses) is an error with Datadog's own
  `errors` text; the API and application keys come from Secrets and never appear in messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelrollout.providers import NoDataError, ProviderError
from modelrollout.providers.http import send

DEFAULT_ADDRESS = "https://api.datadoghq.com"
AGGREGATORS = ("last", "avg", "sum", "min", "max")


@dataclass(frozen=True)
class DatadogConfig:
    query: str
    api_key: str
    app_key: str
    address: str = DEFAULT_ADDRESS
    window: float = 300.0  # seconds before now that the query covers
    aggregator: str = "last"
    formula: str = ""
    timeout: float = 10.0


def scalar_request(config: DatadogConfig, now: float) -> dict[str, Any]:
    """The body of a scalar query: one metrics query named query1, and the formula when there is one."""
    attributes: dict[str, Any] = {
        "from": int((now - config.window) * 1000),
        "to": int(now * 1000),
        "queries": [
            {"data_source": "metrics", "name": "query1", "query": config.query, "aggregator": config.aggregator}
        ],
    }
    if config.formula:
        attributes["formulas"] = [{"formula": config.formula}]
    return {"data": {"type": "scalar_request", "attributes": attributes}}


def parse_scalar(answer: Any) -> float | tuple[float, ...]:
    """The value in a scalar response: the last number column (the formula's, when there is one)."""
    columns = (((answer or {}).get("data") or {}).get("attributes") or {}).get("columns") or []
    numbers = [column for column in columns if column.get("type") == "number"]
    if not numbers:
        raise NoDataError("Datadog answered no number column")
    values = [float(value) for value in numbers[-1].get("values") or [] if value is not None]
    if not values:
        raise NoDataError("Datadog answered no value for the query in the window")
    return values[0] if len(values) == 1 else tuple(values)


class DatadogProvider:
    name = "datadog"

    def __init__(self, config: DatadogConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock

    def measure(self) -> float | tuple[float, ...]:
        config = self._config
        url = config.address.rstrip("/") + "/api/v2/query/scalar"
        answer = send(
            f"Datadog at {config.address}",
            "POST",
            url,
            config.timeout,
            json=scalar_request(config, self._clock()),
            headers={"DD-API-KEY": config.api_key, "DD-APPLICATION-KEY": config.app_key},
        )
        if answer.status_code == 429:
            raise ProviderError(f"Datadog at {config.address} rate-limits the queries (429); measure less often")
        try:
            document = answer.json()
        except ValueError:
            document = {}
        if not 200 <= answer.status_code < 300:
            errors = document.get("errors") if isinstance(document, dict) else None
            shown = "; ".join(map(str, errors)) if isinstance(errors, list) else str(errors or answer.text[:200])
            raise ProviderError(f"Datadog at {config.address} answered {answer.status_code}: {shown}")
        return parse_scalar(document)
