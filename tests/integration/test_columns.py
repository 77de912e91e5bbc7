"""`kubectl get modeldeployments` columns mid-rollout: the step as people count it, and generations that
show when the phase describes a spec the operator has not seen yet."""

from __future__ import annotations

from modelrollout.devcluster.stack import operator_process
from tests.integration.helpers import NEXT_VERSION, apply, sample, wait_status, with_version

STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]


def columns(control_plane, namespace: str) -> dict[str, str]:
    """The default `kubectl get md` row, by column header."""
    header, row = control_plane.kubectl("get", "md", "fraud-scorer", "-n", namespace).stdout.splitlines()
    starts = [index for index, char in enumerate(header) if char != " " and (index == 0 or header[index - 1] == " ")]
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


def test_step_is_one_based_and_generations_show_a_spec_not_yet_observed(control_plane, monitoring, namespace, tmp_path):
    body = sample(replicas=2, strategy={"canary": {"steps": STEPS}}, trafficRouting={"istio": {"hosts": ["f.example"]}})
    settings = {"MODELROLLOUT_HTTP_ADDRESS": "off", "MODELROLLOUT_PROMETHEUS_URL": monitoring.prometheus.url}
    with operator_process(control_plane.kubeconfig, tmp_path / "operator.log", settings):
        assert apply(control_plane, namespace, body).returncode == 0
        wait_status(control_plane, namespace, lambda s: s["phase"] == "Healthy", "the first version Healthy")
        assert apply(control_plane, namespace, with_version(body, NEXT_VERSION)).returncode == 0
        wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused at the second step")
        shown = columns(control_plane, namespace)
        assert (shown["PHASE"], shown["STEP"], shown["WEIGHT"], shown["STAGE"]) == ("Paused", "2/4", "20", "Canary")
        assert shown["GEN"] == shown["OBSERVED"] == "2"

    # The operator is down: a new spec is not observed, and the columns say so beside the old phase.
    assert apply(control_plane, namespace, with_version(body, "2026-12-04")).returncode == 0
    shown = columns(control_plane, namespace)
    assert (shown["PHASE"], shown["GEN"], shown["OBSERVED"]) == ("Paused", "3", "2")

    with operator_process(control_plane.kubeconfig, tmp_path / "operator-again.log", settings):
        wait_status(
            control_plane,
            namespace,
            lambda s: s.get("observedGeneration") == 3 and s["phase"] == "Paused",
            "the operator rolling generation 3 out to its first pause",
        )
        shown = columns(control_plane, namespace)
        assert (shown["GEN"], shown["OBSERVED"], shown["STEP"]) == ("3", "3", "2/4")
