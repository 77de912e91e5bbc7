"""Alarms that roll a rollout back: Prometheus' ALERTS series, polled, and Alertmanager webhooks, pushed.

Rules:
- An alert rolls back a ModelDeployment when it is firing and matches one of its `rollbackOn.alerts`
  (same alertname, and every listed label with the same value). A label value may name the rollout's
  arguments (`{{args.canary-revision}}`), filled in from status at each reconcile.
- Polling runs on its own schedule (`alertpoller`), only while a rollout is in progress; a reconcile
  reads the last poll's answer and never queries Prometheus itself.
- Webhook alerts are kept until Alertmanager reports them resolved or their `endsAt` passes, so a
  firing alert still counts when the reconcile it triggered runs.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from datetime import datetime
from typing import Any

from modelrollout.controller.alertpoller import AlertPoller
from modelrollout.core.conditions import parse_time
from modelrollout.core.spec import AlertMatcher, ModelDeploymentSpec


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
    """Which of a ModelDeployment's rollbackOn alerts fire now: pushed by webhooks, or found by its polls."""

    def __init__(self, webhook: WebhookAlerts, poller: AlertPoller | None = None) -> None:
        self._webhook = webhook
        self._poller = poller

    def firing(
        self,
        key: Hashable,
        spec: ModelDeploymentSpec,
        now: datetime,
        running: bool,
        arguments: Mapping[str, str] | None = None,
    ) -> tuple[str, ...]:
        """The alerts firing for `key`; its polling follows `running` (polled only while a rollout runs).

        `arguments` fill in scoped matchers (`alarm_arguments`); a scoped matcher whose argument is
        empty (no canary) matches nothing.
        """
        matchers = resolved(spec.rollback_alerts, arguments or {})
        if self._poller is not None:
            self._poller.track(key, spec, running, matchers)
        if not matchers:
            return ()
        found = set(self._webhook.matching(matchers, now))
        if self._poller is not None and running:
            wanted = {matcher.describe() for matcher in matchers}
            found.update(alert for alert in self._poller.found(key) if alert in wanted)
        return tuple(sorted(found))


def resolved(matchers: tuple[AlertMatcher, ...], arguments: Mapping[str, str]) -> tuple[AlertMatcher, ...]:
    return tuple(found for matcher in matchers if (found := matcher.resolve(arguments)) is not None)


def alarm_arguments(namespace: str, name: str, spec: ModelDeploymentSpec, status: Mapping[str, Any]) -> dict[str, str]:
    """What `{{args.*}}` in rollbackOn means for this reconcile, from the state decisions wrote.

    The canary is the one in status; before the first decision of a rollout has written it, the
    spec's revision when it is not the stable one.
    """
    stable = str(status.get("stableRevision") or "")
    canary = str(status.get("canaryRevision") or (spec.revision if spec.revision != stable else ""))
    return {"namespace": namespace, "name": name, "canary-revision": canary, "stable-revision": stable}
