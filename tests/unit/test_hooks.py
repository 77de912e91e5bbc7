"""Rollout hooks in the core: gating points hold traffic until 2xx, each fires once and in order, and a
failure aborts, pauses or waits as configured; the points that gate nothing are told and never wait."""

from __future__ import annotations

import pytest

from modelrollout.core.hooks import JOB_POLL_SECONDS, HookAnswer, HookCall, HookPoint, parse_hooks
from tests.unit.world import World, make_spec, reasons

GATING = ["preRollout", "preTrafficIncrease", "prePromotion"]
ALL_POINTS = [*GATING, "postPromotion", "onRollback", "onEvent"]
STEPS = [{"setWeight": 20}, {"setWeight": 60}]
URL = "http://hooks.test/check"


def hook(name="check", at=GATING, **fields) -> dict:
    return {"name": name, "at": at, "webhook": {"url": URL}, **fields}


def failing(call: HookCall) -> HookAnswer:
    return HookAnswer(False, 0.05, 503, "load test failed: p99 1.8s")


def answering_2xx(call: HookCall) -> HookAnswer:
    return HookAnswer(True, 0.02, 204, "")


def rolling(hooks: list[dict], strategy: dict | None = None, steps=STEPS, **extra) -> tuple[World, str]:
    """A world serving version 1, then asked for version 2 with `hooks`; nothing decided yet for it."""
    spec = {"steps": steps, "hooks": hooks, "strategy": strategy, **extra}
    world = World(make_spec(version="1", **spec))
    world.run()
    world.spec = make_spec(version="2", **spec)
    return world, world.spec.revision


def gating_calls(world: World) -> list[tuple[str, int | None, bool]]:
    return [(call.point.value, call.step, answer.ok) for call, answer in world.hook_calls]


def test_each_gating_point_fires_once_in_order_before_the_traffic_it_guards():
    world, new = rolling([hook()])
    decision = world.run()
    assert decision.stable_revision == new and decision.status["phase"] == "Healthy"
    assert gating_calls(world) == [
        ("preRollout", None, True),
        ("preTrafficIncrease", 0, True),
        ("preTrafficIncrease", 1, True),
        ("prePromotion", None, True),
    ]
    for _ in range(3):
        world.step()
    assert len(world.hook_calls) == 4  # answered 2xx: never called again
    records = {(r["point"], r.get("step")): (r["phase"], r["attempts"], r["code"]) for r in decision.status["hooks"]}
    assert records[("preTrafficIncrease", 1)] == ("Succeeded", 1, 200)
    assert reasons(decision).count("HookSucceeded") == 0  # each success is an Event of the decision that saw it
    assert world.events.count("HookSucceeded") == 4


def test_the_weight_stays_at_zero_with_ready_pods_until_the_hook_answers_2xx():
    world, new = rolling([hook(at=["preTrafficIncrease"], onFailure="wait", retryIntervalSeconds=30)])
    world.hook_server = failing
    waiting = world.run()
    assert world.deployments[new].available_replicas == 1  # the step's pods are up
    assert waiting.route_weights.canary == 0 and waiting.weights.canary == 0
    progressing = next(c for c in waiting.status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "WaitingForHook")
    assert (
        "waiting for hook check (preTrafficIncrease) to answer 2xx; last answer: HTTP 503" in waiting.status["message"]
    )
    assert len(world.hook_calls) == 1
    world.advance(29)
    world.run()
    assert len(world.hook_calls) == 1  # the next call is due after retryIntervalSeconds, not before
    world.advance(1)
    world.run()
    assert len(world.hook_calls) == 2 and world.events.count("HookFailed") == 1  # wait: one Warning, not one per call
    world.hook_server = answering_2xx  # the approver says yes
    world.advance(30)
    moved = world.run()
    assert moved.stable_revision == new and world.hook_calls[-1][1].ok


def test_a_failing_gating_hook_aborts_in_the_same_decision_after_its_retries():
    world, new = rolling([hook(at=["prePromotion"], retries=2, retryIntervalSeconds=5)])
    world.hook_server = failing
    at_sixty = world.run()
    assert at_sixty.route_weights.canary == 60 and len(world.hook_calls) == 1  # all steps done: promotion waits
    world.advance(5)
    world.run()
    world.advance(5)
    aborted = world.run()
    assert len(world.hook_calls) == 3
    assert aborted.stable_revision != new and aborted.route_weights.canary == 0
    assert aborted.status["abort"]["reason"] == "HookFailed"
    assert (
        "hook check (prePromotion) failed: HTTP 503 in 0.050s after 3 attempt(s)" in aborted.status["abort"]["message"]
    )
    assert world.events.count("HookFailed") == 3


def test_a_pausing_hook_is_skipped_by_promote_and_called_again_by_retry_analysis():
    world, new = rolling([hook(at=["preTrafficIncrease"], onFailure="pause")])
    world.hook_server = failing
    paused = world.run()
    assert paused.status["phase"] == "Paused" and paused.route_weights.canary == 0
    assert [p["reason"] for p in paused.status["pauseReasons"]] == ["HookFailed"]
    world.run()
    assert len(world.hook_calls) == 1  # a failed hook is not called again by itself
    again = world.ask("retry-analysis")
    assert again.status["lastRequest"]["accepted"] and len(world.hook_calls) == 2
    assert again.status["phase"] == "Paused"
    skipped = world.ask("promote")
    assert (
        skipped.status["lastRequest"]["message"]
        == f"revision {new}: failed hook check (preTrafficIncrease) skipped, not passed"
    )
    assert skipped.route_weights.canary == 20  # the person's word moved it, once pods were ready
    phases = [r["phase"] for r in world.decision.status["hooks"]]
    assert phases[0] == "Skipped"


def test_blue_green_waits_on_pre_rollout_before_the_preview_and_pre_promotion_before_the_switch():
    strategy = {"blueGreen": {"autoPromotionSeconds": 0}}
    world, new = rolling([hook(at=["preRollout", "prePromotion"], onFailure="wait")], strategy=strategy)
    world.hook_server = failing
    waiting = world.run()
    assert waiting.status["stage"] == "Preview" and "PreviewReady" not in world.events
    world.hook_server = lambda call: (answering_2xx if call.point is HookPoint.PRE_ROLLOUT else failing)(call)
    world.advance(10)
    switching = world.run()
    assert "PreviewReady" in world.events
    assert switching.status["stage"] == "Promoting" and switching.active_revision != new
    assert gating_calls(world)[-1] == ("prePromotion", None, False)
    world.hook_server = answering_2xx
    world.advance(10)
    assert world.run().stable_revision == new


def test_a_shadow_mirrors_nothing_until_its_pre_rollout_hook_answers():
    strategy = {"shadow": {"mirrorPercent": 50}, "canary": {"steps": STEPS}}
    world, new = rolling([hook(at=["preRollout"], onFailure="wait")], strategy=strategy)
    world.hook_server = failing
    waiting = world.run()
    assert waiting.status["stage"] == "Shadow" and waiting.route_weights.mirror == 0
    world.hook_server = answering_2xx
    world.advance(10)
    mirroring = world.run()
    assert (mirroring.canary_revision, mirroring.route_weights.mirror) == (new, 50)


def test_hooks_that_gate_nothing_are_told_once_each_and_hold_nothing_up():
    world, new = rolling([hook("audit", at=["postPromotion", "onRollback"])])
    world.hook_server = failing  # never asked: these points gate nothing
    promoted = world.run()
    assert promoted.stable_revision == new and world.hook_calls == []
    assert [(call.point, call.revision) for call in world.told] == [(HookPoint.POST_PROMOTION, new)]
    world.alerts = ("ModelErrorRateHigh",)
    world.spec = make_spec(
        version="3",
        steps=STEPS,
        hooks=[hook("audit", at=["onRollback"])],
        rollbackOn={"alerts": [{"alertname": "ModelErrorRateHigh"}]},
    )
    aborted = world.run()
    told = world.told[-1]
    assert aborted.status["abort"]["reason"] == "AlertFiring"
    assert (told.point, told.revision, told.event["reason"]) == (
        HookPoint.ON_ROLLBACK,
        world.spec.revision,
        "AlertFiring",
    )


def test_on_event_hooks_are_told_every_event_with_its_reason():
    world, _ = rolling([hook("events", at=["onEvent"])])
    world.run()
    assert [call.event["reason"] for call in world.told] == world.events


def test_a_job_hook_holds_the_step_while_its_job_runs_looks_every_poll_and_passes_when_it_completes():
    job = {"spec": {"template": {"spec": {"containers": [{"name": "smoke", "command": ["python", "-c", "pass"]}]}}}}
    world, new = rolling([{"name": "smoke", "at": ["preTrafficIncrease"], "job": job}], steps=[{"setWeight": 20}])
    world.hook_server = lambda call: HookAnswer(False, 0.0, None, f"Job smoke-{call.attempt} is running", pending=True)
    running = world.run()
    assert running.route_weights.canary == 0 and running.requeue_after == JOB_POLL_SECONDS
    assert (
        "waiting for hook smoke (preTrafficIncrease) its Job to complete; Job smoke-1 is running"
        in (running.status["message"])
    )
    (record,) = running.status["hooks"]
    assert (record["phase"], record["attempts"]) == ("Running", 0)
    world.advance(1)
    world.run()
    assert len(world.hook_calls) == 1  # not looked at again before the poll interval
    world.advance(1)
    world.run()
    assert len(world.hook_calls) == 2 and world.hook_calls[-1][0].attempt == 1  # the same attempt: its Job
    world.hook_server = answering_2xx
    world.advance(2)
    done = world.run()
    assert done.stable_revision == new and done.status["hooks"][0]["phase"] == "Succeeded"


def test_a_failed_job_hook_is_tried_again_with_a_new_attempt():
    job = {"spec": {"template": {"spec": {"containers": [{"name": "smoke", "command": ["false"]}]}}}}
    hook_spec = {"name": "smoke", "at": ["preTrafficIncrease"], "job": job, "retries": 1, "retryIntervalSeconds": 5}
    world, _ = rolling([hook_spec], steps=[{"setWeight": 20}])
    world.hook_server = lambda call: HookAnswer(
        False, 0.0, None, f"Job smoke-{call.attempt} failed (BackoffLimitExceeded)"
    )
    world.run()
    world.advance(5)
    aborted = world.run()
    assert [call.attempt for call, _ in world.hook_calls] == [1, 2]
    assert "Job smoke-2 failed (BackoffLimitExceeded)" in aborted.status["abort"]["message"]


def test_a_restarted_operator_does_not_call_a_hook_that_answered_again():
    world, _ = rolling([hook(at=["preTrafficIncrease"])], steps=[{"setWeight": 20}, {"pause": {}}])
    paused = world.run()
    assert paused.status["phase"] == "Paused" and gating_calls(world) == [("preTrafficIncrease", 0, True)]
    world.restart()
    world.run()
    assert len(world.hook_calls) == 1


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ([{"name": "a", "at": ["preRollout"]}], "hooks[0] (a): needs exactly one target; set webhook.url or job.spec"),
        (
            [{"name": "a", "at": ["preRollout"], "webhook": {"url": URL}, "job": {"spec": {"template": {}}}}],
            "hooks[0] (a): needs exactly one target",
        ),
        ([{"name": "a", "at": ["preRollout"], "webhook": {"url": "ftp://x"}}], "must start with http:// or https://"),
        ([hook("a"), hook("a")], "hooks[1] (a): a second hook named a"),
        ([{"name": "a", "at": [], "webhook": {"url": URL}}], "hooks[0] (a): names no point in `at`"),
    ],
)
def test_a_hook_spec_the_crd_would_refuse_says_what_to_fix(hooks, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse_hooks(hooks)
