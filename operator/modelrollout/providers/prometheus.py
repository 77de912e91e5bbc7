"""Prometheus as a metric provider, through prometheus-api-client (instant queries at "now").

Rules:
- A scalar, or a vector of one series, is one float; a vector of several series is a tuple of floats
  (NaN kept: the analysis treats all-NaN as no data). A range vector is a usage error.
- A histogram query's vector has one series per bucket, told apart by its `le` label; a series without
  `le`, or two with the same `le` (per-pod series not aggregated), is an error, not a guess.
- TLS is verified by default (optionally against a CA bundle from a Secret); skipping verification
  must be asked for. Credentials (bearer token or basic auth) come from Secrets, never from the spec.
- One attempt per measurement with a timeout: retries belong to the analysis (`consecutiveErrorLimit`),
  so an unreachable server costs one timeout, not a retry storm inside a reconcile.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from modelrollout.providers import NoDataError, ProviderError

CA_DIR = Path(tempfile.gettempdir()) / "modelrollout-ca"


@dataclass(frozen=True)
class PrometheusConfig:
    address: str
    timeout: float = 10.0
    bearer_token: str = ""
    username: str = ""
    password: str = ""
    ca_pem: str = ""
    insecure_skip_verify: bool = False


def parse_result(result: Any) -> float | tuple[float, ...]:
    """The values of an instant query's `data.result` (scalar or vector)."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return float(result[1])  # scalar: [timestamp, "value"]
    if not isinstance(result, list):
        raise ProviderError(f"unexpected Prometheus result {result!r}")
    if not result:
        raise NoDataError("the query returned no series")
    values = []
    for series in result:
        if "values" in series:
            raise ProviderError("the query returned a range vector; use an instant query (no [range] at the end)")
        values.append(float(series["value"][1]))
    return values[0] if len(values) == 1 else tuple(values)


def parse_histogram(result: Any) -> tuple[tuple[float, float], ...]:
    """(le, value) per series of an instant vector whose series are a histogram's buckets."""
    if not isinstance(result, list) or (len(result) == 2 and not isinstance(result[0], dict)):
        raise ProviderError("a histogram query must return a vector with one series per le bucket, not a scalar")
    if not result:
        raise NoDataError("the query returned no series")
    buckets: dict[float, float] = {}
    for series in result:
        if "values" in series:
            raise ProviderError("the query returned a range vector; use an instant query (no [range] at the end)")
        labels = series.get("metric") or {}
        if "le" not in labels:
            raise ProviderError(f"series {labels} has no le label; query the _bucket series, e.g. sum by (le) (...)")
        try:
            le = float(labels["le"])
        except ValueError:
            raise ProviderError(f"series {labels} has le={labels['le']!r}, not a number") from None
        if le in buckets:
            raise ProviderError(f"several series have le={labels['le']}; aggregate them with sum by (le) (...)")
        buckets[le] = float(series["value"][1])
    return tuple(sorted(buckets.items()))


def _ca_file(pem: str) -> str:
    """requests wants a file path; write the bundle once per content."""
    CA_DIR.mkdir(parents=True, exist_ok=True)
    path = CA_DIR / (hashlib.sha256(pem.encode()).hexdigest()[:16] + ".pem")
    if not path.exists():
        path.write_text(pem)
    return str(path)


class PrometheusProvider:
    name = "prometheus"

    def __init__(self, config: PrometheusConfig) -> None:
        self._config = config
        headers = {"Authorization": f"Bearer {config.bearer_token}"} if config.bearer_token else None
        auth = (config.username, config.password) if config.username else None
        session = requests.Session()
        if config.insecure_skip_verify:
            session.verify = False
        elif config.ca_pem:
            session.verify = _ca_file(config.ca_pem)
        self._client = PrometheusConnect(
            url=config.address.rstrip("/"),
            headers=headers,
            auth=auth,
            retry=Retry(total=0),
            session=session,
            timeout=config.timeout,
        )

    def query(self, text: str) -> float | tuple[float, ...]:
        return parse_result(self._instant(text))

    def query_histogram(self, text: str) -> tuple[tuple[float, float], ...]:
        return parse_histogram(self._instant(text))

    def _instant(self, text: str) -> Any:
        try:
            return self._client.custom_query(text, timeout=self._config.timeout)
        except PrometheusApiClientException as error:
            raise ProviderError(f"Prometheus at {self._config.address} refused the query: {error}") from None
        except requests.RequestException as error:
            raise ProviderError(
                f"Prometheus at {self._config.address} is unreachable: {type(error).__name__}"
            ) from None
        finally:
            self._client.close()
