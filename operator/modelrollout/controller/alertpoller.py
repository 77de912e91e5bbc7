"""Polling each running rollout's `rollbackOn` alerts on its own interval, apart from reconciles.

Rules:
- A ModelDeployment is polled only while its rollout runs (the reconciler says so with `track`), first
  at once, then every `pollInterval` on a fixed cadence: a poll is never moved by reconciles, which
  only read the last poll's answer.
- A poll that finds an alert firing wakes the ModelDeployment's reconcile (as a webhook does); the
  reconcile aborts the rollout and stops the tracking.
- One poll per ModelDeployment at a time: a Prometheus slower than the interval delays the next poll,
  never stacks them; beats missed that way are skipped, not made up in a burst.
- A poll that fails is logged and counts as "no alert known"; the analysis, not the alarm poll, guards
  promotion against an unreachable Prometheus.
- Cost: one instant query per alert per interval per running rollout (100 ms, 3 alerts, 10 rollouts:
  300 queries a second to Prometheus), run on a few threads of their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from modelrollout.controller import metrics
from modelrollout.core.spec import AlertMatcher, ModelDeploymentSpec
from modelrollout.providers import NoDataError, ProviderError
from modelrollout.providers.prometheus import PrometheusConfig, PrometheusProvider

log = logging.getLogger(__name__)

POLL_THREADS = 4
QUERY_TIMEOUT_SECONDS = 5.0


def alerts_query(matcher: AlertMatcher) -> str:
    selectors = [f'alertname="{_escape(matcher.alertname)}"', 'alertstate="firing"']
    selectors += [f'{key}="{_escape(value)}"' for key, value in matcher.labels]
    return "ALERTS{" + ",".join(selectors) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class PollTarget:
    """What to poll for one ModelDeployment: where, which alerts, how often."""

    address: str
    matchers: tuple[AlertMatcher, ...]
    interval: float


@dataclass
class _Schedule:
    target: PollTarget
    due: float
    found: tuple[str, ...] = ()
    polling: bool = False


class AlertPoller:
    """The poll schedule of every running rollout with alerts, and what each last poll found."""

    def __init__(
        self,
        default_prometheus: str,
        wake: Callable[[Hashable], None],
        provider: Callable[[PrometheusConfig], Any] = PrometheusProvider,
        clock: Callable[[], float] = time.monotonic,
        submit: Callable[[Callable[[], None]], Any] | None = None,
    ) -> None:
        self._default = default_prometheus
        self._wake = wake
        self._provider = provider
        self._clock = clock
        self._pool = None if submit is not None else ThreadPoolExecutor(POLL_THREADS, thread_name_prefix="alert-poll")
        self._submit = submit if submit is not None else self._pool.submit
        self._changed = threading.Condition()
        self._changes = 0
        self._schedules: dict[Hashable, _Schedule] = {}
        self._stopped = False
        self._thread: threading.Thread | None = None

    # --- what reconciles tell and read ------------------------------------------------------

    def track(
        self, key: Hashable, spec: ModelDeploymentSpec, running: bool, matchers: tuple[AlertMatcher, ...] | None = None
    ) -> None:
        """Poll `key`'s alerts (`matchers`, resolved; default the spec's) while its rollout is `running`."""
        address = spec.alerts_prometheus or self._default
        matchers = spec.rollback_alerts if matchers is None else matchers
        target = PollTarget(address, matchers, spec.alerts_poll_seconds)
        with self._changed:
            if not (running and address and matchers):
                self._schedules.pop(key, None)
                return
            schedule = self._schedules.get(key)
            if schedule is None:
                self._schedules[key] = _Schedule(target, due=self._clock())
            elif schedule.target != target:
                schedule.target, schedule.found = target, ()
                schedule.due = min(schedule.due, self._clock() + target.interval)
            else:
                return
            self._changes += 1
            self._changed.notify_all()

    def forget(self, key: Hashable) -> None:
        """Stop polling for `key` (a deleted ModelDeployment is never reconciled again to say so)."""
        with self._changed:
            self._schedules.pop(key, None)

    def found(self, key: Hashable) -> tuple[str, ...]:
        """The alerts `key`'s last poll found firing (described as in `rollbackOn`)."""
        with self._changed:
            schedule = self._schedules.get(key)
            return schedule.found if schedule is not None else ()

    # --- the schedule ----------------------------------------------------------------------

    def poll_due(self) -> float | None:
        """Start every poll that is due; returns seconds until the next one is (None: nothing to poll)."""
        now = self._clock()
        starting = []
        with self._changed:
            for key, schedule in self._schedules.items():
                if schedule.polling or schedule.due > now:
                    continue
                schedule.polling = True
                schedule.due += schedule.target.interval
                if schedule.due <= now:  # a slow poll or a busy machine: skip the missed beats
                    schedule.due = now + schedule.target.interval
                starting.append((key, schedule.target))
        for key, target in starting:
            self._submit(lambda k=key, t=target: self._poll(k, t))
        with self._changed:
            # A poll still running past its next beat is waited for by its completion, not by time.
            upcoming = [s.due for s in self._schedules.values() if not (s.polling and s.due <= now)]
        return max(0.0, min(upcoming) - now) if upcoming else None

    def _poll(self, key: Hashable, target: PollTarget) -> None:
        found: list[str] = []
        try:
            provider = self._provider(PrometheusConfig(address=target.address, timeout=QUERY_TIMEOUT_SECONDS))
            for matcher in target.matchers:
                try:
                    provider.query(alerts_query(matcher))
                    found.append(matcher.describe())
                except NoDataError:
                    continue
                except ProviderError as error:
                    log.warning("could not poll alert %s for %s: %s", matcher.describe(), _shown(key), error)
            metrics.ALERT_POLLS.inc()
        finally:
            self._finish(key, target, found)

    def _finish(self, key: Hashable, target: PollTarget, found: list[str]) -> None:
        with self._changed:
            schedule = self._schedules.get(key)
            if schedule is None or schedule.target != target:
                return  # the rollout ended or its alerts changed while this poll ran
            schedule.polling, schedule.found = False, tuple(sorted(found))
            self._changes += 1
            self._changed.notify_all()
        if found:
            self._wake(key)

    # --- the thread ------------------------------------------------------------------------

    def start(self) -> AlertPoller:
        self._thread = threading.Thread(target=self._run, name="alert-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._changed:
                seen = self._changes
            wait = self.poll_due()
            with self._changed:
                if self._stopped:
                    return
                if self._changes == seen:  # nothing tracked or finished since: sleep until the next beat
                    self._changed.wait(timeout=wait)


def _shown(key: Hashable) -> str:
    return "/".join(key) if isinstance(key, tuple) else str(key)
