"""Kubernetes Events for a ModelDeployment (events.k8s.io/v1, shown by `kubectl describe`).

Events are advisory: one that cannot be written is logged, counted and dropped, and never blocks or
fails a reconcile. In the operator an `EventSender` writes them from a thread of its own, one at a
time and in order, so a reconcile's worker is free as soon as the status is written (1,000 aborts at
once then spend the apiserver on routes, not on their Events). While safety work waits (`hold`),
it writes nothing, for at most `HOLD_AT_MOST_SECONDS` at a time: Events are read by people, routes
move traffic. `EventRecorder` writes at once, for tools and tests that read an Event right after the
reconcile that made it.
"""

from __future__ import annotations

import logging
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from modelrollout.controller import metrics
from modelrollout.core.rollout import Event
from modelrollout.kube.client import EVENT, KubeClient, KubeError

REPORTING_CONTROLLER = "modelrollout.io/operator"
MAX_NOTE = 1024
PENDING_LIMIT = 10_000  # Events waiting to be written; beyond it new ones are dropped (about 10 MiB)
HOLD_AT_MOST_SECONDS = 10.0  # an Event waits for safety work no longer than this
HOLD_CHECK_SECONDS = 0.05

log = logging.getLogger(__name__)


def render_event(regarding: dict[str, Any], event: Event, now: datetime, instance: str) -> dict[str, Any]:
    metadata = regarding["metadata"]
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # Named like kubelet's events (<object>.<unique suffix>); generateName cannot end in '.'.
        "metadata": {"name": f"{metadata['name']}.{secrets.token_hex(8)}", "namespace": metadata["namespace"]},
        "eventTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance,
        "action": event.reason.value,
        "reason": event.reason.value,
        "note": event.message[:MAX_NOTE],
        "type": event.type.value,
        "regarding": {
            "apiVersion": regarding["apiVersion"],
            "kind": regarding["kind"],
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid", ""),
        },
    }


class Events(Protocol):
    def emit(self, regarding: dict[str, Any], event: Event, now: datetime) -> None: ...


def _instance(instance: str | None) -> str:
    return (instance or socket.gethostname())[:128]


def _write(kube: KubeClient, body: dict[str, Any]) -> None:
    try:
        kube.create(EVENT, body["metadata"]["namespace"], body)
    except (KubeError, OSError) as error:
        metrics.EVENTS_DROPPED.labels("refused").inc()
        log.warning("could not record event %s for %s: %s", body["reason"], body["regarding"]["name"], error)


class EventRecorder:
    """Writes each Event at once, in the caller's thread."""

    def __init__(self, kube: KubeClient, instance: str | None = None) -> None:
        self._kube = kube
        self._instance = _instance(instance)

    def emit(self, regarding: dict[str, Any], event: Event, now: datetime) -> None:
        _write(self._kube, render_event(regarding, event, now, self._instance))


class EventSender:
    """Writes Events from a thread of its own, in the order they were emitted; `emit` never waits."""

    _STOP = object()

    def __init__(
        self,
        kube: KubeClient,
        instance: str | None = None,
        limit: int = PENDING_LIMIT,
        hold: Callable[[], bool] = lambda: False,
        hold_at_most: float = HOLD_AT_MOST_SECONDS,
    ) -> None:
        self._kube = kube
        self._instance = _instance(instance)
        self._pending: queue.Queue[Any] = queue.Queue(limit)
        self._hold, self._hold_at_most = hold, hold_at_most
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelrollout-events", daemon=True)

    def start(self) -> EventSender:
        self._thread.start()
        return self

    def emit(self, regarding: dict[str, Any], event: Event, now: datetime) -> None:
        body = render_event(regarding, event, now, self._instance)  # rendered now: the decision's time
        try:
            self._pending.put_nowait(body)
        except queue.Full:
            metrics.EVENTS_DROPPED.labels("queue full").inc()
            log.warning(
                "dropped event %s for %s: %d events wait to be written",
                event.reason,
                body["regarding"]["name"],
                self._pending.qsize(),
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is pending, for at most `timeout` seconds, then end the thread."""
        if not self._thread.is_alive():
            return
        self._stopping.set()  # a held Event is written now
        try:
            self._pending.put(self._STOP, timeout=timeout)
        except queue.Full:
            return  # still full after the timeout: the daemon thread ends with the process
        self._thread.join(timeout)

    def _run(self) -> None:
        while (body := self._pending.get()) is not self._STOP:
            self._wait_while_held()
            _write(self._kube, body)

    def _wait_while_held(self) -> None:
        deadline = time.monotonic() + self._hold_at_most
        while self._hold() and time.monotonic() < deadline and not self._stopping.is_set():
            self._stopping.wait(HOLD_CHECK_SECONDS)
