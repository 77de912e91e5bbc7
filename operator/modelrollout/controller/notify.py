"""Notifications: outbound webhooks telling a person that a rollout needs them, or has ended.

Rules:
- A reconcile hands its notices over (`Notifier.notify`) and never waits: Secret reads, sends and
  retries run on the notifier's own threads (one schedule, `SEND_THREADS` senders).
- A notice goes to every receiver that wants its kind: the ModelDeployment's `spec.notifications`
  and the operator-wide one (`MODELROLLOUT_NOTIFY_URL`, `MODELROLLOUT_NOTIFY_FORMAT`).
- A send that fails (refused, `SEND_TIMEOUT_SECONDS` without an answer, not 2xx, a Secret missing)
  is tried again after 1, 2, 4, 8 and 16 s, then dropped, counted, and reported as a Warning Event
  (`NotificationFailed`) on the ModelDeployment, naming the receiver and the last error. A receiver
  that is down or hangs holds one sender thread per message at most, never a reconcile.
- Formats are declared once (`RENDERERS`): generic JSON, Slack, Teams. Secrets never appear in logs.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelrollout.controller import metrics
from modelrollout.controller.events import Events
from modelrollout.core.conditions import format_time
from modelrollout.core.enums import AbortReason, EventReason, EventType
from modelrollout.core.notifications import NoticeFormat, NoticeKind, Receiver, SecretKey, is_http_url
from modelrollout.core.rollout import Decision, Event
from modelrollout.core.spec import ObjectMeta
from modelrollout.kube.client import MODEL_DEPLOYMENT, KubeClient, KubeError, SecretMissing, secret_value

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
SEND_THREADS = 4
SEND_TIMEOUT_SECONDS = 5.0
PENDING_LIMIT = 1000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    namespace: str
    name: str
    revision: str
    message: str
    command: str  # what a person runs next
    time: datetime
    uid: str = ""  # the ModelDeployment's, for an Event about a notice that could not be sent

    def regarding(self) -> dict[str, Any]:
        return regarding(self.namespace, self.name, self.uid)


def regarding(namespace: str, name: str, uid: str) -> dict[str, Any]:
    """A ModelDeployment as an Event's subject, for Events sent apart from a reconcile."""
    metadata = {"name": name, "namespace": namespace, "uid": uid}
    return {"apiVersion": MODEL_DEPLOYMENT.api_version, "kind": MODEL_DEPLOYMENT.kind, "metadata": metadata}


def notices_of(meta: ObjectMeta, decision: Decision, now: datetime) -> list[Notice]:
    """What a decision tells people: a pause for a person, a rollback (once), a promotion."""
    revision = decision.status.get("canaryRevision") or decision.status.get("currentRevision") or ""
    found: list[Notice] = []

    def add(kind: NoticeKind, message: str, command: str) -> None:
        found.append(Notice(kind, meta.namespace, meta.name, revision, message, command, now, meta.uid))

    target = f"{meta.name} -n {meta.namespace}"
    for event in decision.events:
        if event.reason is EventReason.PAUSED:
            add(NoticeKind.APPROVAL_NEEDED, event.message, f"kubectl modelrollout promote {target}")
        elif event.reason in (EventReason.ABORTED, EventReason.ROLLED_BACK):
            if any(n.kind in (NoticeKind.ANALYSIS_FAILED, NoticeKind.ROLLED_BACK) for n in found):
                continue
            failed = decision.aborted is AbortReason.ANALYSIS_FAILED
            kind = NoticeKind.ANALYSIS_FAILED if failed else NoticeKind.ROLLED_BACK
            add(kind, event.message, f"kubectl modelrollout status {target}")
        elif event.reason is EventReason.PROMOTED:
            add(NoticeKind.PROMOTED, event.message, f"kubectl modelrollout status {target}")
    return found


TITLES = {
    NoticeKind.APPROVAL_NEEDED: "waits for your approval",
    NoticeKind.ANALYSIS_FAILED: "failed its analysis and rolled back",
    NoticeKind.ROLLED_BACK: "rolled back",
    NoticeKind.PROMOTED: "promoted",
}


def title(notice: Notice) -> str:
    return f"ModelDeployment {notice.namespace}/{notice.name} {TITLES[notice.kind]}"


def generic(notice: Notice) -> dict[str, Any]:
    return {
        "kind": notice.kind.value,
        "modelDeployment": {"namespace": notice.namespace, "name": notice.name},
        "revision": notice.revision,
        "title": title(notice),
        "message": notice.message,
        "command": notice.command,
        "time": format_time(notice.time),
    }


def slack(notice: Notice) -> dict[str, Any]:
    return {"text": f"*{title(notice)}*\n{notice.message}\n`{notice.command}`"}


def teams(notice: Notice) -> dict[str, Any]:
    body = [
        {"type": "TextBlock", "text": title(notice), "weight": "Bolder", "wrap": True},
        {"type": "TextBlock", "text": notice.message, "wrap": True},
        {"type": "TextBlock", "text": notice.command, "fontType": "Monospace", "wrap": True},
    ]
    card = {"type": "AdaptiveCard", "version": "1.4", "body": body}
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
    return {"type": "message", "attachments": [attachment]}


RENDERERS: Mapping[NoticeFormat, Callable[[Notice], dict[str, Any]]] = {
    NoticeFormat.GENERIC: generic,
    NoticeFormat.SLACK: slack,
    NoticeFormat.TEAMS: teams,
}


class SendError(Exception):
    """A send that did not reach the receiver; it is tried again."""


def post_json(url: str, body: dict[str, Any], timeout: float) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # http(s) only: checked at parse
            answer.read()
    except urllib.error.HTTPError as error:
        raise SendError(f"answered {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise SendError(str(getattr(error, "reason", error))) from None


def operator_receivers(environ: Mapping[str, str]) -> tuple[Receiver, ...]:
    url = environ.get("MODELROLLOUT_NOTIFY_URL", "")
    if not url:
        return ()
    if not is_http_url(url):
        raise ValueError("MODELROLLOUT_NOTIFY_URL must start with http:// or https://")
    return (Receiver("operator", NoticeFormat(environ.get("MODELROLLOUT_NOTIFY_FORMAT", "generic")), url=url),)


def count_notification(result: str) -> None:
    metrics.NOTIFICATIONS.labels(result).inc()


@dataclass(frozen=True)
class Outgoing:
    """One POST the notifier owes: where to, what, and how to name it when it never arrives."""

    what: str  # e.g. "the Promoted notification to receiver slack"; in logs and the failure Event
    namespace: str
    regarding: Mapping[str, Any]  # the ModelDeployment, for Events
    body: Mapping[str, Any]
    url: str = ""
    url_secret: SecretKey | None = None  # read on a sender thread, never in a reconcile
    failed: EventReason = EventReason.NOTIFICATION_FAILED
    advice: str = "check the receiver's URL (or its Secret) and that it answers 2xx"
    count: Callable[[str], None] = count_notification  # by result: sent, retried, failed, dropped
    sent: EventReason | None = None  # an Event saying it arrived, with its latency (hooks)
    timeout: float = SEND_TIMEOUT_SECONDS


@dataclass(order=True)
class _Delivery:
    due: float
    order: int
    outgoing: Outgoing = field(compare=False)
    attempt: int = field(default=0, compare=False)


class Notifier:
    """The schedule of notices and hook calls to send, and the threads that send them."""

    def __init__(
        self,
        kube: KubeClient,
        operator_wide: tuple[Receiver, ...] = (),
        send: Callable[[str, dict[str, Any], float], None] = post_json,
        clock: Callable[[], float] = time.monotonic,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        limit: int = PENDING_LIMIT,
        events: Events | None = None,
    ) -> None:
        self._kube = kube
        self._events = events
        self._operator_wide = operator_wide
        self._send = send
        self._clock = clock
        self._delays = retry_delays
        self._limit = limit
        self._schedule: list[_Delivery] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._stopping = False
        self._pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="notify")
        self._thread = threading.Thread(target=self._run, name="modelrollout-notify", daemon=True)

    def start(self) -> Notifier:
        self._thread.start()
        return self

    def notify(self, notices: list[Notice], receivers: tuple[Receiver, ...]) -> None:
        """Schedule each notice for each receiver that wants it; returns at once."""
        self.send(
            [
                Outgoing(
                    f"the {notice.kind} notification to receiver {receiver.name}",
                    notice.namespace,
                    notice.regarding(),
                    RENDERERS[receiver.format](notice),
                    receiver.url,
                    receiver.url_secret,
                )
                for notice in notices
                for receiver in (*receivers, *self._operator_wide)
                if receiver.wants(notice.kind)
            ]
        )

    def send(self, outgoing: list[Outgoing]) -> None:
        """Schedule each POST now; returns at once."""
        with self._changed:
            for item in outgoing:
                if len(self._schedule) >= self._limit:
                    item.count("dropped")
                    log.warning("%s: dropped %s: queue full", item.namespace, item.what)
                    continue
                heapq.heappush(self._schedule, _Delivery(self._clock(), next(self._order), item))
            self._changed.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and (not self._schedule or self._schedule[0].due > self._clock()):
                    wait = self._schedule[0].due - self._clock() if self._schedule else None
                    self._changed.wait(wait)
                if self._stopping:
                    return
                delivery = heapq.heappop(self._schedule)
            self._pool.submit(self._deliver, delivery)

    def _deliver(self, delivery: _Delivery) -> None:
        item = delivery.outgoing
        started = time.monotonic()
        try:
            self._send(self._url(item), dict(item.body), item.timeout)
        except (SendError, KubeError, OSError, ValueError) as error:
            if delivery.attempt < len(self._delays):
                due = self._clock() + self._delays[delivery.attempt]
                with self._changed:
                    heapq.heappush(self._schedule, _Delivery(due, next(self._order), item, delivery.attempt + 1))
                    self._changed.notify_all()
                item.count("retried")
                return
            item.count("failed")
            attempts = delivery.attempt + 1
            message = (
                f"{item.what} was not delivered ({attempts} attempt{'' if attempts == 1 else 's'}), "
                f"last error: {error}; {item.advice}"
            )
            log.warning("%s: %s", item.namespace, message)
            self._event(item, Event(EventType.WARNING, item.failed, message))
            return
        item.count("sent")
        if item.sent is not None:
            latency = time.monotonic() - started
            self._event(item, Event(EventType.NORMAL, item.sent, f"{item.what} answered 2xx in {latency:.3f}s"))

    def _event(self, item: Outgoing, event: Event) -> None:
        if self._events is not None:
            self._events.emit(dict(item.regarding), event, datetime.now(UTC))

    def _url(self, item: Outgoing) -> str:
        if item.url_secret is None:
            return item.url
        ref, namespace = item.url_secret, item.namespace
        try:
            url = secret_value(self._kube, namespace, ref.name, ref.key).strip()
        except SecretMissing as error:
            raise ValueError(str(error)) from None
        if not is_http_url(url):
            raise ValueError(f"Secret {namespace}/{ref.name} key {ref.key} is not an http(s) URL")
        return url
