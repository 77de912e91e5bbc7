"""Events: the operator's background `EventSender` never makes a reconcile wait, keeps their order, and
drops (and counts) what it cannot write; `EventRecorder` writes at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from modelrollout.controller import metrics
from modelrollout.controller.events import EventRecorder, EventSender
from modelrollout.core.enums import EventReason, EventType
from modelrollout.core.rollout import Event
from modelrollout.devcluster.cluster import wait_until
from modelrollout.kube.client import EVENT, KubeError
from tests.unit.fake_kube import FakeKube

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REGARDING = {
    "apiVersion": "modelrollout.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "fraud-scorer", "namespace": "models", "uid": "uid-1"},
}
WAIT = 10.0  # a deadline for the sender's thread; the tests never sleep


def event(reason: EventReason, message: str = "") -> Event:
    return Event(EventType.NORMAL, reason, message or reason.value)


def dropped(cause: str) -> float:
    return metrics.REGISTRY.get_sample_value("modelrollout_events_dropped_total", {"cause": cause}) or 0.0


class GatedKube(FakeKube):
    """Holds every Event write until the test opens the gate; says when the first write has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.writing = threading.Event(), threading.Event()
        self.written: list[str] = []  # reasons, in the order the writes reached the apiserver

    def create(self, kind, namespace, body: dict) -> dict:
        self.writing.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"
        self.written.append(body["reason"])
        return super().create(kind, namespace, body)


def reasons(kube: FakeKube) -> list[str]:
    return [body["reason"] for body in kube.list(EVENT, "models")]


def test_emit_returns_while_the_apiserver_has_not_answered_and_the_events_arrive_in_order():
    kube = GatedKube()
    sender = EventSender(kube, "replica-a").start()

    for reason in (EventReason.STARTED, EventReason.STEP_COMPLETED, EventReason.PROMOTED):
        sender.emit(REGARDING, event(reason), NOW)
    assert kube.writing.wait(WAIT)
    assert reasons(kube) == []  # all three emitted while the first write is still waiting

    kube.gate.set()
    sender.stop(WAIT)

    assert kube.written == ["RolloutStarted", "StepCompleted", "Promoted"]
    assert {body["regarding"]["name"] for body in kube.list(EVENT, "models")} == {"fraud-scorer"}


def test_an_event_keeps_the_time_it_was_emitted_not_the_time_it_was_written():
    kube = GatedKube()
    sender = EventSender(kube, "replica-a").start()
    sender.emit(REGARDING, event(EventReason.STARTED), NOW)
    kube.gate.set()
    sender.stop(WAIT)
    (body,) = kube.list(EVENT, "models")
    assert body["eventTime"] == "2026-11-23T12:00:00.000000Z"
    assert body["regarding"]["uid"] == "uid-1"


def test_a_full_queue_drops_the_newest_event_and_counts_it():
    kube = GatedKube()
    sender = EventSender(kube, "replica-a", limit=2).start()
    before = dropped("queue full")
    sender.emit(REGARDING, event(EventReason.STARTED), NOW)
    assert kube.writing.wait(WAIT)  # the first is being written: the queue is empty again
    sender.emit(REGARDING, event(EventReason.STEP_COMPLETED), NOW)
    sender.emit(REGARDING, event(EventReason.PAUSED), NOW)

    sender.emit(REGARDING, event(EventReason.PROMOTED), NOW)

    assert dropped("queue full") == before + 1
    kube.gate.set()
    sender.stop(WAIT)
    assert kube.written == ["RolloutStarted", "StepCompleted", "Paused"]


def test_a_refused_event_is_counted_and_the_next_one_is_still_written():
    kube = FakeKube()
    refused = RefusingFirst(kube)
    sender = EventSender(refused, "replica-a").start()
    before = dropped("refused")

    sender.emit(REGARDING, event(EventReason.STARTED), NOW)
    sender.emit(REGARDING, event(EventReason.PROMOTED), NOW)
    sender.stop(WAIT)

    assert dropped("refused") == before + 1
    assert reasons(refused.kube) == ["Promoted"]


class RefusingFirst:
    """Answers the first Event write with a 403, then writes to `kube`."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube, self.refused = kube, False

    def create(self, kind, namespace, body: dict) -> dict[str, Any]:
        if not self.refused:
            self.refused = True
            raise KubeError(403, "Forbidden", "events.events.k8s.io is forbidden")
        return self.kube.create(kind, namespace, body)


def test_stop_before_start_and_twice_returns():
    sender = EventSender(FakeKube(), "replica-a")
    sender.stop(WAIT)
    started = EventSender(FakeKube(), "replica-a").start()
    started.stop(WAIT)
    started.stop(WAIT)
    assert not started._thread.is_alive()


def test_the_recorder_writes_before_emit_returns():
    kube = FakeKube()
    EventRecorder(kube, "replica-a").emit(REGARDING, event(EventReason.PROMOTED, "promoted v2"), NOW)
    (body,) = kube.list(EVENT, "models")
    assert (body["reason"], body["note"], body["reportingInstance"]) == ("Promoted", "promoted v2", "replica-a")


class Hold:
    """Safety work waits while `on`; counts how often the sender asked."""

    def __init__(self) -> None:
        self.on, self.asked = True, threading.Semaphore(0)

    def __call__(self) -> bool:
        self.asked.release()
        return self.on


def asked_again(hold: Hold, times: int) -> None:
    for _ in range(times):
        assert hold.asked.acquire(timeout=WAIT), "the sender stopped asking whether to hold"


def test_events_wait_while_safety_work_waits_and_then_go_out_in_order():
    kube, hold = GatedKube(), Hold()
    kube.gate.set()
    sender = EventSender(kube, "replica-a", hold=hold, hold_at_most=WAIT * 10).start()
    sender.emit(REGARDING, event(EventReason.STARTED), NOW)
    sender.emit(REGARDING, event(EventReason.PROMOTED), NOW)
    asked_again(hold, 3)  # held across three looks
    assert kube.written == []

    hold.on = False
    wait_until(lambda: len(kube.written) == 2, WAIT, "both Events written", interval=0.02)
    sender.stop(WAIT)

    assert kube.written == ["RolloutStarted", "Promoted"]


def test_an_event_is_held_no_longer_than_the_limit():
    kube, hold = FakeKube(), Hold()
    sender = EventSender(kube, "replica-a", hold=hold, hold_at_most=0.2).start()
    sender.emit(REGARDING, event(EventReason.STARTED), NOW)
    wait_until(lambda: reasons(kube), WAIT, "the held Event written", interval=0.02)
    assert reasons(kube) == ["RolloutStarted"] and hold.on  # written while safety work still waited
    sender.stop(WAIT)


def test_stopping_writes_a_held_event_at_once():
    kube, hold = FakeKube(), Hold()
    sender = EventSender(kube, "replica-a", hold=hold, hold_at_most=WAIT * 10).start()
    sender.emit(REGARDING, event(EventReason.STARTED), NOW)
    asked_again(hold, 1)
    sender.stop(WAIT)
    assert reasons(kube) == ["RolloutStarted"]
