"""A web endpoint as a metric provider: one HTTP(S) request, one value read from its JSON answer.

Rules (the same no-data / error split as Prometheus, so a missing value can never pass a check):
- A 2xx answer whose JSON holds a number (or a numeric string, a boolean as 1/0, or a list of numbers)
  at `jsonPath` is the value. The path is JSONPath's simple subset: `$`, `.name`, `['name']`, `[0]`.
- The path not in the answer, or `null` there, is no data (`NoDataError`).
- An answer that is not 2xx, not JSON, or holds something else at the path, a timeout or a refused
  connection is an error (`ProviderError`), naming the URL and what came back.
- TLS is verified unless `insecureSkipVerify`; header values (tokens) come from Secrets and are never
  shown in messages. One attempt per measurement: retries belong to the analysis.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from modelrollout.providers import NoDataError, ProviderError
from modelrollout.providers.http import send

SHOWN_ANSWER = 200  # characters of an unexpected answer put in the error message
_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]")


@dataclass(frozen=True)
class WebConfig:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    json_path: str = "$"
    timeout: float = 10.0
    insecure_skip_verify: bool = False


def parse_path(path: str) -> tuple[str | int, ...]:
    """`$.data.score[0]` -> ("data", "score", 0); a path outside the subset is a ValueError."""
    if not path.startswith("$"):
        raise ValueError(f"jsonPath {path!r} must start with $")
    segments: list[str | int] = []
    position = 1
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            raise ValueError(f"jsonPath {path!r}: cannot read {path[position:]!r} (use .name, ['name'] or [index])")
        name, index, quoted = match.groups()
        segments.append(int(index) if index is not None else (name if name is not None else quoted))
        position = match.end()
    return tuple(segments)


def select(document: Any, path: str) -> Any:
    """The value at `path`; NoDataError when the answer does not have it."""
    value = document
    for segment in parse_path(path):
        indexed = isinstance(segment, int) and isinstance(value, list) and segment < len(value)
        named = isinstance(segment, str) and isinstance(value, dict) and segment in value
        if not (indexed or named):
            raise NoDataError(f"the answer has no {path}")
        value = value[segment]
    if value is None:
        raise NoDataError(f"the answer has null at {path}")
    return value


def as_number(value: Any, path: str) -> float | tuple[float, ...]:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ProviderError(f"the answer has {value[:SHOWN_ANSWER]!r} at {path}, not a number") from None
    if isinstance(value, list) and all(isinstance(item, int | float) and not isinstance(item, bool) for item in value):
        if not value:
            raise NoDataError(f"the answer has an empty list at {path}")
        return tuple(float(item) for item in value)
    raise ProviderError(f"the answer has {json.dumps(value)[:SHOWN_ANSWER]} at {path}, not a number or list of numbers")


class WebProvider:
    name = "web"

    def __init__(self, config: WebConfig) -> None:
        self._config = config

    def measure(self) -> float | tuple[float, ...]:
        config = self._config
        answer = send(
            f"{config.method} {config.url}",
            config.method,
            config.url,
            config.timeout,
            headers=dict(config.headers),
            data=config.body.encode() if config.body else None,
            verify=not config.insecure_skip_verify,
            allow_redirects=False,
        )
        if not 200 <= answer.status_code < 300:
            raise ProviderError(
                f"{config.method} {config.url} answered {answer.status_code}: {answer.text[:SHOWN_ANSWER]!r}"
            )
        try:
            document = answer.json()
        except ValueError:
            raise ProviderError(
                f"{config.method} {config.url} did not answer JSON: {answer.text[:SHOWN_ANSWER]!r}"
            ) from None
        return as_number(select(document, config.json_path), config.json_path)
