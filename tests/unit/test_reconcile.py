"""Table-style tests of the pure reconcile decision, with explicit time and no cluster."""

from datetime import UTC, datetime

import pytest

from modelrollout.core.reconcile import DesiredDeployment, ObservedDeployment, invalid, reconcile
from modelrollout.core.spec import ObjectMeta, parse_spec

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
META = ObjectMeta(name="fraud", namespace="models", uid="uid-1", generation=3)


def make_spec(version="1", replicas=3, history=5):
    return parse_spec(
        {
            "replicas": replicas,
            "model": {"name": "fraud", "version": version},
            "template": {"spec": {"containers": [{"name": "s", "image": "scorer"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
            "revisionHistoryLimit": history,
        }
    )


SPEC = make_spec()
CURRENT = SPEC.revision


def settled(revision, replicas=3, created="2026-11-22T10:00:00Z"):
    return ObservedDeployment(
        name=f"fraud-{revision}",
        revision=revision,
        created=created,
        spec_replicas=replicas,
        generation=2,
        observed_generation=2,
        replicas=replicas,
        ready_replicas=replicas,
        available_replicas=replicas,
        updated_replicas=replicas,
    )


def starting(revision, replicas=3, ready=0, deadline=False):
    return ObservedDeployment(
        name=f"fraud-{revision}",
        revision=revision,
        created="2026-11-22T11:00:00Z",
        spec_replicas=replicas,
        generation=1,
        observed_generation=1,
        replicas=replicas,
        ready_replicas=ready,
        available_replicas=ready,
        updated_replicas=replicas,
        progress_deadline_exceeded=deadline,
    )


def conditions(status):
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_first_reconcile_creates_the_current_revision():
    decision = reconcile(META, SPEC, {}, [], NOW)
    assert decision.deployments == (DesiredDeployment(CURRENT, 3),)
    assert decision.service_revision == CURRENT
    assert decision.status["phase"] == "Pending"
    assert decision.status["observedGeneration"] == 3
    assert decision.status["selector"] == f"modelrollout.io/deployment=fraud,modelrollout.io/revision={CURRENT}"
    assert conditions(decision.status)["Ready"] == ("False", "CreatingRevision")
    assert conditions(decision.status)["Reconciling"] == ("True", "CreatingRevision")
    assert [e.reason for e in decision.events] == ["Pending"]


@pytest.mark.parametrize(
    ("observed", "phase", "ready", "reconciling", "stalled"),
    [
        ([starting(CURRENT, ready=1)], "Progressing", "False", "True", "False"),
        ([settled(CURRENT)], "Healthy", "True", "False", "False"),
        ([starting(CURRENT, ready=1, deadline=True)], "Degraded", "False", "False", "True"),
    ],
)
def test_phase_and_kstatus_conditions(observed, phase, ready, reconciling, stalled):
    decision = reconcile(META, SPEC, {"stableRevision": CURRENT}, observed, NOW)
    found = conditions(decision.status)
    assert decision.status["phase"] == phase
    assert (found["Ready"][0], found["Reconciling"][0], found["Stalled"][0]) == (ready, reconciling, stalled)
    assert found["Degraded"][0] == stalled


def test_progress_deadline_is_a_warning_event_naming_the_revision():
    decision = reconcile(META, SPEC, {"phase": "Progressing"}, [starting(CURRENT, ready=1, deadline=True)], NOW)
    (event,) = decision.events
    assert (event.type, event.reason) == ("Warning", "Degraded")
    assert CURRENT in event.message and "600s" in event.message and "1/3" in event.message


def test_steady_state_emits_no_event():
    first = reconcile(META, SPEC, {"stableRevision": CURRENT}, [settled(CURRENT)], NOW)
    again = reconcile(META, SPEC, first.status, [settled(CURRENT)], NOW)
    assert again.events == ()
    assert again.status == first.status


def test_stable_keeps_serving_until_the_new_revision_is_available():
    new_spec = make_spec(version="2")
    new = new_spec.revision
    decision = reconcile(META, new_spec, {"stableRevision": CURRENT}, [settled(CURRENT), starting(new, ready=2)], NOW)
    assert set(decision.deployments) == {DesiredDeployment(new, 3), DesiredDeployment(CURRENT, 3)}
    assert decision.service_revision == CURRENT
    assert decision.status["stableRevision"] == CURRENT
    assert decision.status["canaryRevision"] == new
    assert decision.status["phase"] == "Progressing"


def test_new_revision_available_is_promoted_and_old_scaled_to_zero():
    new_spec = make_spec(version="2")
    new = new_spec.revision
    decision = reconcile(META, new_spec, {"stableRevision": CURRENT}, [settled(CURRENT), settled(new)], NOW)
    assert decision.service_revision == new
    assert set(decision.deployments) == {DesiredDeployment(new, 3), DesiredDeployment(CURRENT, 0)}
    assert decision.status["stableRevision"] == new
    assert decision.status["canaryRevision"] == ""
    assert decision.status["phase"] == "Progressing"  # the old pods are still running
    assert "Promoted" in [e.reason for e in decision.events]
    scaled = reconcile(META, new_spec, decision.status, [settled(CURRENT, replicas=0), settled(new)], NOW)
    assert scaled.status["phase"] == "Healthy"


def test_replicas_only_change_scales_the_same_revision():
    bigger = make_spec(replicas=5)
    assert bigger.revision == CURRENT
    decision = reconcile(META, bigger, {"stableRevision": CURRENT}, [settled(CURRENT)], NOW)
    assert decision.deployments == (DesiredDeployment(CURRENT, 5),)
    assert decision.status["stableRevision"] == CURRENT
    assert decision.status["canaryRevision"] == ""


def test_history_limit_keeps_newest_old_revisions_and_deletes_the_rest():
    olds = [settled(f"old{i}", replicas=0, created=f"2026-11-2{i}T00:00:00Z") for i in range(4)]
    spec = make_spec(history=2)
    decision = reconcile(META, spec, {"stableRevision": spec.revision}, [settled(spec.revision), *olds], NOW)
    assert DesiredDeployment("old3", 0) in decision.deployments
    assert DesiredDeployment("old2", 0) in decision.deployments
    assert set(decision.delete_revisions) == {"old0", "old1"}


def test_vanished_stable_deployment_falls_back_to_current():
    decision = reconcile(META, SPEC, {"stableRevision": "gone"}, [], NOW)
    assert decision.status["stableRevision"] == CURRENT
    assert decision.service_revision == CURRENT


def test_invalid_keeps_the_serving_revision_and_reports_stalled():
    previous = reconcile(META, SPEC, {"stableRevision": CURRENT}, [settled(CURRENT)], NOW).status
    status, events = invalid(META, previous, "InvalidSpec", "spec.template.spec.containers[0].image: Required", NOW)
    assert status["stableRevision"] == CURRENT
    assert status["phase"] == "Degraded"
    assert conditions(status)["Stalled"] == ("True", "InvalidSpec")
    assert conditions(status)["Ready"] == ("False", "InvalidSpec")
    assert [e.type for e in events] == ["Warning"]
    _, again = invalid(META, status, "InvalidSpec", "spec.template.spec.containers[0].image: Required", NOW)
    assert again == ()
