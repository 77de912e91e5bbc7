"""Hook calls in the shell: the documented payload, gating calls made against a real HTTP server on
loopback (2xx, 5xx, a timeout, a closed port), and the calls that gate nothing sent on the notifier's
threads with an Event for each outcome."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime

import pytest

from modelrollout.controller import hooks, metrics
from modelrollout.controller.jobmetrics import PAYLOAD_ENV, hook_job_config
from modelrollout.controller.notify import Notifier
from modelrollout.core.enums import EventReason, EventType
from modelrollout.core.hooks import HookCall, HookPoint, parse_hooks
from modelrollout.core.spec import ObjectMeta
from modelrollout.kube.client import KubeError
from tests.loopback import LoopbackServer
from tests.unit.fake_kube import RecordedEvents
from tests.unit.world import make_spec

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
META = ObjectMeta(name="fraud-scorer", namespace="models", uid="uid-1", generation=3)
SPEC = make_spec(version="2")
WAIT = 10.0  # a deadline for threads; the tests never sleep


def call(url: str, point=HookPoint.PRE_TRAFFIC_INCREASE, timeout=2.0, key="", **fields) -> HookCall:
    (hook,) = parse_hooks(
        [
            {
                "name": "load-test",
                "at": [point.value],
                "webhook": {"url": url, "timeoutSeconds": timeout},
                "metadata": {"suite": "golden"},
            }
        ]
    )
    defaults = {"step": 1, "canary_weight": 50}
    return HookCall(key or f"r2-{point}-load-test", hook, point, "r2", "r1", **{**defaults, **fields})


def hook_count(point: HookPoint, result: str) -> float:
    labels = {"point": point.value, "result": result}
    return metrics.REGISTRY.get_sample_value("modelrollout_hook_calls_total", labels) or 0.0


def closed_port_url() -> str:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}/h"


def test_the_payload_names_the_rollout_the_model_the_step_people_count_and_the_metadata():
    body = hooks.payload(call("http://x/h"), META, SPEC, NOW)
    assert body == {
        "hook": "load-test",
        "point": "preTrafficIncrease",
        "modelDeployment": {"namespace": "models", "name": "fraud-scorer", "uid": "uid-1"},
        "revision": "r2",
        "stableRevision": "r1",
        "model": {"name": "fraud", "version": "2", "uri": ""},
        "canaryWeight": 50,
        "step": 2,
        "metadata": {"suite": "golden"},
        "time": "2026-11-23T12:00:00Z",
    }
    told = hooks.payload(
        call("http://x/h", HookPoint.ON_EVENT, step=None, event={"reason": "Promoted"}), META, SPEC, NOW
    )
    assert "step" not in told and told["event"] == {"reason": "Promoted"}


def test_a_gating_call_is_judged_by_its_answer_and_timed():
    release = threading.Event()

    def answer(request):
        if request.path == "/slow":
            release.wait(WAIT)
        return {"/ok": 204, "/down": 503, "/slow": 200}[
            request.path
        ], "p99   too\nhigh" if request.path == "/down" else ""

    server = LoopbackServer(answer)
    calls = (
        call(server.url + "/ok", key="ok"),
        call(server.url + "/down", HookPoint.PRE_PROMOTION, key="down"),
        call(server.url + "/slow", HookPoint.PRE_ROLLOUT, timeout=0.2, key="slow"),
        call(closed_port_url(), HookPoint.PRE_ROLLOUT, key="refused"),
    )
    sent, failed = hook_count(HookPoint.PRE_TRAFFIC_INCREASE, "sent"), hook_count(HookPoint.PRE_ROLLOUT, "failed")
    try:
        answers = hooks.call_gating(calls, META, SPEC, NOW)
    finally:
        release.set()
        server.stop()
    assert [r.path for r in server.requests] == ["/ok", "/down", "/slow"]  # one after the other, in order
    assert server.requests[0].json() == hooks.payload(calls[0], META, SPEC, NOW)
    ok, down, slow, refused = (answers[key] for key in ("ok", "down", "slow", "refused"))
    assert (ok.ok, ok.code) == (True, 204)
    assert (down.ok, down.code, down.message) == (False, 503, "p99 too high")
    assert (slow.ok, slow.code, slow.message) == (False, None, f"hook {calls[2].hook.url} did not answer within 0.2s")
    assert slow.latency >= 0.2
    assert (refused.ok, refused.code) == (False, None) and "is unreachable" in refused.message
    assert hook_count(HookPoint.PRE_TRAFFIC_INCREASE, "sent") == sent + 1
    assert hook_count(HookPoint.PRE_ROLLOUT, "failed") == failed + 2


def test_calls_that_gate_nothing_go_on_the_notifier_threads_and_each_outcome_is_an_event():
    server = LoopbackServer(lambda request: (200 if request.path == "/audit" else 500, {}))
    events = RecordedEvents()
    notifier = Notifier(None, retry_delays=(0.01,), events=events).start()
    promoted = call(server.url + "/audit", HookPoint.POST_PROMOTION, step=None)
    every = call(server.url + "/audit", HookPoint.ON_EVENT, step=None, event={"reason": "Promoted"})
    broken = call(server.url + "/broken", HookPoint.ON_ROLLBACK, step=None)
    failed = hook_count(HookPoint.ON_ROLLBACK, "failed")
    try:
        notifier.send(hooks.outgoing((promoted, every, broken), META, SPEC, NOW))
        server.wait_for(lambda r: r.json()["point"] == "onEvent", "the onEvent call", WAIT)
        paced = threading.Event()
        for _ in range(int(WAIT / 0.01)):
            if hook_count(HookPoint.ON_ROLLBACK, "failed") > failed and len(events.emitted) == 2:
                break
            paced.wait(0.01)
    finally:
        notifier.stop(WAIT)
        server.stop()
    assert [r.path for r in server.requests].count("/broken") == 2  # tried again once, then given up
    by_reason = {event.reason: (regarding, event) for regarding, event in events.emitted}
    assert set(by_reason) == {EventReason.HOOK_SUCCEEDED, EventReason.HOOK_FAILED}
    regarding, succeeded = by_reason[EventReason.HOOK_SUCCEEDED]
    assert regarding["metadata"] == {"name": "fraud-scorer", "namespace": "models", "uid": "uid-1"}
    assert succeeded.message.startswith("hook load-test (postPromotion) for revision r2 answered 2xx in ")
    warning = by_reason[EventReason.HOOK_FAILED][1]
    assert warning.type is EventType.WARNING
    assert warning.message == (
        "hook load-test (onRollback) for revision r2 was not delivered (2 attempts), last error: answered 500; "
        "check the hook's URL and that it answers 2xx; the rollout did not wait for it"
    )


@pytest.mark.parametrize(
    ("point", "success_event"),
    [
        (HookPoint.POST_PROMOTION, EventReason.HOOK_SUCCEEDED),
        (HookPoint.ON_ROLLBACK, EventReason.HOOK_SUCCEEDED),
        (HookPoint.ON_EVENT, None),  # an Event for every Event's call would double them
    ],
)
def test_a_told_call_has_the_hooks_own_timeout_and_says_it_arrived_except_for_events(point, success_event):
    (outgoing,) = hooks.outgoing((call("http://x/h", point, timeout=7.5, step=None),), META, SPEC, NOW)
    assert (outgoing.timeout, outgoing.url, outgoing.sent) == (7.5, "http://x/h", success_event)


def test_job_hooks_that_gate_nothing_are_started_and_one_that_cannot_be_is_a_warning():
    events, started = RecordedEvents(), []

    def start(hook_call, body):
        if hook_call.hook.name == "refused":
            raise KubeError(403, "Forbidden", 'jobs.batch is forbidden: User "system:serviceaccount:x:y" cannot create')
        started.append(body)
        return "job"

    job = {"spec": {"template": {"spec": {"containers": [{"name": "c", "command": ["true"]}]}}}}
    hooks_spec = parse_hooks(
        [
            {"name": "release-log", "at": ["postPromotion"], "job": job},
            {"name": "refused", "at": ["postPromotion"], "job": job},
            {"name": "web", "at": ["postPromotion"], "webhook": {"url": "http://x/h"}},
        ]
    )
    calls = tuple(HookCall(f"k-{h.name}", h, HookPoint.POST_PROMOTION, "r2", "r1") for h in hooks_spec)
    hooks.start_jobs(calls, META, SPEC, NOW, start, events)
    assert [body["hook"] for body in started] == ["release-log"]  # the webhook goes to the notifier instead
    ((subject, warning),) = events.emitted
    assert subject["metadata"]["uid"] == "uid-1"
    assert (warning.type, warning.reason) == (EventType.WARNING, EventReason.HOOK_FAILED)
    assert warning.message.startswith(
        "hook refused (postPromotion): its Job could not be created: jobs.batch is forbidden"
    )
    assert [o.what for o in hooks.outgoing(calls, META, SPEC, NOW)] == ["hook web (postPromotion) for revision r2"]


def test_a_job_hooks_job_carries_the_payload_in_every_container_and_one_job_per_attempt():
    job = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "a", "env": [{"name": PAYLOAD_ENV, "value": "old"}]}, {"name": "b"}]}
            }
        }
    }
    (hook,) = parse_hooks([{"name": "smoke", "at": ["preRollout"], "job": job}])
    first = hook_job_config(META, HookCall("k", hook, HookPoint.PRE_ROLLOUT, "r2", "r1"), {"point": "preRollout"})
    again = hook_job_config(META, HookCall("k", hook, HookPoint.PRE_ROLLOUT, "r2", "r1", attempt=2), {})
    containers = first.spec["template"]["spec"]["containers"]
    assert [c["env"] for c in containers] == [[{"name": PAYLOAD_ENV, "value": '{"point": "preRollout"}'}]] * 2
    assert first.name != again.name and first.timeout == 600
    assert job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "old"  # the spec is left as it was
