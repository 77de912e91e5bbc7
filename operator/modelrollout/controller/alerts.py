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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelrollout.controller.alertpoller import AlertPoller
from modelrollout.core.conditions import parse_time
from modelrollout.core.setindex import SetIndex
from modelrollout.core.spec import AlertMatcher, ModelDeploymentSpec

Key = tuple[str, str]  # a ModelDeployment's (namespace, name)


@dataclass(frozen=True)
class _Pushed:
    labels: dict[str, str]
    ends: datetime | None  # None: Alertmanager gave no end

    def expired(self, now: datetime) -> bool:
        return self.ends is not None and self.ends < now


class WebhookAlerts:
    """Alerts pushed by Alertmanager, shared between the HTTP server and reconcile threads.

    Indexed by label, so a reconcile looks only at the alerts that share its matcher's rarest label:
    a webhook with an alert for each of a thousand ModelDeployments costs each of their reconciles a
    lookup, not a scan of the thousand (which held the lock for 2 ms per reconcile).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._firing: dict[str, _Pushed] = {}
        self._by_label: SetIndex[tuple[str, str], str] = SetIndex()

    def __len__(self) -> int:
        """Alerts held as firing."""
        return len(self._firing)

    def receive(self, payload: dict[str, Any], now: datetime | None = None) -> list[dict[str, str]]:
        """Take in one Alertmanager webhook (version 4); returns the labels of the alerts now firing.

        Alerts whose `endsAt` passed by `now` are forgotten here too, so alerts that no matcher ever looks
        at do not pile up.
        """
        if not isinstance(payload.get("alerts"), list):
            raise ValueError("not an Alertmanager webhook payload: no alerts list")
        now = now or datetime.now(UTC)
        firing = []
        with self._lock:
            for alert in payload["alerts"]:
                labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
                key = alert.get("fingerprint") or ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
                self._drop(key)
                if alert.get("status") == "firing":
                    ends = parse_time(alert.get("endsAt"))
                    self._put(key, _Pushed(labels, ends if ends is not None and ends.year > 1 else None))
                    firing.append(labels)
            for key in [key for key, pushed in self._firing.items() if pushed.expired(now)]:
                self._drop(key)
        return firing

    def matching(self, matchers: tuple[AlertMatcher, ...], now: datetime) -> list[str]:
        found = set()
        with self._lock:
            for matcher in matchers:
                for key in list(self._candidates(matcher)):
                    pushed = self._firing[key]
                    if pushed.expired(now):
                        self._drop(key)
                    elif matcher.matches(pushed.labels):
                        found.add(matcher.describe())
        return sorted(found)

    def _candidates(self, matcher: AlertMatcher) -> set[str]:
        pairs = (("alertname", matcher.alertname), *matcher.labels)
        return min((self._by_label.get(pair) for pair in pairs), key=len)

    def _put(self, key: str, pushed: _Pushed) -> None:
        self._firing[key] = pushed
        for pair in pushed.labels.items():
            self._by_label.add(pair, key)

    def _drop(self, key: str) -> None:
        pushed = self._firing.pop(key, None)
        if pushed is None:
            return
        for pair in pushed.labels.items():
            self._by_label.discard(pair, key)


class AlarmIndex:
    """Which ModelDeployments an alert could roll back, to wake only those when a webhook arrives.

    Each one's matchers are kept with its namespace and name filled in, and indexed by alertname and one
    fixed label; a matcher whose labels all wait for revision arguments is found by its alertname alone.
    """

    def __init__(self) -> None:
        self._matchers: dict[Key, tuple[AlertMatcher, ...]] = {}
        self._index: SetIndex[tuple[str, ...], Key] = SetIndex()

    def set(self, key: Key, matchers: tuple[AlertMatcher, ...]) -> None:
        namespace, name = key
        filled = tuple(matcher.filled({"namespace": namespace, "name": name}) for matcher in matchers)
        if self._matchers.get(key) == filled:
            return
        self.forget(key)
        self._matchers[key] = filled
        for entry in {_entry(matcher) for matcher in filled}:
            self._index.add(entry, key)

    def forget(self, key: Key) -> None:
        for entry in {_entry(matcher) for matcher in self._matchers.pop(key, ())}:
            self._index.discard(entry, key)

    def woken_by(self, firing: list[dict[str, str]]) -> set[Key]:
        """The ModelDeployments whose matchers could match one of these alerts."""
        woken: set[Key] = set()
        for alert in firing:
            name = alert.get("alertname", "")
            entries = [(name,), *((name, *pair) for pair in alert.items())]
            for entry in entries:
                for key in self._index.get(entry):
                    if key not in woken and any(matcher.may_match(alert) for matcher in self._matchers[key]):
                        woken.add(key)
        return woken


def _entry(matcher: AlertMatcher) -> tuple[str, ...]:
    exact = matcher.exact_label()
    return (matcher.alertname, *exact) if exact is not None else (matcher.alertname,)


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
