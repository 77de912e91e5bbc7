"""Install manifests: the kustomize base applies, its pods pass the restricted Pod Security level, and
the operator, peering as the shipped Deployment configures it, runs a full analysed canary rollout under
the shipped ServiceAccount's RBAC alone."""

from __future__ import annotations

import yaml

from modelrollout.devcluster.cluster import _write_kubeconfig
from modelrollout.devcluster.stack import operator_metric
from modelrollout.simulator.exporter import Behaviour
from tests.integration.conftest import REPO, get_json, running_operator, wait_for
from tests.integration.helpers import (
    NEXT_VERSION,
    analysed_canary_promoted,
    kubectl_apply,
    revision_of,
    sample,
    template,
    wait_events,
    with_version,
)


def kustomize(control_plane, path: str) -> list[dict]:
    return list(yaml.safe_load_all(control_plane.kubectl("kustomize", str(REPO / path)).stdout))


def test_operator_pod_is_restricted_and_probed(control_plane):
    for variant in ("manifests/base", "manifests/namespaced"):
        (deployment,) = [d for d in kustomize(control_plane, variant) if d["kind"] == "Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert container["livenessProbe"] and container["readinessProbe"]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_namespaced_variant_has_no_cluster_wide_write(control_plane):
    documents = kustomize(control_plane, "manifests/namespaced")
    (cluster_role,) = [d for d in documents if d["kind"] == "ClusterRole"]
    for rule in cluster_role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    (role,) = [d for d in documents if d["kind"] == "Role"]
    cluster_wide = next(d for d in kustomize(control_plane, "manifests/base") if d["kind"] == "ClusterRole")
    cluster_scoped = {
        "customresourcedefinitions",
        "clustermodelanalysistemplates",
        "clusterkopfpeerings",
        "gatewayclasses",
    }
    for rule in cluster_wide["rules"]:
        if not set(rule["resources"]) & cluster_scoped:
            assert rule in role["rules"], f"the namespaced Role lacks {rule}"
        elif rule["resources"] == ["gatewayclasses"]:  # read-only and cluster-scoped: the read-only ClusterRole
            assert rule in cluster_role["rules"], f"the namespaced variant's ClusterRole lacks {rule}"
    # Peering moves from the cluster-wide object to one in the namespace, with the same rights.
    peering_rules = [rule for rule in cluster_wide["rules"] if rule["resources"] == ["clusterkopfpeerings"]]
    assert peering_rules
    for rule in peering_rules:
        assert {**rule, "resources": ["kopfpeerings"]} in role["rules"]
    peerings = [(d["kind"], d["metadata"].get("namespace")) for d in documents if d["kind"].endswith("KopfPeering")]
    assert peerings == [("KopfPeering", "modelrollout-system")]


def test_two_replicas_peer_and_survive_a_drain(control_plane):
    documents = kustomize(control_plane, "manifests/base")
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["MODELROLLOUT_PEERING"]["value"] == "modelrollout"
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # distinct identities
    (peering,) = [d for d in documents if d["kind"] == "ClusterKopfPeering"]
    assert peering["metadata"]["name"] == "modelrollout"
    (budget,) = [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_shipped_rbac_is_enough_for_a_full_rollout(control_plane, monitoring, namespace, tmp_path):
    manifests = control_plane.kubectl("kustomize", str(REPO / "manifests/base")).stdout
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifests)

    def operator_pods_available():
        deployment = get_json(control_plane, "deployment", "modelrollout-operator", "-n", "modelrollout-system")
        return (deployment or {}).get("status", {}).get("availableReplicas") == 2

    # The namespace enforces the restricted Pod Security level: a non-compliant pod would never be created.
    wait_for(operator_pods_available, what="the operator Deployment's pods (restricted Pod Security)")

    token = control_plane.kubectl("create", "token", "modelrollout", "-n", "modelrollout-system").stdout.strip()
    restricted = tmp_path / "operator-kubeconfig"
    _write_kubeconfig(restricted, control_plane.server, control_plane.ca_file, "modelrollout", token)
    denied = control_plane.kubectl(f"--kubeconfig={restricted}", "get", "secrets", "-n", namespace, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()  # secrets: get by name only

    kubectl_apply(control_plane, namespace, template("error-rate"))
    steps = [
        {"setWeight": 30},
        {
            "analysis": {
                "templates": [{"name": "error-rate"}],
                "args": [{"name": "prometheus", "value": monitoring.prometheus.url}],
            }
        },
        {"pause": {}},
        {"setWeight": 100},
    ]
    first = sample(
        replicas=2,
        strategy={"canary": {"steps": steps, "scaleDownDelaySeconds": 1}},
        trafficRouting={"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
    )
    second = with_version(first, NEXT_VERSION)
    for body in (first, second):
        monitoring.simulator.set(namespace, revision_of(body), Behaviour())

    # Peering as the shipped Deployment does: the ServiceAccount must read and patch the peering object.
    # (kwok's pods run no containers, so this operator is the only peer and becomes active.)
    peering = {"MODELROLLOUT_PEERING": "modelrollout", "POD_ID": f"install-test-{namespace}"}
    with running_operator(monitoring.prometheus.url, kubeconfig=str(restricted), env=peering) as operator:
        wait_for(lambda: operator_metric(operator.http, "modelrollout_leader") == 1, what="the operator active")
        done = analysed_canary_promoted(control_plane, namespace, first, second, "the shipped RBAC")
    assert done["status"]["analysisRuns"][0]["phase"] == "Successful"
    assert get_json(control_plane, "httproute", "fraud-scorer", "-n", namespace)
    promoted = [
        e for e in wait_events(control_plane, namespace, "RolloutStarted", "Promoted") if e["reason"] == "Promoted"
    ]
    assert promoted[0]["reportingController"] == "modelrollout.io/operator"
