"""Prometheus analysis and alarms on the real control plane and a real Prometheus.

The traffic simulator (a stand-in for model servers) exports per-revision metrics with the behaviour
each test gives a revision; Prometheus scrapes it every second and evaluates the alert rules.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.error
import urllib.request

import pytest
import yaml

from modelrollout.simulator.exporter import Behaviour
from tests.integration.conftest import REPO, wait_for
from tests.integration.helpers import (
    JsonEndpoint,
    api_requests,
    apply,
    condition,
    kubectl_apply,
    labelled_metric,
    md,
    plugin,
    replicas_by_revision,
    revision_of,
    rollout,
    sample,
    start,
    template,
    wait_events,
    wait_status,
    with_version,
)

BUILT_INS = REPO / "manifests" / "analysis-templates" / "model-templates.yaml"


def test_a_healthy_canary_is_promoted_through_its_analysis(control_plane, operator, monitoring, namespace):
    kubectl_apply(control_plane, namespace, template("error-rate"))
    body = rollout(monitoring, [template("error-rate")])
    _stable, canary = start(control_plane, namespace, monitoring, body, Behaviour(error_ratio=0.001))
    done = wait_status(
        control_plane,
        namespace,
        lambda s: s["stableRevision"] == canary and s["phase"] == "Healthy",
        "promoted after analysis",
    )
    (run,) = done["status"]["analysisRuns"]
    assert run["phase"] == "Successful"
    (metric,) = run["metrics"]
    assert metric["count"] == 2 and metric["successful"] == 2
    assert float(metric["measurements"][-1]["value"]) < 0.05
    recorded = wait_events(control_plane, namespace, "StepCompleted", "Promoted")
    assert [e["type"] for e in recorded if e["reason"] == "Promoted"] == ["Normal"]


def test_a_failing_dry_run_metric_is_shown_and_the_canary_is_still_promoted(
    control_plane, operator, monitoring, namespace
):
    checks = template("error-rate")
    strict = template("strict-error-rate", condition="result < 0", dryRun=True, measurementRetention=3)
    checks["spec"]["metrics"].append(strict["spec"]["metrics"][0])
    kubectl_apply(control_plane, namespace, checks)
    body = rollout(monitoring, [checks])
    _stable, canary = start(control_plane, namespace, monitoring, body, Behaviour(error_ratio=0.001))
    done = wait_status(
        control_plane,
        namespace,
        lambda s: s["stableRevision"] == canary and s["phase"] == "Healthy",
        "promoted although the dry-run metric failed",
    )
    (run,) = done["status"]["analysisRuns"]
    assert run["phase"] == "Successful"
    deciding, dry = run["metrics"]
    assert (deciding["name"], deciding["phase"], deciding.get("dryRun")) == ("error-rate", "Successful", None)
    assert (dry["name"], dry["phase"], dry["dryRun"]) == ("strict-error-rate", "Failed", True)
    assert dry["message"].endswith("did not meet successCondition result < 0 (dry run)")
    assert dry["message"] in run["message"]
    labels = {"namespace": namespace, "name": "fraud-scorer", "metric": "strict-error-rate", "phase": "Failed"}
    failed = labelled_metric(operator.http, "modelrollout_analysis_measurements_total", labels)
    assert failed == dry["failed"] == 1


def web_template(url: str, **metric) -> dict:
    """A ModelAnalysisTemplate whose metric is read from a web endpoint's JSON ($.data.accuracy)."""
    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelAnalysisTemplate",
        "metadata": {"name": "golden-set"},
        "spec": {
            "metrics": [
                {
                    "name": "golden-set-accuracy",
                    "successCondition": "result >= 0.9",
                    "interval": "1s",
                    "count": 2,
                    **metric,
                    "provider": {
                        "web": {
                            "url": url + "/score?revision={{args.canary-revision}}",
                            "jsonPath": "$.data.accuracy",
                            "timeout": "2s",
                        }
                    },
                }
            ]
        },
    }


def test_a_web_metric_promotes_a_good_canary_and_a_missing_value_rolls_one_back(
    control_plane, operator, monitoring, namespace
):
    evaluator = JsonEndpoint({"data": {"accuracy": 0.95}})
    try:
        kubectl_apply(control_plane, namespace, web_template(evaluator.url, noDataPolicy="Failure"))
        body = rollout(monitoring, [web_template(evaluator.url)])
        _stable, canary = start(control_plane, namespace, monitoring, body, None)
        done = wait_status(
            control_plane,
            namespace,
            lambda s: s["stableRevision"] == canary and s["phase"] == "Healthy",
            "promoted by the web metric",
        )
        (metric,) = done["status"]["analysisRuns"][0]["metrics"]
        assert (metric["successful"], metric["measurements"][-1]["value"]) == (2, "0.95")
        assert f"/score?revision={canary}" in evaluator.paths

        evaluator.answer = {"data": {"precision": 0.99}}  # the next model's answer has no accuracy
        assert apply(control_plane, namespace, with_version(body, "2026-12-01")).returncode == 0
        rolled_back = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "rolled back")
        assert rolled_back["status"]["abort"]["reason"] == "AnalysisFailed"
        assert "the answer has no $.data.accuracy" in rolled_back["status"]["abort"]["message"]
        assert rolled_back["status"]["stableRevision"] == canary
    finally:
        evaluator.stop()


def test_a_canary_breaking_its_condition_is_rolled_back(control_plane, operator, monitoring, namespace):
    kubectl_apply(control_plane, namespace, template("error-rate"))
    body = rollout(monitoring, [template("error-rate")])
    stable, canary = start(control_plane, namespace, monitoring, body, Behaviour(error_ratio=0.3))
    rolled_back = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "rolled back")
    abort = rolled_back["status"]["abort"]
    assert abort["reason"] == "AnalysisFailed"
    assert re.search(r"error-rate: 0\.(29|3)", abort["message"]) and "result < 0.05" in abort["message"]
    assert rolled_back["status"]["stableRevision"] == stable
    assert rolled_back["status"]["weights"]["canary"] == 0
    recorded = wait_events(control_plane, namespace, "RolloutAborted")
    warnings = [e for e in recorded if e["type"] == "Warning" and e["reason"] == "RolloutAborted"]
    assert warnings and re.search(r"error-rate: 0\.(29|3)", warnings[0]["note"])
    exported = urllib.request.urlopen(f"http://{operator.http}/metrics", timeout=5).read().decode()
    series = (
        f'modelrollout_analysis_measurement_value{{metric="error-rate",name="fraud-scorer",namespace="{namespace}"}}'
    )
    exported_value = re.search(re.escape(series) + r" (\S+)", exported)
    assert exported_value and abs(float(exported_value.group(1)) - 0.3) < 0.01
    assert (
        f'modelrollout_rollout_aborts_total{{name="fraud-scorer",namespace="{namespace}",reason="AnalysisFailed"}}'
        in exported
    )
    # Every API request is counted, kopf's watch and the informers' included (the scale benchmark reports
    # them per resource); no pod is ever written.
    counted = api_requests(exported)
    for client, verb, resource in (
        ("operator", "patch", "modeldeployments/status"),
        ("operator", "list", "deployments"),
        ("operator", "watch", "deployments"),
        ("operator", "watch", "services"),
        ("kopf", "watch", "modeldeployments"),
    ):
        assert counted.get((client, verb, resource), 0.0) > 0, (client, verb, resource)
    assert not [key for key in counted if key[2] == "pods"]
    wait_for(lambda: replicas_by_revision(control_plane, namespace)[canary] == 0, what="canary scaled down")


def test_no_data_pauses_as_inconclusive(control_plane, operator, monitoring, namespace):
    kubectl_apply(control_plane, namespace, template("error-rate"))
    body = rollout(monitoring, [template("error-rate")])
    start(control_plane, namespace, monitoring, body, None)  # the canary exports nothing
    paused = wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused for a person")
    assert "no data: the query returned no series (noDataPolicy Inconclusive)" in paused["status"]["message"]
    assert condition(paused, "Paused")["reason"] == "InconclusiveAnalysis"
    assert paused["status"]["stableRevision"] == revision_of(body)


def test_retry_analysis_runs_an_inconclusive_check_again_and_it_can_pass(
    control_plane, operator, monitoring, namespace
):
    kubectl_apply(control_plane, namespace, template("error-rate"))
    body = rollout(monitoring, [template("error-rate")])
    _stable, canary = start(control_plane, namespace, monitoring, body, None)  # the canary exports nothing
    wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "inconclusive: no data")
    monitoring.simulator.set(namespace, canary, Behaviour(error_ratio=0.001))  # now it does
    retried = plugin(control_plane, "retry-analysis", "fraud-scorer", "-n", namespace)
    assert retried.returncode == 0 and f"analysis {canary}-step-1 runs again" in retried.stdout
    promoted = wait_status(
        control_plane,
        namespace,
        lambda s: s["stableRevision"] == canary,
        "promoted after the check passed",
        timeout=120,
    )
    (run,) = [r for r in promoted["status"]["analysisRuns"] if r["key"] == f"{canary}-step-1"]
    assert run["phase"] == "Successful"
    again = plugin(control_plane, "retry-analysis", "fraud-scorer", "-n", namespace)
    assert again.returncode == 1 and "no rollout in progress" in again.stderr


def test_an_unreachable_prometheus_never_promotes(control_plane, operator, monitoring, namespace):
    dead = template("error-rate", consecutiveErrorLimit=1)
    kubectl_apply(control_plane, namespace, dead)
    body = rollout(monitoring, [dead])
    step = body["spec"]["strategy"]["canary"]["steps"][1]["analysis"]
    step["args"] = [{"name": "prometheus", "value": "http://127.0.0.1:9"}]  # nothing listens on the discard port
    stable, _canary = start(control_plane, namespace, monitoring, body, Behaviour())
    paused = wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused, not promoted")
    assert "2 consecutive errors" in paused["status"]["message"] and "unreachable" in paused["status"]["message"]
    assert paused["status"]["stableRevision"] == stable


def test_a_firing_alert_rolls_back_by_polling_alerts(control_plane, operator, monitoring, namespace):
    kubectl_apply(control_plane, namespace, template("error-rate", count=0, interval="1h"))
    steps = {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}], "abortScaleDownDelaySeconds": 1}}
    body = sample(
        replicas=2,
        strategy=steps,
        trafficRouting={"istio": {"hosts": ["fraud.example.com"]}},
        rollbackOn={"alerts": [{"alertname": "ModelErrorRateHigh", "labels": {"namespace": namespace}}]},
    )
    _stable, canary = start(control_plane, namespace, monitoring, body, Behaviour())
    wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused at 20%")
    monitoring.simulator.set(namespace, canary, Behaviour(error_ratio=0.5))
    rolled_back = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "rolled back by alert")
    assert rolled_back["status"]["abort"]["reason"] == "AlertFiring"
    assert f'ModelErrorRateHigh{{namespace="{namespace}"}}' in rolled_back["status"]["abort"]["message"]
    assert rolled_back["status"]["weights"]["canary"] == 0


def webhook(operator, payload: dict, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://{operator.http}/alertmanager",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def alertmanager_payload(namespace: str) -> dict:
    """The body Alertmanager's webhook receiver sends (version 4)."""
    labels = {"alertname": "FraudScorerLatency", "namespace": namespace, "severity": "page"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="FraudScorerLatency"}',
        "status": "firing",
        "receiver": "modelrollout",
        "groupLabels": {"alertname": "FraudScorerLatency"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "p99 too high"},
                "startsAt": "2026-11-22T12:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": f"fp-{namespace}",
            }
        ],
    }


def test_an_alertmanager_webhook_rolls_back_and_strangers_are_refused(control_plane, operator, monitoring, namespace):
    steps = {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}], "abortScaleDownDelaySeconds": 1}}
    body = sample(
        replicas=2,
        strategy=steps,
        trafficRouting={"nginx": {"host": "fraud.example.com"}},
        rollbackOn={"alerts": [{"alertname": "FraudScorerLatency", "labels": {"namespace": namespace}}]},
    )
    start(control_plane, namespace, monitoring, body, Behaviour())
    wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused at 20%")

    assert webhook(operator, alertmanager_payload(namespace), None)[0] == 401
    assert webhook(operator, alertmanager_payload(namespace), "wrong-token")[0] == 401
    assert webhook(operator, {"not": "alertmanager"}, operator.webhook_token)[0] == 400
    assert md(control_plane, namespace)["status"]["phase"] == "Paused"  # nothing acted on

    status, text = webhook(operator, alertmanager_payload(namespace), operator.webhook_token)
    assert (status, text.strip()) == (200, "1 firing")
    rolled_back = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "rolled back by webhook")
    assert rolled_back["status"]["abort"]["reason"] == "AlertFiring"
    assert "FraudScorerLatency" in rolled_back["status"]["abort"]["message"]


def test_an_alarm_scoped_to_the_canary_revision_ignores_the_stable_revisions_alert(
    control_plane, operator, monitoring, namespace
):
    steps = {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}], "abortScaleDownDelaySeconds": 1}}
    scoped = {"namespace": "{{args.namespace}}", "revision": "{{args.canary-revision}}"}
    body = sample(
        replicas=2,
        strategy=steps,
        trafficRouting={"nginx": {"host": "fraud.example.com"}},
        rollbackOn={"alerts": [{"alertname": "ModelErrorRateHigh", "labels": scoped}]},
    )
    stable, canary = start(control_plane, namespace, monitoring, body, Behaviour())
    wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused at 20%")

    def alert_about(revision: str) -> dict:
        payload = alertmanager_payload(namespace)
        payload["alerts"][0]["labels"] = {
            "alertname": "ModelErrorRateHigh",
            "namespace": namespace,
            "revision": revision,
        }
        payload["alerts"][0]["fingerprint"] = f"fp-{revision}"
        return payload

    answer, text = webhook(operator, alert_about(stable), operator.webhook_token)
    assert (answer, text.strip()) == (200, "1 firing")
    # A person's pause: the operator answers it in a reconcile that sees the stable's alert firing.
    paused = plugin(control_plane, "pause", "fraud-scorer", "-n", namespace)
    assert paused.returncode == 0, paused.stderr
    status = md(control_plane, namespace)["status"]
    assert (status["phase"], status["weights"]["canary"], status.get("abort")) == ("Paused", 20, None)

    assert webhook(operator, alert_about(canary), operator.webhook_token)[0] == 200
    rolled_back = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "rolled back by webhook")
    assert rolled_back["status"]["abort"]["reason"] == "AlertFiring"
    assert f'revision="{canary}"' in rolled_back["status"]["abort"]["message"]
    assert rolled_back["status"]["weights"]["canary"] == 0


def test_every_built_in_template_query_runs_on_real_data(control_plane, operator, monitoring, namespace):
    built_ins = list(yaml.safe_load_all(BUILT_INS.read_text()))
    assert len(built_ins) == 9
    # Demo-speed windows; the input-drift baseline is 5s ago, as the stable revision is only seconds old.
    fast_args = {"window": "10s", "baseline-offset": "5s", "feature": "amount"}
    fast = []
    for original in built_ins:
        copy_ = copy.deepcopy(original)
        copy_["kind"] = "ModelAnalysisTemplate"  # namespaced copies, so the test owns them
        copy_["metadata"] = {"name": original["metadata"]["name"]}
        metric = copy_["spec"]["metrics"][0]
        metric.update({"interval": "2s", "count": 2, "failureLimit": 0, "initialDelay": "10s"})
        for arg in copy_["spec"]["args"]:
            if arg["name"] in fast_args:
                arg["value"] = fast_args[arg["name"]]
        fast.append(copy_)
    kubectl_apply(control_plane, namespace, *fast)
    body = rollout(monitoring, fast)
    healthy_canary = Behaviour(  # as fast as the stable revision, with its score distribution
        error_ratio=0.002, latency_seconds=0.02, null_ratio=0.005, missing_features_ratio=0.01, drift_score=0.05
    )
    _stable, canary = start(control_plane, namespace, monitoring, body, healthy_canary)
    done = wait_status(control_plane, namespace, lambda s: s["stableRevision"] == canary, "promoted", timeout=120)
    (run,) = done["status"]["analysisRuns"]
    values = {m["name"]: [x.get("value") for x in m["measurements"]] for m in run["metrics"]}
    assert {m["name"]: m["phase"] for m in run["metrics"]} == {
        name: "Successful"
        for name in (
            "error-rate",
            "latency-p99",
            "throughput-vs-stable",
            "null-predictions",
            "missing-features",
            "input-drift",
            "latency-p99-vs-stable",
            "prediction-distribution-shift",
            "input-distribution-drift",
        )
    }, values
    assert all(value is not None for series in values.values() for value in series)


@pytest.mark.parametrize(
    ("case", "setup", "message"),
    [
        ("bad-condition", "condition", "condition 'result <' does not compile"),
        ("missing-template", "missing", "ModelAnalysisTemplate error-rate not found in namespace"),
        ("missing-secret", "secret", "Secret prometheus-token not found in namespace"),
    ],
)
def test_bad_analysis_input_is_reported_naming_what_to_fix(
    control_plane, operator, monitoring, namespace, case, setup, message
):
    broken = template("error-rate")
    if setup == "condition":
        broken["spec"]["metrics"][0]["successCondition"] = "result <"
    if setup == "secret":
        broken["spec"]["metrics"][0]["provider"]["prometheus"]["authentication"] = {
            "bearerTokenSecretRef": {"name": "prometheus-token", "key": "token"}
        }
    if setup != "missing":
        kubectl_apply(control_plane, namespace, broken)
    body = rollout(monitoring, [broken])
    stable, _ = start(control_plane, namespace, monitoring, body, Behaviour())
    degraded = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "Degraded")
    assert degraded["status"]["abort"]["reason"] == "AnalysisInvalid"
    assert message in degraded["status"]["abort"]["message"]
    if setup != "missing":
        assert "metric error-rate" in degraded["status"]["abort"]["message"]
    assert condition(degraded, "Stalled")["status"] == "True"
    assert degraded["status"]["stableRevision"] == stable


def test_a_condition_that_is_not_cel_at_all_is_rejected_at_apply_time(control_plane, namespace):
    broken = template("error-rate")
    del broken["spec"]["metrics"][0]["successCondition"]
    result = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(broken), check=False)
    assert result.returncode != 0
    assert "set successCondition, failureCondition, or both" in result.stderr


def test_built_in_templates_are_valid_cluster_templates(control_plane):
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", str(BUILT_INS), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("clustermodelanalysistemplate.modelrollout.io/model-") == 9
