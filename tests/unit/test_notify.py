"""Notifications: what a decision tells people, in each receiver's format, sent apart from reconciles,
retried, and never held up by a receiver that is down."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from modelrollout.controller import metrics
from modelrollout.controller.notify import (
    Notice,
    Notifier,
    SendError,
    generic,
    notices_of,
    operator_receivers,
    slack,
    teams,
)
from modelrollout.core.enums import AbortReason, EventReason, EventType
from modelrollout.core.notifications import NoticeFormat, NoticeKind, Receiver, SecretKey, parse_receivers
from modelrollout.core.rollout import Decision, Event
from modelrollout.core.rollout.decision import Weights
from modelrollout.core.spec import ObjectMeta
from tests.unit.fake_kube import RecordedEvents

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
META = ObjectMeta(name="fraud-scorer", namespace="models", uid="uid-1", generation=3)
WAIT = 10.0  # a deadline for the notifier's threads; the tests never sleep
APPROVAL = Notice(
    NoticeKind.APPROVAL_NEEDED,
    "models",
    "fraud-scorer",
    "7c9e",
    "step 2/3 pause: waiting for a person",
    "kubectl modelrollout promote fraud-scorer -n models",
    NOW,
    "uid-1",
)


def decision(*events: Event, aborted: AbortReason | None = None) -> Decision:
    return Decision(
        deployments=(),
        delete_revisions=(),
        stable_revision="r1",
        canary_revision="r2",
        weights=Weights(),
        status={"canaryRevision": "r2", "currentRevision": "r2"},
        events=events,
        aborted=aborted,
    )


def event(reason: EventReason, message: str) -> Event:
    return Event(EventType.NORMAL, reason, message)


def sent_count(result: str) -> float:
    return metrics.REGISTRY.get_sample_value("modelrollout_notifications_total", {"result": result}) or 0.0


def wait_counted(result: str, expected: float) -> None:
    """Poll the counter until it reaches `expected`, with a deadline."""
    paced = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if sent_count(result) >= expected:
            break
        paced.wait(0.01)
    assert sent_count(result) == expected


def test_a_failed_analysis_is_one_notice_naming_the_metric_even_with_a_rollback_event():
    found = notices_of(
        META,
        decision(
            event(EventReason.ABORTED, "analysis failed: error-rate: 0.3 did not meet successCondition result < 0.05"),
            event(EventReason.ROLLED_BACK, "rolled back to revision r1"),
            aborted=AbortReason.ANALYSIS_FAILED,
        ),
        NOW,
    )
    assert [(n.kind, n.revision, n.command) for n in found] == [
        (NoticeKind.ANALYSIS_FAILED, "r2", "kubectl modelrollout status fraud-scorer -n models")
    ]
    assert "error-rate: 0.3" in found[0].message


def test_routine_events_tell_nobody():
    routine = decision(event(EventReason.STARTED, "rollout started"), event(EventReason.STEP_COMPLETED, "20%"))
    assert notices_of(META, routine, NOW) == []


def test_each_format_carries_the_title_message_and_command():
    body = generic(APPROVAL)
    assert body["kind"] == "ApprovalNeeded" and body["modelDeployment"] == {
        "namespace": "models",
        "name": "fraud-scorer",
    }
    assert (body["command"], body["time"]) == (
        "kubectl modelrollout promote fraud-scorer -n models",
        "2026-11-23T12:00:00Z",
    )
    assert body["title"] == "ModelDeployment models/fraud-scorer waits for your approval"
    text = slack(APPROVAL)["text"]
    assert text.startswith("*ModelDeployment models/fraud-scorer waits for your approval*\n")
    assert "`kubectl modelrollout promote fraud-scorer -n models`" in text
    card = teams(APPROVAL)["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    texts = [block["text"] for block in card["content"]["body"]]
    assert texts == [body["title"], APPROVAL.message, APPROVAL.command]


class Receivers:
    """Records what each URL received; a URL in `hanging` blocks until `release`, one in `failing` fails."""

    def __init__(self, failing: dict[str, int] | None = None, hanging: tuple[str, ...] = ()) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.failing = dict(failing or {})  # url -> failures before it answers
        self.hanging, self.release = hanging, threading.Event()
        self.arrived = threading.Condition()

    def __call__(self, url: str, body: dict[str, Any], timeout: float) -> None:
        if url in self.hanging:
            assert self.release.wait(WAIT)
        if self.failing.get(url, 0) > 0:
            self.failing[url] -= 1
            raise SendError("connection refused")
        with self.arrived:
            self.received.setdefault(url, []).append(body)
            self.arrived.notify_all()

    def wait_for(self, url: str, count: int = 1) -> list[dict[str, Any]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received.get(url, [])) >= count, WAIT), self.received
            return self.received[url]


def test_a_notice_goes_to_each_receiver_that_wants_it_and_to_the_operator_wide_one():
    receivers = Receivers()
    wide = operator_receivers({"MODELROLLOUT_NOTIFY_URL": "http://ops/hook", "MODELROLLOUT_NOTIFY_FORMAT": "slack"})
    notifier = Notifier(StubKube(), wide, send=receivers).start()
    own = parse_receivers(
        {
            "receivers": [
                {"name": "team", "url": "http://team/hook"},
                {"name": "releases", "url": "http://releases/hook", "kinds": ["Promoted"]},
            ]
        }
    )
    notifier.notify([APPROVAL], own)

    assert receivers.wait_for("http://team/hook")[0]["kind"] == "ApprovalNeeded"
    assert "text" in receivers.wait_for("http://ops/hook")[0]
    notifier.stop(WAIT)
    assert "http://releases/hook" not in receivers.received


def test_a_failed_send_is_retried_then_given_up_and_counted():
    receivers = Receivers(failing={"http://flaky/hook": 2, "http://down/hook": 99})
    notifier = Notifier(StubKube(), send=receivers, retry_delays=(0.01, 0.02)).start()
    retried, failed = sent_count("retried"), sent_count("failed")
    flaky, down = Receiver("flaky", url="http://flaky/hook"), Receiver("down", url="http://down/hook")

    notifier.notify([APPROVAL], (flaky, down))

    assert len(receivers.wait_for("http://flaky/hook")) == 1  # the third attempt answered
    wait_counted("failed", failed + 1)
    notifier.stop(WAIT)
    assert "http://down/hook" not in receivers.received
    assert sent_count("retried") == retried + 4  # flaky twice, down twice before giving up


def test_a_receiver_that_hangs_delays_neither_the_reconcile_nor_another_receiver():
    receivers = Receivers(hanging=("http://hangs/hook",))
    notifier = Notifier(StubKube(), send=receivers).start()
    hangs, fine = Receiver("hangs", url="http://hangs/hook"), Receiver("fine", url="http://fine/hook")

    notifier.notify([APPROVAL], (hangs, fine))  # returns while the first send is still waiting

    assert receivers.wait_for("http://fine/hook")[0]["revision"] == "7c9e"
    assert "http://hangs/hook" not in receivers.received
    receivers.release.set()
    assert receivers.wait_for("http://hangs/hook")[0]["kind"] == "ApprovalNeeded"
    notifier.stop(WAIT)


class StubKube:
    """Answers Secret reads from `secrets` ((namespace, name) -> data)."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]] | None = None) -> None:
        self.secrets = secrets or {}

    def get(self, kind, namespace: str, name: str) -> dict | None:
        data = self.secrets.get((namespace, name))
        return None if data is None else {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_a_url_in_a_secret_is_read_when_sent_and_a_notice_never_taken_is_a_warning_event():
    receivers, events = Receivers(), RecordedEvents()
    kube = StubKube({("models", "chat"): {"url": "https://chat.example/hook/T0/B0/x\n"}})
    notifier = Notifier(kube, send=receivers, retry_delays=(), events=events).start()
    failed = sent_count("failed")
    hidden = Receiver("chat", NoticeFormat.SLACK, url_secret=SecretKey("chat", "url"))
    missing = Receiver("missing", url_secret=SecretKey("chat", "other-key"))

    notifier.notify([APPROVAL], (hidden, missing))

    assert receivers.wait_for("https://chat.example/hook/T0/B0/x")[0]["text"].startswith("*ModelDeployment")
    wait_counted("failed", failed + 1)  # the key that is not in the Secret
    notifier.stop(WAIT)
    ((regarding, warning),) = events.emitted
    assert regarding["metadata"] == {"name": "fraud-scorer", "namespace": "models", "uid": "uid-1"}
    assert (warning.type, warning.reason) == (EventType.WARNING, EventReason.NOTIFICATION_FAILED)
    assert warning.message == (
        "the ApprovalNeeded notification to receiver missing was not delivered (1 attempt), last error: Secret "
        "models/chat has no key other-key; check the receiver's URL (or its Secret) and that it "
        "answers 2xx"
    )


@pytest.mark.parametrize(
    ("notifications", "message"),
    [
        ({"receivers": [{"name": "a"}]}, "set exactly one of url and urlSecretRef"),
        ({"receivers": [{"name": "a", "url": "ftp://x"}]}, "url must start with http:// or https://"),
    ],
)
def test_a_receiver_without_a_usable_url_is_refused(notifications, message):
    with pytest.raises(ValueError, match=message):
        parse_receivers(notifications)


def test_the_operator_wide_url_must_be_http():
    assert operator_receivers({}) == ()
    with pytest.raises(ValueError, match="MODELROLLOUT_NOTIFY_URL must start with http"):
        operator_receivers({"MODELROLLOUT_NOTIFY_URL": "hooks.slack.com/x"})


def test_the_operator_refuses_to_start_with_an_unusable_notify_url(monkeypatch, capsys):
    from modelrollout import cli

    monkeypatch.setenv("MODELROLLOUT_NOTIFY_URL", "hooks.slack.com/services/x")
    assert cli.main(["run"]) == 2
    assert capsys.readouterr().err == (
        "modelrollout run: MODELROLLOUT_NOTIFY_URL must start with http:// or https://; "
        "fix the operator's environment and start it again\n"
    )
