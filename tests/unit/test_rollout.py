"""The rollout state machine, driven step by step with explicit time and no cluster.

`World` plays the Deployment controller and kubelet: after each decision it settles every
Deployment at the decided replica count (or leaves chosen ones unready), so sequences of
decisions can be asserted like a script.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelrollout.core.analysis import AnalysisInput, Measurement, MetricSpec
from modelrollout.core.enums import ServiceRole
from modelrollout.core.hooks import HookAnswer
from modelrollout.core.observed import Request
from modelrollout.core.rollout import DesiredDeployment, canary_replicas_for, decide, invalid_status
from tests.unit.world import T0, World, conditions, make_spec, reasons, start_new_version


def test_canary_replicas_round_up_and_never_exceed_the_total():
    assert [canary_replicas_for(w, 4) for w in (0, 1, 5, 25, 26, 50, 100)] == [0, 1, 1, 1, 2, 2, 4]
    assert canary_replicas_for(5, 0) == 0


def test_first_deployment_serves_the_current_revision_without_steps():
    world = World(make_spec())
    first = world.step(settle=False)
    assert first.status["phase"] == "Pending" and "creating the Deployment" in first.status["message"]
    assert first.deployments == (DesiredDeployment(world.spec.revision, 4),)
    assert first.stable_revision == world.spec.revision
    decision = world.run()
    assert decision.status["phase"] == "Healthy"
    assert conditions(decision.status) == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "Progressing": "False",
        "Paused": "False",
        "Degraded": "False",
    }
    assert world.step().events == ()


def test_canary_walks_its_steps_with_weights_following_ready_pods(stable_world):
    world = stable_world
    old = world.spec.revision
    new = start_new_version(world)

    started = world.step(settle=False)
    assert "RolloutStarted" in reasons(started)
    assert started.status["canaryRevision"] == new
    assert started.weights.canary == 0  # no traffic before the canary pods are available
    assert started.replicas_of(new) == 1 and started.replicas_of(old) == 4
    assert "waiting for 1 canary pods" in started.status["message"]

    settling = world.step()  # decided on the unready pods; the World makes them available after it
    assert settling.status["currentStepIndex"] == 0 and settling.weights.canary == 0
    at_five = world.step()
    assert at_five.weights.canary == 5 and at_five.weights.stable == 95
    assert at_five.status["currentStepIndex"] == 1
    assert at_five.requeue_after == pytest.approx(600)
    assert at_five.status["phase"] == "Progressing"

    world.advance(240)
    waiting = world.step()
    assert waiting.status["currentStepIndex"] == 1 and "6m00s left" in waiting.status["message"]
    assert waiting.requeue_after == pytest.approx(360)

    world.advance(360)
    paused = world.run()
    assert paused.weights.canary == 50
    assert paused.replicas_of(new) == 2 and paused.replicas_of(old) == 4
    assert paused.status["currentStepIndex"] == 3
    assert paused.status["phase"] == "Paused"
    assert conditions(paused.status)["Paused"] == "True" and conditions(paused.status)["Ready"] == "False"
    assert "kubectl modelrollout promote fraud" in paused.status["message"]

    world.advance(3600)  # an indefinite pause waits however long it takes
    assert world.run().status["phase"] == "Paused"

    promoted = world.ask("promote")
    assert promoted.status["lastRequest"]["accepted"] is True
    assert promoted.status["stableRevision"] == new and promoted.status["canaryRevision"] == ""
    assert promoted.weights.stable == 100
    assert promoted.status["phase"] == "Healthy"
    assert world.replicas()[old] == 4  # traffic left it; it waits out scaleDownDelaySeconds
    assert promoted.status["scaleDowns"] == [{"revision": old, "after": "2026-11-22T13:10:30Z"}]

    world.advance(30)
    world.run()
    assert world.replicas() == {new: 4, old: 0}
    assert world.status["scaleDowns"] == []
    actions = [entry["action"] for entry in world.status["history"]]
    assert actions[0] == "RolloutStarted" and "promote" in actions and actions[-1] == "Promoted"


def test_restart_mid_step_resumes_from_the_persisted_step(stable_world):
    world = stable_world
    start_new_version(world)
    world.run()
    world.advance(120)
    before = world.step()
    restarted = World(world.spec, now=world.now)  # a new operator process: only status and cluster survive
    restarted.status = dict(world.status)
    restarted.deployments = dict(world.deployments)
    after = restarted.step()
    assert after.status["currentStepIndex"] == before.status["currentStepIndex"] == 1
    assert after.status["stepStartedAt"] == before.status["stepStartedAt"]
    assert after.requeue_after == pytest.approx(480)
    assert "RolloutStarted" not in reasons(after)


def test_without_a_router_the_weight_is_the_ratio_of_ready_pods():
    world = World(make_spec(router=False, steps=[{"setWeight": 50}, {"pause": {}}]))
    world.run()
    old = world.spec.revision
    new = start_new_version(world, router=False, steps=[{"setWeight": 50}, {"pause": {}}])
    first = world.step()
    assert first.replicas_of(new) == 2 and first.replicas_of(old) == 4  # scale up first, never below capacity
    second = world.step()
    assert second.replicas_of(old) == 2  # then stable gives up the pods the canary now serves
    settled = world.run()
    assert settled.weights.canary == 50
    assert settled.status["phase"] == "Paused"
    assert world.replicas() == {old: 2, new: 2}


def test_abort_returns_traffic_at_once_and_scales_the_canary_down_after_the_delay(stable_world):
    world = stable_world
    old = world.spec.revision
    new = start_new_version(world)
    world.run()
    assert world.decision.weights.canary == 5
    aborted = world.ask("abort", actor="bob")
    assert aborted.weights.canary == 0 and aborted.weights.stable == 100
    assert aborted.status["phase"] == "Degraded"
    assert conditions(aborted.status)["Stalled"] == "True"
    assert aborted.status["abort"]["reason"] == "Aborted" and aborted.status["abort"]["actor"] == "bob"
    assert "kubectl modelrollout retry fraud" in aborted.status["message"]
    assert "RolloutAborted" in world.events
    assert world.replicas()[new] == 1  # still up: the routes changed first
    world.advance(30)
    world.run()
    assert world.replicas() == {old: 4, new: 0}
    assert world.status["phase"] == "Degraded"  # held until the spec changes or a person retries

    retried = world.ask("retry")
    assert retried.status["canaryRevision"] == new and retried.status["abort"] is None
    assert retried.status["currentStepIndex"] == 1  # restarted at step 0, which has already completed again


def test_a_new_revision_mid_rollout_supersedes_the_canary(stable_world):
    world = stable_world
    old = world.spec.revision
    second = start_new_version(world, "2")
    world.run()
    third = start_new_version(world, "3")
    decision = world.step()
    assert "Superseded" in reasons(decision)
    assert decision.status["canaryRevision"] == third and decision.status["stableRevision"] == old
    assert decision.status["currentStepIndex"] == 0 and decision.weights.canary == 0
    assert decision.replicas_of(old) == 4
    assert [s["revision"] for s in decision.status["scaleDowns"]] == [second]


def test_going_back_to_the_stable_template_aborts_the_canary_without_steps(stable_world):
    world = stable_world
    old = world.spec.revision
    new = start_new_version(world)
    world.run()
    world.spec = make_spec(version="1")
    decision = world.run()
    assert "Reverted" in world.events
    assert decision.status["canaryRevision"] == "" and decision.weights.canary == 0
    assert decision.status["phase"] == "Healthy" and decision.status["abort"] is None
    world.advance(31)
    world.run()
    assert world.replicas() == {old: 4, new: 0}


def test_a_canary_that_never_becomes_ready_is_aborted_by_the_progress_deadline(stable_world):
    world = stable_world
    new = start_new_version(world)
    world.unready.add(new)
    waiting = world.run()
    assert waiting.status["phase"] == "Progressing" and waiting.weights.canary == 0
    world.deployments[new] = replace(world.deployments[new], progress_deadline_exceeded=True)
    aborted = world.step()
    assert aborted.status["phase"] == "Degraded"
    assert aborted.status["abort"]["reason"] == "ProgressDeadlineExceeded"
    assert aborted.weights.canary == 0


ANALYSIS_STEPS = [{"setWeight": 10}, {"analysis": {"templates": [{"name": "error-rate"}]}}, {"setWeight": 100}]
ERROR_RATE = MetricSpec(
    "error-rate", interval=60, count=1, consecutive_error_limit=0, success_condition="result < 0.01"
)


def measured(value=None, error=""):
    return AnalysisInput((ERROR_RATE,), {"error-rate": Measurement(T0, value, error)})


def latest_history_message(status: dict) -> str:
    return status["history"][-1]["message"]


@pytest.mark.parametrize(
    ("given", "phase", "step", "where", "message", "abort_reason"),
    [
        (None, "Progressing", 1, "message", "waiting for the analysis to start", None),
        (measured(0.001), "Healthy", 0, "history", "successCondition", None),
        (
            measured(0.07),
            "Degraded",
            0,
            "abort",
            "error-rate: 0.07 did not meet successCondition result < 0.01",
            "AnalysisFailed",
        ),
        (measured(None), "Paused", 1, "message", "no data (noDataPolicy Inconclusive)", None),
        (
            measured(error="connection refused"),
            "Paused",
            1,
            "message",
            "1 consecutive errors, last: connection refused",
            None,
        ),
        (
            AnalysisInput(error="ModelAnalysisTemplate error-rate not found"),
            "Degraded",
            0,
            "abort",
            "not found",
            "AnalysisInvalid",
        ),
    ],
    ids=["running", "success", "failure", "no-data", "unreachable", "invalid"],
)
def test_an_analysis_step_blocks_on_its_result(stable_world, given, phase, step, where, message, abort_reason):
    world = stable_world
    new = start_new_version(world, steps=ANALYSIS_STEPS)
    waiting = world.run()
    (run,) = waiting.analysis_runs
    assert run.key == f"{new}-step-1" and run.analysis.templates[0].name == "error-rate"
    if given is not None:
        world.analysis = {run.key: given}
    decision = world.run()
    assert decision.status["phase"] == phase
    assert decision.status["currentStepIndex"] == step
    shown = {
        "message": lambda status: status["message"],
        "abort": lambda status: status["abort"]["message"],
        "history": lambda status: next(
            entry["message"] for entry in status["history"] if entry["message"].startswith("step 2/3 (analysis")
        ),
    }[where](decision.status)
    assert message in shown
    if abort_reason is not None:
        assert decision.status["abort"]["reason"] == abort_reason
        assert decision.weights.canary == 0
    else:
        assert decision.status["abort"] is None
    if phase == "Paused":
        assert world.ask("promote").status["stableRevision"] == new  # a person decides


def test_a_failing_measurement_is_kept_in_status_with_value_and_condition(stable_world):
    world = stable_world
    new = start_new_version(world, steps=ANALYSIS_STEPS)
    world.run()
    world.analysis = {f"{new}-step-1": measured(0.07)}
    decision = world.run()
    (run,) = decision.status["analysisRuns"]
    (metric,) = run["metrics"]
    assert metric["phase"] == "Failed" and metric["condition"] == "result < 0.01"
    assert metric["measurements"][-1]["value"] == "0.07"


def test_a_firing_alert_rolls_back_at_once(stable_world):
    world = stable_world
    start_new_version(world)
    world.run()
    world.alerts = ('FraudScorerErrors{severity="page"}',)
    decision = world.step()
    assert decision.weights.canary == 0
    assert decision.status["abort"]["reason"] == "AlertFiring"
    assert 'FraudScorerErrors{severity="page"}' in decision.status["abort"]["message"]


def test_background_analysis_failure_aborts_from_its_starting_step(stable_world):
    world = stable_world
    background = {"templates": [{"name": "error-rate"}], "startingStep": 1}
    world.spec = make_spec(version="2", analysis=background)
    new = world.spec.revision
    first = world.step()
    assert first.analysis_runs == ()  # step 0: not yet
    world.run()
    key = f"{new}-background"
    assert [r.key for r in world.decision.analysis_runs] == [key]
    world.analysis = {key: measured(0.5)}
    decision = world.step()
    assert decision.status["abort"]["reason"] == "AnalysisFailed"
    assert "background analysis" in decision.status["abort"]["message"]


def test_promote_full_skips_every_remaining_step(stable_world):
    world = stable_world
    new = start_new_version(world)
    world.run()
    decision = world.ask("promote-full")
    assert decision.status["stableRevision"] == new
    assert any(entry["action"] == "promote-full" and entry["actor"] == "alice" for entry in decision.status["history"])


def test_manual_pause_freezes_timed_steps_until_resumed(stable_world):
    world = stable_world
    start_new_version(world)
    world.run()
    paused = world.ask("pause")
    assert paused.status["phase"] == "Paused" and "paused by alice" in paused.status["message"]
    world.advance(3600)
    assert world.run().status["currentStepIndex"] == 1
    resumed = world.ask("resume")
    assert resumed.status["currentStepIndex"] == 3  # the 10m pause had elapsed; runs on to the indefinite pause


def test_a_timed_pause_begun_mid_second_is_never_cut_short_by_the_whole_seconds_the_status_keeps(stable_world):
    world = stable_world
    world.advance(0.6)  # the step begins 0.6 s into a second; the status can keep only the whole second
    start_new_version(
        world, steps=[{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 60}, {"pause": {}}]
    )
    world.run()
    assert world.status["currentStepIndex"] == 1
    world.advance(29.9)  # 30.5 s after the second stored, 29.9 s after the step began
    assert world.run().status["currentStepIndex"] == 1
    world.advance(1.0)  # past the 30 s, and past the whole second it was stored up to
    assert world.run().status["currentStepIndex"] == 3


def test_rejected_requests_are_answered_and_not_applied(stable_world):
    world = stable_world
    decision = world.ask("promote")
    assert decision.status["lastRequest"]["accepted"] is False
    assert decision.status["lastRequest"]["message"] == "no rollout in progress"
    assert "ManualActionRejected" in [
        e.reason for e in decide(replace(world.observe(), request=Request("resume", "x"))).events
    ]


def test_a_handled_request_is_not_applied_twice(stable_world):
    world = stable_world
    start_new_version(world, steps=[{"setWeight": 5}, {"pause": {}}, {"pause": {}}, {"setWeight": 100}])
    world.run()
    request = Request("promote", "same-id", "alice")
    world.request = request
    once = world.step()
    world.request = request  # the clear was lost; the same request is seen again
    twice = world.step()
    assert once.status["currentStepIndex"] == twice.status["currentStepIndex"] == 2
    assert [entry["action"] for entry in twice.status["history"]].count("promote") == 1


def test_undo_when_idle_brings_the_previous_revision_back_without_steps(stable_world):
    world = stable_world
    first = world.spec.revision
    second = start_new_version(world)
    world.ask("promote-full")
    world.advance(60)
    world.run()
    assert world.status["stableRevision"] == second and world.replicas()[first] == 0

    undo = world.ask("undo", actor="carol")
    assert undo.status["lastRequest"]["accepted"] is True
    final = world.run()
    assert final.status["stableRevision"] == first
    assert final.status["phase"] == "Degraded"
    assert final.status["abort"]["revision"] == second and final.status["abort"]["reason"] == "RolledBack"
    assert final.weights.canary == 0
    world.advance(31)
    world.run()
    assert world.replicas() == {first: 4, second: 0}


def test_undo_mid_rollout_is_an_immediate_abort(stable_world):
    world = stable_world
    start_new_version(world)
    world.run()
    decision = world.ask("undo")
    assert decision.status["abort"]["reason"] == "RolledBack"
    assert decision.weights.canary == 0


def test_replicas_change_mid_rollout_is_not_a_new_revision(stable_world):
    world = stable_world
    new = start_new_version(world)
    world.run()
    world.spec = make_spec(version="2", replicas=8)
    decision = world.run()
    assert decision.status["canaryRevision"] == new
    assert decision.status["currentStepIndex"] == 1
    assert decision.replicas_of(decision.stable_revision) == 8


def test_history_limit_keeps_the_newest_old_revisions():
    world = World(make_spec(history=1))
    world.run()
    for version in ("2", "3", "4"):
        world.spec = make_spec(version=version, history=1, steps=[{"setWeight": 100}])
        world.run()
        world.advance(31)
        world.run()
    assert len(world.deployments) == 2
    assert world.spec.revision in world.deployments


def test_invalid_status_keeps_the_serving_revision():
    world = World(make_spec())
    previous = world.run().status
    status, events = invalid_status(1, previous, "containers[0].image: Required value", T0)
    assert status["stableRevision"] == previous["stableRevision"]
    assert status["phase"] == "Degraded" and conditions(status)["Stalled"] == "True"
    assert [e.type for e in events] == ["Warning"]
    assert invalid_status(1, status, "containers[0].image: Required value", T0)[1] == ()


def test_promote_never_moves_traffic_ahead_of_available_pods(stable_world):
    world = stable_world
    new = start_new_version(world, steps=[{"setWeight": 50}, {"pause": {}}])
    world.unready.add(new)
    waiting = world.run()
    assert waiting.status["currentStepIndex"] == 0 and waiting.weights.canary == 0
    world.ask("pause")
    refused = world.ask("promote")
    assert refused.status["lastRequest"]["accepted"] is False
    assert "cannot be skipped" in refused.status["lastRequest"]["message"]
    assert refused.weights.canary == 0 and refused.status["currentStepIndex"] == 0
    assert refused.status["phase"] == "Paused"  # the person's pause survives a refused promote
    world.unready.clear()
    world.ask("resume")
    assert world.run().weights.canary == 50


def test_the_step_is_shown_as_people_count_it_and_only_while_the_canary_steps_run():
    world = World(make_spec())
    world.run()
    assert world.status["step"] == ""
    start_new_version(world)
    world.run()
    assert (world.status["currentStepIndex"], world.status["step"]) == (1, "2/5")  # setWeight 5 done, 10m pause
    world.advance(600)
    world.run()
    assert (world.status["currentStepIndex"], world.status["step"]) == (3, "4/5")  # waiting to be promoted
    world.ask("promote")
    assert world.status["stableRevision"] == world.spec.revision and world.status["step"] == ""


def inconclusive_world(stable_world) -> tuple[World, str]:
    """A canary paused at its analysis step: the check had no data (noDataPolicy Inconclusive)."""
    world = stable_world
    start_new_version(world, steps=ANALYSIS_STEPS)
    (run,) = world.run().analysis_runs
    world.analysis = {run.key: measured(None)}
    paused = world.run()
    assert paused.status["phase"] == "Paused" and paused.status["currentStepIndex"] == 1
    return world, run.key


def test_retry_analysis_runs_an_inconclusive_check_again_from_its_first_measurement(stable_world):
    world, key = inconclusive_world(stable_world)
    world.analysis = {}  # nothing measured yet for the new run
    retried = world.ask("retry-analysis", actor="carol")
    assert retried.status["lastRequest"]["accepted"] is True
    assert f"analysis {key} runs again" in retried.status["lastRequest"]["message"]
    assert [r for r in retried.status["analysisRuns"] if r["key"] == key] == []  # the inconclusive run is gone
    assert [run.key for run in retried.analysis_runs] == [key] and retried.status["currentStepIndex"] == 1
    assert retried.status["phase"] == "Progressing" and "ManualRetryAnalysis" in world.events
    world.analysis = {key: replace(measured(0.001), measurements={"error-rate": Measurement(world.now, 0.001)})}
    passed = world.run()
    assert passed.status["stableRevision"] == world.spec.revision  # the check passed this time: promoted


def test_promote_on_an_inconclusive_check_says_it_skips_the_check_and_records_it(stable_world):
    world, key = inconclusive_world(stable_world)
    promoted = world.ask("promote", actor="dave")
    answer = promoted.status["lastRequest"]
    assert answer["accepted"] is True
    assert f"the inconclusive analysis {key} is skipped, not passed" in answer["message"]
    (recorded,) = [entry for entry in promoted.status["history"] if entry["actor"] == "dave"]
    assert "skipped, not passed" in recorded["message"]


def test_retry_analysis_is_refused_when_nothing_is_inconclusive(stable_world):
    world = stable_world
    start_new_version(world, steps=ANALYSIS_STEPS)
    world.run()
    refused = world.ask("retry-analysis")
    assert refused.status["lastRequest"] == {
        **refused.status["lastRequest"],
        "accepted": False,
        "message": "no analysis is inconclusive and no hook failed: nothing to run again",
    }


def test_without_a_router_a_rollout_paused_on_inconclusive_checks_prepares_no_pods_for_the_next_step():
    """Found by the property tests: background checks that come back inconclusive as the rollout reaches a
    setWeight step paused it, yet the plan had already scaled the canary for that step (pods are traffic)."""
    steps = [{"setWeight": 1}, {"setWeight": 51}]
    checks = {"analysis": {"templates": [{"name": "error-rate"}], "startingStep": 1}}
    world = World(make_spec(version="1", replicas=2, steps=steps, router=False, **checks))
    world.run()
    world.spec = make_spec(version="2", replicas=2, steps=steps, router=False, **checks)
    no_data = MetricSpec("error-rate", interval=60, count=1, success_condition="result < 0.01")
    world.analysis = {
        f"{world.spec.revision}-background": AnalysisInput((no_data,), {"error-rate": Measurement(world.now, None)})
    }
    paused = world.run()
    assert (paused.status["phase"], paused.status["currentStepIndex"]) == ("Paused", 1)
    assert "background analysis inconclusive" in paused.status["message"]
    assert paused.replicas_of(world.spec.revision) == 1  # the pod of the 1% reached, none for 51%


def test_without_a_router_a_rollout_paused_on_a_failed_hook_keeps_its_pods_and_settles():
    """Found by the property tests after the fix above: pausing took the step's pod away, which un-paused the
    wait for pods, which brought it back, which called the hook again: the decisions never settled."""
    hooks = [{"name": "gate", "at": ["preRollout"], "webhook": {"url": "http://hooks.test/"}, "onFailure": "pause"}]
    world = World(make_spec(version="1", replicas=1, steps=[{"setWeight": 1}], router=False, hooks=hooks))
    world.run()
    world.spec = make_spec(version="2", replicas=1, steps=[{"setWeight": 1}], router=False, hooks=hooks)
    world.hook_server = lambda call: HookAnswer(False, 0.01, 503, "overloaded")
    paused = world.run()  # raises when the decisions never settle
    assert paused.status["phase"] == "Paused" and paused.replicas_of(world.spec.revision) == 1


def test_a_scale_down_delay_of_zero_scales_the_old_revision_down_at_the_promotion():
    """Found by CI after waits were rounded up to the whole second: a delay of 0 is due now, not next second."""
    strategy = {"canary": {"steps": [{"setWeight": 100}], "scaleDownDelaySeconds": 0}}
    world = World(make_spec(version="1", replicas=3, strategy=strategy))
    world.run()
    old = world.spec.revision
    world.advance(0.5)
    world.spec = make_spec(version="2", replicas=3, strategy=strategy)
    promoted = world.run()
    assert promoted.stable_revision == world.spec.revision and promoted.replicas_of(old) == 0


def test_the_canary_service_is_unrouted_only_while_no_weight_mirror_or_header_route_reaches_it():
    dark_launch = [{"setHeaderRoute": {"name": "qa", "match": [{"headerName": "x-qa", "headerValue": {"exact": "1"}}]}}]
    world = World(make_spec(version="1", steps=[*dark_launch, {"pause": {}}, {"setWeight": 20}, {"pause": {}}]))
    world.run()
    start_new_version(world, steps=[*dark_launch, {"pause": {}}, {"setWeight": 20}, {"pause": {}}])
    dark = world.run()
    weighted = world.ask("promote")
    aborted = world.ask("abort")
    assert [d.unrouted(ServiceRole.CANARY) for d in (dark, weighted, aborted)] == [False, False, True]
    assert not any(aborted.unrouted(role) for role in aborted.services if role is not ServiceRole.CANARY)
    routerless = World(make_spec(version="1", router=False))
    assert not any(routerless.run().unrouted(role) for role in ServiceRole)
