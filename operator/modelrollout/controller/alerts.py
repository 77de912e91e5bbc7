"""Alarms that roll a rollout back: Prometheus' ALERTS series, polled, and Alertmanager webhooks, pushed.

Rules:
- An alert rolls back a ModelDeployment when it is firing and matches one of its `rollbackOn.alerts`
  (same alertname, and every listed label with the same value).
- Polling queries `ALERTS{alertstate="firing", ...}` only while a rollout is in progress. A poll that
  fails is logged and counts as "no alert known"; the analysis, not the alarm poll, guards promotion
  against an unreachable Prometheus.
- Webhook alerts are kept until Alertmanager reports them resolved or their `endsAt` passes, so a
  firing alert still counts when the reconcile it triggered runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from modelrollout.core.conditions import parse_time
from modelrollout.core.spec import AlertMatcher, ModelDeploymentSpec
from modelrollout.providers import NoDataError, ProviderError
from modelrollout.providers.prometheus import PrometheusConfig, PrometheusProvider

log = logging.getLogger(__name__)


def alerts_query(matcher: AlertMatcher) -> str:
    selectors = [f'alertname="{_escape(matcher.alertname)}"', 'alertstate="firing"']
    selectors += [f'{key}="{_escape(value)}"' for key, value in matcher.labels]
    return "ALERTS{" + ",".join(selectors) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class WebhookAlerts:
    """Alerts pushed by Alertmanager, shared between the HTTP server and reconcile threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._firing: dict[str, dict[str, Any]] = {}

    def receive(self, payload: dict[str, Any]) -> list[dict[str, str]]:
        """Take in one Alertmanager webhook (version 4); returns the labels of the alerts now firing."""
        if not isinstance(payload.get("alerts"), list):
            raise ValueError("not an Alertmanager webhook payload: no alerts list")
        firing = []
        with self._lock:
            for alert in payload["alerts"]:
                labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
                key = alert.get("fingerprint") or ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
                if alert.get("status") == "firing":
                    self._firing[key] = {"labels": labels, "endsAt": alert.get("endsAt", "")}
                    firing.append(labels)
                else:
                    self._firing.pop(key, None)
        return firing

    def matching(self, matchers: tuple[AlertMatcher, ...], now: datetime) -> list[str]:
        found = []
        with self._lock:
            for key, alert in list(self._firing.items()):
                ends = parse_time(alert.get("endsAt"))
                if ends is not None and ends.year > 1 and ends < now:
                    del self._firing[key]
                    continue
                found += [m.describe() for m in matchers if m.matches(alert["labels"])]
        return sorted(set(found))


class AlarmChecker:
    """Which of a ModelDeployment's rollbackOn alerts fire now, from webhooks and from polling."""

    def __init__(
        self,
        webhook: WebhookAlerts,
        default_prometheus: str = "",
        provider: Callable[[PrometheusConfig], Any] = PrometheusProvider,
    ) -> None:
        self._webhook = webhook
        self._default = default_prometheus
        self._provider = provider

    def firing(self, spec: ModelDeploymentSpec, now: datetime, poll: bool) -> tuple[str, ...]:
        if not spec.rollback_alerts:
            return ()
        found = set(self._webhook.matching(spec.rollback_alerts, now))
        address = spec.alerts_prometheus or self._default
        if poll and address:
            provider = self._provider(PrometheusConfig(address=address, timeout=5.0))
            for matcher in spec.rollback_alerts:
                try:
                    provider.query(alerts_query(matcher))
                    found.add(matcher.describe())
                except NoDataError:
                    continue
                except ProviderError as error:
                    log.warning("could not poll alert %s: %s", matcher.describe(), error)
        return tuple(sorted(found))
