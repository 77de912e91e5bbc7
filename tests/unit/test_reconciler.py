"""The `Reconciler` (the I/O shell around `decide`) against an in-memory apiserver (`fake_kube.FakeKube`).

Each test drives one ModelDeployment through reconciles with an explicit clock and checks what the
shell wrote, in which order, and what it wrote into status and metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelrollout.controller import metrics
from modelrollout.controller import reconciler as reconciler_module
from modelrollout.controller.alerts import AlarmChecker, WebhookAlerts
from modelrollout.controller.reconciler import Reconciler, no_analysis
from modelrollout.core import labels
from modelrollout.core.analysis import AnalysisInput, Measurement, MetricSpec
from modelrollout.core.rollout import Decision
from modelrollout.core.spec import parse_spec
from modelrollout.kube.client import DEPLOYMENT, EVENT, MODEL_DEPLOYMENT, SERVICE
from tests.unit.fake_kube import CachedReads, FakeKube

NS = "models"
NAME = "fraud-scorer"
T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}]
GATEWAY = {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
CHILD_KINDS = ("Deployment", "Service", "HTTPRoute")


def model_deployment(
    name: str = NAME,
    version: str = "1",
    router: bool = True,
    steps: list[dict[str, Any]] | None = None,
    **canary: Any,
) -> dict[str, Any]:
    """A ModelDeployment like manifests/samples/fraud-scorer.yaml, 4 pods, canary steps 25% / pause / 100%."""
    spec: dict[str, Any] = {
        "replicas": 4,
        "model": {"name": "fraud-scorer", "version": version, "uri": f"s3://models/fraud/{version}"},
        "template": {"spec": {"containers": [{"name": "server", "image": "registry.example.com/scorer:1.4.0"}]}},
        "service": {"port": 80, "targetPort": "http"},
        "strategy": {"canary": {"steps": STEPS if steps is None else steps, **canary}},
        "progressDeadlineSeconds": 600,
    }
    if router:
        spec["trafficRouting"] = GATEWAY
    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1, "resourceVersion": "1"},
        "spec": spec,
    }


def revision_of(body: dict[str, Any], version: str) -> str:
    spec = dict(body["spec"], model=dict(body["spec"]["model"], version=version, uri=f"s3://models/fraud/{version}"))
    return parse_spec(spec).revision


class FiringAlarm:
    """Stands in for `AlarmChecker`: fires the alerts a test sets."""

    def __init__(self) -> None:
        self.alerts: tuple[str, ...] = ()

    def firing(self, key: Any, spec: Any, now: datetime, running: bool, arguments: Any = None) -> tuple[str, ...]:
        return self.alerts


class Cluster:
    """One ModelDeployment in a fake apiserver, its reconciler, and a clock the test moves."""

    def __init__(
        self,
        body: dict[str, Any],
        analysis=no_analysis,
        alarms: FiringAlarm | None = None,
        cached: bool = False,
        notifier: Any = None,
        hurry=lambda: False,
    ) -> None:
        self.body = body
        self.name = body["metadata"]["name"]
        self.kube = FakeKube()
        self.kube.add(body)
        self.now = T0
        self.reads = CachedReads(self.kube) if cached else None
        self.reconciler = Reconciler(
            self.kube,
            clock=lambda: self.now,
            analysis=analysis,
            alarms=alarms,
            reads=self.reads,
            notifier=notifier,
            hurry=hurry,
        )
        self.requeue: float | None = None
        self.v1 = revision_of(body, "1")
        self.v2 = revision_of(body, "2")

    def reconcile(self) -> list[tuple[str, str, str]]:
        """One reconcile; returns its calls."""
        self.kube.forget_calls()
        self.requeue = self.reconciler.reconcile(NS, self.name)
        return list(self.kube.calls)

    def child_writes(self) -> list[tuple[str, str, str]]:
        return [call for call in self.kube.calls if call[0] not in ("get", "list") and call[1] in CHILD_KINDS]

    def status(self) -> dict[str, Any]:
        return self.kube.object(MODEL_DEPLOYMENT, NS, self.name)["status"]

    def deployment(self, revision: str) -> dict[str, Any] | None:
        return self.kube.object(DEPLOYMENT, NS, f"{self.name}-{revision}")

    def replicas(self, revision: str) -> int:
        return self.deployment(revision)["spec"]["replicas"]

    def service(self, suffix: str = "") -> dict[str, Any] | None:
        return self.kube.object(SERVICE, NS, self.name + suffix)

    def route(self) -> dict[str, Any] | None:
        return self.kube.object("HTTPRoute", NS, self.name)

    def route_weights(self) -> list[int]:
        return [ref["weight"] for ref in self.route()["spec"]["rules"][0]["backendRefs"]]

    def edit_spec(self, change) -> None:
        self.kube.edit(MODEL_DEPLOYMENT, NS, self.name, lambda body: change(body["spec"]))

    def roll_out(self, version: str) -> None:
        self.edit_spec(lambda spec: spec["model"].update(version=version, uri=f"s3://models/fraud/{version}"))

    def ask(self, action: str, request_id: str, actor: str = "alice") -> None:
        """A person's manual request, as `kubectl modelrollout <action>` writes it into status."""
        request = {"action": action, "id": request_id, "actor": actor, "requestedAt": "2026-11-22T12:00:00Z"}
        self.kube.edit(
            MODEL_DEPLOYMENT, NS, self.name, lambda body: body.setdefault("status", {}).update(request=request)
        )

    def healthy(self) -> None:
        """v1 created and settled: Healthy."""
        self.reconcile()
        self.kube.settle(NS)
        self.now += timedelta(seconds=5)
        self.reconcile()
        assert self.status()["phase"] == "Healthy"

    def rounds(self, count: int) -> None:
        """`count` reconciles five seconds apart, the cluster settling after each (as watch events would)."""
        for _ in range(count):
            self.now += timedelta(seconds=5)
            self.reconcile()
            self.kube.settle(NS)

    def canary_paused(self) -> None:
        """From Healthy v1: v2 rolled out to its first step (25%), now waiting at the indefinite pause.

        With a router: the canary pod, then the weight. Without: the canary pod, the stable's scale-down
        to 3, then the step counts as done once both have settled.
        """
        self.roll_out("2")
        rounds = 2 if "trafficRouting" in self.body["spec"] else 3
        self.rounds(rounds)
        status = self.status()
        assert (status["phase"], status["canaryRevision"], status["currentStepIndex"]) == ("Paused", self.v2, 1)


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def history_actions(status: Mapping[str, Any]) -> list[str]:
    return [entry["action"] for entry in status.get("history", [])]


# --- 1. write order -------------------------------------------------------------------------------


def test_canary_scale_up_is_written_before_the_services_and_the_route():
    cluster = Cluster(model_deployment())
    cluster.healthy()
    cluster.roll_out("2")

    cluster.reconcile()

    assert cluster.replicas(cluster.v2) == 1
    assert cluster.child_writes() == [
        ("apply", "Deployment", f"{NAME}-{cluster.v2}"),
        ("apply", "Service", NAME),
        ("apply", "Service", f"{NAME}-stable"),
        ("apply", "Service", f"{NAME}-canary"),
        ("apply", "HTTPRoute", NAME),
    ]


def test_route_weight_moves_to_the_canary_only_after_its_deployment_is_written():
    cluster = Cluster(model_deployment())
    cluster.healthy()
    cluster.roll_out("2")
    calls = cluster.reconcile()
    assert calls.index(("apply", "Deployment", f"{NAME}-{cluster.v2}")) < calls.index(("apply", "HTTPRoute", NAME))
    assert cluster.replicas(cluster.v2) == 1
    assert cluster.route_weights() == [100, 0]  # no canary pod available yet: no traffic for it
    cluster.kube.settle(NS)
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()

    assert cluster.route_weights() == [75, 25]
    assert cluster.replicas(cluster.v2) == 1  # the pod was asked for (and came) before the weight moved


def test_a_track_label_that_adds_no_pod_is_written_after_the_route():
    """An abort's route write waits for nothing but the Services: the canary's new track label comes after."""
    cluster = Cluster(model_deployment(), cached=True)
    cluster.healthy()
    cluster.canary_paused()
    cluster.ask("abort", "abort-1")
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()

    writes = cluster.child_writes()
    assert writes.index(("apply", "HTTPRoute", NAME)) < writes.index(("apply", "Deployment", f"{NAME}-{cluster.v2}"))
    assert cluster.deployment(cluster.v2)["metadata"]["labels"][labels.TRACK_LABEL] == "old"
    assert cluster.route_weights() == [100, 0]


def abort_by(trigger: str, cluster, alarm) -> None:
    """Abort the running canary by a person's request or by a firing alarm, five seconds later."""
    if trigger == "request":
        cluster.ask("abort", "abort-1")
    else:
        alarm.alerts = ("HighErrorRate",)
    cluster.now += timedelta(seconds=5)


@pytest.mark.parametrize("trigger", ["request", "alert"])
def test_abort_writes_the_route_back_to_stable_before_scaling_the_canary_down(trigger):
    alarm = FiringAlarm()
    cluster = Cluster(model_deployment(abortScaleDownDelaySeconds=0), alarms=alarm)
    cluster.healthy()
    cluster.canary_paused()
    assert (cluster.route_weights(), cluster.replicas(cluster.v2)) == ([75, 25], 1)
    abort_by(trigger, cluster, alarm)

    cluster.reconcile()

    assert cluster.status()["phase"] == "Degraded"
    assert (cluster.route_weights(), cluster.replicas(cluster.v2)) == ([100, 0], 0)
    assert cluster.child_writes() == [
        ("apply", "Service", NAME),
        ("apply", "Service", f"{NAME}-stable"),
        ("apply", "Service", f"{NAME}-canary"),
        ("apply", "HTTPRoute", NAME),
        ("patch", "Deployment", f"{NAME}-{cluster.v2}"),
    ]


class Hurry:
    """Whether urgent work for other ModelDeployments waits, as the test sets it."""

    def __init__(self) -> None:
        self.now = False

    def __call__(self) -> bool:
        return self.now


@pytest.mark.parametrize("trigger", ["request", "alert"])
def test_in_a_hurry_an_abort_writes_its_route_and_status_and_leaves_the_rest_to_the_next_reconcile(trigger):
    alarm, hurry = FiringAlarm(), Hurry()
    cluster = Cluster(model_deployment(), alarms=alarm, cached=True, hurry=hurry)
    cluster.healthy()
    cluster.canary_paused()
    abort_by(trigger, cluster, alarm)
    hurry.now = True

    cluster.reconcile()

    assert (cluster.route_weights(), cluster.status()["phase"]) == ([100, 0], "Degraded")
    assert cluster.child_writes() == [("apply", "HTTPRoute", NAME)]
    assert cluster.service("-canary")["spec"]["selector"][labels.REVISION_LABEL] == cluster.v2  # no traffic reaches it
    assert cluster.deployment(cluster.v2)["metadata"]["labels"][labels.TRACK_LABEL] == "canary"
    assert cluster.requeue == 0.0
    hurry.now = False
    cluster.now += timedelta(seconds=1)

    cluster.reconcile()

    assert cluster.child_writes() == [
        ("apply", "Service", f"{NAME}-canary"),
        ("apply", "Deployment", f"{NAME}-{cluster.v2}"),  # its track label
    ]
    assert cluster.service("-canary")["spec"]["selector"][labels.REVISION_LABEL] == cluster.v1
    assert cluster.deployment(cluster.v2)["metadata"]["labels"][labels.TRACK_LABEL] == "old"
    assert cluster.route_weights() == [100, 0]


def test_in_a_hurry_a_step_still_writes_the_canary_pods_and_service_before_the_route_that_sends_it_traffic():
    hurry = Hurry()
    cluster = Cluster(model_deployment(), cached=True, hurry=hurry)
    cluster.healthy()
    hurry.now = True
    cluster.roll_out("2")

    cluster.reconcile()  # the canary's pod is asked for; its Service carries nothing yet and can wait

    assert cluster.child_writes() == [("apply", "Deployment", f"{NAME}-{cluster.v2}")]
    assert cluster.service("-canary")["spec"]["selector"][labels.REVISION_LABEL] == cluster.v1
    cluster.kube.settle(NS)
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()  # the step's weight: the canary Service now carries traffic, so it comes first

    assert cluster.route_weights() == [75, 25]
    writes = cluster.child_writes()
    assert writes.index(("apply", "Service", f"{NAME}-canary")) < writes.index(("apply", "HTTPRoute", NAME))
    assert cluster.service("-canary")["spec"]["selector"][labels.REVISION_LABEL] == cluster.v2


def test_without_router_abort_scales_stable_up_then_moves_the_service_then_scales_the_canary_down():
    cluster = Cluster(model_deployment(router=False, abortScaleDownDelaySeconds=0))
    cluster.healthy()
    cluster.canary_paused()
    assert (cluster.replicas(cluster.v1), cluster.replicas(cluster.v2)) == (3, 1)
    cluster.ask("abort", "abort-1")
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()

    assert (cluster.replicas(cluster.v1), cluster.replicas(cluster.v2)) == (4, 0)
    assert cluster.child_writes() == [
        ("patch", "Deployment", f"{NAME}-{cluster.v1}"),
        ("apply", "Service", NAME),
        ("patch", "Deployment", f"{NAME}-{cluster.v2}"),
    ]


def test_removing_the_router_deletes_the_route_before_the_services_it_routes_to():
    """Documented order: '... then routing objects, then scale-downs, then deletions'. The HTTPRoute
    names the -stable and -canary Services as its backends, so they must outlive it: deleted first,
    they leave the gateway a route to missing backends (and, should the route's deletion fail, for
    longer than one reconcile)."""
    cluster = Cluster(model_deployment())
    cluster.healthy()
    cluster.edit_spec(lambda spec: spec.pop("trafficRouting"))
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()

    writes = cluster.child_writes()
    deletes = [call for call in writes if call[0] == "delete"]
    assert writes[-len(deletes) :] == deletes
    assert writes.index(("delete", "HTTPRoute", NAME)) < writes.index(("delete", "Service", f"{NAME}-stable"))
    assert writes.index(("delete", "HTTPRoute", NAME)) < writes.index(("delete", "Service", f"{NAME}-canary"))


def test_history_beyond_the_limit_is_deleted_after_the_leaving_revision_is_scaled_down():
    """'... then scale-downs, then deletions': an abort that also finds a revision beyond
    revisionHistoryLimit writes the route, then the canary's scale-down, and deletes last."""
    body = model_deployment(steps=[{"setWeight": 100}], scaleDownDelaySeconds=0, abortScaleDownDelaySeconds=0)
    body["spec"]["revisionHistoryLimit"] = 1
    cluster = Cluster(body)
    cluster.healthy()
    cluster.roll_out("2")
    cluster.rounds(4)  # the canary's pods, 100%, promotion, v1 scaled to 0 and kept as history
    assert (cluster.status()["stableRevision"], cluster.replicas(cluster.v1)) == (cluster.v2, 0)
    v3 = revision_of(body, "3")
    cluster.edit_spec(lambda spec: spec["strategy"]["canary"].update(steps=STEPS))
    cluster.roll_out("3")
    cluster.rounds(2)
    assert (cluster.status()["canaryRevision"], cluster.status()["phase"]) == (v3, "Paused")
    cluster.edit_spec(lambda spec: spec.update(revisionHistoryLimit=0))
    cluster.ask("abort", "abort-1")
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()

    assert cluster.child_writes() == [
        ("apply", "Service", NAME),
        ("apply", "Service", f"{NAME}-stable"),
        ("apply", "Service", f"{NAME}-canary"),
        ("apply", "HTTPRoute", NAME),
        ("patch", "Deployment", f"{NAME}-{v3}"),
        ("delete", "Deployment", f"{NAME}-{cluster.v1}"),
    ]
    assert (cluster.deployment(cluster.v1), cluster.replicas(v3), cluster.replicas(cluster.v2)) == (None, 0, 4)


# --- 2. children the apiserver rejects -------------------------------------------------------------


def test_rejected_deployment_degrades_with_invalid_spec_and_keeps_the_stable_at_size():
    cluster = Cluster(model_deployment(router=False))
    cluster.healthy()
    cluster.roll_out("2")
    cluster.now += timedelta(seconds=5)
    cluster.reconcile()
    cluster.kube.settle(NS)  # the canary's pod is available: the stable would give up one pod now
    message = 'Deployment.apps "fraud-scorer" is invalid: spec.template.spec.containers[0].image: Required value'
    cluster.kube.fail("apply", "Deployment", f"{NAME}-{cluster.v2}", 422, message, "Invalid")
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()

    status = cluster.status()
    assert status["phase"] == "Degraded"
    assert (condition(status, "Degraded")["reason"], condition(status, "Stalled")["reason"]) == (
        "InvalidSpec",
        "InvalidSpec",
    )
    assert message in status["message"]
    assert cluster.replicas(cluster.v1) == 4
    assert ("patch", "Deployment", f"{NAME}-{cluster.v1}") not in cluster.kube.calls
    assert [body["reason"] for verb, kind, _, _, body in cluster.kube.writes if kind == "Event"] == ["InvalidSpec"]

    cluster.kube.heal()  # the same reconcile, accepted: the stable does give up its pod
    cluster.reconcile()
    assert cluster.replicas(cluster.v1) == 3


def test_rejected_route_degrades_with_invalid_spec_and_keeps_the_old_stable_serving():
    cluster = Cluster(model_deployment(steps=[{"setWeight": 50}], scaleDownDelaySeconds=0))
    cluster.healthy()
    cluster.roll_out("2")
    cluster.rounds(2)  # 2 canary pods, then 50%, then 4 canary pods for the promotion
    assert (cluster.replicas(cluster.v1), cluster.replicas(cluster.v2)) == (4, 4)
    message = 'HTTPRoute.gateway.networking.k8s.io "fraud-scorer" is invalid: spec.parentRefs: Too many'
    cluster.kube.fail("apply", "HTTPRoute", NAME, 422, message, "Invalid")
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()  # would promote v2 and scale v1 to 0 right after the route write

    status = cluster.status()
    assert (status["phase"], condition(status, "Degraded")["reason"]) == ("Degraded", "InvalidSpec")
    assert message in status["message"]
    assert status["stableRevision"] == cluster.v1
    assert cluster.replicas(cluster.v1) == 4
    assert ("patch", "Deployment", f"{NAME}-{cluster.v1}") not in cluster.kube.calls

    cluster.kube.heal()
    cluster.reconcile()
    assert (cluster.status()["stableRevision"], cluster.replicas(cluster.v1)) == (cluster.v2, 0)


def test_a_spec_the_schema_lets_through_but_the_core_cannot_use_is_reported_and_nothing_moves():
    cluster = Cluster(model_deployment())
    cluster.healthy()
    qa = {"name": "qa", "match": [{"headerName": "x-qa", "headerValue": {"regex": "^(a$"}}]}
    cluster.edit_spec(lambda spec: spec["strategy"]["canary"].update(steps=[{"setHeaderRoute": qa}, {"pause": {}}]))
    cluster.roll_out("2")
    cluster.now += timedelta(seconds=5)

    calls = cluster.reconcile()

    status = cluster.status()
    assert (status["phase"], condition(status, "Stalled")["reason"]) == ("Degraded", "InvalidSpec")
    assert "headerValue.regex '^(a$' is not a regular expression" in status["message"]
    assert [call for call in calls if call[0] not in ("get", "list") and call[1] in CHILD_KINDS] == []
    assert [body["reason"] for verb, kind, _, _, body in cluster.kube.writes if kind == "Event"] == ["InvalidSpec"]
    assert (status["stableRevision"], cluster.replicas(cluster.v1)) == (cluster.v1, 4)

    qa["match"][0]["headerValue"] = {"regex": "^a$"}
    cluster.edit_spec(lambda spec: spec["strategy"]["canary"].update(steps=[{"setHeaderRoute": qa}, {"pause": {}}]))
    cluster.rounds(2)  # the canary's pod, then the route to it
    rules = cluster.route()["spec"]["rules"]
    assert [rule["backendRefs"][0]["name"] for rule in rules] == [f"{NAME}-stable", f"{NAME}-canary"]
    assert rules[1]["matches"][0]["headers"] == [{"type": "RegularExpression", "name": "x-qa", "value": "^a$"}]
    assert cluster.status()["phase"] == "Paused" and cluster.route_weights() == [100, 0]


def test_intent_a_decision_ends_is_removed_from_the_stored_status_not_kept_by_the_merge_patch():
    qa = {"name": "qa", "match": [{"headerName": "x-qa", "headerValue": {"exact": "yes"}}]}
    steps = [{"setHeaderRoute": qa}, {"setCanaryScale": {"replicas": 3}}, {"pause": {}}]
    steps += [{"setHeaderRoute": {"name": "qa"}}, {"setCanaryScale": {"matchTrafficWeight": True}}, {"pause": {}}]
    cluster = Cluster(model_deployment(steps=steps))
    cluster.healthy()
    cluster.roll_out("2")
    cluster.rounds(3)
    assert cluster.status()["intent"] == {
        "canaryWeight": 0,
        "mirrorPercent": 0,
        "canaryScale": {"replicas": 3},
        "headerRoutes": [qa],
    }
    cluster.ask("promote", "r1")
    cluster.reconcile()
    assert cluster.status()["intent"] == {"canaryWeight": 0, "mirrorPercent": 0}
    assert cluster.replicas(cluster.v2) == 0  # the scale ended with its intent


def test_route_api_not_installed_says_the_routers_crd_is_missing():
    cluster = Cluster(model_deployment())
    cluster.kube.fail("apply", "HTTPRoute", NAME, 404, "the server could not find the requested resource", "NotFound")

    cluster.reconcile()

    status = cluster.status()
    assert (status["phase"], condition(status, "Stalled")["reason"]) == ("Degraded", "InvalidSpec")
    assert "the server could not find the requested resource" in status["message"]
    assert "CRD installed?" in status["message"]


# --- 3. status writes ------------------------------------------------------------------------------


def test_status_is_patched_with_a_resource_version_precondition_and_only_when_it_changed():
    cluster = Cluster(model_deployment())
    cluster.healthy()
    read_version = cluster.kube.object(MODEL_DEPLOYMENT, NS, NAME)["metadata"]["resourceVersion"]
    cluster.roll_out("2")
    edited_version = cluster.kube.object(MODEL_DEPLOYMENT, NS, NAME)["metadata"]["resourceVersion"]
    assert edited_version != read_version

    cluster.reconcile()

    [(_, _, _, path, body)] = [write for write in cluster.kube.writes if write[0] == "patch-status"]
    assert path == f"/apis/modelrollout.io/v1alpha1/namespaces/{NS}/modeldeployments/{NAME}/status"
    assert body["metadata"] == {"resourceVersion": edited_version}
    assert body["status"]["canaryRevision"] == cluster.v2

    cluster.now += timedelta(seconds=1)  # nothing observed changed: the same status
    calls = cluster.reconcile()
    assert [call for call in calls if call[0] == "patch-status"] == []


# --- 3b. reads from the watch caches, writes only of what changed ----------------------------------


def test_from_the_caches_a_reconcile_that_changes_nothing_sends_no_request():
    cluster = Cluster(model_deployment(), cached=True)
    cluster.healthy()
    cluster.canary_paused()
    cluster.now += timedelta(seconds=5)

    assert cluster.reconcile() == []


def test_from_the_caches_a_step_whose_pods_are_up_writes_the_route_and_nothing_else():
    cluster = Cluster(model_deployment(steps=[{"setWeight": 25}, {"setWeight": 50}, {"pause": {}}]), cached=True)
    cluster.healthy()
    cluster.roll_out("2")
    while cluster.route_weights() != [75, 25]:
        cluster.reconcile()
        cluster.kube.settle(NS)
        cluster.now += timedelta(seconds=5)

    assert cluster.replicas(cluster.v2) == 2  # the next step's pod was asked for with the 25%
    writes = []
    while cluster.route_weights() != [50, 50]:
        cluster.reconcile()
        writes += cluster.child_writes()
        cluster.kube.settle(NS)
        cluster.now += timedelta(seconds=5)

    assert writes == [("apply", "HTTPRoute", NAME)]


def test_from_the_caches_a_service_edited_by_hand_is_applied_again():
    cluster = Cluster(model_deployment(), cached=True)
    cluster.healthy()
    cluster.canary_paused()
    cluster.kube.edit(
        SERVICE, NS, f"{NAME}-canary", lambda body: body["spec"]["selector"].update({labels.REVISION_LABEL: cluster.v1})
    )

    cluster.reconcile()

    assert cluster.child_writes() == [("apply", "Service", f"{NAME}-canary")]
    assert cluster.service("-canary")["spec"]["selector"][labels.REVISION_LABEL] == cluster.v2


def test_from_the_caches_a_field_no_longer_wanted_is_applied_away():
    """A field the operator stops setting leaves the live object only by applying again: the hash sees it."""
    cluster = Cluster(model_deployment(), cached=True)
    cluster.healthy()
    cluster.edit_spec(lambda spec: spec["service"].update(port=8080))
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()

    assert ("apply", "Service", NAME) in cluster.child_writes()
    assert cluster.service()["spec"]["ports"][0]["port"] == 8080


def test_from_the_caches_a_reconcile_writes_no_pod():
    cluster = Cluster(model_deployment(), cached=True)
    cluster.kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS, "labels": {}}})
    cluster.healthy()
    cluster.canary_paused()
    cluster.ask("promote", "promote-1")
    cluster.rounds(3)

    assert cluster.status()["stableRevision"] == cluster.v2
    assert [call for call in cluster.kube.calls if call[1] == "Pod"] == []


def test_a_stale_cached_model_meets_a_conflict_records_nothing_and_is_read_again():
    cluster = Cluster(model_deployment(), cached=True)
    cluster.healthy()
    cluster.roll_out("2")
    cluster.reconcile()
    cluster.kube.settle(NS)
    cluster.reads.stale_model = cluster.kube.object(MODEL_DEPLOYMENT, NS, NAME)
    cluster.ask("abort", "abort-1")  # the cache has not seen this write yet
    status_before = cluster.status()
    cluster.now += timedelta(seconds=5)
    cluster.kube.forget_calls()

    requeue = cluster.reconciler.reconcile(NS, NAME)

    assert requeue == 0.0  # at once, from the ModelDeployment read again
    assert cluster.reads.refreshed == 1
    assert cluster.status() == status_before
    assert cluster.kube.verbs("create", "Event") == []
    cluster.reconcile()
    assert cluster.status()["abort"]["revision"] == cluster.v2
    assert cluster.route_weights() == [100, 0]


# --- 4. manual requests ----------------------------------------------------------------------------


def test_a_handled_request_is_cleared_in_the_status_write_that_answers_it():
    cluster = Cluster(model_deployment())
    cluster.healthy()
    cluster.canary_paused()
    cluster.ask("pause", "pause-1")
    cluster.now += timedelta(seconds=5)

    cluster.reconcile()

    status_writes = [body["status"] for verb, _, _, _, body in cluster.kube.writes if verb == "patch-status"]
    assert len(status_writes) == 1
    assert status_writes[0]["request"] is None
    assert (status_writes[0]["lastRequest"]["id"], status_writes[0]["lastRequest"]["accepted"]) == ("pause-1", True)
    assert "request" not in cluster.status()
    assert history_actions(cluster.status()).count("pause") == 1

    cluster.now += timedelta(seconds=5)
    cluster.reconcile()
    assert history_actions(cluster.status()).count("pause") == 1


# --- 5. decide is called once, or twice with measurements ------------------------------------------


@pytest.fixture
def decide_calls(monkeypatch) -> list:
    observations = []
    real = reconciler_module.decide

    def counting(observation):
        observations.append(observation)
        return real(observation)

    monkeypatch.setattr(reconciler_module, "decide", counting)
    return observations


def test_decide_runs_once_per_reconcile_when_no_analysis_is_asked(decide_calls):
    asked = []

    def analysis(body, decision, now):
        asked.append(decision)
        return {}

    cluster = Cluster(model_deployment(), analysis=analysis)
    cluster.healthy()
    cluster.roll_out("2")
    decide_calls.clear()

    cluster.reconcile()

    assert len(decide_calls) == 1
    assert asked == []


def test_decide_runs_a_second_time_with_the_measurements_when_analysis_runs_are_asked(decide_calls):
    metric = MetricSpec("error-rate", success_condition="result < 0.01", query="rate(errors[1m])")

    def analysis(body, decision: Decision, now: datetime) -> dict[str, AnalysisInput]:
        return {
            run.key: AnalysisInput((metric,), {"error-rate": Measurement(now, 0.001)}) for run in decision.analysis_runs
        }

    steps = [{"analysis": {"templates": [{"name": "error-rate"}]}}, {"pause": {}}]
    cluster = Cluster(model_deployment(steps=steps), analysis=analysis)
    cluster.healthy()
    cluster.roll_out("2")
    decide_calls.clear()

    cluster.reconcile()

    assert len(decide_calls) == 2
    key = f"{cluster.v2}-step-0"
    assert (dict(decide_calls[0].analysis), list(decide_calls[1].analysis)) == ({}, [key])
    runs = {run["key"]: run["phase"] for run in cluster.status()["analysisRuns"]}
    assert runs == {key: "Successful"}


# --- 6. stale objects and the active Service without a router --------------------------------------


def test_removing_the_router_deletes_its_route_and_the_stable_and_canary_services():
    cluster = Cluster(model_deployment())
    cluster.healthy()
    assert cluster.route() is not None and cluster.service("-stable") is not None
    cluster.edit_spec(lambda spec: spec.pop("trafficRouting"))
    cluster.now += timedelta(seconds=5)

    calls = cluster.reconcile()

    assert {call for call in calls if call[0] == "delete"} == {
        ("delete", "HTTPRoute", NAME),
        ("delete", "Service", f"{NAME}-stable"),
        ("delete", "Service", f"{NAME}-canary"),
    }
    assert (cluster.route(), cluster.service("-stable"), cluster.service("-canary")) == (None, None, None)
    assert cluster.service()["spec"]["selector"][labels.REVISION_LABEL] == cluster.v1
    assert cluster.status()["trafficRouter"] == "none"

    calls = cluster.reconcile()  # written once: nothing left to delete
    assert [call for call in calls if call[0] == "delete"] == []


def test_without_router_the_active_service_spans_revisions_only_while_the_canary_is_in_its_steps():
    cluster = Cluster(model_deployment(router=False))
    cluster.healthy()
    assert cluster.service()["spec"]["selector"] == {labels.DEPLOYMENT_LABEL: NAME, labels.REVISION_LABEL: cluster.v1}

    cluster.canary_paused()
    assert cluster.service()["spec"]["selector"] == {labels.DEPLOYMENT_LABEL: NAME}

    cluster.ask("abort", "abort-1")
    cluster.now += timedelta(seconds=5)
    cluster.reconcile()
    assert cluster.service()["spec"]["selector"] == {labels.DEPLOYMENT_LABEL: NAME, labels.REVISION_LABEL: cluster.v1}


def test_a_deployment_owned_by_another_object_is_neither_scaled_nor_deleted():
    """Only children with our controller owner reference (by uid) are ours: a leftover of an earlier
    ModelDeployment of the same name carries the label the reconciler lists by, but not our uid."""
    cluster = Cluster(model_deployment())
    cluster.healthy()
    leftover = cluster.deployment(cluster.v1)
    leftover["metadata"] = {
        "name": f"{NAME}-leftover",
        "namespace": NS,
        "labels": dict(leftover["metadata"]["labels"], **{labels.REVISION_LABEL: "leftover"}),
        "ownerReferences": [
            dict(ref, uid="uid-of-an-earlier-fraud-scorer") for ref in leftover["metadata"]["ownerReferences"]
        ],
    }
    leftover["spec"]["replicas"] = 2
    cluster.kube.add(leftover)
    cluster.edit_spec(lambda spec: spec.update(revisionHistoryLimit=0))  # ours, it would be deleted
    cluster.now += timedelta(seconds=5)

    calls = cluster.reconcile()

    assert [call for call in calls if call[2] == f"{NAME}-leftover"] == []
    assert cluster.kube.object(DEPLOYMENT, NS, f"{NAME}-leftover")["spec"]["replicas"] == 2
    assert cluster.status()["phase"] == "Healthy"


def test_an_alarm_scoped_to_the_canary_revision_ignores_another_revisions_alert():
    """rollbackOn names `{{args.canary-revision}}`: the stable revision's alert leaves the canary alone."""
    body = model_deployment()
    body["spec"]["rollbackOn"] = {
        "alerts": [{"alertname": "ModelErrorRateHigh", "labels": {"revision": "{{args.canary-revision}}"}}]
    }
    webhook = WebhookAlerts()
    cluster = Cluster(body, alarms=AlarmChecker(webhook))
    cluster.healthy()
    cluster.canary_paused()

    def fire(revision: str) -> None:
        alert = {"status": "firing", "labels": {"alertname": "ModelErrorRateHigh", "revision": revision}}
        webhook.receive({"alerts": [alert]})
        cluster.now += timedelta(seconds=5)
        cluster.reconcile()

    fire(cluster.v1)
    assert (cluster.status()["phase"], cluster.route_weights()) == ("Paused", [75, 25])
    fire(cluster.v2)
    status = cluster.status()
    assert (status["phase"], status["abort"]["reason"], cluster.route_weights()) == (
        "Degraded",
        "AlertFiring",
        [100, 0],
    )
    assert f'revision="{cluster.v2}"' in status["abort"]["message"]


# --- notifications ---------------------------------------------------------------------------------


class RecordingNotifier:
    """Stands in for `Notifier`: keeps what each reconcile handed over."""

    def __init__(self) -> None:
        self.handed: list[tuple[list, tuple]] = []

    def notify(self, notices, receivers) -> None:
        self.handed.append((notices, receivers))

    def kinds(self) -> list[str]:
        return [notice.kind.value for notices, _ in self.handed for notice in notices]


def with_receiver(body: dict[str, Any]) -> dict[str, Any]:
    body["spec"]["notifications"] = {"receivers": [{"name": "team", "format": "slack", "url": "http://chat/hook"}]}
    return body


def test_a_pause_for_a_person_hands_over_one_approval_notice_with_the_promote_command():
    notifier = RecordingNotifier()
    cluster = Cluster(with_receiver(model_deployment()), notifier=notifier)
    cluster.healthy()
    assert notifier.kinds() == []  # becoming Healthy at first is no news
    cluster.canary_paused()
    cluster.now += timedelta(seconds=5)
    cluster.reconcile()  # still paused: no second notice

    assert notifier.kinds() == ["ApprovalNeeded"]
    (notices, receivers) = notifier.handed[0]
    assert notices[0].command == f"kubectl modelrollout promote {NAME} -n {NS}"
    assert (notices[0].revision, receivers[0].url) == (cluster.v2, "http://chat/hook")


def test_a_promotion_and_an_alarm_abort_each_hand_over_their_notice():
    notifier, alarm = RecordingNotifier(), FiringAlarm()
    cluster = Cluster(with_receiver(model_deployment()), notifier=notifier, alarms=alarm)
    cluster.healthy()
    cluster.canary_paused()
    abort_by("alert", cluster, alarm)
    cluster.reconcile()
    assert notifier.kinds() == ["ApprovalNeeded", "RolledBack"]
    rolled_back = notifier.handed[-1][0][0]
    assert "HighErrorRate" in rolled_back.message and rolled_back.command.startswith("kubectl modelrollout status")

    promoted = RecordingNotifier()
    cluster = Cluster(with_receiver(model_deployment(name="other")), notifier=promoted)
    cluster.healthy()
    cluster.canary_paused()
    cluster.ask("promote", "promote-1")
    cluster.rounds(4)
    assert cluster.status()["stableRevision"] == cluster.v2
    assert promoted.kinds() == ["ApprovalNeeded", "Promoted"]


# --- 7. metrics ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("trigger", "reason"), [("request", "Aborted"), ("alert", "AlertFiring")])
def test_an_abort_counts_once_under_its_typed_reason(trigger, reason):
    name = f"aborts-by-{trigger}"  # a name of its own: the registry is process-wide
    alarm = FiringAlarm()
    cluster = Cluster(model_deployment(name=name), alarms=alarm)
    cluster.healthy()
    cluster.canary_paused()
    labels_ = {"namespace": NS, "name": name, "reason": reason}
    assert metrics.REGISTRY.get_sample_value("modelrollout_rollout_aborts_total", labels_) is None
    abort_by(trigger, cluster, alarm)

    cluster.reconcile()
    assert metrics.REGISTRY.get_sample_value("modelrollout_rollout_aborts_total", labels_) == 1.0

    cluster.now += timedelta(seconds=5)
    cluster.reconcile()  # still Degraded (aborted), but no new abort
    assert cluster.status()["phase"] == "Degraded"
    assert metrics.REGISTRY.get_sample_value("modelrollout_rollout_aborts_total", labels_) == 1.0


# --- the data plane's declared features ------------------------------------------------------------


def gateway_api_parts(features: list[str]) -> list[dict[str, Any]]:
    """Gateway `gw` in the ModelDeployment's namespace, of a GatewayClass declaring `features`."""
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": NS},
            "spec": {"gatewayClassName": "edge", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "edge"},
            "spec": {"controllerName": "example.com/edge"},
            "status": {"supportedFeatures": [{"name": feature} for feature in features]},
        },
    ]


def shadow_cluster(features: list[str] | None) -> Cluster:
    """A shadow of v2 under way behind Gateway `gw` of a class declaring `features` (None: no Gateway at all)."""
    body = model_deployment()
    body["spec"]["strategy"] = {"shadow": {"mirrorPercent": 40}, "canary": {"steps": STEPS}}
    cluster = Cluster(body)
    for part in gateway_api_parts(features) if features is not None else []:
        cluster.kube.add(part)
    cluster.healthy()
    cluster.roll_out("2")
    cluster.rounds(2)
    return cluster


def route_mirror(cluster: Cluster) -> list[dict[str, Any]]:
    return [f for f in cluster.route()["spec"]["rules"][0].get("filters", []) if f["type"] == "RequestMirror"]


def test_a_shadow_writes_no_mirror_through_a_gateway_class_that_does_not_declare_it():
    cluster = shadow_cluster(["HTTPRoute", "HTTPRouteWeight"])
    status = cluster.status()
    assert route_mirror(cluster) == [] and cluster.route_weights() == [100, 0]
    assert (status["phase"], condition(status, "Progressing")["reason"]) == ("Progressing", "MirrorUnsupported")
    assert "GatewayClass edge (of Gateway models/gw) does not declare HTTPRouteRequestMirror" in status["message"]
    warnings = [e for e in cluster.kube.list(EVENT, NS) if e["reason"] == "MirrorUnsupported"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning" and "GatewayClass edge" in warnings[0]["note"]


def test_a_shadow_mirrors_through_a_gateway_class_that_declares_it():
    cluster = shadow_cluster(["HTTPRoute", "HTTPRouteRequestMirror"])
    assert [f["requestMirror"]["percent"] for f in route_mirror(cluster)] == [40]
    assert condition(cluster.status(), "Progressing")["reason"] != "MirrorUnsupported"


def test_a_missing_gateway_is_named_and_nothing_is_mirrored():
    cluster = shadow_cluster(None)
    assert route_mirror(cluster) == []
    assert "Gateway models/gw was not found" in cluster.status()["message"]


def test_the_gateway_class_is_not_read_when_no_shadow_is_asked_for():
    cluster = Cluster(model_deployment())
    cluster.healthy()
    calls = cluster.reconcile()
    cluster.roll_out("2")
    calls += cluster.reconcile()
    assert not [call for call in calls if call[1] in ("Gateway", "GatewayClass")]
