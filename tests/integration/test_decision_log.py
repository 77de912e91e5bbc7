"""The operator's log at INFO tells every decision of a real rollout, and nothing for a reconcile that changes nothing.

The operator runs as its own process (`modelrollout run --log-format json`, the default level) on the
local control plane, measuring the traffic simulator through the real Prometheus; the test reads the
log file the process wrote.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path

from modelrollout.devcluster import cluster
from modelrollout.devcluster.stack import operator_metric, operator_process
from modelrollout.simulator.exporter import Behaviour
from tests.integration.conftest import wait_for
from tests.integration.helpers import (
    apply,
    kubectl_apply,
    plugin,
    revision_of,
    rollout,
    start,
    template,
    wait_status,
    with_version,
)

NAME = "fraud-scorer"
ALERT = "DecisionLogAlarm"


def decisions(log: Path) -> list[dict]:
    """The decision lines of a JSON operator log, in order."""
    lines = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "modelrollout.decisions":
                lines.append(entry)
    return lines


def told(lines: list[dict], change: str, **fields) -> list[dict]:
    return [line for line in lines if line["change"] == change and all(line.get(k) == v for k, v in fields.items())]


def fire(http: str, token: str, namespace: str) -> None:
    alert = {"status": "firing", "labels": {"alertname": ALERT, "namespace": namespace}, "endsAt": ""}
    request = urllib.request.Request(
        f"http://{http}/alertmanager",
        data=json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_a_whole_rollout_is_told_at_info_and_a_reconcile_that_changes_nothing_is_not(
    control_plane, monitoring, namespace, tmp_path
):
    kubectl_apply(control_plane, namespace, template("error-rate"))
    alarms = {"rollbackOn": {"alerts": [{"alertname": ALERT, "labels": {"namespace": namespace}}]}}
    body = rollout(monitoring, [template("error-rate")], alarms)
    body["spec"]["strategy"]["canary"]["steps"].insert(2, {"pause": {}})
    http, token = f"127.0.0.1:{cluster.free_port()}", secrets.token_hex(8)
    settings = {
        "MODELROLLOUT_PROMETHEUS_URL": monitoring.prometheus.url,
        "MODELROLLOUT_HTTP_ADDRESS": http,
        "MODELROLLOUT_WEBHOOK_TOKEN": token,
    }
    log = tmp_path / "operator.log"
    # Only this namespace: ModelDeployments other tests left elsewhere would add their own lines.
    with operator_process(
        control_plane.kubeconfig, log, settings, args=("--log-format", "json", "--namespace", namespace)
    ):
        stable, canary = start(control_plane, namespace, monitoring, body, Behaviour(error_ratio=0.001))
        wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused at the pause step")
        assert plugin(control_plane, "promote", NAME, "-n", namespace).returncode == 0
        wait_status(
            control_plane,
            namespace,
            lambda s: s["stableRevision"] == canary and s["phase"] == "Healthy" and not s["scaleDowns"],
            "promoted and the old revision scaled down",
            timeout=120,
        )

        # A reconcile that changes nothing (an annotation is not part of the spec) logs nothing.
        before, reconciles = decisions(log), operator_metric(http, "modelrollout_reconcile_duration_seconds_count")
        control_plane.kubectl("annotate", "modeldeployment", NAME, "-n", namespace, "example.com/touched=yes")
        wait_for(
            lambda: operator_metric(http, "modelrollout_reconcile_duration_seconds_count") > reconciles,
            what="the reconcile the annotation caused",
        )
        assert decisions(log) == before

        third = with_version(body, "2026-12-04")
        monitoring.simulator.set(namespace, revision_of(third), Behaviour())
        assert apply(control_plane, namespace, third).returncode == 0
        wait_status(control_plane, namespace, lambda s: s["weights"]["canary"] == 20, "the third model at 20%")
        fire(http, token, namespace)
        wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "rolled back by the alarm")

    lines = decisions(log)
    assert all(line["level"] == "info" and line["namespace"] == namespace and line["name"] == NAME for line in lines)
    assert told(lines, "RolloutStarted", revision=canary)
    assert told(lines, "StepStarted", revision=canary, step="1/4")
    assert told(lines, "WeightChanged", revision=canary, weight="canary", previous_percent=0, percent=20)
    (measured, *_) = told(lines, "Measured", revision=canary, metric="error-rate", outcome="Successful")
    assert measured["condition"] == "successCondition result < 0.05" and 0 <= measured["value"] < 0.05
    assert told(lines, "StepCompleted", revision=canary, step="2/4")
    (paused,) = told(lines, "PhaseChanged", revision=canary, phase="Paused")
    assert paused["reason"] == "CanaryPauseStep" and f"kubectl modelrollout promote {NAME}" in paused["message"]
    assert told(lines, "Promoted", revision=canary, stable=canary, previous_stable=stable)
    assert told(lines, "Scaled", scaled_revision=stable, replicas=0)
    (aborted,) = told(lines, "Aborted", reason="AlertFiring")
    assert aborted["aborted_revision"] == revision_of(third) and ALERT in aborted["message"]
    assert told(lines, "WeightChanged", revision=revision_of(third), previous_percent=20, percent=0)
