"""The operator restarted mid-step continues from the persisted step, not from the start."""

from __future__ import annotations

from tests.integration.conftest import running_operator, wait_for
from tests.integration.helpers import (
    apply,
    healthy,
    md,
    plugin,
    replicas_by_revision,
    sample,
    wait_status,
    with_version,
)

STEPS = [{"setWeight": 20}, {"pause": {"duration": "1h"}}, {"setWeight": 60}, {"pause": {}}, {"setWeight": 100}]


def test_operator_restart_mid_step_resumes_the_same_step(control_plane, monitoring, namespace):
    first = sample(
        replicas=5, strategy={"canary": {"steps": STEPS}}, trafficRouting={"istio": {"hosts": ["fraud.example.com"]}}
    )
    with running_operator(monitoring.prometheus.url):
        assert apply(control_plane, namespace, first).returncode == 0
        wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
        assert apply(control_plane, namespace, with_version(first, "v2")).returncode == 0
        before = wait_status(control_plane, namespace, lambda s: s["currentStepIndex"] == 1, "the 1h pause")
    # The baseline is what status says once no operator runs (a reconcile may have been in flight at the stop).
    stopped = md(control_plane, namespace)
    assert stopped["status"]["currentStepIndex"] == 1
    assert stopped["status"]["stepStartedAt"] == before["status"]["stepStartedAt"]
    replicas = replicas_by_revision(control_plane, namespace)

    with running_operator(monitoring.prometheus.url):
        # Only a live operator answers; its answer names the step it found in status.
        answered = plugin(control_plane, "pause", "fraud-scorer", "-n", namespace)
        assert answered.returncode == 0, answered.stderr
        assert "paused at step 2" in answered.stdout
        body = md(control_plane, namespace)
        assert body["status"]["currentStepIndex"] == 1
        assert body["status"]["stepStartedAt"] == stopped["status"]["stepStartedAt"]
        assert body["status"]["weights"]["canary"] == 20
        assert replicas_by_revision(control_plane, namespace) == replicas
        started = [e for e in body["status"]["history"] if e["action"] == "RolloutStarted"]
        assert len(started) == 1
