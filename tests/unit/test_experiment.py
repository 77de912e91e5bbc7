"""The experiment step: both revisions side by side at a fixed split for a duration, judged by the
comparison analysis; it passes only once the time is up and the analysis succeeded."""

from __future__ import annotations

from modelrollout.core.analysis import AnalysisInput, Measurement, MetricSpec
from tests.unit.world import World, make_spec

PSI = MetricSpec("prediction-psi", interval=60, count=1, success_condition="result <= 0.25", query="q")
COMPARE = {"templates": [{"name": "model-prediction-distribution-shift"}]}
STEPS = [{"setWeight": 10}, {"experiment": {"weight": 50, "duration": "30m", "analysis": COMPARE}}, {"pause": {}}]


def rolling() -> tuple[World, str]:
    world = World(make_spec(version="1", replicas=4, steps=STEPS))
    world.run()
    world.spec = make_spec(version="2", replicas=4, steps=STEPS)
    return world, world.spec.revision


def measure(world: World, value: float) -> None:
    (run,) = world.decision.analysis_runs
    world.analysis = {run.key: AnalysisInput((PSI,), {"prediction-psi": Measurement(world.now, value)})}


def test_the_split_is_held_for_the_duration_then_a_passed_analysis_moves_on_with_the_weight():
    world, new = rolling()
    started = world.run()
    assert started.route_weights.canary == 50 and started.replicas_of(new) == 2
    assert started.status["currentStepIndex"] == 1 and started.status["phase"] == "Progressing"
    measure(world, 0.02)
    world.advance(60)
    judged = world.run()
    assert (
        judged.status["currentStepIndex"] == 1
        and "29m00s left at canary weight 50%: prediction-psi: 0.02 met" in judged.status["message"]
    )
    assert judged.requeue_after == 29 * 60
    world.advance(29 * 60)
    passed = world.run()
    assert (passed.status["currentStepIndex"], passed.status["phase"]) == (2, "Paused")
    assert passed.route_weights.canary == 50  # the experiment's weight stays
    assert "(experiment at 50% for 1800s) passed: prediction-psi: 0.02" in passed.status["history"][-1]["message"]


def test_a_shifted_model_fails_the_experiment_and_goes_back_to_zero_at_once():
    world, new = rolling()
    world.run()
    measure(world, 0.9)
    world.advance(60)
    aborted = world.run()
    assert aborted.status["abort"]["reason"] == "AnalysisFailed" and aborted.route_weights.canary == 0
    assert aborted.canary_revision == "" and aborted.stable_revision != new


def test_the_time_being_up_is_not_enough_without_the_analysis_result():
    world, _ = rolling()
    world.run()
    world.advance(30 * 60)
    waiting = world.run()
    assert waiting.status["currentStepIndex"] == 1
    assert "the time is up; waiting for the analysis" in waiting.status["message"]


def test_the_experiment_waits_for_the_pods_of_its_split_before_its_clock_starts():
    world, new = rolling()
    world.step()  # the canary's first pod, for 10%
    world.unready.add(new)  # the second one, for 50%, does not come up yet
    waiting = world.run()
    assert waiting.route_weights.canary == 10 and "waiting for 2 canary pods" in waiting.status["message"]
    world.unready.clear()
    world.advance(3600)
    started = world.run()
    assert started.route_weights.canary == 50 and started.status["currentStepIndex"] == 1
    assert "30m00s left at canary weight 50%" in started.status["message"]
