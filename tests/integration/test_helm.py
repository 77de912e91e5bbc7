"""The Helm chart (manifests/helm/modelrollout): it lints, renders the same install as the kustomize base and
namespaced variant (objects, RBAC grants, a pod as restricted), ships crds/ unchanged, honours its values,
and its RBAC alone is enough for the operator to run an analysed canary, cluster-wide and namespaced."""

from __future__ import annotations

import base64

import pytest
import yaml

from modelrollout.devcluster.cluster import _write_kubeconfig
from modelrollout.devcluster.helm import stale_chart_crds
from modelrollout.simulator.exporter import Behaviour
from tests.integration.conftest import REPO, get_json, wait_for
from tests.integration.helpers import (
    HELM_CHART,
    NEXT_VERSION,
    analysed_canary_promoted,
    analysed_canary_steps,
    helm,
    helm_template,
    kubectl_apply,
    operator_process,
    permissions,
    revision_of,
    sample,
    template,
    wait_events,
    with_version,
)

NAMESPACE = "modelrollout-system"
NAMESPACED = "scope.clusterWide=false"


def kustomize(control_plane, path: str) -> list[dict]:
    return list(yaml.safe_load_all(control_plane.kubectl("kustomize", str(REPO / path)).stdout))


def only(documents: list[dict], kind: str) -> dict:
    (found,) = [document for document in documents if document["kind"] == kind]
    return found


def identities(documents: list[dict]) -> set[tuple[str, str, str | None]]:
    """(kind, name, namespace) of each object; kustomize also gives the cluster-scoped ClusterKopfPeering a
    namespace (it cannot know a custom kind's scope), which the apiserver ignores."""
    return {
        (
            d["kind"],
            d["metadata"]["name"],
            None if d["kind"] == "ClusterKopfPeering" else d["metadata"].get("namespace"),
        )
        for d in documents
    }


def container(documents: list[dict]) -> dict:
    (operator,) = only(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    return operator


@pytest.mark.parametrize("values", [(), (NAMESPACED,)], ids=["cluster-wide", "namespaced"])
def test_chart_lints(values):
    result = helm("lint", "--strict", str(HELM_CHART), *(argument for value in values for argument in ("--set", value)))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_chart_crds_are_the_crds_directory(control_plane):
    assert stale_chart_crds() == [], "run: .venv/bin/python -m modelrollout.devcluster.helm --sync-crds"
    rendered = [
        d for d in helm_template("modelrollout", NAMESPACE, include_crds=True) if d["kind"].endswith("Definition")
    ]
    shipped = kustomize(control_plane, "crds")
    by_name = {crd["metadata"]["name"]: crd for crd in shipped}
    assert {crd["metadata"]["name"]: crd for crd in rendered} == by_name
    assert {crd["spec"]["names"]["kind"] for crd in rendered} >= {"ModelDeployment", "KopfPeering"}


def test_default_render_is_the_kustomize_base(control_plane):
    """Release `modelrollout` renders the base's objects under the base's names, with the same grants and pod."""
    chart = helm_template("modelrollout", NAMESPACE)
    base = [d for d in kustomize(control_plane, "manifests/base") if d["kind"] != "CustomResourceDefinition"]
    # The chart leaves the Namespace to `helm install --create-namespace` (namespace.create renders it) and
    # creates the webhook token Secret the kustomize install asks a person to create.
    assert identities(chart) == identities(base) - {("Namespace", NAMESPACE, None)} | {
        ("Secret", "modelrollout-webhook-token", NAMESPACE)
    }
    assert permissions(only(chart, "ClusterRole")["rules"]) == permissions(only(base, "ClusterRole")["rules"])
    assert only(chart, "ClusterRoleBinding")["subjects"] == only(base, "ClusterRoleBinding")["subjects"]
    chart_pod = only(chart, "Deployment")["spec"]["template"]["spec"]
    base_pod = only(base, "Deployment")["spec"]["template"]["spec"]
    assert chart_pod["securityContext"] == base_pod["securityContext"]
    assert chart_pod["volumes"] == base_pod["volumes"]
    for key in ("args", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"):
        assert container(chart)[key] == container(base)[key], key
    assert container(chart)["image"] == container(base)["image"] == "modelrollout/operator:0.1.0"
    assert only(chart, "Deployment")["spec"]["replicas"] == 2
    assert only(chart, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    token = only(chart, "Secret")["data"]["token"]
    assert len(base64.b64decode(token)) == 32


def test_namespaced_render_is_the_namespaced_variant(control_plane):
    chart = helm_template("modelrollout", NAMESPACE, NAMESPACED)
    variant = [d for d in kustomize(control_plane, "manifests/namespaced") if d["kind"] != "CustomResourceDefinition"]
    assert identities(chart) == identities(variant) - {("Namespace", NAMESPACE, None)} | {
        ("Secret", "modelrollout-webhook-token", NAMESPACE)
    }
    for kind in ("ClusterRole", "Role"):
        assert permissions(only(chart, kind)["rules"]) == permissions(only(variant, kind)["rules"]), kind
    for rule in only(chart, "ClusterRole")["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    assert container(chart)["args"] == container(variant)["args"]
    assert [d["kind"] for d in chart if d["kind"].endswith("KopfPeering")] == ["KopfPeering"]


def test_values_shape_the_install():
    chart = helm_template(
        "ops",
        "operators",
        "image.repository=registry.example.com/mr/operator",
        "image.tag=1.2.3",
        "image.pullPolicy=Always",
        "replicas=3",
        "prometheus.url=http://prom.example:9090",
        "resources.requests.cpu=250m",
        "webhookToken.existingSecret=alertmanager-token",
        NAMESPACED,
        "scope.namespaces={models-a,models-b}",
    )
    operator = container(chart)
    assert operator["image"] == "registry.example.com/mr/operator:1.2.3"
    assert operator["imagePullPolicy"] == "Always"
    assert only(chart, "Deployment")["spec"]["replicas"] == 3
    env = {variable["name"]: variable.get("value") for variable in operator["env"]}
    assert env["MODELROLLOUT_PROMETHEUS_URL"] == "http://prom.example:9090"
    assert env["MODELROLLOUT_PEERING"] == "ops-modelrollout"
    assert operator["resources"]["requests"]["cpu"] == "250m"
    assert operator["args"] == ["run", "--namespace=models-a", "--namespace=models-b", *operator["args"][-1:]]
    # An existing Secret: the chart creates none and mounts that one.
    assert not [d for d in chart if d["kind"] == "Secret"]
    volumes = only(chart, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-token", "secret": {"secretName": "alertmanager-token", "optional": True}} in volumes
    # A Role, its binding and the peering object in every watched namespace; nothing namespaced elsewhere.
    for kind in ("Role", "RoleBinding", "KopfPeering"):
        assert sorted(d["metadata"]["namespace"] for d in chart if d["kind"] == kind) == ["models-a", "models-b"], kind
    assert {d["metadata"].get("namespace") for d in chart if d["kind"] == "Deployment"} == {"operators"}

    without_rbac = helm_template("ops", "operators", "rbac.create=false", "replicas=1", "peering.enabled=false")
    assert not {d["kind"] for d in without_rbac} & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    assert not {d["kind"] for d in without_rbac} & {"PodDisruptionBudget", "ClusterKopfPeering"}
    assert "MODELROLLOUT_PEERING" not in {variable["name"] for variable in container(without_rbac)["env"]}

    refused = helm("template", "ops", str(HELM_CHART), "--set", "peering.enabled=false", check=False)
    assert refused.returncode != 0 and "replicas > 1 needs peering.enabled" in refused.stderr


@pytest.mark.parametrize("scope", ["cluster-wide", "namespaced"])
def test_chart_rbac_is_enough_for_a_full_rollout(control_plane, monitoring, namespace, tmp_path, scope):
    """Install the rendered chart, then run the operator with only its ServiceAccount's token, as its pod would
    (namespaced: `--namespace` the test's namespace, where the chart put the Role and the KopfPeering)."""
    release = "helm-modelrollout" if scope == "cluster-wide" else "helm-ns-modelrollout"
    home = f"{release}-system"
    values = ["namespace.create=true"]
    watched: tuple[str, ...] = ()
    if scope == "namespaced":
        values += [NAMESPACED, f"scope.namespaces={{{namespace}}}"]
        watched = (namespace,)
    rendered = helm(
        "template", release, str(HELM_CHART), "--namespace", home, "--include-crds", "--set", ",".join(values)
    )
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=rendered.stdout)

    def operator_pods_available():
        deployment = get_json(control_plane, "deployment", f"{release}-operator", "-n", home)
        return (deployment or {}).get("status", {}).get("availableReplicas") == 2

    # The chart's Namespace enforces the restricted Pod Security level: a non-compliant pod is never created.
    wait_for(operator_pods_available, what=f"the chart's operator pods in {home} (restricted Pod Security)")

    token = control_plane.kubectl("create", "token", release, "-n", home).stdout.strip()
    restricted = tmp_path / "operator-kubeconfig"
    _write_kubeconfig(restricted, control_plane.server, control_plane.ca_file, release, token)
    denied = control_plane.kubectl(f"--kubeconfig={restricted}", "get", "secrets", "-n", namespace, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()  # secrets: get by name only
    if scope == "namespaced":  # no write outside the watched namespace
        elsewhere = control_plane.kubectl(f"--kubeconfig={restricted}", "get", "deployments", "-A", check=False)
        assert elsewhere.returncode != 0 and "forbidden" in elsewhere.stderr.lower()

    kubectl_apply(control_plane, namespace, template("error-rate"))
    first = sample(
        replicas=2,
        strategy={"canary": {"steps": analysed_canary_steps(monitoring.prometheus.url), "scaleDownDelaySeconds": 1}},
        trafficRouting={"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
    )
    second = with_version(first, NEXT_VERSION)
    for body in (first, second):
        monitoring.simulator.set(namespace, revision_of(body), Behaviour())

    # Peering as the chart's Deployment configures it (kwok's pods run nothing, so this is the only peer).
    peering = {"MODELROLLOUT_PEERING": release, "POD_ID": f"helm-test-{namespace}"}
    with operator_process(
        str(REPO / ".venv" / "bin" / "modelrollout"),
        monitoring.prometheus.url,
        str(restricted),
        str(tmp_path / "operator.log"),
        namespaces=watched,
        env=peering,
    ) as operator:
        wait_for(lambda: operator.metric("modelrollout_leader") == 1, what="the operator active under the chart")
        done = analysed_canary_promoted(control_plane, namespace, first, second, "the chart's RBAC")
        # RBAC's refusals name the ServiceAccount (a 403 for a terminating namespace left by another test does not).
        refused = f'User "system:serviceaccount:{home}:{release}" cannot'
        denials = [line for line in operator.log_tail(1_000_000).splitlines() if refused in line]
    # Nothing refused, in either scope: given exact namespaces, the operator turns kopf's Namespace scan off
    # (the namespaced variant grants no Namespace read; kopf retried it for a minute at ERROR before).
    assert denials == []
    assert done["status"]["analysisRuns"][0]["phase"] == "Successful"
    assert get_json(control_plane, "httproute", "fraud-scorer", "-n", namespace)
    promoted = [
        e for e in wait_events(control_plane, namespace, "RolloutStarted", "Promoted") if e["reason"] == "Promoted"
    ]
    assert promoted[0]["reportingController"] == "modelrollout.io/operator"


def test_helm_install_and_upgrade_keep_the_webhook_token(control_plane):
    """Helm itself against the apiserver: install (CRDs present, so skipped), upgrade, uninstall; the token it
    generated on install survives the upgrade (the chart looks the Secret up), so Alertmanager keeps working."""
    release, home = "helm-install-modelrollout", "helm-install-modelrollout-system"
    helm("install", release, str(HELM_CHART), "--namespace", home, "--create-namespace", "--wait", "--timeout=60s")
    try:

        def token() -> str:
            secret = get_json(control_plane, "secret", f"{release}-webhook-token", "-n", home)
            return base64.b64decode(secret["data"]["token"]).decode()

        installed = token()
        helm("upgrade", release, str(HELM_CHART), "--namespace", home, "--set", "replicas=3", "--wait", "--timeout=60s")
        deployment = get_json(control_plane, "deployment", f"{release}-operator", "-n", home)
        assert deployment["spec"]["replicas"] == 3 and deployment["status"]["availableReplicas"] == 3
        assert token() == installed and len(installed) == 32
    finally:
        helm("uninstall", release, "--namespace", home)
    gone = lambda: get_json(control_plane, "deployment", f"{release}-operator", "-n", home) is None  # noqa: E731
    wait_for(gone, what="helm uninstall to remove the operator Deployment")
    assert get_json(control_plane, "crd", "modeldeployments.modelrollout.io")  # Helm never deletes crds/
